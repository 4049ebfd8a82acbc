/**
 * A linear pre-check of a JSON text's nesting, before `JSON.parse` sees it. V8 parses deeply nested input slowly:
 * 2 MiB of `[[[[…` takes over a second of one core (and ~100 MB) to parse, while no client message needs more
 * than a few levels. One pass, stopping at the first level too deep: a byte loop outside strings (about 1 ms per
 * MiB once compiled), a native search for each string's end (a 22 KB base64 audio string is one memchr).
 */

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACKET = 0x5b;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACKET = 0x5d;
const CLOSE_BRACE = 0x7d;

/** True when arrays/objects in `text` nest deeper than `maxDepth` (malformed input is left to the parser). */
export function jsonNestingExceeds(text: Buffer, maxDepth: number): boolean {
  let depth = 0;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text[i];
    if (c === QUOTE) {
      // A string: jump to its closing quote with a native search (an audio message is one long base64 string),
      // the one not escaped, i.e. preceded by an even run of backslashes.
      const start = i + 1;
      let q = start;
      for (;;) {
        q = text.indexOf(QUOTE, q);
        if (q < 0) return false; // unterminated: nothing nests after it
        let j = q - 1;
        while (j >= start && text[j] === BACKSLASH) j--;
        if ((q - 1 - j) % 2 === 0) break;
        q++;
      }
      i = q;
    } else if (c === OPEN_BRACKET || c === OPEN_BRACE) {
      if (++depth > maxDepth) return true;
    } else if (c === CLOSE_BRACKET || c === CLOSE_BRACE) {
      depth--;
    }
  }
  return false;
}

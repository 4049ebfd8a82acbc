/**
 * A linear pre-check of a JSON text's nesting, before `JSON.parse` sees it. V8 parses deeply nested input slowly:
 * 2 MiB of `[[[[…` takes over a second of one core (and ~100 MB) to parse, while no client message needs more
 * than a few levels. One byte loop (about 1 ms per MiB once compiled, whatever the content, escapes included),
 * stopping at the first level too deep.
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
  let inString = false;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text[i];
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) {
      inString = true;
    } else if (c === OPEN_BRACKET || c === OPEN_BRACE) {
      if (++depth > maxDepth) return true;
    } else if (c === CLOSE_BRACKET || c === CLOSE_BRACE) {
      depth--;
    }
  }
  return false;
}

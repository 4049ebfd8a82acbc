/**
 * How deep and how big a JSON text is, found in one linear pass over its raw bytes before `JSON.parse` runs,
 * so a body built to be expensive to parse (`[[[[…]]]]`, a million tiny values) is refused without building it.
 *
 * Only bytes outside strings count: `{` and `[` open a level (and count as an element), `,` separates elements.
 * Structural characters are ASCII and never occur inside a UTF-8 multi-byte sequence, so bytes need no decoding.
 * No recursion, no allocation; strings are skipped with a native search for their end; the scan is incremental (chunk by chunk, as the body arrives), so a body is refused
 * at the first byte past a limit, before the rest of it is read.
 */

export interface JsonShapeLimits {
  /** Deepest nesting of objects/arrays allowed (the top-level object is depth 1). */
  maxDepth: number;
  /** Most containers plus separators allowed: a rough count of the values the parser would create. */
  maxElements: number;
}

export type JsonShapeVerdict = { ok: true } | { ok: false; reason: 'depth' | 'elements' };

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_OBJECT = 0x7b;
const OPEN_ARRAY = 0x5b;
const CLOSE_OBJECT = 0x7d;
const CLOSE_ARRAY = 0x5d;
const COMMA = 0x2c;
const OK: JsonShapeVerdict = { ok: true };

/** The scan, fed one chunk at a time; a refusal is final. */
export class JsonShapeScanner {
  private depth = 0;
  private elements = 0;
  private inString = false;
  private escaped = false;
  private verdict: JsonShapeVerdict = OK;

  constructor(private readonly limits: JsonShapeLimits) {}

  feed(bytes: Uint8Array): JsonShapeVerdict {
    if (!this.verdict.ok) return this.verdict;
    const { maxDepth, maxElements } = this.limits;
    let { depth, elements, inString, escaped } = this;
    const n = bytes.length;
    // Inside a string only a quote or a backslash matters: both are found with a native search (a body's audio is
    // one long base64 string). Where the next of each is, from `i` on (-1: none left in this chunk).
    let nextQuote = -2;
    let nextBackslash = -2;
    for (let i = 0; i < n; i++) {
      if (inString) {
        if (escaped) {
          escaped = false; // the escaped byte cannot end the string
          continue;
        }
        if (nextQuote !== -1 && nextQuote < i) nextQuote = bytes.indexOf(QUOTE, i);
        if (nextBackslash !== -1 && nextBackslash < i) nextBackslash = bytes.indexOf(BACKSLASH, i);
        if (nextBackslash !== -1 && (nextQuote === -1 || nextBackslash < nextQuote)) {
          escaped = true;
          i = nextBackslash;
        } else if (nextQuote !== -1) {
          inString = false;
          i = nextQuote;
        } else {
          break; // the string goes on in the next chunk
        }
        continue;
      }
      const c = bytes[i];
      if (c === QUOTE) {
        inString = true;
      } else if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
        if (++depth > maxDepth) return (this.verdict = { ok: false, reason: 'depth' });
        if (++elements > maxElements) return (this.verdict = { ok: false, reason: 'elements' });
      } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) {
        depth--; // unbalanced input is JSON.parse's to refuse
      } else if (c === COMMA) {
        if (++elements > maxElements) return (this.verdict = { ok: false, reason: 'elements' });
      }
    }
    Object.assign(this, { depth, elements, inString, escaped });
    return OK;
  }
}

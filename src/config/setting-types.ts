import { z } from 'zod';

/**
 * One environment variable: how it is parsed (a zod type from the optional string to the typed value, with its
 * default), the value `.env.example` shows, and a one-line description. The table in `settings.ts` is made of these.
 */
export interface Setting<T extends z.ZodType = z.ZodType> {
  readonly type: T;
  /** What `.env.example` writes after `NAME=` (the default, or an example when noted). */
  readonly example: string;
  readonly doc: string;
  /** `.env.example` shows the line commented out (the default is computed, not a fixed value). */
  readonly commented?: boolean;
}

type Extra = { example?: string; commented?: boolean };

const setting = <T extends z.ZodType>(type: T, example: string, doc: string, extra: Extra = {}): Setting<T> => ({
  type,
  example: extra.example ?? example,
  doc,
  ...(extra.commented ? { commented: true } : {}),
});

const blank = (v: string | undefined): v is undefined => v === undefined || v.trim() === '';

/** A number in [min, max] (default `def`); `integer`: whole numbers only. */
const numberIn = (integer: boolean, doc: string, def: number, min: number, max: number, extra?: Extra) =>
  setting(
    z
      .string()
      .optional()
      .transform((v, ctx) => {
        if (blank(v)) return def;
        const n = Number(v);
        if (!(integer ? Number.isInteger(n) : Number.isFinite(n)) || n < min || n > max) {
          ctx.addIssue({ code: 'custom', message: `must be ${integer ? 'an integer' : 'a number'} in [${min}, ${max}]` });
          return z.NEVER;
        }
        return n;
      }),
    String(def),
    doc,
    extra,
  );

/** An integer in [min, max] (default `def`). */
export const int = (doc: string, def: number, min = 0, max = Number.MAX_SAFE_INTEGER, extra?: Extra) => numberIn(true, doc, def, min, max, extra);

/** A number in [min, max] (default `def`). */
export const num = (doc: string, def: number, min: number, max: number, extra?: Extra) => numberIn(false, doc, def, min, max, extra);

const TRUE = /^(1|true|yes|on)$/i;
const FALSE = /^(0|false|no|off)$/i;

/** true/false (also 1/0, yes/no, on/off), default `def`; `undefined` as default leaves the choice to the code. */
export const bool = <D extends boolean | undefined>(doc: string, def: D, extra?: Extra) =>
  setting(
    z
      .string()
      .optional()
      .transform((v, ctx): boolean | D => {
        if (blank(v)) return def;
        if (TRUE.test(v)) return true;
        if (FALSE.test(v)) return false;
        ctx.addIssue({ code: 'custom', message: 'must be true or false' });
        return z.NEVER;
      }),
    def === undefined ? '' : String(def),
    doc,
    extra,
  );

/** A trimmed string, default `def` (`undefined`: not set). */
export const str = <D extends string | undefined>(doc: string, def: D, extra?: Extra) =>
  setting(
    z
      .string()
      .optional()
      .transform((v): string | D => (blank(v) ? def : v.trim())),
    def ?? '',
    doc,
    extra,
  );

/** One of `values`, default `def`. */
export const oneOf = <const V extends readonly [string, ...string[]]>(doc: string, values: V, def: V[number], extra?: Extra) =>
  setting(
    z
      .string()
      .optional()
      .transform((v, ctx): V[number] => {
        if (blank(v)) return def;
        const t = v.trim();
        if (!values.includes(t)) {
          ctx.addIssue({ code: 'custom', message: `must be one of ${values.join(', ')}` });
          return z.NEVER;
        }
        return t;
      }),
    def,
    doc,
    extra,
  );

/** A comma-separated list (empty items dropped). */
export const list = (doc: string, extra?: Extra) =>
  setting(
    z
      .string()
      .optional()
      .transform((v) =>
        (v ?? '')
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean),
      ),
    '',
    doc,
    extra,
  );

const BYTE_UNITS: Record<string, number> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 };

/** Parses a byte size such as `8mb`, `256kb`, `1.5mb` or `65536` (units are powers of 1024); null when invalid. */
export function parseByteSize(raw: string): number | null {
  const m = /^(\d{1,12}(?:\.\d{1,6})?)\s{0,4}(b|kb|mb|gb)?$/i.exec(raw.trim());
  if (!m) return null;
  const n = Math.floor(Number(m[1]) * BYTE_UNITS[(m[2] ?? 'b').toLowerCase()]);
  return Number.isSafeInteger(n) ? n : null;
}

/** A byte size (`16kb`, `8mb`, `65536`) of at least `min` bytes, as a number of bytes. */
export const byteSize = (doc: string, def: string, min: number, extra?: Extra) =>
  setting(
    z
      .string()
      .optional()
      .transform((v, ctx) => {
        const n = parseByteSize(blank(v) ? def : v);
        if (n === null || n < min) {
          ctx.addIssue({ code: 'custom', message: `must be a byte size of at least ${min} (e.g. 16kb, 8mb)` });
          return z.NEVER;
        }
        return n;
      }),
    def,
    doc,
    extra,
  );

/**
 * A value parsed by `parse` (which returns `{ value }` or `{ error }`, or throws an error whose message is the
 * problem); the raw text is what `parse` gets (undefined when unset).
 */
export const parsed = <T>(doc: string, parse: (raw: string | undefined) => { value: T } | { error: string }, extra?: Extra) =>
  setting(
    z
      .string()
      .optional()
      .transform((v, ctx): T => {
        let r: { value: T } | { error: string };
        try {
          r = parse(blank(v) ? undefined : v);
        } catch (err) {
          r = { error: (err as Error).message };
        }
        if ('error' in r) {
          ctx.addIssue({ code: 'custom', message: r.error });
          return z.NEVER;
        }
        return r.value;
      }),
    '',
    doc,
    extra,
  );

/**
 * Wire-level facts of the Gemini Live BidiGenerateContent endpoint: the request path, close codes and
 * reasons as the real service sends them, frame encoding.
 */

export const CLOSE_INVALID_ARGUMENT = 1007;
export const CLOSE_POLICY = 1008;
export const CLOSE_INTERNAL = 1011;

export const REASON_INVALID_ARGUMENT = 'Request contains an invalid argument.';
export const REASON_BAD_KEY = 'API key not valid. Please pass a valid API key.';
export const REASON_NON_AUDIO = 'Cannot extract voices from a non-audio request.';
export const REASON_DEADLINE = 'Deadline expired before operation could complete.';
export const REASON_INTERNAL = 'Internal error encountered.';
export const REASON_QUOTA = 'You exceeded your current quota, please check your plan and billing details.';

/** RFC 6455 limit for a close reason; the real service truncates longer reasons the same way. */
export const MAX_CLOSE_REASON_BYTES = 123;

export function modelNotFoundReason(model: string, apiVersion: string): string {
  return truncateReason(
    `${model} is not found for API version ${apiVersion}, or is not supported for bidiGenerateContent. ` +
      'Call ListModels to see the list of available models and their supported methods.',
  );
}

/** Cuts `reason` to at most 123 UTF-8 bytes without splitting a character. */
export function truncateReason(reason: string): string {
  if (Buffer.byteLength(reason) <= MAX_CLOSE_REASON_BYTES) return reason;
  let out = '';
  for (const ch of reason) {
    if (Buffer.byteLength(out + ch) > MAX_CLOSE_REASON_BYTES) break;
    out += ch;
  }
  return out;
}

const LIVE_PATH = new RegExp(
  '^/(?:.*/)?ws/google\\.ai\\.generativelanguage\\.(v1alpha|v1beta|v1)\\.GenerativeService\\.' +
    '(BidiGenerateContent|BidiGenerateContentConstrained)$',
);

export interface LiveRequest {
  apiVersion: string;
  method: 'BidiGenerateContent' | 'BidiGenerateContentConstrained';
  /** `key` for BidiGenerateContent, `access_token` for the Constrained (ephemeral token) method. */
  key: string | undefined;
}

/**
 * Parses the upgrade request URL. The SDK sends `//ws/google.ai…?key=…`; `new URL()` would read the `ws` after
 * `//` as a host, so leading slashes are collapsed first. Returns undefined for anything that is not the
 * Live endpoint (answered with HTTP 404).
 */
export function parseLiveRequestUrl(rawUrl: string | undefined): LiveRequest | undefined {
  if (!rawUrl) return undefined;
  const url = new URL(rawUrl.replace(/^\/+/, '/'), 'http://emulator.invalid');
  const m = LIVE_PATH.exec(url.pathname);
  if (!m) return undefined;
  const method = m[2] as LiveRequest['method'];
  const key = url.searchParams.get(method === 'BidiGenerateContent' ? 'key' : 'access_token') ?? undefined;
  return { apiVersion: m[1], method, key };
}

/** Server frames: pretty-printed JSON, in binary frames like production or in text frames. */
export type FrameMode = 'binary' | 'text';

export function encodeFrame(message: unknown, mode: FrameMode): Buffer | string {
  const json = `${JSON.stringify(message, null, 2)}\n`;
  return mode === 'binary' ? Buffer.from(json, 'utf8') : json;
}

/** A protobuf Duration in JSON form: `50s`, `0.200s`. */
export function formatDuration(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${(ms / 1000).toFixed(3)}s`;
}

/** The short name of a server message for the recorder's `sent` log. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON from the wire, of a shape not known here, read field by field
export function serverMessageKind(msg: Record<string, any>): string {
  if (msg.serverContent) {
    const sc = msg.serverContent;
    const keys = Object.keys(sc);
    return keys.length > 0 ? keys.join('+') : 'serverContent';
  }
  return Object.keys(msg)[0] ?? 'empty';
}

export const HTTP_REASONS: Record<number, { status: string; message: string }> = {
  401: { status: 'UNAUTHENTICATED', message: 'Request had invalid authentication credentials.' },
  403: { status: 'PERMISSION_DENIED', message: 'The caller does not have permission.' },
  404: { status: 'NOT_FOUND', message: 'Requested entity was not found.' },
  429: { status: 'RESOURCE_EXHAUSTED', message: 'Resource has been exhausted (e.g. check quota).' },
  503: { status: 'UNAVAILABLE', message: 'The service is currently unavailable.' },
};

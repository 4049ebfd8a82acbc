/** Which browser origins may call the API: one decision for the REST door (CORS) and the WebSocket upgrade. */

export interface CorsPolicyOptions {
  /** Allowed origins; `*` allows any. */
  origins: string[];
  /** Outside production, `http://localhost:*` and `http://127.0.0.1:*` are allowed too. */
  allowLocalhost: boolean;
}

const LOCAL_RE = /^https?:\/\/(localhost|127\.0\.0\.1|\[::1\])(:\d+)?$/;

/** Decides whether a browser origin may call the API. Same-origin requests are always allowed. */
export function makeOriginCheck(opts: CorsPolicyOptions): (origin: string, host: string | undefined) => boolean {
  const set = new Set(opts.origins.map((o) => o.replace(/\/$/, '')));
  const any = set.has('*');
  return (origin, host) => {
    if (any || set.has(origin)) return true;
    if (opts.allowLocalhost && LOCAL_RE.test(origin)) return true;
    if (host) {
      try {
        if (new URL(origin).host === host) return true;
      } catch {
        return false;
      }
    }
    return false;
  };
}

import type { UpstreamCloseInfo } from './upstream-types';

/** Quota reasons ("You exceeded your current quota…", RESOURCE_EXHAUSTED). Not bare "exceeded": "Deadline exceeded" is retryable. */
const QUOTA_RE = /quota|RESOURCE_EXHAUSTED|rate limit/i;

/**
 * Turns a Live API close into a clear description and says whether retrying could help.
 * 1007 (invalid argument, bad key) and 1008 (model not found, policy) are fatal; so are quota closes.
 */
export function describeClose(code: number, reason: string, byClient: boolean): UpstreamCloseInfo {
  const r = reason.trim();
  let fatal = false;
  let description: string;
  if (byClient) {
    description = 'closed by the relay';
  } else if (code === 1000) {
    description = 'Gemini closed the connection normally';
  } else if (code === 1007) {
    fatal = true;
    description = `Gemini rejected the request (1007): ${r || 'invalid argument'}`;
  } else if (code === 1008) {
    fatal = true;
    description = `Gemini refused the session (1008): ${r || 'policy violation'}`;
  } else if (code === 1011 && QUOTA_RE.test(r)) {
    fatal = true;
    description = `Gemini quota exceeded (1011): ${r}`;
  } else if (code === 1011) {
    description = `Gemini ended the connection (1011): ${r || 'internal error'}`;
  } else if (code === 1006) {
    description = 'connection to Gemini dropped (1006)';
  } else {
    description = `Gemini connection closed (${code})${r ? `: ${r}` : ''}`;
  }
  return { code, reason: r, byClient, fatal, description };
}

/** Errors before the upgrade completed (`Unexpected server response: 429`, ECONNREFUSED, ...). */
export function describeTransportError(message: string): { fatal: boolean; description: string } {
  const m = /Unexpected server response: (\d+)/.exec(message);
  if (m) {
    const status = Number(m[1]);
    if (status === 429) return { fatal: true, description: 'Gemini quota exceeded (HTTP 429 at connect)' };
    if (status === 401 || status === 403) return { fatal: true, description: `Gemini refused the API key (HTTP ${status})` };
    if (status === 404) return { fatal: true, description: 'Gemini Live endpoint not found (HTTP 404): check GEMINI_BASE_URL' };
    return { fatal: false, description: `Gemini handshake failed (HTTP ${status})` };
  }
  return { fatal: false, description: `cannot reach Gemini: ${message}` };
}

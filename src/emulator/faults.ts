import type { Pacing } from './scenario';

/**
 * Faults the emulator can inject, switchable per test (`faults` option or `setFaults()`), or per connection
 * through the API key (`?key=fault:<name>`, see `namedFaults`).
 *
 * Timed faults (`goAwayAfterMs`, `dropAfterMs`, `closeAfterMs`) count from `setupComplete` and are armed when a
 * connection completes setup. Reply faults are read when a reply starts, so `setFaults()` also changes the
 * replies of open connections.
 */
export interface FaultOptions {
  // ---- handshake and setup ----
  /** Answer the WebSocket upgrade with this HTTP status (the SDK sees `Unexpected server response: N` + 1006). */
  handshakeStatus?: 429 | 401 | 403 | 503;
  /** Close right after `setup` with this code and reason (before `setupComplete`). */
  rejectSetup?: { code: 1007 | 1008; reason: string };
  /** Accept `setup` and never answer it. */
  neverCompleteSetup?: boolean;
  /** Send `setupComplete`, then close 1011 with the quota reason. */
  quotaCloseAfterSetup?: boolean;

  // ---- connection lifetime ----
  /** Send `goAway` this long after `setupComplete`. */
  goAwayAfterMs?: number;
  /** `timeLeft` announced by the automatic goAway. Default 1000 ms. */
  goAwayTimeLeftMs?: number;
  /** What happens when a goAway's `timeLeft` runs out. Default 'close' (1011 'Deadline expired…'). */
  afterGoAway?: 'close' | 'terminate' | 'stay-open';
  /** After goAway send nothing more: no replies, no handles (audio is still received and recorded). */
  silentAfterGoAway?: boolean;
  /** Abrupt TCP drop (the client sees 1006) this long after `setupComplete`. */
  dropAfterMs?: number;
  /** Close with this code and reason this long after `setupComplete`, e.g. 1011 'Internal error encountered.'. */
  closeAfterMs?: { ms: number; code: number; reason: string };

  // ---- replies ----
  /** Extra latency before every reply's first content. */
  replyDelayMs?: number;
  /** Split every reply audio chunk and every text/transcription fragment into this many messages. */
  splitReplyParts?: number;
  /** Send the input transcription after the first model audio chunk instead of before it. */
  lateInputTranscription?: boolean;
  /** Send `sessionResumptionUpdate {resumable:false}` when a reply starts (the resumable handle still follows turnComplete). */
  notResumableDuringGeneration?: boolean;
  /** Overrides the scenario's pacing. */
  pacing?: Pacing;

  // ---- scope ----
  /**
   * Apply these faults only to the first N connection attempts after they were set (e.g. drop only the first
   * connection, so the client's reconnect succeeds). Unset: every connection.
   */
  faultConnections?: number;
}

export const DEFAULT_GOAWAY_TIME_LEFT_MS = 1000;

/**
 * Faults selectable through the API key, for black-box runs: `?key=fault:drop` or `?key=fault:drop@1`
 * (only the first connection made with that key). Several directives can be combined with commas:
 * `?key=scenario:short,fault:slow`.
 */
export function namedFault(name: string): FaultOptions | undefined {
  switch (name) {
    case 'goaway':
      return { goAwayAfterMs: 1000, goAwayTimeLeftMs: 1000 };
    case 'goaway-silent':
      return { goAwayAfterMs: 1000, goAwayTimeLeftMs: 1000, silentAfterGoAway: true };
    case 'drop':
      return { dropAfterMs: 1000 };
    case 'internal-error':
      return { closeAfterMs: { ms: 1000, code: 1011, reason: 'Internal error encountered.' } };
    case 'quota':
      return { quotaCloseAfterSetup: true };
    case 'never-ready':
      return { neverCompleteSetup: true };
    case 'bad-setup':
      return { rejectSetup: { code: 1007, reason: 'Request contains an invalid argument.' } };
    case 'slow':
      return { replyDelayMs: 2000 };
    case 'split':
      return { splitReplyParts: 4 };
    case 'late-transcription':
      return { lateInputTranscription: true };
    case 'not-resumable':
      return { notResumableDuringGeneration: true };
    case 'realtime':
      return { pacing: 'realtime' };
    case 'http-401':
      return { handshakeStatus: 401 };
    case 'http-403':
      return { handshakeStatus: 403 };
    case 'http-429':
      return { handshakeStatus: 429 };
    case 'http-503':
      return { handshakeStatus: 503 };
    default:
      return undefined;
  }
}

export interface KeyDirectives {
  scenario?: string;
  faults: { name: string; firstConnections?: number }[];
}

/** Parses `scenario:<name>` and `fault:<name>[@N]` directives out of an API key (anything else is ignored). */
export function parseKeyDirectives(key: string | undefined): KeyDirectives {
  const out: KeyDirectives = { faults: [] };
  for (const token of (key ?? '').split(',')) {
    const m = /^(scenario|fault):([a-z0-9-]+)(?:@(\d+))?$/.exec(token.trim());
    if (!m) continue;
    if (m[1] === 'scenario') out.scenario = m[2];
    else out.faults.push({ name: m[2], firstConnections: m[3] === undefined ? undefined : Number(m[3]) });
  }
  return out;
}

/** Later options win, field by field. */
export function mergeFaults(...all: (FaultOptions | undefined)[]): FaultOptions {
  return Object.assign({}, ...all.filter(Boolean)) as FaultOptions;
}

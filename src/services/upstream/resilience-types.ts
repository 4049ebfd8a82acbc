import type { ToolCallRequest } from '../tools/tool-types';
import type { UpstreamCloseInfo, UpstreamEvents } from './upstream-types';

export interface ResilienceOptions {
  /** PCM held while the upstream is down or rotating (default 10 s); the oldest is dropped (and counted) beyond. */
  backlogMs: number;
  /** Reconnect backoff with full jitter: attempt n waits a random time in [0, min(max, base * 2^n)]. */
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** Give up reconnecting after this long (default 30 s); the session then fails with the last error. */
  reconnectBudgetMs: number;
  /** Connections that live less than this count as quick failures (default 5 s)... */
  quickFailureMs: number;
  /** ...and this many in a row fail the session (default 3). */
  quickFailureLimit: number;
  /** How long a rotation waits for the old socket's close before resuming anyway (default 1 s). */
  closeWaitMs: number;
  /**
   * After a close that may have lost audio in flight (any close the relay did not initiate and see confirmed),
   * resend the audio the server had not confirmed receiving that was sent within this long before the close was
   * noticed (default 200 ms; 0 never resends). See `AudioDelivery.requeueUnconfirmed` for the trade-off.
   */
  replayMs: number;
  /** On goAway, rotate at the latest this long before `timeLeft` runs out (capped at half of it; default 2 s). */
  goAwaySafetyMs: number;
  /** After a turnComplete, how long a pending rotation waits for that turn's resumable handle (default 500 ms). */
  handleWaitMs: number;
  /**
   * Audio sent within this long means the user may be speaking (default 1 s): a goAway then waits for the next
   * turn boundary (or its deadline) instead of rotating at once, so an utterance is not split across connections.
   */
  userActiveMs: number;
  /** Source of randomness for the jitter (tests). */
  random: () => number;
}

export const DEFAULT_RESILIENCE: ResilienceOptions = {
  backlogMs: 10_000,
  backoffBaseMs: 250,
  backoffMaxMs: 8_000,
  reconnectBudgetMs: 30_000,
  quickFailureMs: 5_000,
  quickFailureLimit: 3,
  closeWaitMs: 1_000,
  replayMs: 200,
  goAwaySafetyMs: 2_000,
  handleWaitMs: 500,
  userActiveMs: 1_000,
  random: Math.random,
};

export type UpstreamState = 'connecting' | 'open' | 'rotating' | 'reconnecting' | 'failed' | 'closed';
/**
 * Why a connection was replaced:
 * - `go_away`: the server announced its end and the relay rotated at a turn boundary (or while idle);
 * - `go_away_deadline`: after a goAway no boundary came in time, or the server closed first;
 * - `unexpected_close`: the connection dropped (1006, 1011, network error) without a goAway.
 */
export type RotationCause = 'go_away' | 'go_away_deadline' | 'unexpected_close';

export interface UpstreamStats {
  state: UpstreamState;
  /** Connections that completed their setup (the first one included). */
  connections: number;
  /** Of those, the ones that replaced an earlier connection. */
  reconnects: number;
  /** Of the reconnects, those that resumed the model's session with a handle... */
  resumedReconnects: number;
  /** ...and those that started a fresh one (no handle yet, or the handle was refused): the model lost the context. */
  freshReconnects: number;
  /** The latest reconnect: whether it resumed, and how long the link was without a connection. */
  lastReconnect: { resumed: boolean; connectionNo: number; gapMs: number; at: string } | null;
  /** Connections replaced, whatever the cause (a rotation can still end in failure). */
  rotations: number;
  lastRotation: { cause: RotationCause; at: string } | null;
  /** Last close the relay did not initiate. */
  lastClose: { code: number; reason: string; description: string; at: string } | null;
  /** Audio accepted from the client and never sent upstream (backlog overflow, or lost with a failed link). */
  droppedAudioMs: number;
  bufferedAudioMs: number;
  sentAudioMs: number;
  /** Audio sent a second time after a close that may have lost it in flight (see `replayMs`). */
  replayedAudioMs: number;
  hasResumptionHandle: boolean;
  failure: UpstreamFailure | null;
}

export interface UpstreamFailure {
  description: string;
  code?: number;
  reason?: string;
}

/** The model's content, passed on from whichever connection is current (events of replaced ones are dropped). */
type ContentEvents = Pick<
  UpstreamEvents,
  'inputTranscription' | 'outputTranscription' | 'modelText' | 'modelAudio' | 'generationComplete' | 'interrupted' | 'usage' | 'grounding'
>;

export interface ResilientUpstreamEvents extends ContentEvents {
  /** Also emitted (after `interrupted`) when a reply is cut because its connection went away. */
  turnComplete: () => void;
  state: (state: UpstreamState) => void;
  /**
   * A connection (first or later) completed its setup. `resumed`: it continues the model's session through a
   * resumption handle; `reconnect`: it replaced an earlier connection; `gapMs`: time without a connection before it.
   */
  connected: (info: { resumed: boolean; reconnect: boolean; connectionNo: number; gapMs?: number }) => void;
  /** A connection closed (for metrics/logs); the link may reconnect. */
  connectionClosed: (info: UpstreamCloseInfo) => void;
  rotation: (cause: RotationCause) => void;
  /** The link gave up; no more events follow. */
  failed: (failure: UpstreamFailure) => void;
  /** PCM handed to the socket for the first time (bytes; a resend after a drop is not counted again). */
  audioSent: (bytes: number) => void;
  /** The model asks for function calls, on connection `connectionNo` (the session's ledger keeps where each came from). */
  toolCall: (calls: ToolCallRequest[], connectionNo: number) => void;
  toolCallCancellation: (ids: string[], connectionNo: number) => void;
  /**
   * Tool answers that waited for a connection were not sent: the new connection is a fresh session (not resumed)
   * that never asked for them. Emitted before that connection's `connected`.
   */
  toolResponsesDropped: (ids: string[]) => void;
  /** A new resumable handle (a session record keeps the latest, so another instance can resume the session). */
  resumptionHandle: (handle: string) => void;
}

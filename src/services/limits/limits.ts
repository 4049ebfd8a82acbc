import type { ChunkDescriptor } from '../audio/audio-types';
import type { AppError } from '../../util/app-error';
import { knownAudioSeconds } from './audio-estimate';
import { FixedWindowLimiter, type LimitDecision } from './fixed-window-limiter';
import { rateLimitError, type LimitKind } from './limit-errors';
import { MemoryLimitStore, type LimitStore } from './limit-store';

/** Per-minute budgets (0 = unlimited). */
export interface LimitsSettings {
  /** Seconds of audio per user (decoded; what reaches the model). */
  audioSecondsPerMinute: number;
  /** Encoded audio bytes per user (before decoding). */
  audioBytesPerMinute: number;
  /** WebSocket messages per user. */
  wsMessagesPerMinute: number;
  /** Requests that fail authentication, per client IP. */
  unauthenticatedPerIpPerMinute: number;
  /** WebSocket upgrade attempts per client IP (before authentication). */
  wsConnectsPerIpPerMinute: number;
  /** Window length (default 60 s). */
  windowMs?: number;
}

/** The windowed budgets. Keys: principal ids, except the `_ip` kinds (client addresses). */
export type WindowedKind = 'ws_messages' | 'audio_seconds' | 'audio_bytes' | 'unauthenticated_ip' | 'ws_connects_ip';

export interface LimitsOptions extends LimitsSettings {
  store?: LimitStore;
  now?: () => number;
  /** Called on every refusal (metrics). */
  onRefused?: (kind: LimitKind) => void;
}

/** Allowed, or refused with the error to send (429, `code`, `retryAfter`). */
export type Admission = ({ ok: true } & LimitDecision) | ({ ok: false; kind: LimitKind; error: AppError } & LimitDecision);

/** The one admission rule for client audio, whatever the transport (the service calls it for every chunk). */
export interface AudioAdmission {
  /** Admits one chunk (decoded from base64) of a user: refused while the user's audio budget is spent. */
  admitAudio(principalId: string, chunk: Buffer, desc: ChunkDescriptor): Admission;
}

/** Usage of one budget in its current window. */
export interface BudgetStatus {
  used: number;
  limit: number;
  remaining: number;
  resetTime: string;
}

/**
 * The limits that the HTTP middleware (express-rate-limit) does not cover: per-user WebSocket messages,
 * audio seconds and bytes (REST and WebSocket alike), and per-IP budgets before authentication. All calls
 * are synchronous, so a caller can admit messages strictly in arrival order.
 *
 * ```ts
 * const d = limits.consume(principal.id, 'ws_messages');          // once per WebSocket message
 * if (!d.ok) reply(d.error.code, d.error.message, d.retryAfterSec);
 * const a = limits.admitAudio(principal.id, chunk, desc);         // per audio chunk, before pushAudio
 * ```
 * Decoded audio is charged with `takeAudioSeconds` as sessions relay PCM upstream (server.ts hands every session
 * its owner's budget, whatever its transport); a stream that exceeds it is cut there.
 */
export class Limits implements AudioAdmission {
  private readonly store: LimitStore;
  private readonly ownsStore: boolean;
  private readonly windowed: Record<WindowedKind, FixedWindowLimiter>;
  private readonly now: () => number;

  constructor(private readonly o: LimitsOptions) {
    this.ownsStore = !o.store;
    this.now = o.now ?? Date.now;
    this.store = o.store ?? new MemoryLimitStore({ now: o.now });
    const windowMs = o.windowMs ?? 60_000;
    const mk = (name: WindowedKind, limit: number) => new FixedWindowLimiter({ name, limit, windowMs, store: this.store, now: o.now });
    this.windowed = {
      ws_messages: mk('ws_messages', o.wsMessagesPerMinute),
      audio_seconds: mk('audio_seconds', o.audioSecondsPerMinute),
      audio_bytes: mk('audio_bytes', o.audioBytesPerMinute),
      unauthenticated_ip: mk('unauthenticated_ip', o.unauthenticatedPerIpPerMinute),
      ws_connects_ip: mk('ws_connects_ip', o.wsConnectsPerIpPerMinute),
    };
  }

  get settings(): Readonly<LimitsSettings> {
    return this.o;
  }

  private refuse(kind: LimitKind, d: LimitDecision): Admission {
    this.o.onRefused?.(kind);
    return { ...d, ok: false, kind, error: rateLimitError(kind, d.limit, d.retryAfterSec) };
  }

  /** Uses `amount` (default 1) of a budget; a refused attempt uses nothing. */
  consume(key: string, kind: WindowedKind, amount = 1): Admission {
    const d = this.windowed[kind].consume(key, amount);
    return d.ok ? { ...d, ok: true } : this.refuse(kind, d);
  }

  /** Gives back `amount` of a budget used earlier in its current window (see `FixedWindowLimiter.release`). */
  release(key: string, kind: WindowedKind, amount = 1): void {
    this.windowed[kind].release(key, amount);
  }

  /**
   * Admits one audio chunk of a user (call before feeding it to the session):
   * - refused while the user's audio seconds for this window are spent; a raw PCM or WAV chunk, whose
   *   duration is known from its size, is also refused when it does not fit in what is left (unless the
   *   window is still unused, so that one long chunk is not refused forever);
   * - its encoded bytes count against the bytes budget.
   * Decoded seconds are charged separately, as they reach the model (`chargeAudioSeconds`).
   */
  admitAudio(principalId: string, chunk: Buffer, desc?: ChunkDescriptor): Admission {
    const refusal = this.audioSecondsRefusal(principalId, desc ? (knownAudioSeconds(chunk, desc) ?? 0) : 0);
    if (refusal) return refusal;
    return this.consume(principalId, 'audio_bytes', chunk.length);
  }

  private audioSecondsRefusal(principalId: string, knownSeconds: number): Admission | undefined {
    const seconds = this.windowed.audio_seconds;
    if (seconds.limit <= 0) return undefined;
    const d = seconds.check(principalId, 0);
    if (!d.ok) return this.refuse('audio_seconds', d);
    const used = d.limit - d.remaining;
    if (knownSeconds > 0 && used > 0 && used + knownSeconds > d.limit + 1e-6) {
      return this.refuse('audio_seconds', { ...d, ok: false, retryAfterSec: Math.max(1, Math.ceil((d.resetAt - this.now()) / 1000)) });
    }
    return undefined;
  }

  /** Charges decoded audio (seconds) to a user; never refuses (the audio was already accepted). */
  chargeAudioSeconds(principalId: string, seconds: number): void {
    this.windowed.audio_seconds.charge(principalId, seconds);
  }

  /**
   * Charges decoded audio as a session relays it, up to what is left of the user's window: `granted` < `seconds`
   * means the budget is spent (the session cuts the stream there and the refusal is counted once).
   */
  takeAudioSeconds(principalId: string, seconds: number): { granted: number; retryAfterSec: number } {
    const { granted, decision } = this.windowed.audio_seconds.take(principalId, seconds);
    if (!decision.ok) this.o.onRefused?.('audio_seconds');
    return { granted, retryAfterSec: decision.retryAfterSec };
  }

  /** A budget's use in its current window (status messages, tests). */
  status(key: string, kind: WindowedKind): BudgetStatus {
    const l = this.windowed[kind];
    const d = l.check(key, 0);
    const limit = l.limit;
    return {
      used: limit > 0 ? limit - d.remaining : 0,
      limit,
      remaining: limit > 0 ? d.remaining : Number.MAX_SAFE_INTEGER,
      resetTime: new Date(d.resetAt || this.now() + l.windowMs).toISOString(),
    };
  }

  close(): void {
    if (this.ownsStore) this.store.close();
  }
}

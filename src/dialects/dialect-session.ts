import { randomBytes } from 'node:crypto';
import type { Principal } from '../services/auth/principal';
import type { AudioFormat } from '../services/audio/audio-types';
import type { LiveAudioService } from '../services/live-audio-service';
import type { LiveSession, LiveSessionEvents } from '../services/session/live-session';
import { isAppError } from '../util/app-error';
import type { Logger } from '../util/logger';
import { CloseCodes } from '../websocket/server-messages';
import type { DialectConnection } from './dialect-socket';

/**
 * What the dialects share on the session side: a session id, starting an ordinary session (`transport: 'ws'`,
 * listed, limited, metered, timed like any other), feeding audio through the one admission and decoder seam, and
 * listening to a session's typed events until released.
 */

/** A fresh session id for a dialect that has none (`<dialect>_<ms>_<random>`). */
export function newSessionId(prefix: string): string {
  return `${prefix}_${Date.now()}_${randomBytes(6).toString('hex')}`;
}

/** An error for a dialect's own error message: the client's message and code for AppErrors, a generic one else. */
export function clientError(err: unknown): { message: string; code: string; status: number; retryAfterSec?: number } {
  if (isAppError(err)) return { message: err.message, code: err.code, status: err.status, retryAfterSec: err.extra.retryAfterSec as number | undefined };
  return { message: 'Internal server error', code: 'INTERNAL_ERROR', status: 500 };
}

/** A dialect handler's failure as the client error to send (message, code); a server fault (5xx) is logged first. */
export function handlerFailure(log: Logger, dialect: string, err: unknown): ReturnType<typeof clientError> {
  const e = clientError(err);
  if (e.status >= 500) log.error({ code: e.code }, `${dialect}: handler failed`);
  return e;
}

/**
 * For a dialect whose session starts as soon as its socket opens: runs `start` at once; a refusal is reported
 * (`onError`) and the socket closed (1008). Resolves with the session, or undefined after a refusal (frames wait
 * for it and are dropped then).
 */
export function startOnOpen(c: DialectConnection, start: () => Promise<LiveSession>, onError: (err: unknown) => void): Promise<LiveSession | undefined> {
  return start().catch((err: unknown) => {
    onError(err);
    c.close(CloseCodes.policyViolation, 'Session could not start');
    return undefined;
  });
}

/**
 * Admits one audio chunk (base64, or bytes) against the owner's audio budget and feeds it to the session (in call order). `pcm` is s16le
 * at `sampleRate` with `channels` channels; the decoder seam resamples it to 16 kHz mono (pass-through when it already is).
 */
export function admitAudio(
  service: LiveAudioService,
  owner: Principal,
  session: LiveSession,
  data: Buffer | string,
  desc: { format: AudioFormat; sampleRate?: number; channels?: number },
): Promise<unknown> {
  const admitted = service.admitAudio(owner, {
    // (Base64 as the dialect sent it, or its bytes encoded: one validation and size rule for every transport.)
    audioData: typeof data === 'string' ? data : data.toString('base64'),
    format: desc.format,
    sampleRate: desc.sampleRate,
    channels: desc.channels,
  });
  return service.pushAudio(session, admitted.chunk, admitted.desc);
}

export type SessionListeners = { [K in keyof LiveSessionEvents]?: LiveSessionEvents[K] };

/** Listens to several of a session's events; returns the function that stops all of them. */
export function listen(service: LiveAudioService, session: LiveSession, listeners: SessionListeners): () => void {
  const offs: Array<() => void> = [];
  for (const [event, fn] of Object.entries(listeners) as Array<[keyof LiveSessionEvents, LiveSessionEvents[keyof LiveSessionEvents]]>) {
    if (fn) offs.push(service.subscribe(session, event, fn as never));
  }
  return () => {
    for (const off of offs.splice(0)) off();
  };
}

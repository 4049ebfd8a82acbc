/**
 * The part of a request's time spent in a designed wait (REST `/transcribe` waits, bounded, for news of the turn):
 * noted by the handler, read by the metrics middleware, which reports the server's own handling time without it.
 * Keyed by the response object (a WeakMap: nothing outlives the request).
 */
const waits = new WeakMap<object, number>();

/** Adds `ms` of designed waiting to the request answered by `res`. */
export function noteDesignedWait(res: object, ms: number): void {
  if (Number.isFinite(ms) && ms > 0) waits.set(res, (waits.get(res) ?? 0) + ms);
}

/** The designed waiting noted for `res`, ms (0 when none). */
export function designedWaitOf(res: object): number {
  return waits.get(res) ?? 0;
}

/** What `LiveAudioService.transcribe` fills in: how long it waited for news. */
export interface TranscribeTiming {
  waitedMs: number;
}

import type { SessionRecord } from './session-records';
import { END_MESSAGES, type StoredSetup, type StoredTurn } from './cluster-sessions';
import { parseStoredToolCalls } from './stored-tool-calls';

/**
 * Session views read from a session's record, for an instance that does not serve it: they answer as its owner's
 * tombstone or status would (the session door's REST answers and WebSocket `get_status`).
 */

/** An ended session's `session_ended` view (`end` answers it with `alreadyEnded`). */
export function endedViewOf(rec: SessionRecord) {
  const reason = rec.endReason ?? 'ended';
  const endTime = new Date(rec.endedAt ?? rec.expiresAt).toISOString();
  return {
    sessionId: rec.sessionId,
    status: rec.status === 'expired' || reason === 'expired' ? ('expired' as const) : ('ended' as const),
    reason,
    message: END_MESSAGES[reason] ?? reason,
    endTime,
    duration: new Date(endTime).getTime() - rec.createdAt,
  };
}

/** An ended session's status, as the owner's tombstone answers it (`endedSessionStatusView`). */
export function endedStatusOf(rec: SessionRecord) {
  const reason = rec.endReason ?? 'ended';
  const setup = (rec.summary ?? rec.setup ?? {}) as Partial<StoredSetup>;
  const summary = rec.summary ?? {};
  const parsed = (v: string | undefined): unknown => {
    try {
      return v === undefined ? null : (JSON.parse(v) as unknown);
    } catch {
      return null;
    }
  };
  return {
    ...endedViewOf(rec),
    startTime: new Date(rec.createdAt).toISOString(),
    model: setup.model,
    responseModality: setup.responseModality,
    transport: summary.transport ?? (rec.setup as Partial<StoredSetup> | undefined)?.transport ?? 'rest',
    endReason: reason,
    setup: parsed(summary.setup),
    usage: parsed(summary.usage),
  };
}

/**
 * The status of a live session whose owner is dead (or released it), from its record: `active`, with the setup it
 * runs with and `upstream.state: 'detached'` (the next call that needs it, a chunk or a resume, takes it over and
 * resumes its upstream with the stored handle).
 */
export function liveStatusOf(rec: SessionRecord) {
  const setup = (rec.setup ?? {}) as Partial<StoredSetup>;
  return {
    sessionId: rec.sessionId,
    status: 'active' as const,
    startTime: new Date(rec.createdAt).toISOString(),
    expiresAt: new Date(rec.expiresAt).toISOString(),
    idleExpiresAt: new Date(rec.expiresAt).toISOString(),
    lastActivity: new Date((rec.turn as StoredTurn | undefined)?.lastActivityAt ?? rec.updatedAt).toISOString(),
    model: setup.model ?? null,
    responseModality: setup.responseModality ?? 'text',
    transport: setup.transport ?? 'rest',
    audio: { chunks: 0, bytesIn: 0, decodedSeconds: 0 },
    upstream: { state: 'detached', connected: false, reconnects: 0, hasResumptionHandle: rec.resumptionHandle !== undefined },
    turn: { turnId: 0, turnComplete: true },
    setup: setup.echo ?? null,
    toolCalls: parseStoredToolCalls(rec.tools).pending.map((c) => ({ id: c.id, name: c.name, ageMs: Math.max(0, Date.now() - c.askedAt) })),
    // What the session used so far, as its owner last recorded it (every owner together).
    usage: (rec.turn as StoredTurn | undefined)?.usage ?? null,
    ownerAvailable: false,
  };
}

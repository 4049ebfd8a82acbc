import type { TranscriptRecord } from '../conversation/transcript-types';
import type { SetupEcho } from '../session-setup/effective-setup';
import type { UsageFigures } from '../usage/usage-figures';

/** The body of a `session.ended` delivery. */
export interface SessionEndedEvent {
  type: 'session.ended';
  /** The delivery id (also in `X-Live-Audio-Delivery`): the same on every retry. */
  id: string;
  /** ISO time the event was made. */
  created_at: string;
  data: {
    session_id: string;
    owner: { id: string; name: string | null };
    started_at: string;
    ended_at: string;
    reason: string;
    /** The effective setup as the client saw it (no secrets). */
    setup: SetupEcho | null;
    transcript: TranscriptRecord;
    usage: UsageFigures;
    /** Oldest turns left out to keep the body within the size cap. */
    transcript_truncated: boolean;
  };
}

export interface SessionEndedInput {
  deliveryId: string;
  sessionId: string;
  owner: { id: string; name?: string | null };
  startedAt: number;
  endedAt: number;
  reason: string;
  setup: SetupEcho | null;
  transcript: TranscriptRecord;
  usage: UsageFigures;
  now?: number;
}

/**
 * The event and its JSON body, at most `maxBodyBytes`: beyond, the oldest turns are left out (the newest are
 * what a receiver acts on), and `transcript_truncated` says so. Returns the body exactly as it will be signed.
 */
export function buildSessionEndedBody(input: SessionEndedInput, maxBodyBytes: number): { event: SessionEndedEvent; body: string } {
  const turns = input.transcript.turns;
  const event: SessionEndedEvent = {
    type: 'session.ended',
    id: input.deliveryId,
    created_at: new Date(input.now ?? Date.now()).toISOString(),
    data: {
      session_id: input.sessionId,
      owner: { id: input.owner.id, name: input.owner.name ?? null },
      started_at: new Date(input.startedAt).toISOString(),
      ended_at: new Date(input.endedAt).toISOString(),
      reason: input.reason,
      setup: input.setup,
      transcript: input.transcript,
      usage: input.usage,
      transcript_truncated: false,
    },
  };
  let body = JSON.stringify(event);
  if (Buffer.byteLength(body) <= maxBodyBytes) return { event, body };
  // Halve the kept turns until it fits (log2(turns) serialisations at most), then drop text if even one is too big.
  let keep = turns.length;
  while (keep > 0 && Buffer.byteLength(body) > maxBodyBytes) {
    keep = Math.floor(keep / 2);
    event.data.transcript = { ...input.transcript, turns: turns.slice(turns.length - keep), droppedTurns: input.transcript.droppedTurns + turns.length - keep };
    event.data.transcript_truncated = true;
    body = JSON.stringify(event);
  }
  if (Buffer.byteLength(body) > maxBodyBytes) {
    event.data.setup = null;
    body = JSON.stringify(event);
  }
  return { event, body };
}

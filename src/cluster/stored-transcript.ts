import type { TranscriptRecord } from '../services/conversation/transcript-types';

/**
 * A transcript as the cluster stores it beside a session's record: its JSON, at most `maxBytes`. Beyond, the oldest
 * turns are left out of the stored copy (counted in `droppedTurns`, as the in-process bounds count theirs); a
 * single turn still too large keeps the tail of its texts (marked `truncated`).
 */
export function storedTranscriptJson(record: TranscriptRecord, maxBytes: number): string {
  let json = JSON.stringify(record);
  if (Buffer.byteLength(json) <= maxBytes) return json;
  const turns = [...record.turns];
  let dropped = record.droppedTurns;
  while (turns.length > 1) {
    // Drop a quarter at a time (at least one): a few stringifications whatever the size.
    const n = Math.max(1, Math.floor(turns.length / 4));
    turns.splice(0, n);
    dropped += n;
    json = JSON.stringify({ ...record, turns, droppedTurns: dropped });
    if (Buffer.byteLength(json) <= maxBytes) return json;
  }
  const last = turns[0];
  const room = Math.max(0, Math.floor((maxBytes - 2048) / 8));
  const cut = last
    ? [{ ...last, userText: last.userText.slice(-room), replyText: last.replyText.slice(-room), toolCalls: [], grounding: undefined, truncated: true }]
    : [];
  return JSON.stringify({ ...record, turns: cut, droppedTurns: dropped });
}

/** The stored transcript, if it is one of (principal, sessionId); anything else (corrupt, foreign) is undefined. */
export function parseStoredTranscript(raw: string, principal: string, sessionId: string): TranscriptRecord | undefined {
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (!v || typeof v !== 'object') return undefined;
  const r = v as Partial<TranscriptRecord>;
  if (r.owner !== principal || r.sessionId !== sessionId || !Array.isArray(r.turns) || !r.usage || !r.overheadUsage) return undefined;
  return r as TranscriptRecord;
}

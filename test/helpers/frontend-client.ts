import request from 'supertest';

export const LIVE_AUDIO_API = '/api/v1/live-audio';

/**
 * Posts recorded chunks the way the Sculptor frontend does: one `POST /transcribe` per timeslice, not awaited,
 * raw base64 (no `data:` prefix), `format: 'webm'`. `beforeChunk(i)` runs before chunk i is posted (fault
 * injection). Resolves with every response, in posting order.
 */
export async function postChunksLikeTheFrontend(opts: {
  url: string;
  headers: Record<string, string>;
  sessionId: string;
  chunks: Buffer[];
  gapMs: number;
  beforeChunk?: (i: number) => void;
}): Promise<request.Response[]> {
  const pending: Promise<request.Response>[] = [];
  for (let i = 0; i < opts.chunks.length; i++) {
    opts.beforeChunk?.(i);
    pending.push(
      request(opts.url)
        .post(`${LIVE_AUDIO_API}/transcribe`)
        .set(opts.headers)
        .send({ session_id: opts.sessionId, audio_data: opts.chunks[i].toString('base64'), format: 'webm', sample_rate: 16000, channels: 1 })
        .then((r) => r),
    );
    await new Promise((r) => setTimeout(r, opts.gapMs));
  }
  return Promise.all(pending);
}

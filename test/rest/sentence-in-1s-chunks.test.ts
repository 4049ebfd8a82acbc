/**
 * A REST client that posts its microphone in 1 s chunks, one a second (the page's MediaRecorder timeslice), says one
 * long sentence: the model must hear it as ONE turn. Each chunk's frames go upstream in one burst, so the upstream
 * sees a second without audio between bursts, every second, all through the sentence, and two seconds where one
 * chunk comes late. The session sends `audioStreamEnd` (which ends the user's turn at once, mid-word) only once the
 * microphone has not been heard from for its stream-end gap (1.5 s) after the end of the audio it sent. It used to
 * send it ~3 s into any such stream (its re-armed timer shrank the gap each time), so the sentence became two
 * turns: the model called a function after the first half, then the second half withdrew that call and asked again.
 * A page showing the first call got 409 for its answer, or answered the second call with an empty box, and the
 * reply that uses the answer never came (the REST browser tools test's timeouts).
 *
 * Then the call is answered over REST and the reply that uses the answer shows in a later `/transcribe` answer.
 * Both on an in-process server and on a spawned server process. The chunks' spacing is jittered (seeded, printed)
 * around the page's 1 s, within what a real page's timer does.
 */
import request from 'supertest';
import { scriptedScenario, startGeminiLiveEmulator, type GeminiLiveEmulator } from '../../src/emulator';
import { startTestServer, type TestServer } from '../helpers/test-server';
import { spawnServer, type SpawnedServer } from '../helpers/spawned-server';
import { prng } from '../ops/helpers';
import { API, GET_TIME, speechPcm, suiteSeed, withSeed } from '../tools/helpers';

const SEED = suiteSeed();
/** 16 kHz mono s16le: 1 s. */
const CHUNK_BYTES = 32_000;
/** The sentence: 6.5 s of speech, then 1.5 s of silence (the model's VAD ends the turn after 0.5 s of it). */
const SENTENCE = speechPcm(6500, 1500);

jest.setTimeout(90_000);

interface Target {
  url: string;
  key: string;
  emu: GeminiLiveEmulator;
  close(): Promise<void>;
}

async function inProcess(): Promise<Target> {
  const t: TestServer = await startTestServer({ env: { LIVE_AUDIO_TOOL_TIMEOUT_MS: '60000' } });
  return { url: t.url, key: t.keys.alice, emu: t.emu, close: () => t.close() };
}

async function spawned(): Promise<Target> {
  const emu = await startGeminiLiveEmulator({ apiKeys: ['test-gemini-key'] });
  let s: SpawnedServer;
  try {
    s = await spawnServer({ geminiBaseUrl: emu.baseUrl, env: { LIVE_AUDIO_TOOL_TIMEOUT_MS: '60000' } });
  } catch (err) {
    await emu.stop();
    throw err;
  }
  return {
    url: s.url,
    key: s.keys.alice,
    emu,
    async close() {
      await s.stop();
      await emu.stop();
    },
  };
}

type Answer = { turnId: number; response: string; toolCalls: { id: string; name: string; args: Record<string, unknown> }[] };

describe(`one sentence posted in 1 s chunks over REST is one turn (seed ${SEED})`, () => {
  for (const [where, open] of [
    ['in-process server', inProcess],
    ['spawned server', spawned],
  ] as const) {
    it(`${where}: one function call, answered, and the reply that uses the answer`, () =>
      withSeed(SEED, async () => {
        const t = await open();
        try {
          const rnd = prng(SEED);
          t.emu.setScenario(
            scriptedScenario([], {
              fallback: { userTranscript: 'what time is it in Lima', reply: 'It is', replyAudioMs: 300, toolCalls: [{ name: 'get_time', args: { city: 'Lima' } }] },
            }),
          );
          const h = { 'X-API-Key': t.key, 'Content-Type': 'application/json' };
          const id = `one_sentence_${where.split(' ')[0]}`;
          const started = await request(t.url)
            .post(`${API}/session/start`)
            .set(h)
            .send({ session_id: id, response_modality: 'text', input_transcription: true, tools: [GET_TIME] });
          expect(started.status).toBe(200);

          // Like the page: one un-awaited POST a second; the answers are kept in arrival order.
          const answers: Answer[] = [];
          const failures: string[] = [];
          const inflight: Promise<void>[] = [];
          const post = (pcm: Buffer) =>
            inflight.push(
              request(t.url)
                .post(`${API}/transcribe`)
                .set(h)
                .send({ session_id: id, audio_data: pcm.toString('base64'), format: 'pcm', sample_rate: 16000 })
                .then((r) => {
                  if (r.status === 200) answers.push(r.body.data as Answer);
                  else failures.push(`${r.status} ${JSON.stringify(r.body)}`);
                }),
            );
          const nextSlot = () => new Promise((r) => setTimeout(r, 850 + Math.floor(rnd() * 300)));
          const silence = Buffer.alloc(CHUNK_BYTES);
          const seen = () => [...new Set(answers.flatMap((a) => a.toolCalls.map((c) => c.id)))];

          for (let off = 0, i = 0; off < SENTENCE.length; off += CHUNK_BYTES, i++) {
            post(SENTENCE.subarray(off, off + CHUNK_BYTES));
            // The third chunk's successor comes a second late (a slow network): 2 s without audio, in mid-sentence.
            if (i === 2) await new Promise((r) => setTimeout(r, 2000));
            else await nextSlot();
          }
          // Silence goes on (the microphone stays open) until an answer lists the call.
          for (let i = 0; i < 10 && seen().length === 0; i++) {
            post(silence);
            await nextSlot();
          }
          await Promise.all(inflight);
          expect(failures).toEqual([]);
          const emuRecord = () => t.emu.connections[t.emu.connections.length - 1]!;
          // The model heard one turn: no stream end while the audio came every second, nothing withdrawn.
          expect(emuRecord().messages.filter((m) => m.kind === 'audioStreamEnd')).toEqual([]);
          expect(emuRecord().sent.filter((m) => m.kind === 'toolCallCancellation')).toEqual([]);
          const calls = seen();
          expect(calls).toHaveLength(1);

          const answered = await request(t.url)
            .post(`${API}/session/tool-response`)
            .set(h)
            .send({ session_id: id, responses: [{ id: calls[0], response: { output: 'half past four' } }] });
          expect([answered.status, answered.body.data?.answered]).toEqual([200, [{ id: calls[0], name: 'get_time', delivery: 'sent' }]]);

          // The page goes on posting its microphone; a later answer carries the reply that uses the answer.
          const callTurn = answers.find((a) => a.toolCalls.length > 0)!.turnId;
          let reply: Answer | undefined;
          for (let i = 0; i < 10 && !reply; i++) {
            post(silence);
            await nextSlot();
            reply = answers.find((a) => a.turnId === callTurn && a.response.includes('half past four'));
          }
          await Promise.all(inflight);
          expect(failures).toEqual([]);
          expect(reply).toMatchObject({ turnId: callTurn, toolCalls: [] });
          expect(emuRecord().toolResponses.map((r) => r.response)).toEqual([{ output: 'half past four' }]);
          await t.emu.waitFor(() => emuRecord().turns > 0, 5000);
          expect(emuRecord().turns).toBe(1);
          await request(t.url).post(`${API}/session/end`).set(h).send({ session_id: id });
        } finally {
          await t.close();
        }
      }));
  }
});

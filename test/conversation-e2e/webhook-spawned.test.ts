/**
 * Issue 14 §7 wired, on a real spawned server process: when a session ends (the client ends it; the server shuts
 * down) a signed `session.ended` is delivered to a real local HTTP receiver, which verifies the signature the way
 * the README tells receivers to. The body carries the effective setup, the transcript (the model's greeting turn
 * included) and the usage, equal to the emulator's own figures. The secret never reaches the logs.
 */
import request from 'supertest';
import { scriptedScenario, startGeminiLiveEmulator, type GeminiLiveEmulator } from '../../src/emulator';
import { spawnServer, type SpawnedServer } from '../helpers/spawned-server';
import { startReceiver } from '../webhook/receiver';
import { API } from './helpers';

const SECRET = 'whsec-conversation-e2e-0123456789';
const GREETING_REPLY = 'Hello, I will be your interviewer today.';

describe('session.ended webhook on a spawned server', () => {
  let emu: GeminiLiveEmulator;
  let rx: Awaited<ReturnType<typeof startReceiver>>;
  let s: SpawnedServer;

  beforeAll(async () => {
    emu = await startGeminiLiveEmulator({ apiKeys: ['test-gemini-key'] });
    emu.setScenario(scriptedScenario([], { greeting: { userTranscript: '', reply: GREETING_REPLY } }));
    rx = await startReceiver(SECRET, (_n, _req, res) => res.writeHead(204).end());
    s = await spawnServer({
      geminiBaseUrl: emu.baseUrl,
      env: { LIVE_AUDIO_WEBHOOK_URL: rx.url, LIVE_AUDIO_WEBHOOK_SECRET: SECRET, LIVE_AUDIO_DRAIN_MS: '300' },
    });
  }, 60_000);
  afterAll(async () => {
    await s?.stop();
    await rx?.stop();
    await emu?.stop();
  });

  const waitFor = async (pred: () => boolean, ms: number, what: string) => {
    const deadline = Date.now() + ms;
    while (!pred()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  it('client end, then shutdown: each session is delivered once, signed, with setup, transcript and usage', async () => {
    const h = { 'X-API-Key': s.keys.alice };
    const first = emu.connections.length;
    const start = await request(s.url).post(`${API}/session/start`).set(h).send({ session_id: 'hook_1', profile: 'interview', language: 'en-GB', voice: 'Kore' });
    expect(start.status).toBe(200);
    const rec = emu.connections[first]!;
    // The greeting turn is answered (and its usage sent) before the client ends the session.
    await emu.waitFor(() => rec.turns === 1 && rec.sent.some((m) => m.kind === 'sessionResumptionUpdate'), 5000);
    const tr = await request(s.url).get(`${API}/session/hook_1/transcript`).set(h);
    expect(tr.status).toBe(200);
    await waitFor(() => rec.usage.messages > 0, 3000, 'usage');
    expect((await request(s.url).post(`${API}/session/end`).set(h).send({ session_id: 'hook_1' })).status).toBe(200);

    await waitFor(() => rx.received.length >= 1, 10_000, 'the first delivery');
    const d = rx.received[0]!;
    expect(d.verified).toBe(true);
    expect(d.headers['x-live-audio-event']).toBe('session.ended');
    const body = JSON.parse(d.body);
    expect(body).toMatchObject({
      type: 'session.ended',
      id: d.headers['x-live-audio-delivery'],
      data: {
        session_id: 'hook_1',
        owner: { id: 'key:alice' },
        reason: 'client_end',
        setup: { model: 'gemini-3.8-live', profile: 'interview', language: 'en-GB', voice: 'Kore' },
        transcript_truncated: false,
      },
    });
    expect(body.data.transcript.turns).toEqual([expect.objectContaining({ kind: 'greeting', userText: '', replyText: GREETING_REPLY, interrupted: false })]);
    expect(body.data.usage.totalTokens).toBe(rec.usage.totalTokenCount);
    expect(body.data.usage.reports).toBe(rec.usage.messages);

    // A session still live at shutdown: its delivery goes out before the process exits.
    const second = await request(s.url).post(`${API}/session/start`).set(h).send({ session_id: 'hook_2' });
    expect(second.status).toBe(200);
    const stopping = s.stop(15_000);
    const exit = await s.exited;
    await stopping;
    expect(rx.received.length).toBe(2);
    const last = rx.received[1]!;
    expect(last.verified).toBe(true);
    expect(last.at).toBeLessThanOrEqual(exit.at);
    expect(JSON.parse(last.body).data).toMatchObject({ session_id: 'hook_2', reason: 'server_shutdown' });
    expect(s.output()).not.toContain(SECRET);
    expect(s.output()).not.toContain('test-gemini-key');
  }, 60_000);
});

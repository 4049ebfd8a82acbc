/**
 * The dialects' published contract (`/schemas/dialects/<name>.json`, the HTTP routes in `/openapi.json`) checked with a
 * real JSON-Schema validator (ajv, draft 2020-12) against what the server really sends in real flows.
 */
import Ajv2020 from 'ajv/dist/2020';
import request from 'supertest';
import { scriptedScenario } from '../../src/emulator';
import { loadRecording } from '../helpers/fixtures';
import { startTestServer, type TestServer } from '../helpers/test-server';
import { connect, dialectUrl, pcmChunks, recordingAsPcm, sleep, type WsTestClient } from './dialect-helpers';

describe('published dialect schemas describe the real messages', () => {
  let t: TestServer;
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  const clients: WsTestClient[] = [];
  const rec = loadRecording('chromium-hello-1000ms');

  beforeAll(async () => {
    t = await startTestServer();
    t.emu.setScenario(scriptedScenario([], { greeting: { userTranscript: '', reply: 'Tell me about yourself.' }, fallback: { userTranscript: rec.spokenText, reply: 'Thank you, noted.' } }));
    for (const name of ['voice-pipeline', 'interview-coach', 'elk-realtime', 'fastapi-live']) {
      const r = await request(t.url).get(`/schemas/dialects/${name}.json`);
      expect([name, r.status]).toEqual([name, 200]);
      ajv.addSchema(JSON.parse(r.text), name);
    }
    const o = await request(t.url).get('/openapi.json');
    ajv.addSchema(o.body, 'openapi');
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await t.emu.waitFor(() => t.server.registry.size === 0, 5000);
  });
  afterAll(async () => {
    await t.close();
  });

  function expectValid(doc: string, def: string, messages: unknown[]): void {
    const validate = ajv.getSchema(`${doc}#/$defs/${def}`)!;
    for (const m of messages) {
      const ok = validate(m);
      expect([m, ok ? null : validate.errors]).toEqual([m, null]);
    }
  }

  async function open(path: string): Promise<WsTestClient> {
    const c = await connect(dialectUrl(t.url, path, t.keys.alice));
    clients.push(c);
    return c;
  }

  it('voice pipeline and FastAPI live: audio flows', async () => {
    const voice = await open('/ws');
    await voice.next('status', (m) => m.data === 'connected', 8000);
    for (const chunk of pcmChunks(recordingAsPcm('chromium-hello-1000ms', 16000, 1), 16000, 1, 100)) voice.send({ type: 'audio', data: chunk.toString('base64') });
    voice.send({ type: 'interrupt' });
    voice.send({ type: 'bogus' });
    await voice.next('status', (m) => m.data === 'complete', 20000);
    expectValid('voice-pipeline', 'ServerMessage', voice.messages);
    expect(new Set(voice.messages.map((m) => m.type))).toEqual(new Set(['status', 'transcript', 'text_chunk', 'audio', 'error']));

    const fast = await open('/ws/audio-live');
    await fast.next('ready', () => true, 8000);
    for (const chunk of rec.chunks) {
      fast.ws.send(chunk);
      await sleep(50);
    }
    fast.send({ type: 'nope' });
    await fast.next('turn_complete', () => true, 20000);
    expectValid('fastapi-live', 'ServerMessage', fast.messages);
    expectValid('fastapi-live', 'ClientMessage', [{ type: 'audio', data: rec.chunks[0]!.toString('base64') }]);
  }, 40000);

  it('interview coach and Elk: text flows; the HTTP answers match /openapi.json', async () => {
    const coach = await open('/ws/interview');
    coach.send({ type: 'start_interview' });
    await coach.next('ai_response', () => true, 8000);
    coach.send({ type: 'user_audio', text: 'I build backends.' });
    await coach.next('ai_response', () => true, 8000);
    coach.send({ type: 'start_interview' });
    await coach.next('error');
    expectValid('interview-coach', 'ServerMessage', coach.messages);

    const elk = await open('/api/ai/gemini/realtime');
    elk.send({ type: 'initialize_session', profile: 'default', language: 'en-US' });
    await elk.next('session_initialized', () => true, 8000);
    elk.send({ type: 'send_text', text: 'Hello' });
    await elk.next('complete', () => true, 8000);
    elk.send({ type: 'close_session' });
    await elk.next('session_closed');
    elk.send({ type: 'send_text', text: 'after close' });
    await elk.next('error');
    expectValid('elk-realtime', 'ServerMessage', elk.messages);
    expectValid('elk-realtime', 'ClientMessage', [{ type: 'send_audio', audioData: 'AAAA', mimeType: 'audio/pcm;rate=24000' }]);

    const init = await request(t.url).post('/api/ai/gemini/initialize').set('X-API-Key', t.keys.alice).send({});
    const schemaOf = (path: string) => ({ $ref: `openapi#/paths/${path.replace(/\//g, '~1')}/post/responses/200/content/application~1json/schema` });
    expect(ajv.validate(schemaOf('/api/ai/gemini/initialize'), init.body)).toBe(true);
    const batch = await request(t.url).post('/audio-stream').set('X-API-Key', t.keys.alice).attach('file', Buffer.concat(rec.chunks), 'a.webm');
    expect(ajv.validate(schemaOf('/audio-stream'), batch.body)).toBe(true);
    await request(t.url).post('/api/v1/live-audio/session/end').set('X-API-Key', t.keys.alice).send({ session_id: init.body.sessionId });
  }, 40000);
});

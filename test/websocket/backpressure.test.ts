/**
 * Outbound backpressure with a client that stops reading (its TCP socket paused) while the emulator streams a
 * long audio reply: reply audio is dropped above the send-buffer cap, text and control messages never are, and a
 * buffer that stays above the cap closes the socket with 1013.
 */
import type { Socket } from 'node:net';
import { scriptedScenario } from '../../src/emulator';
import { sleep, startTestServer, type TestServer } from '../helpers/test-server';
import { connectAuthed, type WsTestClient } from '../helpers/ws-test-client';

const CAP = 64 * 1024;
const WORDS = 'one two three four five six seven eight nine ten eleven twelve'.split(' ');
const REPLY = `${WORDS.join(' ')}.`;
/**
 * 180 s of 24 kHz s16le reply audio in 1 s pieces: 8.6 MB of PCM, ~11.5 MB as base64 JSON, well over what the
 * loopback kernel buffers absorb before `bufferedAmount` grows (~4 MB here).
 */
const REPLY_AUDIO_MS = 180_000;
const OUT_CHUNK_MS = 1000;
const REPLY_PCM_BYTES = REPLY_AUDIO_MS * 48;

const rawSocket = (c: WsTestClient) => (c.ws as unknown as { _socket: Socket })._socket;

async function pausedLongReply(t: TestServer): Promise<{ c: WsTestClient; sessionId: string }> {
  t.emu.setScenario(
    scriptedScenario([], { fallback: { userTranscript: '', reply: REPLY, replyAudioMs: REPLY_AUDIO_MS }, outChunkMs: OUT_CHUNK_MS }),
  );
  const c = await connectAuthed(t.url, t.keys.alice);
  const started = await c.request({ type: 'start_session', session_id: 'slow_reader', response_modality: 'audio' }, 'session_started');
  rawSocket(c).pause(); // the client stops reading; its kernel buffers fill, then the server's
  c.send({ type: 'text', text: 'Tell me everything' });
  return { c, sessionId: started.session_id };
}

describe('WebSocket send backpressure', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ env: { LIVE_AUDIO_WS_SEND_BUFFER_BYTES: String(CAP), LIVE_AUDIO_WS_SEND_STALL_MS: '60000' } });
  });
  afterAll(async () => {
    await t.close();
  });

  it('drops reply audio, never text or control messages, while the client does not read', async () => {
    const { c, sessionId } = await pausedLongReply(t);
    const session = () => t.server.registry.listFor('key:alice')[0];
    // The whole reply reached the server while the client was not reading.
    await t.emu.waitFor(() => session()?.snapshot().turnComplete === true, 40000);
    expect(c.ofType('turn_complete')).toHaveLength(0);

    rawSocket(c).resume();
    const done = await c.next('turn_complete', () => true, 40000);
    expect(done.data).toMatchObject({ response: REPLY, turnComplete: true });

    // Every text update arrived: one transcription_result per word of the reply, in order.
    const responses = c.ofType('transcription_result').map((m) => m.data.response as string);
    for (let i = 1; i <= WORDS.length; i++) {
      const prefix = WORDS.slice(0, i).join(' ');
      expect(responses.some((r) => r === prefix || r === `${prefix}.`)).toBe(true);
    }
    expect(responses.at(-1)).toBe(REPLY);

    // Audio was dropped, and only audio.
    const audioBytes = c.ofType('audio_output').reduce((n, m) => n + Buffer.from(m.data, 'base64').length, 0);
    expect(audioBytes).toBeGreaterThan(0);
    expect(audioBytes).toBeLessThan(REPLY_PCM_BYTES);
    const st = await c.request({ type: 'get_status' }, 'session_status');
    expect(st.session_id).toBe(sessionId);
    const conn = st.data.connection;
    expect(conn.droppedAudioMessages).toBeGreaterThan(0);
    expect(conn.droppedAudioMessages + c.ofType('audio_output').length).toBe(REPLY_AUDIO_MS / OUT_CHUNK_MS);
    expect(conn.droppedAudioBytes + audioBytes).toBe(REPLY_PCM_BYTES);
    expect(conn.maxBufferedAmount).toBeGreaterThanOrEqual(CAP);
    // The connection is healthy again.
    expect(c.closeInfo).toBeUndefined();
    await c.request({ type: 'ping' }, 'pong');
    c.close();
  }, 90000);
});

describe('WebSocket send stall', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ env: { LIVE_AUDIO_WS_SEND_BUFFER_BYTES: String(CAP), LIVE_AUDIO_WS_SEND_STALL_MS: '300' } });
  });
  afterAll(async () => {
    await t.close();
  });

  it('closes with 1013 when the send buffer stays above the cap, and ends the session', async () => {
    const { c } = await pausedLongReply(t);
    await t.emu.waitFor(() => t.server.registry.listFor('key:alice')[0]?.snapshot().turnComplete === true, 40000);
    await sleep(600); // > stall time: the server has given up on this client
    rawSocket(c).resume();
    const info = await c.waitClose(10000);
    expect(info).toEqual({ code: 1013, reason: 'Client is not reading fast enough' });
    await t.emu.waitFor(() => t.server.registry.size === 0, 3000);
    // What was sent before the close still arrived in order, starting with the protocol's first frames.
    expect(c.messages.slice(0, 3).map((m) => m.type)).toEqual(['connected', 'auth_success', 'session_started']);
  }, 90000);
});

/**
 * Issue 10 item 3: every upstream message is heard, also those that arrive in the same TCP read as
 * `setupComplete` (the emulator's `eager` timing) and while a reconnect or rotation is being wired; resumption
 * handles are kept from the first update on; the status tells a resumed reconnect from a fresh one.
 * Real @google/genai SDK 2.32.0 and the emulator on loopback.
 */
import { GoogleGenAI, Modality, type LiveServerMessage } from '@google/genai';
import request from 'supertest';
import { scriptedScenario, startGeminiLiveEmulator, type GeminiLiveEmulator } from '../../src/emulator';
import { GeminiLiveProvider } from '../../src/services/upstream/gemini-live-provider';
import type { UpstreamConnection } from '../../src/services/upstream/upstream-types';
import { sleep, type TestServer } from '../helpers/test-server';
import { connectAuthed, type WsTestClient } from '../helpers/ws-test-client';
import { API, expectExactlyOnce, patternPcm, startResilienceServer, startRestSession, streamPcm, waitForStatus } from './helpers';

const CONFIG = { model: 'gemini-2.5-flash-native-audio-preview-12-2025', responseModality: 'audio' as const, inputTranscription: true, outputTranscription: true };

describe('the SDK and the connection', () => {
  let emu: GeminiLiveEmulator;
  const conns: UpstreamConnection[] = [];
  beforeEach(async () => {
    emu = await startGeminiLiveEmulator({ timing: 'eager' });
  });
  afterEach(async () => {
    for (const c of conns.splice(0)) c.close();
    await emu.stop();
  });

  it('SDK 2.32.0 hands what came with setupComplete to onmessage before connect() resolves (why we hold it)', async () => {
    const ai = new GoogleGenAI({ apiKey: 'k', httpOptions: { baseUrl: emu.baseUrl, apiVersion: 'v1beta' } });
    let resolved = false;
    const seen: { kinds: string[]; beforeResolve: boolean }[] = [];
    const session = await ai.live.connect({
      model: CONFIG.model,
      config: { responseModalities: [Modality.AUDIO], sessionResumption: {} },
      callbacks: { onmessage: (m: LiveServerMessage) => seen.push({ kinds: Object.keys(m), beforeResolve: !resolved }) },
    });
    resolved = true;
    session.close();
    expect(seen).toEqual([
      { kinds: ['setupComplete'], beforeResolve: true },
      { kinds: ['sessionResumptionUpdate'], beforeResolve: true },
      { kinds: ['usageMetadata'], beforeResolve: true },
    ]);
  });

  it('GeminiLiveConnection holds those messages until startDelivery(), however late the listener comes', async () => {
    const provider = new GeminiLiveProvider({ apiKey: 'k', baseUrl: emu.baseUrl, setupTimeoutMs: 3000, emulated: true });
    const conn = await provider.connect({ ...CONFIG, sessionResumption: true });
    conns.push(conn);
    await sleep(50); // several event-loop turns after connect() resolved
    const updates: { handle?: string; resumable: boolean }[] = [];
    conn.on('resumptionUpdate', (u) => updates.push(u));
    expect(updates).toEqual([]);
    conn.startDelivery();
    expect(updates).toEqual([{ handle: 'emu-c1-1', resumable: true }]);
    // Later messages flow at once, in order.
    emu.goAway('c1', 5_000);
    const goAways: number[] = [];
    conn.on('goAway', (ms) => goAways.push(ms));
    await emu.waitFor(() => goAways.length === 1, 2_000);
    expect(goAways).toEqual([5_000]);
  });

  it('a close that came right after the setup is delivered too (after the held messages)', async () => {
    emu.setFaults({ quotaCloseAfterSetup: true });
    const provider = new GeminiLiveProvider({ apiKey: 'k', baseUrl: emu.baseUrl, setupTimeoutMs: 3000, emulated: true });
    const conn = await provider.connect({ ...CONFIG, sessionResumption: true });
    conns.push(conn);
    await emu.waitFor(() => emu.connections[0].closed !== undefined, 2_000);
    await sleep(50);
    const events: string[] = [];
    conn.on('resumptionUpdate', () => events.push('resumptionUpdate'));
    conn.on('close', (info) => events.push(`close:${info.code}:${info.fatal}`));
    conn.startDelivery();
    expect(events).toEqual(['resumptionUpdate', 'close:1011:true']);
  });
});

describe('the whole server', () => {
  let t: TestServer;
  afterEach(async () => t?.close());

  it('keeps the handle that came with setupComplete: a drop before any turn resumes, and the status says so', async () => {
    t = await startResilienceServer({ timing: 'eager' });
    const s = await startRestSession(t);
    expect((await s.status()).upstream).toMatchObject({ hasResumptionHandle: true, connections: 1 });
    t.emu.terminate('c1');
    const st = await waitForStatus(s, (x) => x.upstream.connections === 2 && x.upstream.state === 'open');
    const [c1, c2] = t.emu.connections;
    expect(c2.resumedFrom).toBe(c1.handles[0]);
    expect(st.upstream).toMatchObject({ reconnects: 1, resumedReconnects: 1, freshReconnects: 0, lastReconnect: { resumed: true, connectionNo: 2 } });
    const pcm = patternPcm(1_500);
    await streamPcm(s, pcm);
    await expectExactlyOnce(t.emu, pcm);
  });

  it('without a handle yet (spaced timing) the same drop is reported as a fresh reconnect: status, log and metrics', async () => {
    const lines: Record<string, unknown>[] = [];
    const pino = (await import('pino')).default;
    const logger = pino({ level: 'info' }, { write: (l: string) => lines.push(JSON.parse(l)) });
    t = await startResilienceServer({ timing: 'spaced', logger });
    const s = await startRestSession(t);
    expect((await s.status()).upstream).toMatchObject({ hasResumptionHandle: false });
    t.emu.terminate('c1');
    const st = await waitForStatus(s, (x) => x.upstream.connections === 2 && x.upstream.state === 'open');
    expect(t.emu.connections[1].resumedFrom).toBeUndefined();
    expect(st.upstream).toMatchObject({ reconnects: 1, resumedReconnects: 0, freshReconnects: 1, lastReconnect: { resumed: false, connectionNo: 2 } });
    const reconnected = lines.filter((l) => typeof l.msg === 'string' && (l.msg as string).startsWith('upstream reconnected'));
    expect(reconnected).toEqual([expect.objectContaining({ resumed: false, level: 40, msg: expect.stringContaining('without resumption') })]);
    const metrics = await t.server.metrics.text();
    expect(metrics).toContain('live_audio_upstream_connects_total{resumed="false"} 2');
    expect(metrics).not.toContain('live_audio_upstream_connects_total{resumed="true"}');
  });

  it('hears a goAway sent in the same read as setupComplete: rotates at once with the setup handle, loses nothing', async () => {
    t = await startResilienceServer({ timing: 'eager', faults: { goAwayAfterMs: 0, goAwayTimeLeftMs: 5_000, faultConnections: 1 } });
    const started = Date.now();
    const s = await startRestSession(t);
    const st = await waitForStatus(s, (x) => x.upstream.connections === 2 && x.upstream.state === 'open', 3_000);
    // Heard at once (the idle link rotates at once); a lost goAway would have left it to the server's close 5 s later.
    expect(Date.now() - started).toBeLessThan(2_500);
    expect(st.upstream).toMatchObject({ rotations: 1, lastRotation: { cause: 'go_away' }, resumedReconnects: 1, lastCloseCode: null });
    const [c1, c2] = t.emu.connections;
    expect(c1.closed).toMatchObject({ by: 'client' });
    expect(c2.resumedFrom).toBe(c1.handles[0]);
    const pcm = patternPcm(1_500);
    await streamPcm(s, pcm);
    await expectExactlyOnce(t.emu, pcm);
  });

  it('hears the model speak first in the same read as setupComplete (REST and WebSocket)', async () => {
    const opening = 'Welcome to the interview. Tell me about yourself.';
    t = await startResilienceServer({ timing: 'eager', emulator: { scenario: scriptedScenario([], { opening: { reply: opening, replyAudioMs: 300 } }) } });
    // REST: the opening is the session's first turn; the first /transcribe answers with it.
    const s = await startRestSession(t, { response_modality: 'audio' });
    const st = await s.status();
    expect(st.turn).toMatchObject({ turnId: 1, replyText: opening, turnComplete: true });
    const r = await s.send(patternPcm(100));
    expect(r.body).toMatchObject({ success: true, response: opening });
    expect(Buffer.from(r.body.data.audioBuffer, 'base64').length).toBe(44 + 300 * 48); // WAV header + 300 ms at 24 kHz
    // WebSocket: the client gets the opening right after session_started.
    const c: WsTestClient = await connectAuthed(t.url, t.keys.bob);
    try {
      c.send({ type: 'start_session', session_id: 'ws-opening', response_modality: 'text' });
      const result = await c.next('transcription_result', (m) => m.data.response === opening);
      expect(result.data).toMatchObject({ turnComplete: true, turnId: 1 });
      const types = c.messages.map((m) => m.type);
      expect(types.indexOf('session_started')).toBeLessThan(types.indexOf('transcription_result'));
      await c.next('turn_complete');
    } finally {
      c.ws.close();
    }
    const ended = await request(t.url).post(`${API}/session/end`).set(s.headers).send({ session_id: s.id });
    expect(ended.status).toBe(200);
  });
});

/**
 * Issue 14: an ended session's status shows its setup and its usage (as its transcript does), in the shape of a live
 * session's status: REST `GET /session/:id/status` and WebSocket `get_status` of a session that ended, and the stored
 * transcript keeps the effective setup after the end.
 */
import request from 'supertest';
import { scriptedScenario } from '../../src/emulator';
import { utterancePcm } from '../helpers/live-probe';
import { startTestServer, type TestServer } from '../helpers/test-server';
import { NO_RATE_LIMITS } from '../resilience/helpers';
import { connectAuthed } from '../helpers/ws-test-client';
import { API, rest } from './helpers';

describe('the status of an ended session', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ env: { ...NO_RATE_LIMITS, LIVE_AUDIO_TRANSCRIBE_WAIT_MS: '300' } });
    t.emu.setScenario(scriptedScenario([], { fallback: { userTranscript: 'hello there', reply: 'Hello!' } }));
  });
  afterAll(() => t.close());

  it('REST and WebSocket: after the end, the setup it ran with and its final usage, like the live status', async () => {
    const r = rest(t, t.keys.alice);
    const start = await r.start({ session_id: 'ended_1', voice: 'Kore', language: 'de-DE', system_instruction: 'You are terse.' });
    expect(start.status).toBe(200);
    await r.transcribe('ended_1', utterancePcm(700, 1500));
    await t.emu.waitFor(() => t.emu.connections[t.emu.connections.length - 1]!.turns === 1, 10_000);
    let live = await r.status('ended_1');
    for (let i = 0; i < 50 && live.body.data.usage.turns < 1; i++) live = await r.status('ended_1');
    expect(live.body.data.status).toBe('active');
    expect(live.body.data.usage.tokens.totalTokens).toBeGreaterThan(0);

    expect((await r.end('ended_1')).status).toBe(200);
    const ended = await r.status('ended_1');
    expect(ended.status).toBe(200);
    const d = ended.body.data;
    expect(d).toMatchObject({ sessionId: 'ended_1', status: 'ended', reason: 'client_end', endReason: 'client_end', transport: 'rest' });
    // The setup it ran with; the request's own instruction text is described after the end, not kept (32 KiB each).
    const { system_instruction: liveInstruction, ...liveRest } = live.body.data.setup;
    expect(liveInstruction.text).toBe('You are terse.');
    expect(d.setup).toEqual({ ...liveRest, system_instruction: { source: 'request', chars: 'You are terse.'.length } });
    expect(d.setup).toMatchObject({ voice: 'Kore', language: 'de-DE' });
    expect(d.usage.turns).toBe(1);
    expect(d.usage.tokens.totalTokens).toBeGreaterThanOrEqual(live.body.data.usage.tokens.totalTokens);
    // The same figures as the stored transcript, which now keeps the setup too.
    const tr = await r.transcript('ended_1');
    expect(tr.body.data.live).toBe(false);
    expect(tr.body.data.setup).toEqual(d.setup);
    expect(d.usage.tokens).toEqual(tr.body.data.usage);

    const c = await connectAuthed(t.url, t.keys.alice);
    const ws = await c.request({ type: 'get_status', session_id: 'ended_1' }, 'session_status');
    expect(ws.data).toMatchObject({ status: 'ended', setup: d.setup, usage: d.usage });
    c.close();
    // Another key sees nothing of it.
    const foreign = await request(t.url).get(`${API}/session/ended_1/status`).set('X-API-Key', t.keys.bob);
    expect(foreign.body.data.status).toBe('not_found');
  });
});

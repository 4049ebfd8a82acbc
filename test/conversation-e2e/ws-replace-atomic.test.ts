/**
 * Issue 14: replacing a running WebSocket session is atomic. A `start_session` on a socket that relays a session
 * either starts the new one and ends the old one (session_ended, then session_started), or, when the new start fails
 * (the upstream refuses it, the caps), leaves the old one running and answers an error: the old session keeps its
 * upstream connection, relays audio and answers turns. The upstream fails for the second start through the
 * emulator's faults (a handshake refused with 503, a setup refused with 1008), with the old and the new session
 * sharing an id or not.
 */
import { scriptedScenario } from '../../src/emulator';
import { utterancePcm } from '../helpers/live-probe';
import { startTestServer, type TestServer } from '../helpers/test-server';
import { NO_RATE_LIMITS } from '../resilience/helpers';
import { connectAuthed, type WsTestClient } from '../helpers/ws-test-client';
import { suiteSeed, withSeed } from './helpers';

const SEED = suiteSeed();

describe(`atomic replacement of a WebSocket session (seed ${SEED})`, () => {
  let t: TestServer;
  const sockets: WsTestClient[] = [];
  beforeAll(async () => {
    t = await startTestServer({ env: { ...NO_RATE_LIMITS, LIVE_AUDIO_MAX_SESSIONS_PER_USER: '2', GEMINI_SETUP_TIMEOUT_MS: '1500' } });
  });
  beforeEach(() => {
    t.emu.setFaults({});
    t.emu.setScenario(scriptedScenario([], { fallback: { userTranscript: 'hello', reply: 'Still here.' } }));
  });
  afterEach(() => {
    for (const c of sockets.splice(0)) c.close();
    t.server.registry.endAll('client_end', 'test cleanup');
  });
  afterAll(() => t.close());

  async function running(id: string): Promise<{ c: WsTestClient; first: number }> {
    const c = await connectAuthed(t.url, t.keys.alice);
    sockets.push(c);
    const first = t.emu.connections.length;
    c.send({ type: 'start_session', session_id: id });
    await c.next('session_started');
    return { c, first };
  }

  /** The old session still works: a spoken turn is relayed and answered on the same upstream connection. */
  async function stillServes(c: WsTestClient, id: string, connIndex: number) {
    const turnsBefore = t.emu.connections[connIndex]!.turns;
    c.send({ type: 'audio_chunk', audio_data: utterancePcm(600, 1200).toString('base64'), format: 'pcm', sample_rate: 16000 });
    const done = await c.next('turn_complete', () => true, 10_000);
    expect(done.session_id).toBe(id);
    expect(t.emu.connections[connIndex]!.turns).toBe(turnsBefore + 1);
    expect(t.emu.connections[connIndex]!.closed).toBeUndefined();
    const st = await c.request({ type: 'get_status' }, 'session_status');
    expect([st.data.sessionId, st.data.status]).toEqual([id, 'active']);
  }

  it.each([
    ['a handshake refused (503)', { handshakeStatus: 503 as const }, 'other id'],
    ['a setup refused (1008)', { rejectSetup: { code: 1008 as const, reason: 'models/x is not found' } }, 'other id'],
    ['a handshake refused (503)', { handshakeStatus: 503 as const }, 'same id'],
  ])('the upstream fails the new start (%s, %s): the old session goes on, the client gets the error', (_what, fault, ids) =>
    withSeed(SEED, async () => {
      const { c, first } = await running('atomic_old');
      t.emu.setFaults(fault);
      const newId = ids === 'same id' ? 'atomic_old' : 'atomic_new';
      c.send({ type: 'start_session', session_id: newId });
      const err = await c.next('error', () => true, 10_000);
      expect(err.code).toBe('UPSTREAM_UNAVAILABLE');
      expect(c.ofType('session_ended')).toEqual([]);
      t.emu.setFaults({});
      await stillServes(c, 'atomic_old', first);
      expect(t.server.registry.all().map((s) => s.id)).toEqual(['atomic_old']);
    }));

  it('a start that succeeds ends the old session first on the wire (session_ended, then session_started), at the per-user cap too', () =>
    withSeed(SEED, async () => {
      // alice is at her cap of 2: the socket's session and another one.
      const other = await running('atomic_other');
      const { c, first } = await running('atomic_old');
      c.send({ type: 'start_session', session_id: 'atomic_next' });
      const started = await c.next('session_started', (m) => m.session_id === 'atomic_next', 10_000);
      expect(started.data.sessionId).toBe('atomic_next');
      const types = c.messages.map((m) => m.type);
      expect(types.lastIndexOf('session_ended')).toBeLessThan(types.lastIndexOf('session_started'));
      expect(c.ofType('session_ended')[0]).toMatchObject({ session_id: 'atomic_old', data: { reason: 'replaced' } });
      await t.emu.waitFor(() => t.emu.connections[first]!.closed !== undefined, 5000); // its upstream closed
      expect(t.server.registry.all().map((s) => s.id).sort()).toEqual(['atomic_next', 'atomic_other']);
      await stillServes(c, 'atomic_next', t.emu.connections.length - 1);
      // The other socket's session was never touched.
      await stillServes(other.c, 'atomic_other', other.first);
    }));

  it('the per-user cap refuses a new session on a socket that relays none, and a replacement never exceeds it', () =>
    withSeed(SEED, async () => {
      await running('cap_a');
      const b = await running('cap_b');
      const c = await connectAuthed(t.url, t.keys.alice);
      sockets.push(c);
      c.send({ type: 'start_session', session_id: 'cap_c' });
      expect((await c.next('error')).code).toBe('TOO_MANY_USER_SESSIONS');
      // Replacing on b's socket stays within the cap: b's session is the one that goes.
      b.c.send({ type: 'start_session', session_id: 'cap_d' });
      await b.c.next('session_started', (m) => m.session_id === 'cap_d', 10_000);
      expect(t.server.registry.all().map((s) => s.id).sort()).toEqual(['cap_a', 'cap_d']);
    }));
});

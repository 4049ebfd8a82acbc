/**
 * Issue 14 §1–§3 wired: each session's options and profile become the setup the model receives. Through the real
 * server (REST and WebSocket), the real SDK and the emulator (which records the setup as it arrived and refuses,
 * per model, any field the model lacks): field by field per transport, every model of the table once, refusals
 * (unknown fields, unsupported options, unknown and locked profiles) before any upstream connection, and a
 * profiles file re-read on change. Emulator timing (eager/spaced) comes from the printed seed.
 */
import { INTERVIEW_GREETING, INTERVIEW_INSTRUCTION } from '../../src/services/profiles';
import { LiveModelTable } from '../../src/services/models';
import { sleep, startTestServer, type TestServer } from '../helpers/test-server';
import { NO_RATE_LIMITS } from '../resilience/helpers';
import { connectAuthed, type WsTestClient } from '../helpers/ws-test-client';
import { richOptions } from '../models/rich-options';
import { profilesFile, rest, suiteSeed, TIMING_FROM_SEED, unsupportedOption, withSeed } from './helpers';

const SEED = suiteSeed();
const table = new LiveModelTable();

const PROFILES_V1 = `
profiles:
  coach:
    description: A speaking coach
    model: gemini-3.1-flash-live-preview
    system_instruction: You help the user practise small talk.
    voice: Charon
    thinking: { level: minimal }
    locked: [model]
`;

describe(`conversation setup per session (seed ${SEED}, emulator timing ${TIMING_FROM_SEED(SEED)})`, () => {
  let t: TestServer;
  let profiles: ReturnType<typeof profilesFile>;
  const sockets: WsTestClient[] = [];

  beforeAll(async () => {
    profiles = profilesFile(PROFILES_V1);
    t = await startTestServer({
      env: { ...NO_RATE_LIMITS, LIVE_AUDIO_MAX_SESSIONS_PER_USER: '20', LIVE_AUDIO_PROFILES_FILE: profiles.file, LIVE_AUDIO_SYSTEM_INSTRUCTION: 'Server persona.', LIVE_AUDIO_VOICE: 'Aoede' },
      emulator: { timing: TIMING_FROM_SEED(SEED) },
    });
  });
  afterEach(async () => {
    for (const c of sockets.splice(0)) c.close();
    t.server.registry.endAll('client_end', 'test cleanup');
  });
  afterAll(async () => {
    await t.close();
    profiles.remove();
  });

  const lastSetup = () => t.emu.connections[t.emu.connections.length - 1]!;

  it('REST: a persona, voice, language and profile arrive at the emulator field by field; status echoes them (no secrets)', () =>
    withSeed(SEED, async () => {
      const r = rest(t, t.keys.alice);
      const before = t.emu.connections.length;
      const res = await r.start({ profile: 'coach', system_instruction: 'You are Ada, a patient tutor.', voice: 'puck', language: 'fr-fr', temperature: 0.3 });
      expect(res.status).toBe(200);
      expect(t.emu.connections.length).toBe(before + 1);
      const rec = lastSetup();
      expect(rec.model).toBe('gemini-3.1-flash-live-preview');
      const wire = rec.setup;
      const gc = wire.generationConfig;
      expect(wire.systemInstruction.parts[0].text).toBe('You are Ada, a patient tutor.');
      expect(gc.speechConfig).toEqual({ voiceConfig: { prebuiltVoiceConfig: { voiceName: 'Puck' } }, languageCode: 'fr-FR' });
      expect(gc.temperature).toBe(0.3);
      expect(gc.thinkingConfig).toEqual({ thinkingLevel: 'MINIMAL' });
      expect(wire.proactivity).toBeUndefined();

      const id = res.body.data.sessionId as string;
      const setup = res.body.data.setup;
      expect(setup).toMatchObject({ model: 'gemini-3.1-flash-live-preview', profile: 'coach', voice: 'Puck', language: 'fr-FR', temperature: 0.3, thinking: { level: 'minimal' } });
      expect(setup.system_instruction).toEqual({ source: 'request', chars: 29, text: 'You are Ada, a patient tutor.' });
      expect(setup.sources).toMatchObject({ voice: 'request', thinking: 'profile', language: 'request' });
      const st = await r.status(id);
      expect(st.body.data.setup).toEqual(setup);
      expect(st.body.data.usage).toMatchObject({ turns: 0, audioSeconds: { input: 0, output: 0 } });
      expect(JSON.stringify(st.body)).not.toContain('test-gemini-key');
    }));

  it('WebSocket: the interview profile with a language and voice; the server-wide variables are the default profile', () =>
    withSeed(SEED, async () => {
      const c = await connectAuthed(t.url, t.keys.alice);
      sockets.push(c);
      const started = await c.request({ type: 'start_session', session_id: 'ws_interview_1', profile: 'interview', language: 'de-DE', voice: 'Kore' }, 'session_started');
      const rec = lastSetup();
      expect(rec.model).toBe('gemini-3.8-live');
      const wire = rec.setup;
      expect(wire.systemInstruction.parts[0].text).toBe(INTERVIEW_INSTRUCTION);
      expect(wire.generationConfig.speechConfig).toEqual({ voiceConfig: { prebuiltVoiceConfig: { voiceName: 'Kore' } }, languageCode: 'de-DE' });
      expect(wire.generationConfig.responseModalities).toEqual(['AUDIO']);
      // 3.8: no thinking config, proactive audio is the model's own (never sent).
      expect(wire.generationConfig.thinkingConfig).toBeUndefined();
      expect(wire.proactivity).toBeUndefined();
      await t.emu.waitFor(() => rec.greeting !== undefined, 3000);
      expect(rec.greeting).toBe(INTERVIEW_GREETING);
      // The profile's persona is described, not shown.
      expect(started.data.setup.system_instruction).toEqual({ source: 'profile', chars: INTERVIEW_INSTRUCTION.length });
      const status = await c.request({ type: 'get_status' }, 'session_status');
      expect(status.data.setup).toMatchObject({ profile: 'interview', language: 'de-DE', voice: 'Kore', model: 'gemini-3.8-live' });

      // No profile named: `default`, made of LIVE_AUDIO_SYSTEM_INSTRUCTION and LIVE_AUDIO_VOICE.
      await c.request({ type: 'start_session', session_id: 'ws_default_1' }, 'session_started');
      const def = lastSetup().setup;
      expect(def.systemInstruction.parts[0].text).toBe('Server persona.');
      expect(def.generationConfig.speechConfig).toEqual({ voiceConfig: { prebuiltVoiceConfig: { voiceName: 'Aoede' } } });
    }));

  it.each(table.ids())('%s: started once through the real server with every option it takes; one it lacks is a 400 before any connection', (id) =>
    withSeed(SEED, async () => {
      const caps = table.require(id).capabilities;
      const r = rest(t, t.keys.alice);
      const before = t.emu.connections.length;
      const res = await r.start(richOptions(id, caps, 'optional'));
      expect(res.status).toBe(200);
      const rec = t.emu.connections[before]!;
      expect(rec.model).toBe(id);
      expect(rec.apiVersion).toBe(caps.affectiveDialog ? 'v1alpha' : 'v1beta');
      expect(rec.closed).toBeUndefined();
      expect(rec.setup.generationConfig.responseModalities).toEqual([caps.responseModality]);
      expect(res.body.data.setup.model).toBe(id);
      await r.end(res.body.data.sessionId);

      const bad = unsupportedOption(caps);
      const refused = await r.start({ model: id, [bad.field]: bad.value });
      expect(refused.status).toBe(400);
      expect(refused.body).toMatchObject({ success: false, code: 'UNSUPPORTED_FOR_MODEL', fields: [bad.field] });
      expect(refused.body.error).toContain(id);
      expect(t.emu.connections.length).toBe(before + 1);
    }));

  it('refusals name the fields, the same on REST and WebSocket, and open no upstream connection', () =>
    withSeed(SEED, async () => {
      const r = rest(t, t.keys.alice);
      const c = await connectAuthed(t.url, t.keys.alice);
      sockets.push(c);
      const before = t.emu.connections.length;
      const cases: [Record<string, unknown>, string, string[]][] = [
        [{ systemInstruction: 'camelCase', persona: 'x' }, 'INVALID_FIELD', ['systemInstruction', 'persona']],
        [{ vad: { manual: true, silence_duration_ms: 10 } }, 'INVALID_FIELD', ['vad']],
        [{ voice: 'NotAVoice' }, 'INVALID_FIELD', ['voice']],
        [{ language: 'english please' }, 'INVALID_FIELD', ['language']],
        [{ system_instruction: 'x'.repeat(32 * 1024 + 1) }, 'INVALID_FIELD', ['system_instruction']],
        [{ profile: 'no-such-profile' }, 'UNKNOWN_PROFILE', ['profile']],
        [{ profile: 'coach', model: 'gemini-3.8-live' }, 'PROFILE_LOCKED', ['model']],
        [{ model: 'gemini-3.8-live', thinking: { budget: 100 } }, 'UNSUPPORTED_FOR_MODEL', ['thinking']],
      ];
      for (const [options, code, fields] of cases) {
        const res = await r.start(options);
        expect({ options: Object.keys(options), status: res.status, code: res.body.code, fields: res.body.fields }).toEqual({ options: Object.keys(options), status: 400, code, fields });
        const err = await c.request({ type: 'start_session', session_id: 'ws_refused', ...options }, 'error');
        expect({ code: err.code, fields: err.fields }).toEqual({ code, fields });
        expect(err.error).toBe(res.body.error);
      }
      expect(t.emu.connections.length).toBe(before);
      // A 32 KiB instruction (the largest) is accepted.
      const big = await r.start({ system_instruction: 'y'.repeat(32 * 1024) });
      expect(big.status).toBe(200);
      expect(lastSetup().setup.systemInstruction.parts[0].text).toHaveLength(32 * 1024);
    }));

  it('WebSocket: a refused start_session leaves the session the socket relays running', () =>
    withSeed(SEED, async () => {
      const c = await connectAuthed(t.url, t.keys.alice);
      sockets.push(c);
      await c.request({ type: 'start_session', session_id: 'ws_keep_1', voice: 'Puck' }, 'session_started');
      const err = await c.request({ type: 'start_session', session_id: 'ws_keep_2', voice: 'Puck', temprature: 0.2 }, 'error');
      expect([err.code, err.fields]).toEqual(['INVALID_FIELD', ['temprature']]);
      expect(c.ofType('session_ended')).toHaveLength(0);
      const st = await c.request({ type: 'get_status' }, 'session_status');
      expect(st.data).toMatchObject({ sessionId: 'ws_keep_1', status: 'active' });
    }));

  it('the profiles file is re-read when it changes: new profiles and values apply to the next session', () =>
    withSeed(SEED, async () => {
      const r = rest(t, t.keys.alice);
      profiles.write(`${PROFILES_V1}
  support:
    system_instruction: You are the support desk of Example Corp, version two.
    voice: Fenrir
`);
      // The file is checked on use, at most once a second.
      let res = await r.start({ profile: 'support' });
      for (let i = 0; i < 40 && res.status !== 200; i++) {
        await sleep(100);
        res = await r.start({ profile: 'support' });
      }
      expect(res.status).toBe(200);
      expect(lastSetup().setup.systemInstruction.parts[0].text).toBe('You are the support desk of Example Corp, version two.');
      expect(lastSetup().setup.generationConfig.speechConfig.voiceConfig.prebuiltVoiceConfig.voiceName).toBe('Fenrir');
      // A broken file later keeps the last good profiles.
      profiles.write('profiles: [this is: not, valid');
      await sleep(1_100);
      expect((await r.start({ profile: 'support' })).status).toBe(200);
    }));
});

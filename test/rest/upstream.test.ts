import request from 'supertest';
import { scriptedScenario } from '../../src/emulator';
import { startTestServer, type TestServer } from '../helpers/test-server';

const API = '/api/v1/live-audio';

/** 16 kHz mono PCM: a 440 Hz tone then silence, enough for the emulator to detect one turn. */
function toneThenSilence(toneMs: number, silenceMs: number): Buffer {
  const n = ((toneMs + silenceMs) * 16000) / 1000;
  const buf = Buffer.alloc(n * 2);
  const toneN = (toneMs * 16000) / 1000;
  for (let i = 0; i < toneN; i++) buf.writeInt16LE(Math.round(8000 * Math.sin((2 * Math.PI * 440 * i) / 16000)), i * 2);
  return buf;
}

describe('upstream session setup', () => {
  let t: TestServer;
  const h = () => ({ 'X-API-Key': t.keys.alice });
  beforeAll(async () => {
    t = await startTestServer({ env: { LIVE_AUDIO_TRANSCRIBE_WAIT_MS: '1500' } });
  });
  afterAll(async () => {
    await t.close();
  });

  it('maps chat model ids to the default Live model and passes Live models through', async () => {
    for (const [requested, used] of [
      ['gemini-2.5-pro', 'gemini-3.8-live'],
      ['gemini-2.0-flash-exp', 'gemini-3.8-live'],
      [undefined, 'gemini-3.8-live'],
      ['gemini-2.5-flash-native-audio-preview-12-2025', 'gemini-2.5-flash-native-audio-preview-12-2025'],
      ['gemini-3.1-flash-live-preview', 'gemini-3.1-flash-live-preview'],
    ] as const) {
      const r = await request(t.url).post(`${API}/session/start`).set(h()).send({ session_id: 'm', model: requested });
      expect(r.status).toBe(200);
      expect(r.body.data.model).toBe(used);
      const setup = t.emu.connections[t.emu.connections.length - 1].setup;
      expect(setup.model).toBe(`models/${used}`);
    }
  });

  it('asks native-audio models for AUDIO plus transcriptions, resumption and compression', async () => {
    const r = await request(t.url).post(`${API}/streaming/start`).set(h()).send({ session_id: 'cfg', response_modality: 'text' });
    expect(r.status).toBe(200);
    const s = t.emu.connections[t.emu.connections.length - 1].setup;
    expect(s.generationConfig.responseModalities).toEqual(['AUDIO']);
    expect(s.inputAudioTranscription).toEqual({});
    expect(s.outputAudioTranscription).toEqual({});
    expect(s.sessionResumption).toEqual({});
    expect(s.contextWindowCompression).toEqual({ slidingWindow: {} });
    expect(t.emu.connections[t.emu.connections.length - 1].apiVersion).toBe('v1beta');
  });

  it('returns reply audio as a 24 kHz WAV when response_modality is audio', async () => {
    t.emu.setScenario(scriptedScenario([], { fallback: { userTranscript: 'play a tone', reply: 'Here it is.', replyAudioMs: 500 } }));
    await request(t.url).post(`${API}/session/start`).set(h()).send({ session_id: 'aud', response_modality: 'audio' });
    const pcm = toneThenSilence(600, 900);
    let last: request.Response | undefined;
    for (let i = 0; i < 6 && !(last?.body.turnComplete); i++) {
      const chunk = i === 0 ? pcm : Buffer.alloc(3200);
      last = await request(t.url).post(`${API}/transcribe`).set(h()).send({ session_id: 'aud', audio_data: chunk.toString('base64'), format: 'pcm', sample_rate: 16000 });
      expect(last.status).toBe(200);
    }
    expect(last!.body.turnComplete).toBe(true);
    expect(last!.body.transcript).toBe('play a tone');
    expect(last!.body.response).toBe('Here it is.');
    const wav = Buffer.from(last!.body.data.audioBuffer, 'base64');
    expect(wav.subarray(0, 4).toString()).toBe('RIFF');
    expect(wav.readUInt32LE(24)).toBe(24000);
    expect(wav.readUInt16LE(22)).toBe(1);
    expect(wav.length - 44).toBe(24000 * 2 * 0.5);
  });

  it('takes wav at 48 kHz stereo through the same session path', async () => {
    t.emu.setScenario(scriptedScenario([], { fallback: { userTranscript: 'stereo words', reply: 'Stereo reply.' } }));
    await request(t.url).post(`${API}/session/start`).set(h()).send({ session_id: 'wav' });
    const before = t.emu.totalAudioBytes();
    const mono16 = toneThenSilence(600, 900);
    // Upsample to 48 kHz stereo by repetition (the server resamples back to 16 kHz mono).
    const frames = mono16.length / 2;
    const data = Buffer.alloc(frames * 3 * 4);
    for (let i = 0; i < frames; i++) {
      const v = mono16.readInt16LE(i * 2);
      for (let k = 0; k < 3; k++) {
        data.writeInt16LE(v, (i * 3 + k) * 4);
        data.writeInt16LE(v, (i * 3 + k) * 4 + 2);
      }
    }
    const header = Buffer.alloc(44);
    header.write('RIFF', 0);
    header.writeUInt32LE(36 + data.length, 4);
    header.write('WAVEfmt ', 8);
    header.writeUInt32LE(16, 16);
    header.writeUInt16LE(1, 20);
    header.writeUInt16LE(2, 22);
    header.writeUInt32LE(48000, 24);
    header.writeUInt32LE(48000 * 4, 28);
    header.writeUInt16LE(4, 32);
    header.writeUInt16LE(16, 34);
    header.write('data', 36);
    header.writeUInt32LE(data.length, 40);
    const r = await request(t.url).post(`${API}/transcribe`).set(h()).send({ session_id: 'wav', audio_data: Buffer.concat([header, data]).toString('base64'), format: 'wav' });
    expect(r.status).toBe(200);
    await t.emu.waitFor(() => t.emu.totalAudioBytes() - before >= mono16.length * 0.98, 3000);
    expect(Math.abs(t.emu.totalAudioBytes() - before - mono16.length) / mono16.length).toBeLessThan(0.02);
  });

  it('keeps the reply pending instead of blocking: /transcribe answers within the bounded wait', async () => {
    t.emu.setScenario(scriptedScenario([], { fallback: { userTranscript: 'slow', reply: 'late reply', delayMs: 5000 } }));
    await request(t.url).post(`${API}/session/start`).set(h()).send({ session_id: 'slow' });
    const startedAt = Date.now();
    const r = await request(t.url).post(`${API}/transcribe`).set(h()).send({ session_id: 'slow', audio_data: Buffer.alloc(3200).toString('base64'), format: 'pcm' });
    expect(r.status).toBe(200);
    expect(Date.now() - startedAt).toBeLessThan(3000);
    expect(r.body.turnComplete).toBe(false);
  });
});

describe('upstream failures at start', () => {
  it('passes on Google\'s reason when the model is refused (1008), without leaking a session', async () => {
    const t = await startTestServer({ emulator: { faults: { rejectSetup: { code: 1008, reason: 'models/x is not found for API version v1beta' } } } });
    try {
      const r = await request(t.url).post(`${API}/session/start`).set('X-API-Key', t.keys.alice).send({ session_id: 'f' });
      expect(r.status).toBe(502);
      expect(r.body.code).toBe('UPSTREAM_UNAVAILABLE');
      expect(r.body.error).toContain('1008');
      expect(r.body.error).toContain('is not found');
      expect(t.server.registry.size).toBe(0);
    } finally {
      await t.close();
    }
  });

  it('bounds a setup that never completes', async () => {
    const t = await startTestServer({ env: { GEMINI_SETUP_TIMEOUT_MS: '500' }, emulator: { faults: { neverCompleteSetup: true } } });
    try {
      const r = await request(t.url).post(`${API}/session/start`).set('X-API-Key', t.keys.alice).send({ session_id: 'f' });
      expect(r.status).toBe(503);
      expect(r.body.error).toMatch(/within 500 ms/);
      expect(t.server.registry.size).toBe(0);
      await t.emu.waitFor(() => t.emu.connections.every((c) => c.closed !== undefined), 3000);
    } finally {
      await t.close();
    }
  });

  it('does not leak the Gemini key in errors (handshake refused)', async () => {
    const t = await startTestServer({ emulator: { faults: { handshakeStatus: 429 } } });
    try {
      const r = await request(t.url).post(`${API}/session/start`).set('X-API-Key', t.keys.alice).send({ session_id: 'q' });
      expect(r.status).toBe(502);
      expect(r.body.error).toMatch(/quota|429/i);
      expect(JSON.stringify(r.body)).not.toContain('test-gemini-key');
    } finally {
      await t.close();
    }
  });
});

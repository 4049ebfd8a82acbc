import { request } from 'node:http';
import { Modality } from '@google/genai';
import {
  REASON_BAD_KEY,
  REASON_INVALID_ARGUMENT,
  REASON_NON_AUDIO,
  startGeminiLiveEmulator,
} from '../../src/emulator';
import { connectLive, utterancePcm } from '../helpers/live-probe';
import { LIVE_PATH, MINIMAL_SETUP, RawClient, useEmulator } from './helpers';

/** The minimal setup with manual activity detection (the client brackets its speech). */
const MANUAL_VAD_SETUP = { setup: { ...MINIMAL_SETUP.setup, realtimeInputConfig: { automaticActivityDetection: { disabled: true } } } };

describe('Gemini Live emulator: routing and framing', () => {
  const t = useEmulator({ apiKeys: ['test-key', 'auth_tokens/abc123'] });

  it('accepts the SDK on //ws/… and records version, method, key and setup', async () => {
    const probe = await t.connect({ config: { responseModalities: [Modality.AUDIO], systemInstruction: 'Be brief.' } });
    expect(probe.session).toBeDefined();
    expect(probe.messages[0].setupComplete).toEqual({});
    const [rec] = t.emu.connections;
    expect(rec).toMatchObject({ id: 'c1', apiVersion: 'v1beta', method: 'BidiGenerateContent', key: 'test-key' });
    expect(rec.setup).toEqual({
      model: 'models/gemini-2.5-flash-native-audio-preview-12-2025',
      generationConfig: { responseModalities: ['AUDIO'] },
      systemInstruction: { parts: [{ text: 'Be brief.' }], role: 'user' },
    });
    expect(rec.messages.map((m) => m.kind)).toEqual(['setup']);
    expect(rec.sent.map((m) => m.kind)).toEqual(['setupComplete']);
    expect(t.emu.upgrades).toEqual([expect.objectContaining({ path: LIVE_PATH, key: 'test-key', status: 101 })]);
    await probe.close();
    expect(rec.closed).toEqual({ code: 1005, reason: '', by: 'client' });
  });

  it('accepts a base URL with a path prefix and the ephemeral-token method on v1alpha', async () => {
    const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
    try {
      const prefixed = await t.connect({ baseUrl: `${t.emu.baseUrl}/prefix/` });
      expect(prefixed.session).toBeDefined();
      const token = await t.connect({ apiKey: 'auth_tokens/abc123', apiVersion: 'v1alpha' });
      expect(token.session).toBeDefined();
    } finally {
      warn.mockRestore();
    }
    expect(t.emu.upgrades[0].path).toBe(`/prefix${LIVE_PATH}`); // '/prefix//ws/…'
    expect(t.emu.connections[1]).toMatchObject({
      apiVersion: 'v1alpha',
      method: 'BidiGenerateContentConstrained',
      key: 'auth_tokens/abc123',
    });
  });

  it('answers HTTP 404 at the upgrade for other paths, and to plain HTTP', async () => {
    for (const path of ['/ws/other', '//ws/google.ai.generativelanguage.v1beta.GenerativeService.StreamGenerateContent', '/']) {
      const raw = RawClient.open(t.emu, path);
      await expect(raw.opened).rejects.toThrow('Unexpected server response: 404');
      await raw.closed;
    }
    const status = await new Promise<number>((resolve, reject) => {
      request(`${t.emu.baseUrl}/anything`, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      })
        .on('error', reject)
        .end();
    });
    expect(status).toBe(404);
    expect(t.emu.connections).toHaveLength(0);
    expect(t.emu.upgrades.map((u) => u.status)).toEqual([404, 404, 404]);
  });

  it('sends pretty-printed JSON in binary frames, without permessage-deflate', async () => {
    const raw = RawClient.open(t.emu);
    await raw.opened;
    expect(raw.ws.extensions).toBe('');
    raw.send(MINIMAL_SETUP);
    await t.emu.waitFor(() => raw.frames.length === 1);
    expect(raw.frames[0]).toEqual({ text: '{\n  "setupComplete": {}\n}\n', isBinary: true });
    raw.ws.close();
    await raw.closed;
  });
});

describe('Gemini Live emulator: text frames', () => {
  it('sends text frames with frames: "text", and the SDK parses them like binary ones', async () => {
    const emu = await startGeminiLiveEmulator({ frames: 'text' });
    try {
      const raw = RawClient.open(emu);
      await raw.opened;
      raw.send(MINIMAL_SETUP);
      await emu.waitFor(() => raw.frames.length === 1);
      expect(raw.frames[0]).toEqual({ text: '{\n  "setupComplete": {}\n}\n', isBinary: false });
      raw.ws.close();
      await raw.closed;

      const probe = await connectLive({ baseUrl: emu.baseUrl });
      probe.sendPcm(utterancePcm(600, 600));
      await probe.waitForTurnComplete();
      expect(probe.inputTranscript()).toBe('[emulated] I heard 0.6 seconds of speech');
      expect(probe.audioBytes()).toBeGreaterThan(0);
      await probe.close();
    } finally {
      await emu.stop();
    }
  });
});

const audioMessage = (data: unknown, mimeType = 'audio/pcm;rate=16000') => ({ realtimeInput: { audio: { data, mimeType } } });
const MANUAL_VAD = { automaticActivityDetection: { disabled: true } };

describe('Gemini Live emulator: setup validation', () => {
  const t = useEmulator({ apiKeys: ['test-key'] });

  it('closes 1007 for a key that is not in apiKeys', async () => {
    const probe = await t.connect({ apiKey: 'wrong-key' });
    expect(probe.session).toBeUndefined();
    expect(probe.closeInfo).toEqual({ code: 1007, reason: REASON_BAD_KEY, wasClean: true });
    expect(t.emu.connections[0].closed).toEqual({ code: 1007, reason: REASON_BAD_KEY, by: 'server' });
  });

  it('closes 1008 for an unknown model, with the reason truncated to 123 bytes', async () => {
    const probe = await t.connect({ model: 'gemini-9-nope' });
    expect(probe.closeInfo?.code).toBe(1008);
    expect(probe.closeInfo?.reason).toBe(
      'models/gemini-9-nope is not found for API version v1beta, or is not supported for bidiGenerateContent. Call ListModels to s',
    );
    expect(Buffer.byteLength(probe.closeInfo!.reason)).toBe(123);
  });

  it('closes 1007 for TEXT on a native-audio model and for two modalities', async () => {
    const text = await t.connect({ config: { responseModalities: [Modality.TEXT] } });
    expect(text.closeInfo).toMatchObject({ code: 1007, reason: REASON_NON_AUDIO });
    const both = await t.connect({ config: { responseModalities: [Modality.TEXT, Modality.AUDIO] } });
    expect(both.closeInfo).toMatchObject({ code: 1007, reason: REASON_INVALID_ARGUMENT });
  });

  it.each([
    ['a first message that is not setup', [{ realtimeInput: { text: 'hi' } }]],
    ['a frame that is not JSON', ['{oops']],
    ['an unknown setup field', [{ setup: { ...MINIMAL_SETUP.setup, inputAudioTranscripton: {} } }]],
    ['two top-level fields', [{ ...MINIMAL_SETUP, clientContent: {} }]],
    ['a second setup', [MINIMAL_SETUP, MINIMAL_SETUP]],
    ['an unknown message type', [MINIMAL_SETUP, { realtimeInputs: {} }]],
    ['audio data that is not a string', [MINIMAL_SETUP, audioMessage({ type: 'Buffer', data: [0, 0] })]],
    ['audio with an odd byte count', [MINIMAL_SETUP, audioMessage(Buffer.alloc(3).toString('base64'))]],
    ['audio that is not base64', [MINIMAL_SETUP, audioMessage('AA*A')]],
    ['audio that is not PCM', [MINIMAL_SETUP, audioMessage('AAAA', 'audio/wav')]],
    ['activityStart while automatic VAD is on', [MINIMAL_SETUP, { realtimeInput: { activityStart: {} } }]],
    ['activityEnd while automatic VAD is on', [MINIMAL_SETUP, { realtimeInput: { activityEnd: {} } }]],
    ['audioStreamEnd with automatic VAD disabled', [MANUAL_VAD_SETUP, { realtimeInput: { audioStreamEnd: true } }]],
  ])('closes 1007 for %s', async (_name, messages) => {
    const raw = RawClient.open(t.emu);
    await raw.opened;
    for (const m of messages) raw.send(m);
    expect(await raw.closed).toEqual({ code: 1007, reason: REASON_INVALID_ARGUMENT });
    expect(t.emu.connections[0].closed?.by).toBe('server');
  });

  it('closes 1007 for audio sent as a Buffer through the SDK', async () => {
    const probe = await t.connect();
    probe.requireSession().sendRealtimeInput({ audio: { data: Buffer.alloc(320) as any, mimeType: 'audio/pcm;rate=16000' } });
    expect(await probe.waitForClose()).toMatchObject({ code: 1007, reason: REASON_INVALID_ARGUMENT });
    expect(t.emu.connections[0].messages.map((m) => m.kind)).toEqual(['setup', 'invalid']);
  });

  it('closes 1007 for audioStreamEnd when automatic VAD is disabled', async () => {
    const probe = await t.connect({ config: { realtimeInputConfig: MANUAL_VAD } });
    probe.requireSession().sendRealtimeInput({ audioStreamEnd: true });
    expect(await probe.waitForClose()).toMatchObject({ code: 1007 });
  });

  it('closes 1007 for clientContent after the first model turn on gemini-3.1-flash-live-preview', async () => {
    const probe = await t.connect({ model: 'gemini-3.1-flash-live-preview' });
    probe.requireSession().sendClientContent({ turns: [{ role: 'user', parts: [{ text: 'seed' }] }] });
    await probe.waitForTurnComplete();
    probe.requireSession().sendClientContent({ turns: [{ role: 'user', parts: [{ text: 'again' }] }] });
    expect(await probe.waitForClose()).toMatchObject({ code: 1007, reason: REASON_INVALID_ARGUMENT });
  });

  it('accepts unknown setup fields with strictSetup: false, and audio/pcm without a rate as 16 kHz', async () => {
    const emu = await startGeminiLiveEmulator({ strictSetup: false });
    try {
      const raw = RawClient.open(emu);
      await raw.opened;
      raw.send({ setup: { ...MINIMAL_SETUP.setup, somethingNew: {} } });
      raw.send({ realtimeInput: { audio: { data: Buffer.alloc(640).toString('base64'), mimeType: 'audio/pcm' } } });
      await emu.waitFor(() => emu.totalAudioBytes() === 640);
      expect(raw.json(0)).toEqual({ setupComplete: {} });
      expect(emu.connections[0].audioRates).toEqual([16000]);
      raw.ws.close();
      await raw.closed;
    } finally {
      await emu.stop();
    }
  });
});

describe('Gemini Live emulator: recorder and control API', () => {
  const t = useEmulator();

  it('records every client message, the PCM of every connection in arrival order, and the totals', async () => {
    const a = await t.connect({ config: { responseModalities: [Modality.AUDIO], realtimeInputConfig: MANUAL_VAD } });
    const b = await t.connect();
    const pcmA = Buffer.from([1, 0, 2, 0, 3, 0, 4, 0]);
    const pcmB = Buffer.from([9, 0, 8, 0]);
    const sa = a.requireSession();
    sa.sendRealtimeInput({ activityStart: {} });
    sa.sendRealtimeInput({ audio: { data: pcmA.toString('base64'), mimeType: 'audio/pcm;rate=16000' } });
    b.requireSession().sendRealtimeInput({ audio: { data: pcmB.toString('base64'), mimeType: 'audio/pcm;rate=24000' } });
    await t.emu.waitFor(() => t.emu.totalAudioBytes() === 12);
    sa.sendRealtimeInput({ audio: { data: pcmA.toString('base64'), mimeType: 'audio/pcm;rate=16000' } });
    sa.sendRealtimeInput({ activityEnd: {} });
    sa.sendRealtimeInput({ video: { data: '/9j/', mimeType: 'image/jpeg' } });
    sa.sendClientContent({ turns: [{ role: 'user', parts: [{ text: 'x' }] }], turnComplete: false });
    sa.sendRealtimeInput({ text: 'typed' });
    // Last: an answer to a call the model never made closes the connection with 1007 (issue 16), as Gemini does.
    sa.sendToolResponse({ functionResponses: [{ id: 'fc-1', name: 'f', response: { ok: true } }] });
    expect(await a.waitForClose()).toMatchObject({ code: 1007 });

    const [ra, rb] = t.emu.connections;
    expect(ra.messages.map((m) => m.kind)).toEqual([
      'setup', 'activityStart', 'audio', 'audio', 'activityEnd', 'video', 'clientContent', 'text', 'toolResponse', 'invalid',
    ]);
    expect(ra.audioChunks).toEqual([8, 8]);
    expect(ra.audioBytes).toBe(16);
    expect(Buffer.concat(ra.pcm)).toEqual(Buffer.concat([pcmA, pcmA]));
    expect(rb.audioRates).toEqual([24000]);
    expect(t.emu.totalAudioBytes()).toBe(20);
    expect(t.emu.receivedPcm()).toEqual(Buffer.concat([pcmA, pcmB, pcmA]));
  });

  it('close() sends the given code and reason; terminate() drops the TCP connection (1006)', async () => {
    const a = await t.connect();
    const b = await t.connect();
    t.emu.close('c1', 4000, 'x'.repeat(200));
    t.emu.terminate('c2');
    expect(await a.waitForClose()).toEqual({ code: 4000, reason: 'x'.repeat(123), wasClean: true });
    expect(await b.waitForClose()).toMatchObject({ code: 1006, wasClean: false });
    expect(t.emu.connections.map((c) => c.closed)).toEqual([
      { code: 4000, reason: 'x'.repeat(123), by: 'server' },
      { code: 1006, reason: '', by: 'server' },
    ]);
    expect(() => t.emu.close('c1', 1000, '')).not.toThrow(); // already closed: no-op
    expect(() => t.emu.terminate('c99')).toThrow('unknown emulator connection c99');
  });

  it('stop() closes open connections with 1001', async () => {
    const emu = await startGeminiLiveEmulator();
    const probe = await connectLive({ baseUrl: emu.baseUrl });
    await emu.stop();
    expect(await probe.waitForClose()).toMatchObject({ code: 1001, reason: 'Emulator stopped.' });
  });
});

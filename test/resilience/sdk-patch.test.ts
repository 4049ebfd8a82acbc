import { GoogleGenAI, LiveServerMessage, Modality } from '@google/genai';
import { WebSocket, WebSocketServer } from 'ws';
import { NATIVE_AUDIO_MODEL } from '../emulator/helpers';
import { startGeminiLiveEmulator, type GeminiLiveEmulator } from '../../src/emulator';
import { patchLiveSocketFactory, SdkPatchError, type SdkLiveSocket } from '../../src/services/upstream/sdk-patches/live-socket-factory';

/**
 * The SDK socket patch against the installed @google/genai, talking to the emulator over loopback: it fails when an
 * SDK upgrade moves or reshapes what the patch relies on (the private factory, its `create` signature, the raw
 * `ws` socket on what it returns, callbacks that carry every server frame).
 */
describe('SDK socket patch (src/services/upstream/sdk-patches)', () => {
  let emu: GeminiLiveEmulator;
  beforeAll(async () => {
    emu = await startGeminiLiveEmulator({ host: '127.0.0.1', port: 0 });
  });
  afterAll(async () => {
    await emu.stop();
  });

  it('sees every Live socket the SDK opens, its raw ws socket, and every server frame before the SDK parses it', async () => {
    const ai = new GoogleGenAI({ apiKey: 'test-key', httpOptions: { baseUrl: emu.baseUrl, apiVersion: 'v1beta' } });
    const sockets: SdkLiveSocket[] = [];
    const urls: string[] = [];
    const framesSeen: unknown[] = [];
    patchLiveSocketFactory(ai, (create) => (url, headers, callbacks) => {
      urls.push(url);
      expect(typeof headers).toBe('object');
      const sock = create(url, headers, {
        ...callbacks,
        onmessage: (e) => {
          framesSeen.push(e.data);
          callbacks.onmessage(e);
        },
      });
      sockets.push(sock);
      return sock;
    });
    const received: LiveServerMessage[] = [];
    let setupDone!: (how: string) => void;
    const setup = new Promise<string>((resolve) => (setupDone = resolve));
    const session = await ai.live.connect({
      model: NATIVE_AUDIO_MODEL,
      config: { responseModalities: [Modality.AUDIO] },
      callbacks: {
        onmessage: (m) => {
          received.push(m);
          if (m.setupComplete) setupDone('setupComplete');
        },
        onerror: (e) => setupDone(`error: ${String((e as { message?: unknown }).message ?? e)}`),
        onclose: (e) => setupDone(`closed ${e.code} ${e.reason}`),
      },
    });
    expect(await setup).toBe('setupComplete');
    expect(urls).toHaveLength(1);
    expect(urls[0]).toContain(new URL(emu.baseUrl).host);
    expect(sockets).toHaveLength(1);
    // The raw socket is the `ws` WebSocket (the provider reads bufferedAmount and aborts hung handshakes on it).
    expect(sockets[0].ws).toBeInstanceOf(WebSocket);
    expect(typeof (sockets[0].ws as WebSocket).bufferedAmount).toBe('number');
    // Every message the SDK delivered went through the patched callbacks first.
    expect(framesSeen.length).toBeGreaterThanOrEqual(received.length);
    expect(received.some((m) => m.setupComplete)).toBe(true);
    session.close();
  });

  it('after the setup, hands each text frame on as Object.assign(new LiveServerMessage(), JSON) synchronously (what the provider then does itself, parsing once)', async () => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise((r) => wss.once('listening', r));
    const after = [
      { serverContent: { inputTranscription: { text: 'one' } } },
      { serverContent: { modelTurn: { parts: [{ inlineData: { data: 'AAAA', mimeType: 'audio/pcm;rate=24000' } }] } }, usageMetadata: { totalTokenCount: 3 } },
      { sessionResumptionUpdate: { newHandle: 'h1', resumable: true } },
    ];
    wss.on('connection', (ws) => {
      ws.once('message', () => {
        ws.send(JSON.stringify({ setupComplete: {} }));
        setTimeout(() => after.forEach((m) => ws.send(JSON.stringify(m))), 20);
      });
    });
    try {
      const ai = new GoogleGenAI({ apiKey: 'k', httpOptions: { baseUrl: `http://127.0.0.1:${(wss.address() as { port: number }).port}`, apiVersion: 'v1beta' } });
      let inFrame = false;
      patchLiveSocketFactory(ai, (create) => (url, headers, callbacks) =>
        create(url, headers, {
          ...callbacks,
          onmessage: (e) => {
            inFrame = true;
            callbacks.onmessage(e);
            inFrame = false;
          },
        }),
      );
      const got: Array<{ m: LiveServerMessage; sync: boolean }> = [];
      const session = await ai.live.connect({
        model: 'gemini-test',
        config: { responseModalities: [Modality.AUDIO] },
        callbacks: { onmessage: (m) => got.push({ m, sync: inFrame }), onerror: () => undefined, onclose: () => undefined },
      });
      const t0 = Date.now();
      while (got.length < after.length + 1 && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 10));
      const late = got.slice(1);
      expect(late.map((g) => g.sync)).toEqual(after.map(() => true));
      for (const [i, g] of late.entries()) {
        expect(g.m).toBeInstanceOf(LiveServerMessage);
        expect(g.m).toEqual(Object.assign(new LiveServerMessage(), after[i]));
      }
      session.close();
    } finally {
      for (const c of wss.clients) c.terminate();
      await new Promise((r) => wss.close(r));
    }
  });

  it('refuses to patch an SDK that no longer has the private factory (instead of patching nothing)', () => {
    const fake = { live: {} } as unknown as GoogleGenAI;
    expect(() => patchLiveSocketFactory(fake, (c) => c)).toThrow(SdkPatchError);
    const noCreate = { live: { webSocketFactory: {} } } as unknown as GoogleGenAI;
    expect(() => patchLiveSocketFactory(noCreate, (c) => c)).toThrow(/webSocketFactory.create/);
  });
});

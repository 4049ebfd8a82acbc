import { WebSocket } from 'ws';
import { startGeminiLiveEmulator, type EmulatorOptions, type GeminiLiveEmulator } from '../../src/emulator';
import { connectLive, type ConnectLiveOptions, type LiveProbe } from '../helpers/live-probe';

export const LIVE_PATH = '//ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent';
export const NATIVE_AUDIO_MODEL = 'gemini-2.5-flash-native-audio-preview-12-2025';
export const MINIMAL_SETUP = { setup: { model: `models/${NATIVE_AUDIO_MODEL}` } };

/**
 * Starts an emulator per test and stops it afterwards. Every probe opened through `connect()` is closed
 * first, so tests leave no handles even when they fail half-way.
 */
export function useEmulator(opts: EmulatorOptions = {}) {
  const state: { emu: GeminiLiveEmulator; probes: LiveProbe[] } = { emu: undefined as never, probes: [] };
  beforeEach(async () => {
    state.emu = await startGeminiLiveEmulator(opts);
    state.probes = [];
  });
  afterEach(async () => {
    await Promise.all(state.probes.map((p) => (p.closeInfo ? undefined : p.close().catch(() => undefined))));
    await state.emu.stop();
  });
  return {
    get emu() {
      return state.emu;
    },
    /** `connectLive` against this test's emulator. */
    async connect(o: Omit<ConnectLiveOptions, 'baseUrl'> & { baseUrl?: string } = {}): Promise<LiveProbe> {
      const probe = await connectLive({ baseUrl: state.emu.baseUrl, ...o });
      state.probes.push(probe);
      return probe;
    },
  };
}

/** A bare `ws` client, to see frames exactly as they are on the wire. */
export class RawClient {
  readonly frames: { text: string; isBinary: boolean }[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  readonly opened: Promise<void>;
  error: Error | undefined;

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data, isBinary) => this.frames.push({ text: data.toString(), isBinary }));
    ws.on('error', (err) => (this.error = err));
    this.opened = new Promise((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  }

  static open(emu: GeminiLiveEmulator, path = LIVE_PATH, query = '?key=test-key'): RawClient {
    return new RawClient(new WebSocket(`ws://127.0.0.1:${emu.port}${path}${query}`));
  }

  send(msg: unknown): void {
    this.ws.send(typeof msg === 'string' ? msg : JSON.stringify(msg));
  }

  json(i: number): any {
    return JSON.parse(this.frames[i].text);
  }
}

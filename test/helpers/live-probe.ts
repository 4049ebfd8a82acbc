/**
 * Test helpers for suites that drive a Live endpoint (usually the emulator) with the real `@google/genai` SDK.
 * Test-only (not compiled into the product): import it from tests as test/helpers/live-probe.
 */
import { patchLiveSocketFactory } from '../../src/services/upstream/sdk-patches/live-socket-factory';
import { GoogleGenAI, Modality, type LiveConnectConfig, type LiveServerMessage, type Session } from '@google/genai';
import { chunkPcm, INPUT_SAMPLE_RATE, silencePcm, tonePcm } from '../../src/emulator/pcm';

export { chunkPcm, pcmBytesFor, pcmDurationMs, silencePcm, tonePcm, rms } from '../../src/emulator/pcm';

export const TEST_MODEL = 'gemini-2.5-flash-native-audio-preview-12-2025';

export interface LiveCloseInfo {
  code: number;
  reason: string;
  wasClean: boolean;
}

export interface ConnectLiveOptions {
  baseUrl: string;
  /** Default 'test-key'. */
  apiKey?: string;
  /** Default 'v1beta'. */
  apiVersion?: string;
  /** Default TEST_MODEL. */
  model?: string;
  /** Default `{ responseModalities: [AUDIO], inputAudioTranscription: {}, outputAudioTranscription: {} }`. */
  config?: LiveConnectConfig;
  /** Give up (and close the socket) if neither setupComplete nor a close arrives in time. Default 3000 ms. */
  timeoutMs?: number;
  /** Called for every message after it was stored. */
  onMessage?: (msg: LiveServerMessage, probe: LiveProbe) => void;
}

/** Resolves when `pred()` holds; rejects after `timeoutMs`. Polls every 5 ms. */
export async function waitUntil(pred: () => boolean, timeoutMs = 3000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** One SDK Live connection and everything it received. */
export class LiveProbe {
  /** Set once setupComplete arrived; undefined if the connection closed or failed before that. */
  session: Session | undefined;
  readonly messages: LiveServerMessage[] = [];
  /** `onerror` messages (e.g. 'Unexpected server response: 429'). */
  readonly errors: string[] = [];
  closeInfo: LiveCloseInfo | undefined;
  readonly closed: Promise<LiveCloseInfo>;
  private resolveClosed!: (info: LiveCloseInfo) => void;

  constructor() {
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
  }

  /** @internal called by connectLive */
  onClose(info: LiveCloseInfo): void {
    if (this.closeInfo) return;
    this.closeInfo = info;
    this.resolveClosed(info);
  }

  private content() {
    return this.messages.map((m) => m.serverContent).filter((sc) => sc !== undefined);
  }

  private modelParts() {
    return this.content().flatMap((sc) => sc.modelTurn?.parts ?? []);
  }

  inputTranscript(): string {
    return this.content().map((sc) => sc.inputTranscription?.text ?? '').join('');
  }

  outputTranscript(): string {
    return this.content().map((sc) => sc.outputTranscription?.text ?? '').join('');
  }

  /** Concatenated modelTurn text parts (TEXT modality). */
  modelText(): string {
    return this.modelParts().map((p) => p.text ?? '').join('');
  }

  /** Decoded bytes of all modelTurn inlineData parts. */
  audioBytes(): number {
    return this.audioChunks().reduce((n, b) => n + b.length, 0);
  }

  audioChunks(): Buffer[] {
    return this.modelParts()
      .filter((p) => p.inlineData?.data)
      .map((p) => Buffer.from(p.inlineData!.data!, 'base64'));
  }

  turnCompletes(): number {
    return this.content().filter((sc) => sc.turnComplete).length;
  }

  /** Every `newHandle` of a resumable sessionResumptionUpdate, in order. */
  resumableHandles(): string[] {
    return this.messages
      .map((m) => m.sessionResumptionUpdate)
      .filter((u) => u?.resumable && u.newHandle)
      .map((u) => u!.newHandle!);
  }

  /**
   * One label per message field, in order: 'setupComplete', 'inputTranscription', 'audio', 'text',
   * 'outputTranscription', 'generationComplete', 'interrupted', 'turnComplete', 'resumable', 'notResumable', 'goAway'.
   */
  kinds(): string[] {
    const out: string[] = [];
    for (const m of this.messages) {
      if (m.setupComplete) out.push('setupComplete');
      const sc = m.serverContent;
      if (sc?.interrupted) out.push('interrupted');
      if (sc?.inputTranscription) out.push('inputTranscription');
      for (const p of sc?.modelTurn?.parts ?? []) out.push(p.inlineData ? 'audio' : 'text');
      if (sc?.outputTranscription) out.push('outputTranscription');
      if (sc?.generationComplete) out.push('generationComplete');
      if (sc?.turnComplete) out.push('turnComplete');
      if (m.sessionResumptionUpdate) out.push(m.sessionResumptionUpdate.resumable ? 'resumable' : 'notResumable');
      if (m.goAway) out.push('goAway');
    }
    return out;
  }

  /** `kinds()` with consecutive repeats collapsed: ['setupComplete', 'audio', 'outputTranscription', 'audio', …]. */
  kindRuns(): string[] {
    return this.kinds().filter((k, i, all) => i === 0 || all[i - 1] !== k);
  }

  waitFor(pred: (p: LiveProbe) => boolean, timeoutMs = 3000, what = 'probe condition'): Promise<void> {
    return waitUntil(() => pred(this), timeoutMs, what);
  }

  waitForTurnComplete(n = 1, timeoutMs = 3000): Promise<void> {
    return this.waitFor((p) => p.turnCompletes() >= n, timeoutMs, `${n} turnComplete(s)`);
  }

  waitForClose(timeoutMs = 3000): Promise<LiveCloseInfo> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no close within ${timeoutMs} ms`)), timeoutMs);
    });
    return Promise.race([this.closed, timeout]).finally(() => clearTimeout(timer));
  }

  /** Sends PCM as `audio/pcm;rate=N` realtimeInput messages of `chunkMs` each. */
  sendPcm(pcm: Buffer, opts: { chunkMs?: number; sampleRate?: number } = {}): void {
    const { chunkMs = 100, sampleRate = INPUT_SAMPLE_RATE } = opts;
    for (const chunk of chunkPcm(pcm, chunkMs, sampleRate)) {
      const audio = { data: chunk.toString('base64'), mimeType: `audio/pcm;rate=${sampleRate}` };
      this.requireSession().sendRealtimeInput({ audio });
    }
  }

  /** Closes the session (the client sends no code: both sides see 1005) and waits for onclose. */
  async close(timeoutMs = 3000): Promise<LiveCloseInfo> {
    if (!this.closeInfo) this.session?.close();
    return this.waitForClose(timeoutMs);
  }

  requireSession(): Session {
    if (!this.session) throw new Error(`no live session (closed before setup: ${JSON.stringify(this.closeInfo)})`);
    return this.session;
  }
}

/**
 * Connects with the real SDK and collects everything. Resolves once setupComplete arrived (`probe.session` set)
 * or once the connection closed before that (`probe.session` undefined, `probe.closeInfo` / `probe.errors` set):
 * SDK 2.32.0's own `connect()` never settles in that case. Rejects only if neither happens within `timeoutMs`,
 * after closing the socket.
 */
export async function connectLive(opts: ConnectLiveOptions): Promise<LiveProbe> {
  const ai = new GoogleGenAI({
    apiKey: opts.apiKey ?? 'test-key',
    httpOptions: { baseUrl: opts.baseUrl, apiVersion: opts.apiVersion ?? 'v1beta' },
  });
  // The SDK keeps its WebSocket private; capture it to be able to abort a connect() that never settles.
  let conn: { close(): void } | undefined;
  patchLiveSocketFactory(ai, (create) => (...a) => (conn = create(...a)));

  const probe = new LiveProbe();
  const connecting = ai.live.connect({
    model: opts.model ?? TEST_MODEL,
    config: opts.config ?? { responseModalities: [Modality.AUDIO], inputAudioTranscription: {}, outputAudioTranscription: {} },
    callbacks: {
      onmessage: (msg) => {
        probe.messages.push(msg);
        opts.onMessage?.(msg, probe);
      },
      onerror: (e) => probe.errors.push(String((e as { message?: unknown }).message ?? e)),
      onclose: (e) => probe.onClose({ code: e.code, reason: e.reason, wasClean: e.wasClean }),
    },
  });
  const timeoutMs = opts.timeoutMs ?? 3000;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
  try {
    const outcome = await Promise.race([connecting, probe.closed.then(() => 'closed' as const), timeout]);
    if (outcome === 'timeout') {
      conn?.close();
      throw new Error(`no setupComplete within ${timeoutMs} ms`);
    }
    if (outcome !== 'closed') probe.session = outcome;
    return probe;
  } finally {
    clearTimeout(timer);
  }
}

/** `toneMs` of a 440 Hz tone (amplitude 8000) followed by `silenceMs` of silence: one emulated utterance. */
export function utterancePcm(toneMs: number, silenceMs: number, sampleRate: number = INPUT_SAMPLE_RATE): Buffer {
  return Buffer.concat([tonePcm(toneMs, { sampleRate }), silencePcm(silenceMs, sampleRate)]);
}

import { stripDataUrl } from './audio-bytes';

/**
 * Microphone capture, two ways:
 * - `WebmChunkRecorder`: exactly what the Sculptor frontend does (README "Audio path"): MediaRecorder `audio/webm`
 *   with a 1 s timeslice, each blob read with FileReader.readAsDataURL and handed on as base64 without the
 *   `data:` prefix. Chunks after the first are continuation bytes of one WebM stream.
 * - `PcmCapture`: 16 kHz mono s16 PCM from an AudioWorklet, in short chunks (WebSocket streaming).
 */

export const REST_TIMESLICE_MS = 1000;

export class WebmChunkRecorder {
  private recorder: MediaRecorder | null = null;
  /** Blob reads run one after the other so chunks are handed on in recording order. */
  private reads: Promise<void> = Promise.resolve();
  private stopped: Promise<void> | null = null;

  constructor(
    private readonly stream: MediaStream,
    private readonly onChunk: (base64: string, bytes: number) => void,
    private readonly timesliceMs = REST_TIMESLICE_MS,
  ) {}

  static supported(): boolean {
    return typeof MediaRecorder !== 'undefined' && MediaRecorder.isTypeSupported('audio/webm');
  }

  /** Throws NotSupportedError (a DOMException) when the browser cannot record WebM. */
  start(): void {
    const rec = new MediaRecorder(this.stream, { mimeType: 'audio/webm' });
    rec.ondataavailable = (ev: BlobEvent) => {
      if (ev.data.size > 0) this.enqueue(ev.data);
    };
    rec.start(this.timesliceMs);
    this.recorder = rec;
  }

  private enqueue(blob: Blob): void {
    this.reads = this.reads.then(
      () =>
        new Promise<void>((resolve) => {
          const reader = new FileReader();
          reader.onloadend = () => {
            if (typeof reader.result === 'string') this.onChunk(stripDataUrl(reader.result), blob.size);
            resolve();
          };
          reader.readAsDataURL(blob);
        }),
    );
  }

  /** Stops recording; resolves after the final (partial) chunk has been handed on. */
  stop(): Promise<void> {
    if (this.stopped) return this.stopped;
    const rec = this.recorder;
    if (!rec || rec.state === 'inactive') return (this.stopped = this.reads);
    this.stopped = new Promise<void>((resolve) => {
      rec.addEventListener('stop', () => resolve(this.reads), { once: true });
      rec.stop();
    });
    return this.stopped;
  }
}

export const PCM_RATE = 16000;

export interface PcmCaptureOptions {
  /** URL of the bundled `pcm-capture` worklet module (same origin: CSP script-src 'self'). */
  workletUrl: string;
  /** Chunk length handed to `onChunk`. */
  chunkMs: number;
  onChunk: (pcm: Int16Array, sampleRate: number) => void;
}

/** Captures the stream as mono s16 PCM, at 16 kHz where the browser can resample (else the context rate). */
export class PcmCapture {
  private ctx: AudioContext | null = null;
  private node: AudioWorkletNode | null = null;
  private source: MediaStreamAudioSourceNode | null = null;
  private flushWaiter: (() => void) | null = null;

  constructor(
    private readonly stream: MediaStream,
    private readonly o: PcmCaptureOptions,
  ) {}

  get sampleRate(): number {
    return this.ctx?.sampleRate ?? PCM_RATE;
  }

  async start(): Promise<void> {
    let ctx: AudioContext;
    let source: MediaStreamAudioSourceNode;
    try {
      ctx = new AudioContext({ sampleRate: PCM_RATE });
      source = ctx.createMediaStreamSource(this.stream);
    } catch {
      // Some browsers refuse a stream source in a context whose rate differs from the device's.
      ctx = new AudioContext();
      source = ctx.createMediaStreamSource(this.stream);
    }
    this.ctx = ctx;
    this.source = source;
    await ctx.audioWorklet.addModule(this.o.workletUrl);
    const chunkSamples = Math.max(128, Math.round((ctx.sampleRate * this.o.chunkMs) / 1000));
    const node = new AudioWorkletNode(ctx, 'pcm-capture', {
      numberOfInputs: 1,
      numberOfOutputs: 1,
      outputChannelCount: [1],
      processorOptions: { chunkSamples },
    });
    node.port.onmessage = (ev: MessageEvent) => {
      const msg = ev.data as { pcm?: Int16Array; flushed?: boolean };
      if (msg.pcm && msg.pcm.length > 0) this.o.onChunk(msg.pcm, ctx.sampleRate);
      if (msg.flushed) this.flushWaiter?.();
    };
    // The worklet writes silence; routing it through a muted gain keeps it in the rendered graph everywhere.
    const mute = ctx.createGain();
    mute.gain.value = 0;
    source.connect(node);
    node.connect(mute);
    mute.connect(ctx.destination);
    this.node = node;
    if (ctx.state === 'suspended') await ctx.resume();
  }

  /** Hands on the samples captured so far, then releases the audio graph. */
  async stop(): Promise<void> {
    const node = this.node;
    const ctx = this.ctx;
    this.node = null;
    this.ctx = null;
    if (node) {
      await new Promise<void>((resolve) => {
        const timer = window.setTimeout(resolve, 300);
        this.flushWaiter = () => {
          window.clearTimeout(timer);
          resolve();
        };
        node.port.postMessage('flush');
      });
      this.flushWaiter = null;
      node.port.onmessage = null;
      node.disconnect();
    }
    this.source?.disconnect();
    this.source = null;
    if (ctx && ctx.state !== 'closed') await ctx.close().catch(() => undefined);
  }
}

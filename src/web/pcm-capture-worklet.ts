/**
 * AudioWorklet processor `pcm-capture`: mixes its input to mono, converts to signed 16-bit and posts chunks of
 * `processorOptions.chunkSamples` samples to the page (buffers transferred). `'flush'` posts what is pending.
 * Bundled on its own (it runs in the AudioWorkletGlobalScope, not the page).
 */

declare class AudioWorkletProcessor {
  readonly port: MessagePort;
  constructor();
}
declare function registerProcessor(name: string, ctor: new (options: { processorOptions?: { chunkSamples?: number } }) => AudioWorkletProcessor): void;

class PcmCaptureProcessor extends AudioWorkletProcessor {
  private buf: Int16Array;
  private n = 0;

  constructor(options: { processorOptions?: { chunkSamples?: number } }) {
    super();
    const size = Math.max(128, Math.floor(options.processorOptions?.chunkSamples ?? 1600));
    this.buf = new Int16Array(size);
    this.port.onmessage = (ev: MessageEvent) => {
      if (ev.data === 'flush') {
        this.post();
        this.port.postMessage({ flushed: true });
      }
    };
  }

  private post(): void {
    if (this.n === 0) return;
    const out = this.buf.slice(0, this.n);
    this.n = 0;
    this.port.postMessage({ pcm: out }, [out.buffer]);
  }

  process(inputs: Float32Array[][]): boolean {
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true;
    const frames = channels[0].length;
    const k = channels.length;
    for (let i = 0; i < frames; i++) {
      let v = 0;
      for (let c = 0; c < k; c++) v += channels[c][i];
      v /= k;
      const s = v < -1 ? -1 : v > 1 ? 1 : v;
      this.buf[this.n++] = s < 0 ? Math.round(s * 0x8000) : Math.round(s * 0x7fff);
      if (this.n === this.buf.length) this.post();
    }
    return true;
  }
}

registerProcessor('pcm-capture', PcmCaptureProcessor);

export {};

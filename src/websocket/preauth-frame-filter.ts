import type { Duplex } from 'node:stream';
import type { PreAuthRefusal } from './preauth-gate';

/** What the filter asks about each frame it sees the header of (`payloadBytes`: the frame's data length). */
export type FrameAdmission = (payloadBytes: number) => PreAuthRefusal | undefined;

type DataListener = (chunk: Buffer) => void;

const OPCODE_CLOSE = 0x8;
/** Longest frame header: 2 bytes, a 64-bit length, a 4-byte mask. */
const MAX_HEADER = 14;

/**
 * Stands between an unauthenticated connection's TCP socket and `ws`: it reads every frame header as the bytes
 * arrive — before `ws` buffers, unmasks, validates or emits the frame — and asks `admit` about each frame (the
 * close frame excepted, so a client can still say goodbye). Bytes of admitted frames are handed to `ws` at once;
 * from the first refused header on, nothing more reaches `ws` and `onRefused` is called (once). So a stranger's
 * 2 MiB frame costs one TCP read, not 2 MiB of buffering, and a flood of tiny frames is cut at the refused one,
 * not at the end of the read.
 *
 * It works at the level every `ws` version reads at: the socket's `data` listeners (taken over at `attach`,
 * given back at `release`, once the connection is authenticated).
 */
export class PreAuthFrameFilter {
  private downstream: DataListener[] = [];
  private readonly onData = (chunk: Buffer) => this.filter(chunk);
  private attached = false;
  private refused = false;
  /** Bytes of the current frame header seen so far (a header can be split across reads). */
  private header = Buffer.alloc(MAX_HEADER);
  private headerBytes = 0;
  /** Payload bytes of the current frame still to come. */
  private payloadLeft = 0;

  constructor(
    private readonly socket: Duplex,
    private readonly admit: FrameAdmission,
    private readonly onRefused: (reason: PreAuthRefusal) => void,
  ) {}

  /** Takes over the socket's `data` listeners (call right after `ws` attached its own). */
  attach(): void {
    if (this.attached) return;
    this.attached = true;
    this.downstream = this.socket.listeners('data') as DataListener[];
    for (const l of this.downstream) this.socket.removeListener('data', l);
    this.socket.on('data', this.onData);
  }

  /**
   * The connection is being closed before authentication (refused, auth failed, timed out): nothing more reaches
   * `ws`, and what the paused socket still buffers is dropped before `ws`'s close handler would parse it.
   */
  block(): void {
    if (!this.attached || this.refused) return;
    this.refused = true;
    this.socket.prependOnceListener('close', () => this.discardBuffered());
  }

  /** Authenticated: `ws` reads the socket directly again. Idempotent; nothing is held back. */
  release(): void {
    if (!this.attached) return;
    this.attached = false;
    this.socket.removeListener('data', this.onData);
    if (this.refused) return;
    for (const l of this.downstream) this.socket.on('data', l);
  }

  private filter(chunk: Buffer): void {
    if (this.refused) return;
    let pos = 0;
    let refusal: PreAuthRefusal | undefined;
    while (pos < chunk.length) {
      if (this.payloadLeft > 0) {
        const take = Math.min(this.payloadLeft, chunk.length - pos);
        this.payloadLeft -= take;
        pos += take;
        continue;
      }
      // Collect the header byte by byte until its length is known and complete.
      const before = pos;
      while (pos < chunk.length && this.headerBytes < this.headerLength()) this.header[this.headerBytes++] = chunk[pos++];
      if (this.headerBytes < this.headerLength()) break;
      const { payload, opcode } = this.parseHeader();
      this.headerBytes = 0;
      this.payloadLeft = payload;
      if (opcode !== OPCODE_CLOSE) refusal = this.admit(payload);
      if (refusal) {
        // Hand over only what came before this frame's header.
        pos = before;
        break;
      }
    }
    const pass = refusal ? chunk.subarray(0, pos) : chunk;
    if (pass.length > 0) for (const l of this.downstream) l.call(this.socket, pass);
    if (refusal) {
      this.block();
      this.onRefused(refusal);
    }
  }

  /** `ws` hands what is still buffered in a paused socket to its parser when the socket closes: drop it first. */
  private discardBuffered(): void {
    const n = this.socket.readableLength;
    if (n > 0) this.socket.read(n);
  }

  /** Length of the current header as far as its bytes so far tell (2 until the second byte is in). */
  private headerLength(): number {
    if (this.headerBytes < 2) return 2;
    const b1 = this.header[1];
    const len7 = b1 & 0x7f;
    return 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (b1 & 0x80 ? 4 : 0);
  }

  private parseHeader(): { payload: number; opcode: number } {
    const opcode = this.header[0] & 0x0f;
    const len7 = this.header[1] & 0x7f;
    let payload = len7;
    if (len7 === 126) payload = this.header.readUInt16BE(2);
    else if (len7 === 127) payload = Number(this.header.readBigUInt64BE(2));
    return { payload, opcode };
  }
}

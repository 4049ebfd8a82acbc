/**
 * A WebSocket client at the TCP level, for attacks and exact-timing tests: it writes client frames (masked, as
 * RFC 6455 requires) in whatever batches the test wants (many frames in one TCP write, or a flood), can stop
 * reading (`pause()`) to leave the server's replies unread, and decodes what the server sent when asked.
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';

export const OPCODE_TEXT = 0x1;
export const OPCODE_CLOSE = 0x8;

/** One masked client frame (FIN set). */
export function clientFrame(payload: Buffer | string, opcode = OPCODE_TEXT): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  const len = data.length;
  const headerLen = len < 126 ? 2 : len < 65536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(headerLen + 4 + len);
  frame[0] = 0x80 | opcode;
  if (len < 126) {
    frame[1] = 0x80 | len;
  } else if (len < 65536) {
    frame[1] = 0x80 | 126;
    frame.writeUInt16BE(len, 2);
  } else {
    frame[1] = 0x80 | 127;
    frame.writeBigUInt64BE(BigInt(len), 2);
  }
  const mask = randomBytes(4);
  mask.copy(frame, headerLen);
  const off = headerLen + 4;
  for (let i = 0; i < len; i++) frame[off + i] = data[i] ^ mask[i & 3];
  return frame;
}

export interface ServerFrame {
  opcode: number;
  payload: Buffer;
}

/** Decodes the (unmasked) server frames in `buf`; a trailing partial frame is ignored. */
export function decodeServerFrames(buf: Buffer): ServerFrame[] {
  const out: ServerFrame[] = [];
  let off = 0;
  while (off + 2 <= buf.length) {
    const opcode = buf[off] & 0x0f;
    let len = buf[off + 1] & 0x7f;
    let p = off + 2;
    if (len === 126) {
      if (p + 2 > buf.length) break;
      len = buf.readUInt16BE(p);
      p += 2;
    } else if (len === 127) {
      if (p + 8 > buf.length) break;
      len = Number(buf.readBigUInt64BE(p));
      p += 8;
    }
    if (p + len > buf.length) break;
    out.push({ opcode, payload: buf.subarray(p, p + len) });
    off = p + len;
  }
  return out;
}

export interface RawWs {
  readonly socket: net.Socket;
  /** Everything the server sent after the upgrade response (while reading). */
  received(): Buffer;
  /** The server's text messages, parsed. */
  messages(): Array<Record<string, unknown>>;
  /** The server's close frame (code, reason), if it arrived. */
  closeFrame(): { code: number; reason: string } | undefined;
  /** Resolves when the TCP connection has ended (either side). */
  readonly ended: Promise<void>;
  /** Writes frames in one TCP write; resolves when the kernel took them (false if the socket is gone). */
  write(frames: Buffer | Buffer[]): Promise<boolean>;
  destroy(): void;
}

/**
 * Opens a TCP connection to `http://host:port`, performs the WebSocket upgrade for `path`, and resolves once the
 * server answered 101 (rejects with the status line otherwise).
 */
export function rawWsConnect(httpUrl: string, path: string, headers: Record<string, string> = {}, timeoutMs = 5000): Promise<RawWs> {
  const url = new URL(httpUrl);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(url.port), url.hostname);
    let header = Buffer.alloc(0);
    const body: Buffer[] = [];
    let upgraded = false;
    const ended = new Promise<void>((r) => socket.once('close', () => r()));
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('upgrade timed out'));
    }, timeoutMs);
    socket.on('error', (err) => {
      if (!upgraded) {
        clearTimeout(timer);
        reject(err);
      }
    });
    socket.on('data', (d: Buffer) => {
      if (upgraded) {
        body.push(d);
        return;
      }
      header = Buffer.concat([header, d]);
      const end = header.indexOf('\r\n\r\n');
      if (end < 0) return;
      clearTimeout(timer);
      const head = header.subarray(0, end).toString('latin1');
      if (!/^HTTP\/1\.1 101 /.test(head)) {
        socket.destroy();
        reject(new Error(`upgrade refused: ${head.split('\r\n')[0]}`));
        return;
      }
      upgraded = true;
      if (header.length > end + 4) body.push(header.subarray(end + 4));
      const received = () => Buffer.concat(body);
      resolve({
        socket,
        received,
        messages: () =>
          decodeServerFrames(received())
            .filter((f) => f.opcode === OPCODE_TEXT)
            .map((f) => JSON.parse(f.payload.toString('utf8')) as Record<string, unknown>),
        closeFrame: () => {
          const f = decodeServerFrames(received()).find((x) => x.opcode === OPCODE_CLOSE);
          return f && f.payload.length >= 2 ? { code: f.payload.readUInt16BE(0), reason: f.payload.subarray(2).toString('utf8') } : undefined;
        },
        ended,
        write: (frames) =>
          new Promise<boolean>((res) => {
            if (socket.destroyed || !socket.writable) return res(false);
            const data = Array.isArray(frames) ? Buffer.concat(frames) : frames;
            socket.write(data, (err) => res(!err));
          }),
        destroy: () => socket.destroy(),
      });
    });
    const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
    socket.write(
      `GET ${path} HTTP/1.1\r\nHost: ${url.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`,
    );
  });
}

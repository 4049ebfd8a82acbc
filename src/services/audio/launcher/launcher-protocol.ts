/**
 * What the server and its ffmpeg launcher (a small Node child, see `ffmpeg-launcher.ts`) tell each other over the
 * IPC channel, and the header the launcher sends first on each decoder's socket.
 */

/** Server → launcher. */
export type ToLauncher =
  /** First message: where the server listens and the token that proves a connection comes from this launcher. */
  | { t: 'init'; socketPath: string; token: string }
  /** Start decoder `id`: connect to the socket, send the header, spawn ffmpeg with the socket as stdin and stdout. */
  | { t: 'start'; id: number; ffmpegPath: string; args: string[] }
  /** SIGKILL decoder `id` (now, or as soon as it is spawned). */
  | { t: 'kill'; id: number };

/** Launcher → server. */
export type FromLauncher =
  /** The launcher read `init` and takes starts. */
  | { t: 'ready' }
  /** ffmpeg of decoder `id` runs. */
  | { t: 'spawned'; id: number; pid: number }
  /** One line of its stderr (at most `MAX_STDERR_LINES` per process are sent). */
  | { t: 'stderr'; id: number; line: string }
  /** It exited (after its stderr was read to the end). */
  | { t: 'exit'; id: number; code: number | null; signal: string | null }
  /** It could not be started (connect or spawn failed). */
  | { t: 'failed'; id: number; message: string };

/** Random bytes of the token; the header is the token followed by the decoder id (uint32 BE). */
export const TOKEN_BYTES = 32;
export const HEADER_BYTES = TOKEN_BYTES + 4;
/** stderr lines per process relayed to the server (ffmpeg runs with `-loglevel error`: a few at most). */
export const MAX_STDERR_LINES = 40;
/** Longest stderr line relayed (characters). */
export const MAX_STDERR_LINE = 1000;

export function encodeHeader(token: Buffer, id: number): Buffer {
  const header = Buffer.alloc(HEADER_BYTES);
  token.copy(header, 0, 0, TOKEN_BYTES);
  header.writeUInt32BE(id >>> 0, TOKEN_BYTES);
  return header;
}

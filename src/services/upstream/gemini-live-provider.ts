import { randomUUID } from 'node:crypto';
import { GoogleGenAI, Modality, type LiveConnectConfig, type Session } from '@google/genai';
import type { Logger } from '../../util/logger';
import { redactText, silentLogger } from '../../util/logger';
import { describeClose, describeTransportError } from './close-codes';
import { patchLiveSocketFactory, type SdkLiveSocket, type SdkSocketCallbacks } from './sdk-patches/live-socket-factory';
import { GeminiLiveConnection, type RawSocket } from './gemini-live-connection';
import {
  UpstreamConnectError,
  type UpstreamConnectOptions,
  type UpstreamConnection,
  type UpstreamProvider,
  type UpstreamSessionConfig,
} from './upstream-types';

export interface GeminiLiveProviderOptions {
  apiKey: string;
  /** `http://host:port` replacing Google's endpoint (the emulator in tests and demo mode). */
  baseUrl?: string;
  apiVersion?: string;
  /** `connect()` of SDK 2.32.0 can hang forever; this bounds it. */
  setupTimeoutMs: number;
  emulated?: boolean;
  logger?: Logger;
}

type SdkSocket = SdkLiveSocket<RawSocket>;

/** True when a server frame is JSON; the SDK turns a non-JSON frame into an unhandled rejection. */
function isJsonFrame(data: unknown): boolean {
  try {
    const text = Buffer.isBuffer(data)
      ? data.toString('utf8')
      : data instanceof ArrayBuffer
        ? Buffer.from(data).toString('utf8')
        : typeof data === 'string'
          ? data
          : undefined;
    if (text === undefined) return true; // Blob etc.: let the SDK handle it
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/**
 * The upstream provider for Gemini Live through the official SDK. One `GoogleGenAI` client for the process;
 * one `GeminiLiveConnection` per `connect()`.
 */
export class GeminiLiveProvider implements UpstreamProvider {
  readonly emulated: boolean;
  private readonly ai: GoogleGenAI;
  private readonly log: Logger;
  /** Sockets created by the SDK, captured so a hung handshake can be aborted. */
  private pendingSocket: SdkSocket | undefined;

  constructor(private readonly opts: GeminiLiveProviderOptions) {
    this.emulated = !!opts.emulated;
    this.log = opts.logger ?? silentLogger;
    this.ai = new GoogleGenAI({
      apiKey: opts.apiKey || 'missing-key',
      httpOptions: { apiVersion: opts.apiVersion ?? 'v1beta', ...(opts.baseUrl ? { baseUrl: opts.baseUrl } : {}) },
    });
    this.installSocketGuard();
  }

  /**
   * Wraps the SDK's (TS-private) WebSocket factory: captures each raw socket (to abort hung handshakes and read
   * `bufferedAmount`) and drops non-JSON frames before the SDK's parser turns them into a process crash.
   */
  private installSocketGuard(): void {
    patchLiveSocketFactory<RawSocket>(this.ai, (create) => (url, headers, callbacks) => {
      const guarded: SdkSocketCallbacks = {
        ...callbacks,
        onmessage: (e) => {
          if (isJsonFrame(e.data)) callbacks.onmessage(e);
          else this.log.warn('dropped a non-JSON frame from Gemini');
        },
      };
      const sock = create(url, headers, guarded);
      this.pendingSocket = sock;
      return sock;
    });
  }

  async connect(cfg: UpstreamSessionConfig, opts: UpstreamConnectOptions = {}): Promise<UpstreamConnection> {
    if (opts.signal?.aborted) throw abortError(opts.signal);
    const id = randomUUID();
    // eslint-disable-next-line prefer-const -- assigned once the SDK created the socket; the connection reads it lazily
    let sock: SdkSocket | undefined;
    const conn = new GeminiLiveConnection(id, this.log, () => sock?.ws);
    let settled = false;
    let fail!: (e: UpstreamConnectError) => void;
    const failed = new Promise<never>((_, rej) => (fail = rej));
    failed.catch(() => undefined);

    const connectPromise = this.ai.live.connect({
      model: cfg.model,
      config: buildLiveConfig(cfg),
      callbacks: {
        onopen: () => undefined,
        onmessage: (m) => conn.handleMessage(m),
        onerror: (e: { message?: string }) => {
          const msg = redactText(String(e?.message ?? 'connection error'));
          if (!settled) {
            const d = describeTransportError(msg);
            fail(new UpstreamConnectError(d.description, d.fatal));
          } else {
            this.log.warn({ upstreamId: id, err: msg }, 'Gemini socket error');
          }
        },
        onclose: (e: { code: number; reason: string }) => {
          const reason = redactText(String(e?.reason ?? ''));
          if (!settled) {
            const info = describeClose(e.code, reason, false);
            fail(new UpstreamConnectError(info.description, info.fatal, e.code, reason));
          }
          conn.handleClose(e.code, reason);
        },
      },
    });
    // The factory ran synchronously inside connect(): take the socket it created.
    sock = this.pendingSocket;
    this.pendingSocket = undefined;
    connectPromise.catch(() => undefined);

    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, rej) => {
      timer = setTimeout(
        () => rej(new UpstreamConnectError(`Gemini did not complete the setup within ${this.opts.setupTimeoutMs} ms`, false)),
        this.opts.setupTimeoutMs,
      );
    });
    const signal = opts.signal;
    const onAbort = () => fail(abortError(signal!));
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const session: Session = await Promise.race([connectPromise, failed, timeout]);
      settled = true;
      conn.attach(session);
      return conn;
    } catch (err) {
      settled = true;
      try {
        sock?.ws?.terminate();
      } catch {
        /* ignore */
      }
      connectPromise.then((s) => s.close(), () => undefined);
      throw err instanceof UpstreamConnectError ? err : new UpstreamConnectError(redactText(String(err)), false);
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    }
  }
}

function abortError(signal: AbortSignal): UpstreamConnectError {
  const r: unknown = signal.reason;
  if (r instanceof UpstreamConnectError) return r;
  return new UpstreamConnectError('connection attempt aborted', false);
}

/** Maps our session config onto the SDK's LiveConnectConfig. */
export function buildLiveConfig(cfg: UpstreamSessionConfig): LiveConnectConfig {
  const config: LiveConnectConfig = {
    // Native-audio Live models answer only in AUDIO; text replies come from the output transcription.
    responseModalities: [Modality.AUDIO],
  };
  if (cfg.systemInstruction) config.systemInstruction = cfg.systemInstruction;
  if (cfg.inputTranscription) config.inputAudioTranscription = {};
  if (cfg.outputTranscription || cfg.responseModality === 'text') config.outputAudioTranscription = {};
  if (cfg.voiceName) config.speechConfig = { voiceConfig: { prebuiltVoiceConfig: { voiceName: cfg.voiceName } } };
  if (cfg.sessionResumption !== false) {
    config.sessionResumption = cfg.resumptionHandle ? { handle: cfg.resumptionHandle } : {};
  }
  if (cfg.contextWindowCompression !== null && cfg.contextWindowCompression !== undefined) {
    const c = cfg.contextWindowCompression;
    config.contextWindowCompression = {
      ...(c.triggerTokens ? { triggerTokens: String(c.triggerTokens) } : {}),
      slidingWindow: c.targetTokens ? { targetTokens: String(c.targetTokens) } : {},
    };
  }
  return config;
}

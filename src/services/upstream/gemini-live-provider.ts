import { randomUUID } from 'node:crypto';
import { GoogleGenAI, LiveServerMessage, Modality, type LiveConnectConfig, type Session } from '@google/genai';
import type { Logger } from '../../util/logger';
import { redactText, silentLogger } from '../../util/logger';
import { buildLiveConnectConfig, type ModelSessionConfig } from '../session-setup/build-live-connect-config';
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

/** A server frame's text (decoded from UTF-8 once), `undefined` for a frame that is not text or bytes (a Blob etc.). */
function frameText(data: unknown): string | undefined {
  return Buffer.isBuffer(data)
    ? data.toString('utf8')
    : data instanceof ArrayBuffer
      ? Buffer.from(data).toString('utf8')
      : typeof data === 'string'
        ? data
        : undefined;
}

/**
 * Where one socket's frames go once its session is set up: straight to its connection, parsed once. Until then
 * (`deliver` unset) they go through the SDK, which needs the setup's answer.
 */
interface FrameRoute {
  deliver?: (message: LiveServerMessage) => void;
}

/**
 * The upstream provider for Gemini Live through the official SDK. One `GoogleGenAI` client for the process;
 * one `GeminiLiveConnection` per `connect()`.
 */
export class GeminiLiveProvider implements UpstreamProvider {
  readonly emulated: boolean;
  /** One SDK client per Live API version a setup needs (the server's, and `v1alpha` for some 2.5 options). */
  private readonly clients = new Map<string, GoogleGenAI>();
  private readonly log: Logger;
  /** Sockets created by the SDK, captured so a hung handshake can be aborted. */
  private pendingSocket: SdkSocket | undefined;
  private pendingRoute: FrameRoute | undefined;

  constructor(private readonly opts: GeminiLiveProviderOptions) {
    this.emulated = !!opts.emulated;
    this.log = opts.logger ?? silentLogger;
    this.client(opts.apiVersion ?? 'v1beta');
  }

  /** The SDK client for `apiVersion` (created once, with the socket guard installed). */
  private client(apiVersion: string): GoogleGenAI {
    let ai = this.clients.get(apiVersion);
    if (!ai) {
      ai = new GoogleGenAI({
        apiKey: this.opts.apiKey || 'missing-key',
        httpOptions: { apiVersion, ...(this.opts.baseUrl ? { baseUrl: this.opts.baseUrl } : {}) },
      });
      this.installSocketGuard(ai);
      this.clients.set(apiVersion, ai);
    }
    return ai;
  }

  /**
   * Wraps the SDK's (TS-private) WebSocket factory: captures each raw socket (to abort hung handshakes and read
   * `bufferedAmount`) and drops non-JSON frames before the SDK's parser turns them into a process crash.
   *
   * Every frame is decoded and parsed once. Until the session is set up, the SDK gets the decoded text (it parses a
   * string as it is, and must see the setup's answer). After that the SDK does nothing with a message but wrap it
   * (`Object.assign(new LiveServerMessage(), json)`, Gemini Developer API; 2.32.0) and hand it to our callback,
   * synchronously: the parsed message goes to the connection directly, in the same order, without a second parse
   * (a profile at 100 sessions had the check's parse alone at ~3 % of the main thread, the SDK's as much again).
   */
  private installSocketGuard(ai: GoogleGenAI): void {
    patchLiveSocketFactory<RawSocket>(ai, (create) => (url, headers, callbacks) => {
      const route: FrameRoute = {};
      const guarded: SdkSocketCallbacks = {
        ...callbacks,
        onmessage: (e) => {
          const text = frameText(e.data);
          if (text === undefined) return callbacks.onmessage(e);
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            this.log.warn('dropped a non-JSON frame from Gemini');
            return;
          }
          if (route.deliver) route.deliver(Object.assign(new LiveServerMessage(), json));
          else callbacks.onmessage({ data: text });
        },
      };
      const sock = create(url, headers, guarded);
      this.pendingSocket = sock;
      this.pendingRoute = route;
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

    const setup = (cfg as Partial<ModelSessionConfig>).setup;
    const ai = this.client(setup?.apiVersion ?? this.opts.apiVersion ?? 'v1beta');
    const connectPromise = ai.live.connect({
      model: cfg.model,
      // A session's effective setup (built per model: a field the model lacks is never sent); else the old mapping.
      config: setup ? buildLiveConnectConfig(setup, cfg) : buildLiveConfig(cfg),
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
    const route = this.pendingRoute;
    this.pendingSocket = undefined;
    this.pendingRoute = undefined;
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
      // The SDK has handed on everything it queued during the setup (before resolving): from here on, each parsed
      // frame goes straight to the connection (Vertex AI's messages would need the SDK's conversion: not used here).
      if (route && !ai.vertexai) route.deliver = (m) => conn.handleMessage(m);
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

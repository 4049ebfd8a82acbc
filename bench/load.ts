/**
 * The load generator: N concurrent sessions, each streaming the recording at real time (one MediaRecorder chunk per
 * timeslice, looped as a new recording), through REST (the frontend: one un-awaited POST /transcribe per chunk) or
 * the WebSocket endpoint. It records what a client can see: when each chunk was sent versus its schedule, each
 * /transcribe's latency, errors, and when the user's words of each utterance arrived.
 */
import { ChunkPlan } from './fixture';
import { API, RestClient, WsSessionClient, type WsMsg } from './client';

export type Transport = 'rest' | 'ws';

export interface LoadTarget {
  baseUrl: string;
  wsUrl: string;
  apiKey: string;
}

export interface LoadOptions {
  sessions: number;
  transport: Transport;
  plan: ChunkPlan;
  /** Session starts are spread over this window (each at a random moment in its slot). */
  startWindowMs: number;
  idPrefix?: string;
}

/** How long after the words' chunk was sent an utterance's words took to reach the client. */
export interface WordsTiming {
  /** From sending the chunk that contains the end of speech (the figure reported as `words_after_speech`). */
  fromSpeechEndChunkMs: number;
  /** From sending the chunk in which the emulator's VAD can end the turn (end of speech + 500 ms of silence). */
  fromTurnEndChunkMs: number;
  /** From the real-time instant the speaker stopped (that chunk's send time minus the audio after the end of speech). */
  fromSpokenEndMs: number;
}

export interface SessionReport {
  id: string;
  ok: boolean;
  startMs: number;
  chunksSent: number;
  /** Send time minus schedule, per chunk. */
  sendLagsMs: number[];
  /** REST only. */
  transcribeMs: number[];
  errors: string[];
  words: WordsTiming[];
  /** Utterances whose words never arrived (counting only those whose turn could end before the load stopped). */
  missedTurns: number;
}

interface WordsArrival {
  at: number;
  turnId: number;
}

const now = () => performance.now();

abstract class SessionDriver {
  startMs = NaN;
  ok = false;
  t0 = 0;
  next = 0;
  sentAt: number[] = [];
  sendLags: number[] = [];
  errors: string[] = [];
  arrivals: WordsArrival[] = [];
  private seenTurns = new Set<number>();
  private timer: NodeJS.Timeout | undefined;
  stopped = false;

  constructor(
    readonly id: string,
    readonly plan: ChunkPlan,
  ) {}

  abstract open(): Promise<void>;
  abstract sendChunk(n: number, body: string): void;
  abstract close(): Promise<void>;

  /** Called with every transcription view the server returns (REST response `data`, WS `transcription_result`). */
  protected sawView(data: { turnId?: number; transcript?: string } | undefined, at: number): void {
    if (!data || typeof data.turnId !== 'number' || !data.transcript) return;
    if (this.seenTurns.has(data.turnId)) return;
    this.seenTurns.add(data.turnId);
    this.arrivals.push({ at, turnId: data.turnId });
  }

  protected error(what: string): void {
    if (this.errors.length < 20) this.errors.push(what);
  }

  async start(): Promise<void> {
    const t = now();
    try {
      await this.open();
      this.ok = true;
    } catch (err) {
      this.error(`start: ${(err as Error).message}`);
      return;
    } finally {
      this.startMs = now() - t;
    }
    this.t0 = now();
    this.tick();
  }

  private tick(): void {
    if (this.stopped) return;
    const n = this.next++;
    const scheduled = this.t0 + n * this.plan.rec.timesliceMs;
    const lag = now() - scheduled;
    this.sentAt[n] = now();
    this.sendLags.push(lag);
    this.sendChunk(n, this.plan.base64(n));
    const due = this.t0 + (n + 1) * this.plan.rec.timesliceMs;
    this.timer = setTimeout(() => this.tick(), Math.max(0, due - now()));
  }

  stopSending(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  report(transcribeMs: number[]): SessionReport {
    return {
      id: this.id,
      ok: this.ok && this.errors.length === 0,
      startMs: this.startMs,
      chunksSent: this.sentAt.length,
      sendLagsMs: this.sendLags,
      transcribeMs,
      errors: this.errors,
      ...this.matchWords(),
    };
  }

  /** Pairs each first arrival of a new turn's words with the latest utterance whose turn could end before it. */
  private matchWords(): { words: WordsTiming[]; missedTurns: number } {
    const last = this.sentAt.length - 1;
    if (last < 0) return { words: [], missedTurns: 0 };
    const utts = this.plan.utterances(last);
    const matched = new Set<number>();
    const words: WordsTiming[] = [];
    for (const a of [...this.arrivals].sort((x, y) => x.at - y.at)) {
      let pick = -1;
      for (let i = utts.length - 1; i >= 0; i--) {
        if (this.sentAt[utts[i].turnEndChunk] <= a.at) {
          pick = i;
          break;
        }
      }
      if (pick < 0 || matched.has(pick)) continue;
      matched.add(pick);
      const u = utts[pick];
      const speechChunkSent = this.sentAt[u.speechEndChunk];
      words.push({
        fromSpeechEndChunkMs: a.at - speechChunkSent,
        fromTurnEndChunkMs: a.at - this.sentAt[u.turnEndChunk],
        fromSpokenEndMs: a.at - (speechChunkSent - (this.plan.cumEndMs(u.speechEndChunk) - u.speechEndMs)),
      });
    }
    return { words, missedTurns: utts.length - matched.size };
  }
}

class RestDriver extends SessionDriver {
  readonly transcribeMs: number[] = [];
  private readonly inflight = new Set<Promise<unknown>>();
  /** One browser per user: its own connection pool. */
  private readonly rest: RestClient;

  constructor(id: string, plan: ChunkPlan, target: LoadTarget) {
    super(id, plan);
    this.rest = new RestClient(target.baseUrl, target.apiKey);
  }

  async open(): Promise<void> {
    const r = await this.rest.post(
      `${API}/session/start`,
      JSON.stringify({ session_id: this.id, model: 'gemini-2.5-pro', response_modality: 'text', input_transcription: true, output_transcription: true }),
    );
    if (r.status !== 200) throw new Error(`${r.status} ${r.body?.code ?? r.body?.error ?? ''}`);
  }

  sendChunk(_n: number, b64: string): void {
    const body = `{"session_id":"${this.id}","format":"webm","audio_data":"${b64}"}`;
    const p = this.rest.post(`${API}/transcribe`, body).then((r) => {
      if (r.status !== 200) this.error(`transcribe: ${r.status} ${r.body?.code ?? r.body?.error ?? ''}`);
      else {
        this.transcribeMs.push(r.ms);
        this.sawView(r.body?.data, now());
      }
    });
    this.inflight.add(p);
    void p.finally(() => this.inflight.delete(p));
  }

  async settle(): Promise<void> {
    await Promise.all([...this.inflight]);
  }

  async close(): Promise<void> {
    await this.settle();
    if (!this.ok) return this.rest.close();
    const r = await this.rest.post(`${API}/session/end`, JSON.stringify({ session_id: this.id }));
    if (r.status !== 200) this.error(`end: ${r.status}`);
    this.rest.close();
  }
}

class WsDriver extends SessionDriver {
  private client: WsSessionClient | undefined;

  constructor(
    id: string,
    plan: ChunkPlan,
    private readonly target: LoadTarget,
  ) {
    super(id, plan);
  }

  async open(): Promise<void> {
    const c = new WsSessionClient(this.target.wsUrl, this.target.apiKey);
    this.client = c;
    c.onMessage = (m: WsMsg, at: number) => {
      if (m.type === 'transcription_result' || m.type === 'turn_complete') this.sawView(m.data, at);
      else if (m.type === 'error') this.error(`ws error: ${m.code ?? ''} ${m.error ?? ''}`);
    };
    await c.open(this.id);
  }

  sendChunk(_n: number, b64: string): void {
    this.client?.send(`{"type":"audio_chunk","format":"webm","audio_data":"${b64}"}`);
  }

  async close(): Promise<void> {
    await this.client?.end();
  }
}

/** N sessions against one server; `start()`, let it run, `stop()`, then `reports()`. */
export class LoadGenerator {
  private readonly drivers: SessionDriver[] = [];

  constructor(
    target: LoadTarget,
    private readonly o: LoadOptions,
  ) {
    const prefix = o.idPrefix ?? `bench_${Date.now().toString(36)}`;
    for (let i = 0; i < o.sessions; i++) {
      const id = `${prefix}_${i}`;
      this.drivers.push(o.transport === 'rest' ? new RestDriver(id, o.plan, target) : new WsDriver(id, o.plan, target));
    }
  }

  /** Starts every session (spread over the start window); resolves once all have started or failed. */
  async start(): Promise<void> {
    const slot = this.o.startWindowMs / Math.max(1, this.drivers.length);
    await Promise.all(
      this.drivers.map(
        (d, i) =>
          new Promise<void>((resolve) => {
            setTimeout(() => void d.start().then(resolve), i * slot + Math.random() * slot);
          }),
      ),
    );
  }

  get started(): number {
    return this.drivers.filter((d) => d.ok).length;
  }

  /** Stops sending, waits `drainMs` for late answers (words of the last utterances), then ends every session. */
  async stop(drainMs = 2_000): Promise<void> {
    for (const d of this.drivers) d.stopSending();
    await new Promise((r) => setTimeout(r, drainMs));
    await Promise.all(this.drivers.map((d) => d.close().catch((err: Error) => d.errors.push(`close: ${err.message}`))));
  }

  reports(): SessionReport[] {
    return this.drivers.map((d) => d.report(d instanceof RestDriver ? d.transcribeMs : []));
  }
}

import type { LiveTranscriptBudget } from './live-transcript-budget';
import type { UsageMetadata } from '@google/genai';
import type { GroundingInfo } from '../tools/tool-types';
import type { Principal } from '../auth/principal';
import type { EffectiveSessionSetup, SetupEcho } from '../session-setup/effective-setup';
import type { UsageMeter } from '../usage/usage-meter';
import { fromUsageMetadata, type UsageFigures } from '../usage/usage-figures';
import type { Logger } from '../../util/logger';
import { Transcript } from './transcript';
import type { TranscriptRecord } from './transcript-types';

/** 16 kHz mono s16le: bytes per second of the audio sent upstream. */
const INPUT_BYTES_PER_SECOND = 32_000;

/** The upstream events a conversation listens to (what `ResilientUpstream` emits). */
export interface ConversationSource {
  on(event: 'inputTranscription' | 'outputTranscription' | 'modelText', listener: (text: string) => void): unknown;
  on(event: 'interrupted' | 'turnComplete', listener: () => void): unknown;
  on(event: 'usage', listener: (metadata: UsageMetadata) => void): unknown;
  on(event: 'modelAudio', listener: (pcm: Buffer, sampleRate: number) => void): unknown;
  on(event: 'audioSent', listener: (bytes: number) => void): unknown;
}

/** What a session used so far (status, transcript, webhook). */
export interface ConversationUsage {
  tokens: UsageFigures;
  audioSeconds: { input: number; output: number };
  turns: number;
}

export interface SessionConversationOptions {
  sessionId: string;
  owner: Principal;
  setup: EffectiveSessionSetup;
  echo: SetupEcho;
  /** Per key (the owner's id) and day; budgets are checked at turn boundaries. Optional (tests). */
  meter?: UsageMeter;
  /** Called once when the owner's daily token budget is spent at a turn boundary: the session must end. */
  onBudgetSpent?: (message: string) => void;
  logger: Logger;
  now?: () => number;
  /** The budget the live transcripts of all sessions share (oldest turns dropped first). */
  transcriptBudget?: LiveTranscriptBudget;
  /**
   * A session continued from another instance (cluster takeover or hand-over): its transcript and usage so far.
   * The conversation goes on from them, and the session is not counted again in the key's usage.
   */
  prior?: { transcript?: TranscriptRecord; usage?: ConversationUsage };
}

/**
 * One session's conversation record: its effective setup, its transcript (fed by the upstream link's events,
 * which come only from the current connection, so a reconnect adds no duplicates) and its usage, recorded per
 * key and day as it arrives. At each turn boundary (a `turnComplete` followed by its usage) the owner's daily
 * budget is checked; once spent, `onBudgetSpent` ends the session between turns, never inside a reply.
 */
export class SessionConversation {
  readonly transcript: Transcript;
  readonly setup: EffectiveSessionSetup;
  readonly echo: SetupEcho;
  private audioInBytes = 0;
  private audioOutSeconds = 0;
  /** Audio seconds not yet recorded in the meter (flushed at each turn boundary and at the end). */
  private pendingIn = 0;
  private pendingOut = 0;
  private turns = 0;
  private atBoundary = false;
  private budgetSpent = false;
  /** Meter writes and budget checks in order, one after the other. */
  private chain: Promise<void> = Promise.resolve();
  private readonly log: Logger;

  constructor(private readonly o: SessionConversationOptions) {
    const now = o.now ?? Date.now;
    this.setup = o.setup;
    this.echo = o.echo;
    this.transcript = new Transcript({ sessionId: o.sessionId, owner: o.owner.id, startedAt: now() }, now, {}, o.transcriptBudget);
    this.log = o.logger.child({ sessionId: o.sessionId });
    const prior = o.prior;
    if (prior) {
      if (prior.transcript) this.transcript.restore(prior.transcript);
      if (prior.usage) {
        this.audioInBytes = positive(prior.usage.audioSeconds?.input) * INPUT_BYTES_PER_SECOND;
        this.audioOutSeconds = positive(prior.usage.audioSeconds?.output);
        this.turns = Math.floor(positive(prior.usage.turns));
      }
    } else {
      this.meter({ sessions: 1 });
    }
  }

  /** Listens to the link's events; call before its held events are delivered (`startDelivery`). */
  attach(src: ConversationSource): void {
    const t = this.transcript;
    src.on('inputTranscription', (text) => this.live(() => t.userText(text)));
    src.on('outputTranscription', (text) => this.live(() => t.replyText(text)));
    src.on('modelText', (text) => this.live(() => t.replyText(text)));
    src.on('interrupted', () => this.live(() => t.interrupted()));
    src.on('turnComplete', () =>
      this.live(() => {
        t.turnComplete();
        this.turns++;
        this.atBoundary = true;
        this.meter({ turns: 1 });
      }),
    );
    src.on('usage', (m) => this.live(() => this.addUsage(m)));
    src.on('modelAudio', (pcm, rate) =>
      this.live(() => {
        const s = pcm.length / 2 / (rate > 0 ? rate : 24_000);
        this.audioOutSeconds += s;
        this.pendingOut += s;
      }),
    );
    src.on('audioSent', (bytes) =>
      this.live(() => {
        this.audioInBytes += bytes;
        this.pendingIn += bytes / INPUT_BYTES_PER_SECOND;
      }),
    );
  }

  /** The greeting was sent: the model's opening is a turn of its own. */
  greetingSent(): void {
    this.transcript.greetingSent();
  }

  /** The model asked for function calls (recorded in the open turn). */
  toolCalls(calls: { id: string; name: string; args: unknown }[]): void {
    if (!this.transcript.ended) this.transcript.toolCall(calls.map((c) => ({ ...c, state: 'pending' as const })));
  }

  /** What became of a call. */
  toolSettled(id: string, state: 'answered' | 'cancelled' | 'timed_out' | 'dropped', response?: unknown): void {
    if (!this.transcript.ended) this.transcript.toolSettled(id, state, response);
  }

  /** Google Search grounding of the reply in progress. */
  grounding(g: GroundingInfo): void {
    if (!this.transcript.ended) this.transcript.grounding(g);
  }

  /** Typed user input (WebSocket `text`). */
  typedText(text: string): void {
    if (!this.transcript.ended) this.transcript.typedText(text);
  }

  usage(): ConversationUsage {
    return {
      tokens: this.transcript.totalUsage,
      audioSeconds: { input: round3(this.audioInBytes / INPUT_BYTES_PER_SECOND), output: round3(this.audioOutSeconds) },
      turns: this.turns,
    };
  }

  snapshot(): TranscriptRecord {
    return this.transcript.snapshot();
  }

  /** The session ended: the open turn closes, the audio seconds not yet recorded are. Idempotent. */
  end(reason: string): void {
    if (this.transcript.ended) return;
    this.transcript.end(reason);
    this.flushAudio();
  }

  /** Resolves once every meter write queued so far has been made (tests, shutdown). */
  settled(): Promise<void> {
    return this.chain;
  }

  private live(f: () => void): void {
    if (!this.transcript.ended) f();
  }

  private addUsage(m: UsageMetadata): void {
    this.transcript.usage(m);
    const boundary = this.atBoundary;
    this.atBoundary = false;
    this.meter({ tokens: fromUsageMetadata(m) });
    if (boundary) {
      this.flushAudio();
      this.checkBudget();
    }
  }

  private flushAudio(): void {
    if (this.pendingIn <= 0 && this.pendingOut <= 0) return;
    const delta = { audioInputSeconds: this.pendingIn, audioOutputSeconds: this.pendingOut };
    this.pendingIn = 0;
    this.pendingOut = 0;
    this.meter(delta);
  }

  private meter(delta: Parameters<UsageMeter['record']>[1]): void {
    const meter = this.o.meter;
    if (!meter) return;
    const key = this.o.owner.id;
    this.chain = this.chain.then(() => meter.record(key, delta)).catch((err: unknown) => this.log.warn({ err }, 'usage not recorded'));
  }

  private checkBudget(): void {
    const meter = this.o.meter;
    if (!meter || this.budgetSpent || !this.o.onBudgetSpent) return;
    const key = this.o.owner.id;
    this.chain = this.chain
      .then(async () => {
        const d = await meter.atTurnBoundary(key, this.o.owner.maxTokensPerDay);
        if (d.end && !this.budgetSpent && !this.transcript.ended) {
          this.budgetSpent = true;
          this.o.onBudgetSpent?.(d.message);
        }
      })
      .catch((err: unknown) => this.log.warn({ err }, 'budget check failed'));
  }
}

function positive(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : 0;
}

function round3(n: number): number {
  return Math.round(n * 1000) / 1000;
}

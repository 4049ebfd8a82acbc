/**
 * What each emulated connection received (and, for debugging, what it sent). Tests assert on these records.
 * How much is kept is the emulator's `retention`: everything for tests, counters only in the offline demo.
 */

/** What the emulator remembers about its connections. */
export interface EmulatorRetention {
  /** Keep every PCM byte received (`record.pcm`, `receivedPcm()`). */
  pcm: boolean;
  /** Keep the per-message logs (`messages`, `sent`, `audioChunks`, `audioRates`, `handles`). */
  messageLog: boolean;
  /** Connection records kept; beyond it the oldest closed ones are forgotten (open ones are always kept). */
  maxRecords: number;
  /** Upgrade records kept (`upgrades`); beyond it the oldest are forgotten. */
  maxUpgrades: number;
  /** Resumption handles kept (each valid for its TTL); beyond it the oldest are forgotten. */
  maxResumptionHandles: number;
}

/** Tests: everything, forever (the default). */
export const FULL_RETENTION: EmulatorRetention = {
  pcm: true,
  messageLog: true,
  maxRecords: Infinity,
  maxUpgrades: Infinity,
  maxResumptionHandles: Infinity,
};

/** A long-running process (offline demo, standalone CLI): counters only, a bounded history, no audio. */
export const DEMO_RETENTION: EmulatorRetention = {
  pcm: false,
  messageLog: false,
  maxRecords: 50,
  maxUpgrades: 50,
  maxResumptionHandles: 1_000,
};

export type ClientMessageKind =
  | 'setup'
  | 'audio'
  | 'audioStreamEnd'
  | 'text'
  | 'video'
  | 'activityStart'
  | 'activityEnd'
  | 'clientContent'
  | 'toolResponse'
  | 'contextUpdate'
  | 'invalid';

export interface EmulatorConnectionRecord {
  id: string;
  apiVersion: string;
  method: string;
  /** The `key` (or `access_token`) query parameter. */
  key: string | undefined;
  /** Upgrade request headers. */
  headers: Record<string, string | string[] | undefined>;
  /** The `setup` JSON as received. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON from the wire, of a shape not known here, read field by field
  setup: any | undefined;
  /** One entry per client message field, in arrival order (`at` = emulator clock, ms). */
  messages: { at: number; kind: ClientMessageKind | string }[];
  /** Server messages, in send order (`kind` e.g. 'setupComplete', 'modelTurn', 'turnComplete', 'goAway'). */
  sent: { at: number; kind: string }[];
  /** Sum of `realtimeInput` audio PCM bytes received. */
  audioBytes: number;
  /** PCM bytes per received audio message. */
  audioChunks: number[];
  /** The received PCM chunks (empty unless the retention keeps PCM). */
  pcm: Buffer[];
  /** Sample rate of each received audio message (from its mimeType). */
  audioRates: number[];
  /** Resumption handle this connection resumed from. */
  resumedFrom?: string;
  /** Resumption handles this connection issued, in order (empty unless the retention keeps message logs). */
  handles: string[];
  /** Of those, how many (counted whatever the retention). */
  handlesIssued: number;
  /** Turns answered (reached `turnComplete`, including interrupted ones). */
  turns: number;
  /** Of those, how many were interrupted (barge-in or `interrupt()`). */
  interruptedTurns: number;
  closed?: { code: number; reason: string; by: 'server' | 'client' };
  /** The model id of the accepted setup (without `models/`). */
  model?: string;
  /** The text turn taken as the model's cue to speak first (the first input after setup, if it was text). */
  greeting?: string;
  /** Sums of every `usageMetadata` this connection sent (setup, turns, interrupted turns). */
  usage: UsageTotals;
  /** Every function answer this connection accepted, in arrival order (the name as the client sent it). */
  toolResponses: { id: string; name: string | undefined; response: unknown; scheduling?: string }[];
  /**
   * What the model did with answers, in order: the reply it spoke using them (`spoken`), or took silently
   * (`SILENT` scheduling of a non-blocking function: nothing said). `after`: spoken at once (blocking, `INTERRUPT`,
   * cutting a reply short when `interrupted`) or once the reply in progress ended (`WHEN_IDLE`).
   */
  toolReplies: { ids: string[]; text: string; spoken: boolean; when: 'now' | 'after_turn'; interrupted: boolean; scheduling?: string }[];
}

export interface UsageTotals {
  /** How many messages carried `usageMetadata`. */
  messages: number;
  promptTokenCount: number;
  responseTokenCount: number;
  thoughtsTokenCount: number;
  totalTokenCount: number;
}

export function createConnectionRecord(init: {
  id: string;
  apiVersion: string;
  method: string;
  key: string | undefined;
  headers: Record<string, string | string[] | undefined>;
}): EmulatorConnectionRecord {
  return {
    ...init,
    setup: undefined,
    messages: [],
    sent: [],
    audioBytes: 0,
    audioChunks: [],
    pcm: [],
    audioRates: [],
    handles: [],
    handlesIssued: 0,
    turns: 0,
    interruptedTurns: 0,
    toolResponses: [],
    toolReplies: [],
    usage: { messages: 0, promptTokenCount: 0, responseTokenCount: 0, thoughtsTokenCount: 0, totalTokenCount: 0 },
  };
}

/** Writes into one connection's record, keeping what the retention asks for. */
export class ConnectionRecorder {
  constructor(
    readonly record: EmulatorConnectionRecord,
    private readonly clock: () => number,
    private readonly retention: Pick<EmulatorRetention, 'pcm' | 'messageLog'>,
    private readonly onPcm: (pcm: Buffer) => void,
  ) {}

  message(kind: ClientMessageKind): void {
    if (this.retention.messageLog) this.record.messages.push({ at: this.clock(), kind });
  }

  audio(pcm: Buffer, sampleRate: number): void {
    this.message('audio');
    this.record.audioBytes += pcm.length;
    if (this.retention.messageLog) {
      this.record.audioChunks.push(pcm.length);
      this.record.audioRates.push(sampleRate);
    }
    if (this.retention.pcm) {
      this.record.pcm.push(pcm);
      this.onPcm(pcm);
    }
  }

  sent(kind: string): void {
    if (this.retention.messageLog) this.record.sent.push({ at: this.clock(), kind });
  }

  /** Adds one sent `usageMetadata` to the connection's totals (kept whatever the retention: four numbers). */
  usage(u: Record<string, unknown>): void {
    const t = this.record.usage;
    const n = (v: unknown) => (typeof v === 'number' ? v : 0);
    t.messages++;
    t.promptTokenCount += n(u.promptTokenCount);
    t.responseTokenCount += n(u.responseTokenCount);
    t.thoughtsTokenCount += n(u.thoughtsTokenCount);
    t.totalTokenCount += n(u.totalTokenCount);
  }

  handleIssued(handle: string): void {
    this.record.handlesIssued++;
    if (this.retention.messageLog) this.record.handles.push(handle);
  }

  /** The first close wins: a server-initiated close is recorded when it is initiated. */
  closed(code: number, reason: string, by: 'server' | 'client'): void {
    if (!this.record.closed) this.record.closed = { code, reason, by };
  }
}

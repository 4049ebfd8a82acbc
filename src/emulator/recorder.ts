/**
 * What each emulated connection received (and, for debugging, what it sent). Tests assert on these records.
 */

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
  setup: any | undefined;
  /** One entry per client message field, in arrival order (`at` = emulator clock, ms). */
  messages: { at: number; kind: ClientMessageKind | string }[];
  /** Server messages, in send order (`kind` e.g. 'setupComplete', 'modelTurn', 'turnComplete', 'goAway'). */
  sent: { at: number; kind: string }[];
  /** Sum of `realtimeInput` audio PCM bytes received. */
  audioBytes: number;
  /** PCM bytes per received audio message. */
  audioChunks: number[];
  /** The received PCM chunks (empty when the emulator runs with `keepPcm: false`). */
  pcm: Buffer[];
  /** Sample rate of each received audio message (from its mimeType). */
  audioRates: number[];
  /** Resumption handle this connection resumed from. */
  resumedFrom?: string;
  /** Turns answered (reached `turnComplete`, including interrupted ones). */
  turns: number;
  /** Of those, how many were interrupted (barge-in or `interrupt()`). */
  interruptedTurns: number;
  closed?: { code: number; reason: string; by: 'server' | 'client' };
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
    turns: 0,
    interruptedTurns: 0,
  };
}

/** Writes into one connection's record. */
export class ConnectionRecorder {
  constructor(
    readonly record: EmulatorConnectionRecord,
    private readonly clock: () => number,
    private readonly keepPcm: boolean,
    private readonly onPcm: (pcm: Buffer) => void,
  ) {}

  message(kind: ClientMessageKind): void {
    this.record.messages.push({ at: this.clock(), kind });
  }

  audio(pcm: Buffer, sampleRate: number): void {
    this.message('audio');
    this.record.audioBytes += pcm.length;
    this.record.audioChunks.push(pcm.length);
    this.record.audioRates.push(sampleRate);
    if (this.keepPcm) {
      this.record.pcm.push(pcm);
      this.onPcm(pcm);
    }
  }

  sent(kind: string): void {
    this.record.sent.push({ at: this.clock(), kind });
  }

  /** The first close wins: a server-initiated close is recorded when it is initiated. */
  closed(code: number, reason: string, by: 'server' | 'client'): void {
    if (!this.record.closed) this.record.closed = { code, reason, by };
  }
}

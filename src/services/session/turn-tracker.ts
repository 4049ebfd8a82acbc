/**
 * The state of the current (or last) conversational turn, built from upstream events.
 * Texts are cumulative within the turn: transcription fragments are concatenated, never overwritten.
 */
export interface TurnSnapshot {
  turnId: number;
  /** The user's words (input transcription). */
  userText: string;
  /** The model's reply text: text parts for text models, else the transcription of its speech. */
  replyText: string;
  /** Transcription of the model's speech. */
  outputTranscription: string;
  turnComplete: boolean;
  interrupted: boolean;
  /** Reply audio of this turn so far (24 kHz mono s16le), bytes. */
  replyAudioBytes: number;
  /**
   * The user's words of this turn are final: the model began its reply (text, speech or its transcription), or the
   * turn completed or was interrupted. Before that they are interim (the user may still be speaking).
   */
  userFinal: boolean;
  /** Increases on every change; lets waiters tell whether something new happened. */
  version: number;
  updatedAt: number;
}

import type { GroundingInfo } from '../tools/tool-types';

export class TurnTracker {
  /** Google Search grounding of the current turn's reply (null: none). */
  private groundingInfo: GroundingInfo | null = null;
  private turnId = 0;
  private userText = '';
  private modelText = '';
  private outputText = '';
  private complete = false;
  private interrupted = false;
  private audio: Buffer[] = [];
  private audioBytes = 0;
  private versionNo = 0;
  /**
   * Where the turn's reply pieces come from: the first of the model's text and its speech transcription to arrive
   * (models send one or the other; one sending both has its pieces follow the first, never both, so no words repeat).
   */
  private pieceSource: 'model' | 'output' | undefined;
  private updatedAt = Date.now();
  /** Upper bound on reply audio kept for one turn (REST `audioBuffer`). */
  private readonly maxAudioBytes: number;

  constructor(opts: { keepAudio: boolean; maxAudioBytes?: number }) {
    this.maxAudioBytes = opts.keepAudio ? (opts.maxAudioBytes ?? 24000 * 2 * 120) : 0;
  }

  get version(): number {
    return this.versionNo;
  }

  /** Starts a new turn if the current one is complete (called before adding new content). */
  private ensureOpenTurn(): void {
    if (this.complete || this.turnId === 0) {
      this.turnId++;
      this.userText = '';
      this.modelText = '';
      this.outputText = '';
      this.complete = false;
      this.interrupted = false;
      this.pieceSource = undefined;
      this.audio = [];
      this.audioBytes = 0;
      this.groundingInfo = null;
    }
  }

  /** Something outside the texts changed (a function call arrived or settled): waiters see news. */
  noteToolActivity(): void {
    this.touch();
  }

  /** Grounding of the reply in progress (merged with what the turn already has; bounded). */
  addGrounding(g: GroundingInfo): void {
    this.ensureOpenTurn();
    const cur = this.groundingInfo ?? { queries: [], sources: [] };
    this.groundingInfo = {
      queries: [...new Set([...cur.queries, ...g.queries])].slice(0, 20),
      sources: [...cur.sources, ...g.sources.filter((s) => !cur.sources.some((c) => c.uri === s.uri))].slice(0, 20),
    };
    this.touch();
  }

  get grounding(): GroundingInfo | null {
    return this.groundingInfo;
  }

  private touch(): void {
    this.versionNo++;
    this.updatedAt = Date.now();
  }

  addUserText(t: string): void {
    this.ensureOpenTurn();
    this.userText += t;
    this.touch();
  }

  /**
   * Adds to the transcription of the model's speech; returns the new piece of the reply text ('' when the turn's
   * reply pieces come from the model's text). See `pieceSource`.
   */
  addOutputTranscription(t: string): string {
    this.ensureOpenTurn();
    this.outputText += t;
    this.touch();
    this.pieceSource ??= 'output';
    return this.pieceSource === 'output' ? t : '';
  }

  /** Adds to the model's text; returns the new piece of the reply text (see `pieceSource`). */
  addModelText(t: string): string {
    this.ensureOpenTurn();
    this.modelText += t;
    this.touch();
    this.pieceSource ??= 'model';
    return this.pieceSource === 'model' ? t : '';
  }

  /** Returns false when the audio was not kept (cap reached or audio not requested). */
  addReplyAudio(pcm: Buffer): boolean {
    this.ensureOpenTurn();
    if (this.audioBytes + pcm.length > this.maxAudioBytes) return false;
    this.audio.push(pcm);
    this.audioBytes += pcm.length;
    this.touch();
    return true;
  }

  markInterrupted(): void {
    if (this.turnId === 0 || this.complete) return;
    this.interrupted = true;
    this.touch();
  }

  markComplete(): void {
    if (this.turnId === 0 || this.complete) return;
    this.complete = true;
    this.touch();
  }

  replyAudio(): Buffer {
    return Buffer.concat(this.audio, this.audioBytes);
  }

  snapshot(): TurnSnapshot {
    return {
      turnId: this.turnId,
      userText: this.userText.trim(),
      replyText: (this.modelText || this.outputText).trim(),
      outputTranscription: this.outputText.trim(),
      turnComplete: this.complete,
      interrupted: this.interrupted,
      replyAudioBytes: this.audioBytes,
      userFinal: this.complete || this.interrupted || this.modelText !== '' || this.outputText !== '' || this.audioBytes > 0,
      version: this.versionNo,
      updatedAt: this.updatedAt,
    };
  }
}

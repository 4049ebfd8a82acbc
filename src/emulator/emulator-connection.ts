import type { RawData, WebSocket } from 'ws';
import type { Logger } from '../util/logger';
import {
  ProtocolError,
  clientContentText,
  invalid,
  isObject,
  parseAudioBlob,
  parseGeminiClientFrame,
  validateSetup,
  type NegotiatedSetup,
} from './gemini-client-messages';
import { EnergyVad, DEFAULT_SILENCE_DURATION_MS, type EnergyVadOptions, type VadEvent } from './energy-vad';
import { DEFAULT_GOAWAY_TIME_LEFT_MS, type FaultOptions } from './faults';
import type { ModelCapabilities } from './models';
import { pcmDurationMs } from './pcm';
import type { ClientMessageKind, ConnectionRecorder } from './connection-records';
import { planReply, type ReplyPlan, type ServerMessage } from './reply-plan';
import { ReplyPlayer } from './reply-player';
import type { ResumptionStore, SessionState } from './resumption';
import { greetingTurn, resolveTurn, type Scenario, type Turn, type TurnInput } from './scenario';
import { WriteCoalescer, type EmulatorTiming } from './timing';
import { declaredTools, parseToolResponse, replyUsingAnswers, schedulingOf, toolUseTokens, type ReceivedToolResponse, type ToolBehaviorName, type OutstandingToolCalls } from './tool-calls';
import { wordFragments } from './scenario';
import {
  CLOSE_INTERNAL,
  CLOSE_POLICY,
  REASON_DEADLINE,
  REASON_INTERNAL,
  REASON_QUOTA,
  encodeFrame,
  formatDuration,
  serverMessageKind,
  truncateReason,
  type FrameMode,
  type LiveRequest,
} from './wire';

/** Everything one connection needs from the emulator. */
export interface ConnectionDeps {
  id: string;
  ws: WebSocket;
  request: LiveRequest;
  recorder: ConnectionRecorder;
  frames: FrameMode;
  /** Accepted keys; undefined = any key that is present. */
  apiKeys: readonly string[] | undefined;
  models: Record<string, ModelCapabilities>;
  /** Unknown top-level setup fields close 1007 (the service parses proto-JSON strictly). */
  strictSetup: boolean;
  vad: Omit<EnergyVadOptions, 'silenceDurationMs'>;
  resumption: ResumptionStore;
  /** The scenario in force now (read when a reply starts). */
  scenario: () => Scenario;
  /** The faults in force now for this connection (timed faults are read once, at setupComplete). */
  faults: () => FaultOptions;
  newSessionId: () => string;
  /** See `EmulatorTiming`. */
  timing: EmulatorTiming;
  /** Set for `eager` timing: batches the frames of one tick into one TCP write. */
  coalescer: WriteCoalescer | undefined;
  logger: Logger;
  onClosed: () => void;
}

type Phase = 'awaiting-setup' | 'setup-pending' | 'live' | 'closed';

/** With `spaced` timing the model's opening comes this long after setupComplete, in a later read. */
const SPACED_OPENING_DELAY_MS = 50;

/**
 * One emulated Live connection: validates the client's messages, detects turns, plays replies, and handles
 * goAway / close / terminate / interrupt requests from the emulator.
 */
export class EmulatorConnection {
  readonly id: string;
  private phase: Phase = 'awaiting-setup';
  private readonly log: Logger;
  private readonly timers = new Set<NodeJS.Timeout>();

  // negotiated at setup
  private setup: NegotiatedSetup | undefined;
  private vad: EnergyVad | undefined; // undefined: manual activity detection
  private session!: SessionState;

  // live state
  private audioMs = 0; // audio time received, for manual activity turns
  private manualActivityStartMs: number | undefined;
  private reply: { player: ReplyPlayer; plan: ReplyPlan } | undefined;
  private readonly queued: { input: TurnInput; fixed?: Turn }[] = [];
  private silent = false;
  private warnedNoRate = false;
  /** Until the first input after a fresh setup: a text turn then is the cue for the model to speak first. */
  private greetingOpen = false;
  /** What the setup declared: the model calls only these functions, and grounds only with googleSearch. */
  private tools: { functions: Map<string, ToolBehaviorName>; googleSearch: boolean } = { functions: new Map(), googleSearch: false };
  private toolCallSeq = 0;

  constructor(private readonly deps: ConnectionDeps) {
    this.id = deps.id;
    this.log = deps.logger.child({ conn: deps.id });
    deps.ws.on('message', (data, isBinary) => this.onMessage(data, isBinary));
    deps.ws.on('close', (code, reason) => this.onSocketClosed(code, reason.toString('utf8')));
    deps.ws.on('error', (err) => this.log.debug({ err: err.message }, 'socket error'));
  }

  // ---------------------------------------------------------------- control API

  /** Sends `{goAway:{timeLeft}}`; what follows after `timeLeftMs` depends on `faults.afterGoAway`. */
  goAway(timeLeftMs: number): void {
    if (this.phase === 'closed') return;
    const faults = this.deps.faults();
    this.send({ goAway: { timeLeft: formatDuration(timeLeftMs) } });
    if (faults.silentAfterGoAway) {
      this.silent = true;
      this.reply?.player.cancel();
      this.reply = undefined;
      this.queued.length = 0;
    }
    const after = faults.afterGoAway ?? 'close';
    if (after === 'close') this.later(timeLeftMs, () => this.close(CLOSE_INTERNAL, REASON_DEADLINE));
    if (after === 'terminate') this.later(timeLeftMs, () => this.terminate());
  }

  /** Closes with `code` and `reason` (truncated to 123 bytes). */
  close(code: number, reason: string): void {
    if (this.phase === 'closed') return;
    const r = truncateReason(reason);
    this.deps.recorder.closed(code, r, 'server');
    this.shutdown();
    this.log.info({ code, reason: r }, 'closing');
    try {
      this.deps.ws.close(code, r);
    } catch (err) {
      this.log.warn({ err: (err as Error).message, code }, 'close failed, terminating');
      this.deps.ws.terminate();
    }
  }

  /** Abrupt TCP drop: the client sees 1006. */
  terminate(): void {
    if (this.phase !== 'closed') {
      this.deps.recorder.closed(1006, '', 'server');
      this.shutdown();
    }
    this.deps.ws.terminate();
  }

  /** Barge-in on the reply in progress; returns false if there was none. */
  interrupt(): boolean {
    if (this.cancelToolCalls()) return true;
    const current = this.reply;
    if (!current?.player.active) return false;
    current.player.cancel();
    this.send({ serverContent: { interrupted: true } });
    this.send({ serverContent: { turnComplete: true }, usageMetadata: current.plan.usageMetadata });
    this.finishTurn(true);
    return true;
  }

  // ---------------------------------------------------------------- incoming

  private onMessage(data: RawData, isBinary: boolean): void {
    if (this.phase === 'closed') return;
    try {
      this.handleMessage(data, isBinary);
    } catch (err) {
      if (err instanceof ProtocolError) {
        if (err.detail !== undefined) this.deps.recorder.message('invalid');
        this.log.warn({ code: err.code, reason: err.reason, detail: err.detail }, 'rejecting client message');
        this.close(err.code, err.reason);
      } else {
        this.log.error({ err: (err as Error).stack }, 'emulator bug while handling a message');
        this.close(CLOSE_INTERNAL, REASON_INTERNAL);
      }
    }
  }

  private handleMessage(data: RawData, isBinary: boolean): void {
    const { type, body } = parseGeminiClientFrame(data, isBinary);
    if (this.phase === 'awaiting-setup') {
      if (type !== 'setup') return invalid(`first message must be setup, got ${type}`);
      return this.handleSetup(body);
    }
    if (type === 'setup') return invalid('second setup');
    if (this.phase === 'setup-pending') return this.deps.recorder.message(type as ClientMessageKind);
    switch (type) {
      case 'realtimeInput':
        return this.handleRealtimeInput(body);
      case 'clientContent':
        return this.handleClientContent(body);
      case 'toolResponse':
        return this.handleToolResponse(body);
      case 'contextUpdate':
        return this.deps.recorder.message(type);
    }
  }

  private handleSetup(raw: unknown): void {
    const { recorder, request } = this.deps;
    recorder.record.setup = raw;
    recorder.message('setup');
    const faults = this.deps.faults();
    if (faults.rejectSetup) throw new ProtocolError(faults.rejectSetup.code, faults.rejectSetup.reason);
    const { apiKeys, models, strictSetup } = this.deps;
    const setup = validateSetup(raw, { key: request.key, apiVersion: request.apiVersion, apiKeys, models, strictSetup });

    if (setup.resumeHandle) {
      const state = this.deps.resumption.lookup(setup.resumeHandle);
      if (!state) return invalid(`unknown or expired resumption handle ${setup.resumeHandle}`);
      this.session = state;
      recorder.record.resumedFrom = setup.resumeHandle;
    } else {
      this.session = { sessionId: this.deps.newSessionId(), scenario: undefined, scenarioIndex: 0, turnIndex: 0, contextTokens: 0, audioMs: 0 };
    }
    this.session.tools ??= { outstanding: undefined };
    this.tools = declaredTools(isObject(raw) ? raw : {}, setup.model.defaultToolBehavior);
    this.setup = setup;
    recorder.record.model = setup.modelName.slice('models/'.length);
    this.greetingOpen = !setup.resumeHandle && !setup.model.transcriptionOnly;
    this.vad = setup.manualActivity
      ? undefined
      : new EnergyVad({ ...this.deps.vad, silenceDurationMs: setup.silenceDurationMs ?? DEFAULT_SILENCE_DURATION_MS });

    if (faults.neverCompleteSetup) {
      this.phase = 'setup-pending';
      this.log.info('setup accepted, never completing it (fault)');
      return;
    }
    this.phase = 'live';
    this.send({ setupComplete: {} });
    if (this.deps.timing === 'eager') {
      // What a busy server sends at once: a first handle and the setup's usage, in the same read as setupComplete.
      if (setup.resumption) this.send({ sessionResumptionUpdate: { newHandle: this.issueHandle(), resumable: true } });
      this.send({ usageMetadata: setupUsage(raw) });
    }
    const opening = this.deps.scenario().opening;
    if (opening && !setup.resumeHandle) {
      const speak = () => this.answer({ kind: 'text', speechMs: 0, text: '', index: this.session.turnIndex }, { userTranscript: '', ...opening });
      if (this.deps.timing === 'eager') speak();
      else this.later(SPACED_OPENING_DELAY_MS, speak);
    }
    const { modelName: model, modality } = setup;
    this.log.info({ model, modality, resumedFrom: recorder.record.resumedFrom }, 'setup complete');
    this.armTimedFaults(faults);
  }

  private armTimedFaults(f: FaultOptions): void {
    if (f.quotaCloseAfterSetup) {
      this.close(CLOSE_INTERNAL, REASON_QUOTA);
      return;
    }
    if (f.goAwayAfterMs === 0) {
      // Due at setup: in the same tick (with eager timing, in the same write as setupComplete).
      this.goAway(f.goAwayTimeLeftMs ?? DEFAULT_GOAWAY_TIME_LEFT_MS);
    } else if (f.goAwayAfterMs !== undefined) {
      this.later(f.goAwayAfterMs, () => this.goAway(f.goAwayTimeLeftMs ?? DEFAULT_GOAWAY_TIME_LEFT_MS));
    }
    if (f.dropAfterMs !== undefined) this.later(f.dropAfterMs, () => this.terminate());
    const c = f.closeAfterMs;
    if (c) this.later(c.ms, () => this.close(c.code, c.reason));
  }

  private handleRealtimeInput(ri: unknown): void {
    if (!isObject(ri) || Object.keys(ri).length === 0) return invalid('empty realtimeInput');
    const { recorder } = this.deps;
    for (const [field, value] of Object.entries(ri)) {
      switch (field) {
        case 'audio': {
          const { pcm, rate, rateDeclared } = parseAudioBlob(value);
          if (!rateDeclared && !this.warnedNoRate) {
            this.warnedNoRate = true;
            this.log.warn('audio mimeType without rate=, assuming 16000 Hz');
          }
          this.handleAudio(pcm, rate);
          break;
        }
        case 'mediaChunks': {
          // Deprecated `media:` parameter of sendRealtimeInput: a list of blobs.
          if (!Array.isArray(value)) return invalid('mediaChunks is not a list');
          for (const blob of value) {
            if (isObject(blob) && typeof blob.mimeType === 'string' && blob.mimeType.startsWith('audio/')) {
              const { pcm, rate } = parseAudioBlob(blob);
              this.handleAudio(pcm, rate);
            } else recorder.message('video');
          }
          break;
        }
        case 'video':
          recorder.message('video');
          break;
        case 'text':
          if (typeof value !== 'string') return invalid('realtimeInput.text is not a string');
          recorder.message('text');
          this.textTurn(value);
          break;
        case 'audioStreamEnd':
          if (!this.vad) return invalid('audioStreamEnd with automatic activity detection disabled');
          recorder.message('audioStreamEnd');
          this.onVadEvents(this.vad.end());
          break;
        case 'activityStart':
          if (this.vad) return invalid('activityStart requires automaticActivityDetection.disabled');
          recorder.message('activityStart');
          this.manualActivityStartMs = this.audioMs;
          this.onSpeechStart();
          break;
        case 'activityEnd':
          if (this.vad) return invalid('activityEnd requires automaticActivityDetection.disabled');
          recorder.message('activityEnd');
          if (this.manualActivityStartMs !== undefined) {
            const speechMs = this.audioMs - this.manualActivityStartMs;
            this.manualActivityStartMs = undefined;
            this.startTurn({ kind: 'audio', speechMs });
          }
          break;
        default:
          return invalid(`unknown realtimeInput field ${field}`);
      }
    }
  }

  private handleAudio(pcm: Buffer, rate: number): void {
    this.deps.recorder.audio(pcm, rate);
    this.greetingOpen = false;
    const ms = pcmDurationMs(pcm.length, rate);
    this.audioMs += ms;
    this.session.audioMs = (this.session.audioMs ?? 0) + ms;
    const cap = this.setup?.model.maxAudioMs;
    if (cap !== undefined && this.session.audioMs > cap) {
      this.close(CLOSE_POLICY, `Audio limit of ${Math.round(cap / 60_000)} minutes per session reached.`);
      return;
    }
    if (this.vad) this.onVadEvents(this.vad.push(pcm, rate));
  }

  /**
   * A text turn: the first input after a fresh setup is the greeting (the model opens the conversation, without
   * using up a scripted turn); a transcription-only model has nothing to transcribe in text and ignores it.
   */
  private textTurn(text: string): void {
    if (this.setup?.model.transcriptionOnly) return;
    if (this.greetingOpen) {
      this.greetingOpen = false;
      this.deps.recorder.record.greeting = text;
      this.startTurn({ kind: 'text', speechMs: 0, text }, greetingTurn(this.deps.scenario(), text));
      return;
    }
    this.startTurn({ kind: 'text', speechMs: 0, text });
  }

  private onVadEvents(events: VadEvent[]): void {
    for (const e of events) {
      if (e.type === 'speechStart') this.onSpeechStart();
      else this.startTurn({ kind: 'audio', speechMs: e.speechMs });
    }
  }

  private handleClientContent(cc: unknown): void {
    if (!isObject(cc)) return invalid('clientContent is not an object');
    if (this.setup?.model.restrictClientContent && this.deps.recorder.record.turns > 0) {
      return invalid('clientContent after the first model turn on this model');
    }
    this.deps.recorder.message('clientContent');
    if (cc.turnComplete === true) this.textTurn(clientContentText(cc));
  }

  // ---------------------------------------------------------------- turns and replies

  /** Speech (or activityStart) while the model talks interrupts it, unless activityHandling says otherwise. */
  private onSpeechStart(): void {
    if (this.setup?.interruptible) this.interrupt();
  }

  /** `fixed`: the reply to give instead of the scenario's next turn (a greeting). */
  private startTurn(partial: Omit<TurnInput, 'index'>, fixed?: Turn): void {
    this.greetingOpen = false;
    const input: TurnInput = { ...partial, index: this.session.turnIndex++ };
    this.log.debug({ input }, 'user turn');
    // A new turn while the model waits on function answers withdraws those calls (when it can be interrupted).
    if (this.setup?.interruptible) this.cancelToolCalls();
    if (this.reply?.player.active) {
      if (!this.setup?.interruptible) {
        this.queued.push({ input, fixed });
        return;
      }
      this.interrupt();
    }
    this.answer(input, fixed);
  }

  /** Plays the reply to `input`: the scenario's next turn, or `fixed` (the opening, which is not a user turn). */
  private answer(input: TurnInput, fixed?: Turn): void {
    const setup = this.setup;
    if (this.silent || this.phase !== 'live' || !setup) return;
    const scenario = this.deps.scenario();
    if (this.session.scenario !== scenario) {
      this.session.scenario = scenario;
      this.session.scenarioIndex = 0;
    }
    const turn = fixed ?? resolveTurn(scenario, this.session.scenarioIndex++, input);
    if (this.callTools(turn, input)) return;
    this.play(turn, input);
  }

  /**
   * The turn's function calls the session declared, in one `toolCall` after the user's words; the reply waits
   * for their answers. Returns false when there is nothing to call (no calls scripted, or none declared).
   */
  private callTools(turn: Turn, input: TurnInput): boolean {
    const wanted = (turn.toolCalls ?? []).filter((c) => this.tools.functions.has(c.name));
    if (wanted.length === 0 || !this.setup) return false;
    if (input.kind === 'audio' && this.setup.inputTranscription) {
      for (const text of wordFragments(turn.userTranscript)) this.send({ serverContent: { inputTranscription: { text } } });
    }
    const calls = wanted.map((c) => ({ id: `function-call-${this.id}-${++this.toolCallSeq}`, name: c.name, args: c.args ?? {} }));
    const nonBlocking = wanted.every((c) => this.tools.functions.get(c.name) === 'NON_BLOCKING');
    this.session.tools!.outstanding = { calls, answers: new Map(), turn, input, settled: false, nonBlocking };
    if (nonBlocking) {
      // Non-blocking: the model goes on with its reply while the functions run; the answers come in later.
      this.send({ toolCall: { functionCalls: calls } });
      this.play({ ...turn, toolCalls: undefined }, { ...input, kind: 'text', text: '' });
      return true;
    }
    if (this.setup.resumption) this.send({ sessionResumptionUpdate: { resumable: false } });
    this.send({ toolCall: { functionCalls: calls } });
    return true;
  }

  /**
   * A `toolResponse`: every id must be one the model is waiting on (else 1007, like the real service); once all
   * are answered the reply that uses them plays.
   */
  private handleToolResponse(body: unknown): void {
    this.deps.recorder.message('toolResponse');
    const responses = parseToolResponse(body);
    const o = this.session.tools?.outstanding;
    for (const r of responses) {
      if (!o || o.settled || !o.calls.some((c) => c.id === r.id)) return invalid(`toolResponse for unknown function call id ${r.id}`);
    }
    for (const r of responses) o!.answers.set(r.id, r);
    this.deps.recorder.record.toolResponses.push(
      ...responses.map((r) => ({ id: r.id, name: r.name, response: r.response, ...(r.scheduling ? { scheduling: r.scheduling } : {}) })),
    );
    const all = o!.calls.every((c) => o!.answers.has(c.id));
    if (all) {
      o!.settled = true;
      this.session.tools!.outstanding = undefined;
    }
    if (o!.nonBlocking) return this.takeNonBlockingAnswers(o!, responses);
    if (!all) return;
    const reply = replyUsingAnswers(o!);
    this.deps.recorder.record.toolReplies.push({ ids: o!.calls.map((c) => c.id), text: reply, spoken: true, when: 'now', interrupted: false });
    // The answers are the model's input now: no user words again.
    this.play({ ...o!.turn, reply, toolCalls: undefined }, { ...o!.input, kind: 'text', text: '' }, toolUseTokens(o!));
  }

  /**
   * Answers to non-blocking calls, as their scheduling says: `SILENT` taken into the context without a word,
   * `WHEN_IDLE` spoken once the reply in progress has ended (at once when the model is quiet), `INTERRUPT` spoken at
   * once, cutting the reply in progress short.
   */
  private takeNonBlockingAnswers(o: OutstandingToolCalls, responses: ReceivedToolResponse[]): void {
    const scheduling = schedulingOf(responses);
    const ids = responses.map((r) => r.id);
    const tokens = Math.ceil(JSON.stringify(responses.map((r) => r.response ?? null)).length / 4);
    const busy = this.reply?.player.active === true;
    const replies = this.deps.recorder.record.toolReplies;
    if (scheduling === 'SILENT') {
      this.session.contextTokens = (this.session.contextTokens ?? 0) + tokens;
      replies.push({ ids, text: '', spoken: false, when: 'now', interrupted: false, scheduling });
      return;
    }
    const reply = replyUsingAnswers(o, responses);
    const turn = { ...o.turn, reply, toolCalls: undefined, userTranscript: '', grounding: undefined };
    const input = { ...o.input, kind: 'text' as const, text: '' };
    if (scheduling === 'WHEN_IDLE' && busy) {
      replies.push({ ids, text: reply, spoken: true, when: 'after_turn', interrupted: false, scheduling });
      this.queued.push({ input, fixed: turn });
      return;
    }
    if (scheduling === 'INTERRUPT' && busy) {
      // Cut the reply short; the answer's reply is the next thing the model says.
      this.queued.unshift({ input, fixed: turn });
      const interrupted = this.interrupt();
      replies.push({ ids, text: reply, spoken: true, when: 'now', interrupted, scheduling });
      if (!interrupted) {
        this.queued.shift();
        this.play(turn, input, tokens);
      }
      return;
    }
    replies.push({ ids, text: reply, spoken: true, when: 'now', interrupted: false, scheduling });
    this.play(turn, input, tokens);
  }

  /** Barge-in while calls are outstanding: interrupted, then `toolCallCancellation` for them, then turnComplete. */
  private cancelToolCalls(): boolean {
    const o = this.session?.tools?.outstanding;
    // Non-blocking calls run on while the conversation goes on: a new turn does not withdraw them.
    if (!o || o.settled || o.nonBlocking) return false;
    o.settled = true;
    this.session.tools!.outstanding = undefined;
    this.send({ serverContent: { interrupted: true } });
    this.send({ toolCallCancellation: { ids: o.calls.map((c) => c.id) } });
    this.send({ serverContent: { turnComplete: true } });
    this.finishTurn(true);
    return true;
  }

  private play(turn: Turn, input: TurnInput, toolUsePromptTokens = 0): void {
    const setup = this.setup!;
    const scenario = this.deps.scenario();
    const faults = this.deps.faults();
    const plan = planReply({
      turn,
      input,
      modality: setup.modality,
      inputTranscription: setup.inputTranscription,
      outputTranscription: setup.outputTranscription,
      pacing: faults.pacing ?? scenario.pacing ?? 'fast',
      outChunkMs: scenario.outChunkMs ?? 100,
      delayMs: (turn.delayMs ?? 0) + (faults.replyDelayMs ?? 0),
      splitParts: faults.splitReplyParts ?? 1,
      lateInputTranscription: faults.lateInputTranscription === true,
      coalesceEnd: this.deps.timing === 'eager',
      contextTokens: this.session.contextTokens ?? 0,
      thoughtsTokens: setup.model.thoughtsTokensPerTurn,
      transcriptionOnly: setup.model.transcriptionOnly === true,
      toolUsePromptTokens,
      grounding: this.tools.googleSearch ? turn.grounding : undefined,
    });
    this.session.contextTokens = (this.session.contextTokens ?? 0) + plan.turnTokens;
    if (setup.resumption && faults.notResumableDuringGeneration) {
      this.send({ sessionResumptionUpdate: { resumable: false } });
    }
    const player = new ReplyPlayer(plan.steps, (m) => this.send(m), () => this.finishTurn(false), plan.stalls);
    this.reply = { player, plan };
    player.start();
  }

  private finishTurn(interrupted: boolean): void {
    const { record } = this.deps.recorder;
    this.reply = undefined;
    record.turns++;
    if (interrupted) record.interruptedTurns++;
    if (this.setup?.resumption && !this.silent && this.phase === 'live') {
      this.send({ sessionResumptionUpdate: { newHandle: this.issueHandle(), resumable: true } });
    }
    const next = this.queued.shift();
    if (next) this.answer(next.input, next.fixed);
  }

  // ---------------------------------------------------------------- plumbing

  /** A resumable handle for the session as it is now. */
  private issueHandle(): string {
    const handle = this.deps.resumption.issue(this.id, this.session);
    this.deps.recorder.handleIssued(handle);
    return handle;
  }

  private send(message: ServerMessage): void {
    const { ws } = this.deps;
    if (this.silent || ws.readyState !== ws.OPEN) return;
    this.deps.coalescer?.beforeWrite();
    ws.send(encodeFrame(message, this.deps.frames));
    this.deps.recorder.sent(serverMessageKind(message));
    if (typeof message.usageMetadata === 'object' && message.usageMetadata !== null) {
      this.deps.recorder.usage(message.usageMetadata as Record<string, unknown>);
    }
  }

  private later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }

  /** Stops replies and timers; the socket itself is closed by the caller. */
  private shutdown(): void {
    this.phase = 'closed';
    this.reply?.player.cancel();
    this.reply = undefined;
    this.queued.length = 0;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  private onSocketClosed(code: number, reason: string): void {
    this.deps.recorder.closed(code, reason, 'client');
    this.shutdown();
    this.deps.resumption.connectionClosed(this.id);
    this.log.info({ code, reason }, 'closed');
    this.deps.onClosed();
  }
}

/** Deterministic usage for a setup (billed again on every connection): 1 token per 4 characters of it. */
function setupUsage(rawSetup: unknown): ServerMessage {
  const tokens = Math.max(1, Math.ceil(JSON.stringify(rawSetup ?? {}).length / 4));
  return { promptTokenCount: tokens, totalTokenCount: tokens, promptTokensDetails: [{ modality: 'TEXT', tokenCount: tokens }] };
}

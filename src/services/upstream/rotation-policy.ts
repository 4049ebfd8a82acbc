import type { Logger } from '../../util/logger';
import type { ResilienceOptions, RotationCause } from './resilience-types';

export interface RotationPolicyDeps {
  opts: Pick<ResilienceOptions, 'goAwaySafetyMs' | 'handleWaitMs' | 'userActiveMs'>;
  connectionNo: number;
  /** When the client last sent audio (epoch ms). */
  lastAudioAt: () => number;
  /** Replace the connection now (the caller checks it is still the current, open one). */
  rotate: (cause: Extract<RotationCause, 'go_away' | 'go_away_deadline'>) => void;
  log: Logger;
}

/**
 * When to leave one connection after the server's goAway: at once while idle, else at the next turn boundary once
 * that turn's resumable handle arrived (bounded wait), and at the latest shortly before the server's deadline.
 * Follows the connection's turns to know. One per connection; `dispose()` stops its timers.
 */
export class RotationPolicy {
  /** User words, model content or a not-resumable update since the last turnComplete. */
  private turnActiveValue = false;
  /** Model content since the last turnComplete. */
  private replyActive = false;
  /** The last resumption update's `resumable` (undefined before any). */
  private resumable: boolean | undefined;
  /** When the server's goAway arrived. */
  private goAwayAt: number | undefined;
  /** A turnComplete came after the goAway: rotate as soon as the turn's handle arrives. */
  private awaitingHandle = false;
  private goAwayTimer: NodeJS.Timeout | undefined;
  private handleWaitTimer: NodeJS.Timeout | undefined;

  constructor(private readonly deps: RotationPolicyDeps) {}

  get turnActive(): boolean {
    return this.turnActiveValue;
  }

  /** The server announced the end of this connection. */
  get sentAway(): boolean {
    return this.goAwayAt !== undefined;
  }

  userSpoke(): void {
    this.turnActiveValue = true;
  }

  modelReplied(): void {
    this.turnActiveValue = true;
    this.replyActive = true;
  }

  turnEnded(): void {
    this.turnActiveValue = false;
    this.replyActive = false;
  }

  /** The connection went away: true when it took a reply in progress with it (the turn is then over). */
  abandonReply(): boolean {
    if (!this.replyActive) return false;
    this.replyActive = false;
    this.turnActiveValue = false;
    return true;
  }

  /** turnComplete after a goAway: rotate once the turn's resumable handle arrived (bounded wait). */
  atTurnBoundary(): void {
    if (this.goAwayAt === undefined) return;
    this.awaitingHandle = true;
    clearTimeout(this.handleWaitTimer);
    this.handleWaitTimer = setTimeout(() => this.deps.rotate('go_away'), this.deps.opts.handleWaitMs);
  }

  resumptionUpdate(resumable: boolean): void {
    this.resumable = resumable;
    if (resumable && this.goAwayAt !== undefined && !this.turnActiveValue && (this.awaitingHandle || this.idle())) {
      this.deps.rotate('go_away');
    }
  }

  /** The server's goAway (the first one counts). */
  goAway(timeLeftMs: number): void {
    if (this.goAwayAt !== undefined) return;
    this.goAwayAt = Date.now();
    const margin = Math.min(this.deps.opts.goAwaySafetyMs, Math.floor(timeLeftMs / 2));
    const deadlineMs = Math.max(0, timeLeftMs - margin);
    const idle = this.idle();
    this.deps.log.info(
      { connectionNo: this.deps.connectionNo, timeLeftMs, rotateWithinMs: deadlineMs, turnActive: this.turnActiveValue, idle },
      'upstream goAway received',
    );
    // Never wait on a server that may have gone silent: a timer, not a message, bounds the wait.
    this.goAwayTimer = setTimeout(() => this.deps.rotate('go_away_deadline'), deadlineMs);
    if (idle) this.deps.rotate('go_away');
  }

  dispose(): void {
    clearTimeout(this.goAwayTimer);
    this.goAwayTimer = undefined;
    clearTimeout(this.handleWaitTimer);
    this.handleWaitTimer = undefined;
  }

  /** No turn in progress, at a resumable point, and the user is not streaming audio. */
  private idle(): boolean {
    return !this.turnActiveValue && this.resumable !== false && Date.now() - this.deps.lastAudioAt() >= this.deps.opts.userActiveMs;
  }
}

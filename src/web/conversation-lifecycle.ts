import { Emitter } from './emitter';
import type { ConversationEvents, EndInfo } from './types';

/**
 * How a conversation ends, the same for both transports: `stop()` (stop the microphone with its last audio, end
 * on the server, report how it ended; idempotent), `endNow()` (page unload: best effort, waits for nothing) and
 * `finish()` (the one place it is marked ended, whoever noticed first). The transports say what each step is.
 */
export abstract class ConversationLifecycle extends Emitter<ConversationEvents> {
  protected ended = false;
  private stopping: Promise<void> | null = null;
  private statusTimer: number | undefined;

  /** Stops the microphone; the returned promise settles once its last audio was handed on. */
  protected abstract stopCapture(): Promise<void> | undefined;
  /** Ends the session on the server (the microphone is stopped) and says how it ended. */
  protected abstract endOnServer(): Promise<EndInfo>;
  /** Page unload: asks the server to end the session, synchronously. */
  protected abstract endOnUnload(): void;
  /** Runs as the conversation is marked ended, before `ended` is emitted. */
  protected beforeEnded(): void {}
  /** Runs after `ended` was emitted (e.g. closing the socket). */
  protected afterEnded(): void {}
  /** A stop before the session started: handled by the transport (true), or stopped as usual (false). */
  protected stopBeforeStart(): boolean {
    return false;
  }

  /** True once `stop()` was called. */
  protected get isStopping(): boolean {
    return this.stopping !== null;
  }

  /** Polls the session's status every `ms` until the conversation ends or stops. */
  protected pollStatusEvery(ms: number, poll: () => void): void {
    window.clearInterval(this.statusTimer);
    this.statusTimer = window.setInterval(poll, ms);
  }

  protected finish(info: EndInfo): void {
    if (this.ended) return;
    this.ended = true;
    window.clearInterval(this.statusTimer);
    void this.stopCapture();
    this.beforeEnded();
    this.emit('ended', info);
    this.emit('state', 'ended');
    this.afterEnded();
  }

  endNow(): void {
    if (this.ended) return;
    this.ended = true;
    window.clearInterval(this.statusTimer);
    void this.stopCapture();
    this.endOnUnload();
  }

  stop(): Promise<void> {
    if (!this.stopping) this.stopping = this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    window.clearInterval(this.statusTimer);
    if (this.ended) return;
    if (this.stopBeforeStart()) return;
    this.emit('state', 'stopping');
    await this.stopCapture();
    this.finish(await this.endOnServer());
  }
}

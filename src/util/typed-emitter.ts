import { EventEmitter } from 'node:events';

/** An EventEmitter whose event names and listener signatures are checked by the compiler. */
export type EventMap = { [event: string]: (...args: any[]) => void };

export class TypedEmitter<E extends EventMap> {
  private readonly ee = new EventEmitter();

  constructor() {
    this.ee.setMaxListeners(50);
  }

  on<K extends keyof E & string>(event: K, listener: E[K]): this {
    this.ee.on(event, listener);
    return this;
  }

  once<K extends keyof E & string>(event: K, listener: E[K]): this {
    this.ee.once(event, listener);
    return this;
  }

  off<K extends keyof E & string>(event: K, listener: E[K]): this {
    this.ee.off(event, listener);
    return this;
  }

  protected emit<K extends keyof E & string>(event: K, ...args: Parameters<E[K]>): boolean {
    return this.ee.emit(event, ...args);
  }

  removeAllListeners(): this {
    this.ee.removeAllListeners();
    return this;
  }

  listenerCount<K extends keyof E & string>(event: K): number {
    return this.ee.listenerCount(event);
  }
}

import { EventEmitter } from 'node:events';

/** Any listener signature (an event map's values). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a listener may take any arguments; the map fixes them per event
export type Listener = (...args: any[]) => void;

/**
 * The constraint of an event map: every declared key is a listener. A mapped type over the map's own keys, not an
 * index signature, so it does not widen the map: `on('udpate', …)` on a map without `udpate` does not compile
 * (test/types/events.typetest.ts proves it).
 */
export type EventMap<E> = { [K in keyof E]: Listener };

/** An EventEmitter whose event names and listener signatures are checked by the compiler. */
export class TypedEmitter<E extends EventMap<E>> {
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

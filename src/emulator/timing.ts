/**
 * When the emulator's server messages go out, relative to each other and to the client's reads.
 *
 * - `spaced` (the default for tests): one write per message; nothing follows `setupComplete` until the first
 *   reply; a resumption handle after every turn. The calmest schedule a client can meet.
 * - `eager`: the schedule of a busy production server (models-and-setup.md §7). `setupComplete`, a resumable
 *   `sessionResumptionUpdate` and the setup's `usageMetadata` leave in one write, so the client reads them in one
 *   TCP read, before its `connect()` has even resolved; a goAway due at setup joins them; and every message
 *   produced in the same tick is coalesced into one write (a reply's last content with `generationComplete`,
 *   `turnComplete`, usage and the turn's handle).
 */
export type EmulatorTiming = 'spaced' | 'eager';

export const EMULATOR_TIMINGS: readonly EmulatorTiming[] = ['spaced', 'eager'];

export function isEmulatorTiming(v: string): v is EmulatorTiming {
  return (EMULATOR_TIMINGS as readonly string[]).includes(v);
}

/** The TCP socket under a WebSocket, as far as batching writes goes (`net.Socket` has both). */
export interface CorkableTransport {
  cork(): void;
  uncork(): void;
}

/**
 * Coalesces every frame written within one tick into a single TCP write: corks the socket at the first write of a
 * tick and uncorks it on the next tick (`ws` writes each frame synchronously when compression is off). A client
 * on loopback then receives those frames in one `data` event.
 */
export class WriteCoalescer {
  private corked = false;

  constructor(private readonly transport: CorkableTransport) {}

  /** Call before each frame written. */
  beforeWrite(): void {
    if (this.corked) return;
    this.corked = true;
    this.transport.cork();
    process.nextTick(() => {
      this.corked = false;
      this.transport.uncork();
    });
  }
}

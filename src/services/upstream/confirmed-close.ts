import type { UpstreamConnection } from './upstream-types';

export interface ConfirmedClose {
  /** Resolves true when the server answered our close (1005) within `waitMs` (the rotation's `closeWaitMs`). */
  confirmed: Promise<boolean>;
  /** Stops waiting: `confirmed` resolves false now (no-op once settled). */
  cancel(): void;
}

/**
 * Closes a connection and waits at most `waitMs` for the server's answer. An answered close means the server read
 * every frame sent before it; without an answer, audio in flight may be lost.
 */
export function closeAndConfirm(conn: UpstreamConnection, waitMs: number): ConfirmedClose {
  let finish: (confirmed: boolean) => void = () => {};
  const confirmed = new Promise<boolean>((resolve) => {
    let settled = false;
    finish = (ok) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), waitMs);
    conn.once('close', (info) => finish(info.byClient && info.code === 1005));
    conn.close();
  });
  return { confirmed, cancel: () => finish(false) };
}

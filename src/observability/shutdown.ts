import type http from 'node:http';
import type { SessionRegistry } from '../services/session/session-registry';

/** Resolves true once `pred()` holds, false after `ms` (checked every `pollMs`). */
export function waitFor(pred: () => boolean, ms: number, pollMs = 25): Promise<boolean> {
  if (pred()) return Promise.resolve(true);
  return new Promise((resolve) => {
    const deadline = Date.now() + ms;
    const timer = setInterval(() => {
      if (pred()) {
        clearInterval(timer);
        resolve(true);
      } else if (Date.now() >= deadline) {
        clearInterval(timer);
        resolve(false);
      }
    }, pollMs);
  });
}

/** Resolves true when the registry has no live session left, false after `ms`. Wakes on every session end. */
export function waitForSessionsToEnd(registry: SessionRegistry, ms: number): Promise<boolean> {
  if (registry.size === 0) return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (v: boolean) => {
      clearTimeout(timer);
      registry.off('ended', onEnded);
      resolve(v);
    };
    const onEnded = () => {
      if (registry.size === 0) done(true);
    };
    const timer = setTimeout(() => done(registry.size === 0), ms);
    registry.on('ended', onEnded);
  });
}

/**
 * Counts HTTP requests in flight, and while `draining()` asks keep-alive clients to reconnect
 * (`Connection: close`), so a load balancer moves them to another instance.
 */
export function trackHttpRequests(server: http.Server, draining: () => boolean): { readonly inFlight: number } {
  let inFlight = 0;
  server.on('request', (_req: http.IncomingMessage, res: http.ServerResponse) => {
    inFlight++;
    if (draining()) res.shouldKeepAlive = false;
    res.once('close', () => inFlight--);
  });
  return {
    get inFlight() {
      return inFlight;
    },
  };
}

import type { GoogleGenAI } from '@google/genai';

/**
 * The one place that reaches into `@google/genai`'s internals (2.32.0): `ai.live` keeps a TS-private
 * `webSocketFactory` whose `create(url, headers, callbacks)` opens the Live socket. We wrap it to see each raw
 * socket (abort a handshake that never settles, read `bufferedAmount`) and to filter frames before the SDK parses
 * them. test/upstream/sdk-patch.test.ts fails when the SDK changes any of this, so an upgrade cannot break it
 * silently; `patchLiveSocketFactory` also throws at construction time rather than patching nothing.
 */

/** The socket the SDK's factory returns (its `ws` is the Node `ws` WebSocket). */
export interface SdkLiveSocket<Raw = unknown> {
  ws?: Raw;
  close(): void;
}

/** The callbacks the SDK hands its socket factory. */
export interface SdkSocketCallbacks {
  onopen?: () => void;
  onmessage: (e: { data: unknown }) => void;
  onerror: (e: { message?: string; error?: unknown }) => void;
  onclose: (e: { code: number; reason: string }) => void;
}

export type SdkSocketCreate<Raw = unknown> = (url: string, headers: Record<string, string>, callbacks: SdkSocketCallbacks) => SdkLiveSocket<Raw>;

interface SdkSocketFactory<Raw> {
  create: SdkSocketCreate<Raw>;
}

/** The SDK no longer has the internals this patch relies on. */
export class SdkPatchError extends Error {
  constructor(what: string) {
    super(`@google/genai internals changed: ${what} (see src/services/upstream/sdk-patches/live-socket-factory.ts)`);
    this.name = 'SdkPatchError';
  }
}

function factoryOf<Raw>(ai: GoogleGenAI): SdkSocketFactory<Raw> {
  const live: unknown = ai.live;
  if (typeof live !== 'object' || live === null || !('webSocketFactory' in live)) throw new SdkPatchError('ai.live.webSocketFactory is gone');
  const factory: unknown = live.webSocketFactory;
  if (typeof factory !== 'object' || factory === null || !('create' in factory) || typeof factory.create !== 'function') {
    throw new SdkPatchError('ai.live.webSocketFactory.create is not a function');
  }
  return factory as SdkSocketFactory<Raw>;
}

/**
 * Replaces `ai.live`'s socket factory with `wrap(original)`: every Live socket this client opens is created by
 * the returned function. Throws `SdkPatchError` when the SDK's internals are not what this relies on.
 */
export function patchLiveSocketFactory<Raw = unknown>(ai: GoogleGenAI, wrap: (create: SdkSocketCreate<Raw>) => SdkSocketCreate<Raw>): void {
  const factory = factoryOf<Raw>(ai);
  const create = factory.create.bind(factory);
  factory.create = wrap(create);
}

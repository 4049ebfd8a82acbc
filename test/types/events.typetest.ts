/**
 * Compiled by `npm run typecheck` (never run): every `@ts-expect-error` below must meet an error, so the day an
 * event map widens again (an index signature, a loose constraint) and a misspelt event name compiles, the
 * typecheck fails with "Unused '@ts-expect-error' directive".
 */
import type { LiveSession } from '../../src/services/session/live-session';
import type { SessionRegistry } from '../../src/services/session/session-registry';
import type { ResilientUpstream } from '../../src/services/upstream/resilient-upstream';
import type { UpstreamConnection } from '../../src/services/upstream/upstream-types';
import type { SessionAudioDecoder } from '../../src/services/audio/session-audio-decoder';
import { TypedEmitter } from '../../src/util/typed-emitter';

interface ProbeEvents {
  update: (version: number) => void;
}

class Probe extends TypedEmitter<ProbeEvents> {
  fire(): void {
    this.emit('update', 1);
    // @ts-expect-error misspelt event name
    this.emit('updte', 1);
    // @ts-expect-error wrong argument type
    this.emit('update', 'one');
  }
}

export function misspeltNamesDoNotCompile(
  probe: Probe,
  session: LiveSession,
  registry: SessionRegistry,
  upstream: ResilientUpstream,
  connection: UpstreamConnection,
  decoder: SessionAudioDecoder,
): void {
  probe.on('update', (v) => void v.toFixed());
  // @ts-expect-error misspelt event name
  probe.on('udpate', () => undefined);

  session.on('update', (snap) => void snap.version);
  // @ts-expect-error misspelt event name
  session.on('udpate', () => undefined);
  // @ts-expect-error misspelt event name
  session.once('endd', () => undefined);

  registry.on('started', (s) => void s.id);
  // @ts-expect-error misspelt event name
  registry.on('startd', () => undefined);

  upstream.on('connected', (info) => void info.resumed);
  // @ts-expect-error misspelt event name
  upstream.on('conected', () => undefined);

  connection.on('close', (info) => void info.code);
  // @ts-expect-error misspelt event name
  connection.on('closed', () => undefined);

  // @ts-expect-error misspelt event name
  decoder.on('pcmm', () => undefined);
}

import { PerformanceObserver, constants, type PerformanceEntry } from 'node:perf_hooks';
import type { DecodeThreadMemory } from './decode-thread-protocol';

/**
 * A thread's view of its own memory (`process.memoryUsage()` in a worker reports the worker's isolate), with the
 * garbage collections it ran since `start`. Started by a decoding thread's entry; answers the `memory` message.
 */
export function startThreadMemoryProbe(): () => DecodeThreadMemory {
  const gcs = { scavenges: 0, fullGcs: 0 };
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = (e as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind;
      if (kind === constants.NODE_PERFORMANCE_GC_MINOR) gcs.scavenges++;
      else if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) gcs.fullGcs++;
    }
  });
  obs.observe({ entryTypes: ['gc'] });
  return () => {
    const m = process.memoryUsage();
    return { heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers, ...gcs };
  };
}

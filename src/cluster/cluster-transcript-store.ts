import type { TranscriptRecord } from '../services/conversation/transcript-types';
import type { MemoryTranscriptStore, TranscriptStore } from '../services/conversation/transcript-store';
import { isClusterUnavailable } from './cluster-errors';
import type { SessionRecordStore } from './session-records';

/**
 * The transcript store of an instance in cluster mode. The owner of a session keeps its transcript's copy beside
 * the session record in Redis (`ClusterSessions`: at turn boundaries and at the end, fenced by the ownership
 * epoch); this store reads that copy, so an ended session's transcript, or a dead owner's, reads the same on every
 * instance. `put` (the archive, on the instance where the session ended) keeps the local copy: it answers when the
 * Redis copy is missing (its last write failed) and while Redis is down for the sessions that ended here; any other
 * read while Redis is down fails with `CLUSTER_UNAVAILABLE` (503), never a wrong "not found".
 */
export class ClusterTranscriptStore implements TranscriptStore {
  constructor(
    private readonly records: SessionRecordStore,
    private readonly local: MemoryTranscriptStore,
  ) {}

  put(record: TranscriptRecord): Promise<void> {
    return this.local.put(record);
  }

  async get(owner: string, sessionId: string): Promise<TranscriptRecord | undefined> {
    try {
      return (await this.records.getTranscript({ principal: owner, sessionId })) ?? (await this.local.get(owner, sessionId));
    } catch (err) {
      if (!isClusterUnavailable(err)) throw err;
      const mine = await this.local.get(owner, sessionId);
      if (mine) return mine;
      throw err;
    }
  }
}

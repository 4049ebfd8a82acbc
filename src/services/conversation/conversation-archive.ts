import { compactEcho, type SetupEcho } from '../session-setup/effective-setup';
import type { TranscriptRecord } from './transcript-types';
import { randomUUID } from 'node:crypto';
import type { Principal } from '../auth/principal';
import { buildSessionEndedBody } from '../webhook/session-ended-event';
import type { WebhookSender } from '../webhook/webhook-sender';
import type { Logger } from '../../util/logger';
import type { SessionConversation } from './session-conversation';
import type { TranscriptStore } from './transcript-store';

/** The largest `session.ended` body sent (oldest turns are left out beyond it). */
export const MAX_WEBHOOK_BODY_BYTES = 1024 * 1024;

export interface ConversationArchiveOptions {
  store: TranscriptStore;
  /** `LIVE_AUDIO_WEBHOOK_URL` configured: each ended session is delivered as a signed `session.ended`. */
  webhook?: WebhookSender;
  logger: Logger;
}

/** How a session ended, as the archive needs it. */
export interface EndedSessionInfo {
  sessionId: string;
  owner: Principal;
  startedAt: number;
  endedAt: number;
  reason: string;
}

/**
 * What happens to a conversation when its session ends, whatever the cause: the transcript goes to the store
 * (readable for the retention time) and a `session.ended` webhook delivery is queued (when configured). Never
 * blocks the session path: the store write is awaited by nobody but the caller's log, the webhook is a queue.
 */
export class ConversationArchive {
  /** Archive runs not finished yet (shutdown waits for them before flushing the webhook queue). */
  private readonly pending = new Set<Promise<void>>();

  constructor(private readonly o: ConversationArchiveOptions) {}

  /** Records an ended session (see `archive`); tracked so `close` can wait for it. */
  sessionEnded(conversation: SessionConversation, info: EndedSessionInfo): Promise<void> {
    const run = this.archive(conversation, info).finally(() => this.pending.delete(run));
    this.pending.add(run);
    return run;
  }

  /**
   * Shutdown: waits for the archive runs under way, then lets the webhook sender deliver what it holds within
   * `deadlineMs` (backoffs are not waited for). Resolves with the deliveries left unsent.
   */
  async close(deadlineMs: number): Promise<number> {
    const t0 = Date.now();
    await Promise.allSettled([...this.pending]);
    const left = this.o.webhook ? await this.o.webhook.stop(Math.max(0, deadlineMs - (Date.now() - t0))) : 0;
    if (left > 0) this.o.logger.warn({ unsent: left }, 'session.ended deliveries left unsent at shutdown');
    return left;
  }

  /** Also called while sessions run, so a transcript can be read from the store (for a shared store later). */
  get store(): TranscriptStore {
    return this.o.store;
  }

  /**
   * A session ended without a conversation in this process (cluster mode: ended from its record after its owner
   * died): its stored transcript is archived and delivered like any other ended session's.
   */
  storedSessionEnded(record: TranscriptRecord, echo: SetupEcho, info: EndedSessionInfo): Promise<void> {
    const run = this.keep({ ...record, setup: compactEcho(echo) }, echo, info).finally(() => this.pending.delete(run));
    this.pending.add(run);
    return run;
  }

  private async archive(conversation: SessionConversation, info: EndedSessionInfo): Promise<void> {
    conversation.end(info.reason);
    await this.keep({ ...conversation.snapshot(), setup: compactEcho(conversation.echo) }, conversation.echo, info);
  }

  private async keep(record: TranscriptRecord, echo: SetupEcho, info: EndedSessionInfo): Promise<void> {
    try {
      await this.o.store.put(record);
    } catch (err) {
      this.o.logger.warn({ err, sessionId: info.sessionId }, 'transcript not stored');
    }
    const webhook = this.o.webhook;
    if (!webhook) return;
    const deliveryId = randomUUID();
    const { body } = buildSessionEndedBody(
      {
        deliveryId,
        sessionId: info.sessionId,
        owner: { id: info.owner.id, name: info.owner.username },
        startedAt: info.startedAt,
        endedAt: info.endedAt,
        reason: info.reason,
        setup: echo,
        transcript: record,
        usage: record.usage,
      },
      MAX_WEBHOOK_BODY_BYTES,
    );
    if (!webhook.enqueue('session.ended', body, deliveryId)) {
      this.o.logger.warn({ sessionId: info.sessionId }, 'session.ended webhook not queued');
    }
  }
}

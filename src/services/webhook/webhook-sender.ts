import { randomUUID } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { redactUrl, silentLogger, type Logger } from '../../util/logger';
import { TypedEmitter } from '../../util/typed-emitter';
import { DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, signWebhook, TIMESTAMP_HEADER } from './webhook-signature';

export interface WebhookSenderOptions {
  /** `LIVE_AUDIO_WEBHOOK_URL` (http or https). */
  url: string;
  /** `LIVE_AUDIO_WEBHOOK_SECRET`: signs every delivery; never logged. */
  secret: string;
  /** Attempts per delivery, the first included. Default 8. */
  maxAttempts?: number;
  /** Backoff with full jitter: attempt n waits a random time up to min(max, base · 2^(n-1)). Defaults 1 s / 5 min. */
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** One attempt (connect, send, response headers) must finish within this. Default 10 s. */
  attemptTimeoutMs?: number;
  /** Deliveries waiting (queued or backing off) at most; beyond, the oldest waiting one is dropped. Default 1,000. */
  maxQueue?: number;
  /** Memory of waiting bodies at most (2 bytes per character; the same rule). Default 32 MiB. */
  maxQueueBytes?: number;
  /** Deliveries in flight at once. Default 2. */
  concurrency?: number;
  logger?: Logger;
  /** [0, 1) source for the jitter (tests pass a seeded one). */
  random?: () => number;
}

export interface WebhookDelivery {
  id: string;
  event: string;
  body: string;
  /** What `body` holds in memory at most (2 bytes per UTF-16 unit): O(1), unlike measuring its UTF-8 size. */
  bytes: number;
  attempts: number;
}

/** What happened to deliveries (metrics and tests). */
export type WebhookEvents = {
  delivered: (d: WebhookDelivery, status: number) => void;
  /** One attempt failed; `retryInMs` undefined when it was the last or the failure is permanent. */
  attemptFailed: (d: WebhookDelivery, why: string, retryInMs: number | undefined) => void;
  /** Given up: attempts exhausted or a permanent refusal (4xx other than 408/429). */
  gaveUp: (d: WebhookDelivery, why: string) => void;
  /** Dropped unsent to keep the queue bounded (the receiver has been down for a while). */
  dropped: (d: WebhookDelivery) => void;
};

export interface WebhookStats {
  waiting: number;
  waitingBytes: number;
  inFlight: number;
  delivered: number;
  failedAttempts: number;
  gaveUp: number;
  dropped: number;
}

/** A failed attempt: retry or not. */
interface AttemptOutcome {
  ok: boolean;
  status?: number;
  why: string;
  retry: boolean;
  retryAfterMs?: number;
}

/**
 * Sends signed webhook deliveries in the background: `enqueue` returns at once (the session path never waits),
 * deliveries are retried with exponential backoff and full jitter, and what waits is bounded in count and bytes
 * (the oldest waiting delivery is dropped, counted, when a receiver has been down long enough to fill it). An
 * attempt is bounded in time; the response body is never read (a huge or endless answer costs nothing).
 */
export class WebhookSender extends TypedEmitter<WebhookEvents> {
  private readonly o: Required<Omit<WebhookSenderOptions, 'logger' | 'random'>>;
  private readonly log: Logger;
  private readonly random: () => number;
  private readonly target: URL;
  private readonly safeUrl: string;
  /** Ready to send now, oldest first. */
  private readonly ready: WebhookDelivery[] = [];
  /** Backing off until their timer fires. */
  private readonly backingOff = new Map<WebhookDelivery, NodeJS.Timeout>();
  private readonly inFlight = new Set<http.ClientRequest>();
  private inFlightCount = 0;
  private waitingBytes = 0;
  private stopped = false;
  private readonly counts = { delivered: 0, failedAttempts: 0, gaveUp: 0, dropped: 0 };
  private readonly agent: http.Agent;

  constructor(opts: WebhookSenderOptions) {
    super();
    this.target = new URL(opts.url);
    if (this.target.protocol !== 'http:' && this.target.protocol !== 'https:') throw new Error('LIVE_AUDIO_WEBHOOK_URL must be an http(s) URL');
    if (!opts.secret) throw new Error('LIVE_AUDIO_WEBHOOK_SECRET is required with LIVE_AUDIO_WEBHOOK_URL');
    this.o = {
      url: opts.url,
      secret: opts.secret,
      maxAttempts: Math.max(1, opts.maxAttempts ?? 8),
      backoffBaseMs: Math.max(1, opts.backoffBaseMs ?? 1000),
      backoffMaxMs: Math.max(1, opts.backoffMaxMs ?? 5 * 60_000),
      attemptTimeoutMs: Math.max(1, opts.attemptTimeoutMs ?? 10_000),
      maxQueue: Math.max(1, opts.maxQueue ?? 1000),
      maxQueueBytes: Math.max(1024, opts.maxQueueBytes ?? 32 * 1024 * 1024),
      concurrency: Math.max(1, opts.concurrency ?? 2),
    };
    this.log = (opts.logger ?? silentLogger).child({ component: 'webhook' });
    this.random = opts.random ?? Math.random;
    this.safeUrl = redactUrl(`${this.target.origin}${this.target.pathname}`);
    const Agent = this.target.protocol === 'https:' ? https.Agent : http.Agent;
    this.agent = new Agent({ keepAlive: true, maxSockets: this.o.concurrency });
  }

  /** Queues a delivery and returns at once; false when the sender is stopped. The body is signed per attempt. */
  enqueue(event: string, body: string, id: string = randomUUID()): boolean {
    if (this.stopped) return false;
    const d: WebhookDelivery = { id, event, body, bytes: body.length * 2, attempts: 0 };
    this.ready.push(d);
    this.waitingBytes += d.bytes;
    this.enforceBounds();
    this.pump();
    return true;
  }

  stats(): WebhookStats {
    return { waiting: this.ready.length + this.backingOff.size, waitingBytes: this.waitingBytes, inFlight: this.inFlightCount, ...this.counts };
  }

  /**
   * Shutdown: stops taking deliveries, waits up to `timeoutMs` for the ready and in-flight ones (backoffs are not
   * waited for), then aborts what is left. Resolves with what was still waiting.
   */
  async stop(timeoutMs = 5000): Promise<number> {
    this.stopped = true;
    for (const t of this.backingOff.values()) clearTimeout(t);
    const deadline = Date.now() + timeoutMs;
    while ((this.ready.length > 0 || this.inFlightCount > 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    const left = this.ready.length + this.backingOff.size + this.inFlightCount;
    for (const req of this.inFlight) req.destroy(new Error('webhook sender stopped'));
    this.ready.length = 0;
    this.backingOff.clear();
    this.waitingBytes = 0;
    this.agent.destroy();
    if (left > 0) this.log.warn({ url: this.safeUrl, undelivered: left }, 'webhook sender stopped with deliveries undelivered');
    return left;
  }

  // ---------------------------------------------------------------- internals

  private pump(): void {
    while (this.inFlightCount < this.o.concurrency && this.ready.length > 0) {
      const d = this.ready.shift()!;
      this.inFlightCount++;
      void this.attempt(d).then((outcome) => {
        this.inFlightCount--;
        this.settle(d, outcome);
        this.pump();
      });
    }
  }

  private settle(d: WebhookDelivery, r: AttemptOutcome): void {
    if (r.ok) {
      this.waitingBytes -= d.bytes;
      this.counts.delivered++;
      this.log.debug({ url: this.safeUrl, delivery: d.id, attempts: d.attempts, status: r.status }, 'webhook delivered');
      this.emit('delivered', d, r.status ?? 0);
      return;
    }
    this.counts.failedAttempts++;
    const last = !r.retry || d.attempts >= this.o.maxAttempts || this.stopped;
    if (last) {
      this.waitingBytes -= d.bytes;
      this.counts.gaveUp++;
      this.emit('attemptFailed', d, r.why, undefined);
      this.log.warn({ url: this.safeUrl, delivery: d.id, event: d.event, attempts: d.attempts, reason: r.why }, 'webhook delivery given up');
      this.emit('gaveUp', d, r.why);
      return;
    }
    const cap = Math.min(this.o.backoffMaxMs, this.o.backoffBaseMs * 2 ** (d.attempts - 1));
    const delay = Math.max(r.retryAfterMs ?? 0, Math.floor(this.random() * cap));
    this.emit('attemptFailed', d, r.why, delay);
    this.log.info({ url: this.safeUrl, delivery: d.id, attempt: d.attempts, reason: r.why, retryInMs: delay }, 'webhook attempt failed; retrying');
    const timer = setTimeout(() => {
      this.backingOff.delete(d);
      if (this.stopped) return;
      this.ready.push(d);
      this.pump();
    }, delay);
    timer.unref();
    this.backingOff.set(d, timer);
  }

  /** Drops the oldest waiting deliveries (backing off first, then ready) while over a bound. */
  private enforceBounds(): void {
    while (this.ready.length + this.backingOff.size > this.o.maxQueue || this.waitingBytes > this.o.maxQueueBytes) {
      let victim: WebhookDelivery | undefined;
      const oldestBackingOff = this.backingOff.keys().next();
      if (!oldestBackingOff.done) {
        victim = oldestBackingOff.value;
        clearTimeout(this.backingOff.get(victim)!);
        this.backingOff.delete(victim);
      } else if (this.ready.length > 1) {
        victim = this.ready.shift();
      }
      if (!victim) break; // the only one left is the newest: keep it
      this.waitingBytes -= victim.bytes;
      this.counts.dropped++;
      this.log.warn({ url: this.safeUrl, delivery: victim.id, event: victim.event }, 'webhook queue full; dropped the oldest waiting delivery');
      this.emit('dropped', victim);
    }
  }

  private attempt(d: WebhookDelivery): Promise<AttemptOutcome> {
    d.attempts++;
    const ts = Math.floor(Date.now() / 1000);
    const body = Buffer.from(d.body);
    const mod = this.target.protocol === 'https:' ? https : http;
    return new Promise<AttemptOutcome>((resolve) => {
      let done = false;
      const finish = (r: AttemptOutcome) => {
        if (done) return;
        done = true;
        clearTimeout(deadline);
        this.inFlight.delete(req);
        resolve(r);
      };
      const req = mod.request(this.target, {
        method: 'POST',
        agent: this.agent,
        headers: {
          'content-type': 'application/json',
          'content-length': body.length,
          'user-agent': 'live-audio-webhook/1',
          [EVENT_HEADER]: d.event,
          [DELIVERY_HEADER]: d.id,
          [TIMESTAMP_HEADER]: String(ts),
          [SIGNATURE_HEADER]: signWebhook(this.o.secret, ts, d.body),
        },
      });
      this.inFlight.add(req);
      const deadline = setTimeout(() => {
        req.destroy();
        finish({ ok: false, why: `no answer within ${this.o.attemptTimeoutMs} ms`, retry: true });
      }, this.o.attemptTimeoutMs);
      req.on('response', (res) => {
        const status = res.statusCode ?? 0;
        // The answer's body is never read: a slow, endless or huge answer costs one socket, closed now.
        res.destroy();
        req.destroy();
        if (status >= 200 && status < 300) return finish({ ok: true, status, why: 'ok', retry: false });
        const retry = status >= 500 || status === 408 || status === 429;
        const ra = Number(res.headers['retry-after']);
        const retryAfterMs = Number.isFinite(ra) && ra > 0 ? Math.min(ra * 1000, this.o.backoffMaxMs) : undefined;
        finish({ ok: false, status, why: `HTTP ${status}`, retry, retryAfterMs });
      });
      req.on('error', (err: NodeJS.ErrnoException) => finish({ ok: false, why: err.code ?? 'connection error', retry: true }));
      req.end(body);
    });
  }
}

import { Transcript } from '../../src/services/conversation';
import { fromUsageMetadata } from '../../src/services/usage';
import {
  buildSessionEndedBody,
  signWebhook,
  verifyWebhook,
  WebhookSender,
  type SessionEndedEvent,
} from '../../src/services/webhook';
import { createLogger } from '../../src/util/logger';
import { prng } from '../ops/helpers';
import { LogCapture } from '../helpers/log-capture';
import { startReceiver } from './receiver';

const SECRET = 'whsec_0123456789abcdef0123456789abcdef';

function sessionEnded(turns = 2, text = 'hello') {
  const t = new Transcript({ sessionId: 'interview_1', owner: 'key:alice', startedAt: Date.parse('2026-12-01T10:00:00Z') });
  t.greetingSent();
  t.replyText('Welcome.');
  t.turnComplete();
  for (let i = 0; i < turns; i++) {
    t.userText(`${text} ${i}`);
    t.replyText(`reply ${i}`);
    t.turnComplete();
    t.usage({ promptTokenCount: 10, responseTokenCount: 5, totalTokenCount: 15 });
  }
  t.end('client');
  const transcript = t.snapshot();
  return {
    deliveryId: 'd-1',
    sessionId: 'interview_1',
    owner: { id: 'key:alice', name: 'alice' },
    startedAt: transcript.startedAt,
    endedAt: transcript.endedAt!,
    reason: 'client',
    setup: null,
    transcript,
    usage: transcript.usage,
  };
}

describe('webhook signatures', () => {
  it('sign over timestamp + body; receivers refuse tampering, stale timestamps and malformed headers', () => {
    const body = '{"type":"session.ended"}';
    const ts = 1_800_000_000;
    const sig = signWebhook(SECRET, ts, body);
    expect(sig).toMatch(/^v1=[0-9a-f]{64}$/);
    const v = (o: Partial<Parameters<typeof verifyWebhook>[0]>) => verifyWebhook({ secret: SECRET, body, signature: sig, timestamp: String(ts), nowSec: ts + 10, ...o });
    expect(v({})).toEqual({ ok: true });
    expect(v({ body: `${body} ` })).toEqual({ ok: false, reason: 'mismatch' });
    expect(v({ secret: 'other' })).toEqual({ ok: false, reason: 'mismatch' });
    // Replaying an old body with a new timestamp breaks the signature; with the old one it is stale.
    expect(v({ timestamp: String(ts + 600), nowSec: ts + 600 })).toEqual({ ok: false, reason: 'mismatch' });
    expect(v({ nowSec: ts + 301 })).toEqual({ ok: false, reason: 'stale' });
    expect(v({ signature: undefined })).toEqual({ ok: false, reason: 'missing' });
    expect(v({ signature: 'v1=zz' })).toEqual({ ok: false, reason: 'malformed' });
  });
});

describe('session.ended body', () => {
  it('carries id, owner, times, reason, setup, transcript and usage', () => {
    const { event, body } = buildSessionEndedBody(sessionEnded(), 1024 * 1024);
    expect(JSON.parse(body)).toEqual(event);
    expect(event.data).toMatchObject({
      session_id: 'interview_1',
      owner: { id: 'key:alice', name: 'alice' },
      started_at: '2026-12-01T10:00:00.000Z',
      reason: 'client',
      transcript_truncated: false,
      usage: { totalTokens: 30 },
    });
    expect(event.data.transcript.turns).toHaveLength(3);
  });

  it('stays within the size cap by leaving out the oldest turns, and says so', () => {
    const { event, body } = buildSessionEndedBody(sessionEnded(400, 'x'.repeat(2000)), 64 * 1024);
    expect(Buffer.byteLength(body)).toBeLessThanOrEqual(64 * 1024);
    expect(event.data.transcript_truncated).toBe(true);
    expect(event.data.transcript.turns.at(-1)?.userText).toMatch(/ 399$/);
    expect(event.data.transcript.droppedTurns).toBe(401 - event.data.transcript.turns.length);
  });
});

describe('WebhookSender against a real local receiver', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  const logs = new LogCapture();
  const logger = createLogger({ level: 'debug', pretty: false, destination: logs });

  function sender(url: string, o: Partial<ConstructorParameters<typeof WebhookSender>[0]> = {}) {
    const s = new WebhookSender({ url, secret: SECRET, backoffBaseMs: 20, backoffMaxMs: 200, attemptTimeoutMs: 2000, logger, ...o });
    cleanups.push(() => s.stop(100));
    return s;
  }

  const seed = Number(process.env.WEBHOOK_SEED ?? Date.now() % 100_000);
  it(`delivers a signed session.ended after the receiver failed the first attempts (backoff with jitter seed ${seed}, one delivery id)`, async () => {
    const rx = await startReceiver(SECRET, (n, _req, res) => res.writeHead(n <= 2 ? 503 : 200).end(n <= 2 ? 'try later' : 'ok'));
    cleanups.push(() => rx.stop());
    const s = sender(rx.url, { random: prng(seed) });
    const retries: number[] = [];
    s.on('attemptFailed', (_d, _why, retryIn) => retries.push(retryIn ?? -1));
    const delivered = new Promise<number>((resolve) => s.on('delivered', (d) => resolve(d.attempts)));
    const { body } = buildSessionEndedBody(sessionEnded(), 1024 * 1024);
    const t0 = performance.now();
    expect(s.enqueue('session.ended', body, 'delivery-42')).toBe(true);
    expect(performance.now() - t0).toBeLessThan(50); // never blocks the session path
    expect(await delivered).toBe(3);
    expect(rx.received).toHaveLength(3);
    expect(rx.received.every((r) => r.verified)).toBe(true);
    expect(new Set(rx.received.map((r) => r.headers['x-live-audio-delivery']))).toEqual(new Set(['delivery-42']));
    expect(rx.received[0].headers['x-live-audio-event']).toBe('session.ended');
    const event = JSON.parse(rx.received[2].body) as SessionEndedEvent;
    expect(event.data.transcript.turns.map((t) => t.replyText)).toEqual(['Welcome.', 'reply 0', 'reply 1']);
    // Full jitter: each wait is within its exponential cap (20 ms, 40 ms).
    expect(retries).toHaveLength(2);
    expect(retries[0]).toBeLessThanOrEqual(20);
    expect(retries[1]).toBeLessThanOrEqual(40);
    expect(s.stats()).toMatchObject({ delivered: 1, failedAttempts: 2, waiting: 0, waitingBytes: 0 });
  });

  it('a receiver that hangs: each attempt is cut at its deadline, retried, then given up; no socket left open', async () => {
    const rx = await startReceiver(SECRET, () => undefined); // never answers
    cleanups.push(() => rx.stop());
    const s = sender(rx.url, { attemptTimeoutMs: 150, maxAttempts: 3 });
    const gaveUp = new Promise<string>((resolve) => s.on('gaveUp', (_d, why) => resolve(why)));
    const t0 = performance.now();
    s.enqueue('session.ended', '{}');
    expect(await gaveUp).toBe('no answer within 150 ms');
    const ms = performance.now() - t0;
    expect(ms).toBeGreaterThanOrEqual(3 * 150);
    expect(ms).toBeLessThan(3 * 150 + 3 * 200 + 2000); // deadlines + backoffs + a loaded machine's margin
    expect(rx.received).toHaveLength(3);
    const deadline = Date.now() + 2000;
    while (rx.openSockets() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(rx.openSockets()).toBe(0);
  });

  it('a slow, huge answer is not read: delivered as soon as the status arrives', async () => {
    let written = 0;
    const rx = await startReceiver(SECRET, (_n, _req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const chunk = Buffer.alloc(64 * 1024, 1);
      const timer = setInterval(() => {
        if (res.destroyed || written > 100 * 1024 * 1024) return clearInterval(timer);
        written += chunk.length;
        res.write(chunk);
      }, 5);
      res.on('close', () => clearInterval(timer));
    });
    cleanups.push(() => rx.stop());
    const s = sender(rx.url);
    const delivered = new Promise<number>((resolve) => s.on('delivered', (_d, status) => resolve(status)));
    s.enqueue('session.ended', '{"big":false}');
    expect(await delivered).toBe(200);
    await new Promise((r) => setTimeout(r, 200));
    expect(written).toBeLessThan(4 * 1024 * 1024); // the sender hung up; the receiver could not push 100 MB
  });

  it('a permanent refusal (4xx) is not retried', async () => {
    const rx = await startReceiver(SECRET, (_n, _req, res) => res.writeHead(410).end());
    cleanups.push(() => rx.stop());
    const s = sender(rx.url);
    const why = await new Promise<string>((resolve) => {
      s.on('gaveUp', (_d, w) => resolve(w));
      s.enqueue('session.ended', '{}');
    });
    expect(why).toBe('HTTP 410');
    expect(rx.received).toHaveLength(1);
  });

  it('a receiver that is down: 5,000 deliveries never block and never grow memory past the queue bounds', async () => {
    const rx = await startReceiver(SECRET, () => undefined);
    const url = rx.url;
    await rx.stop(); // nothing listens there any more: ECONNREFUSED
    const s = sender(url, { maxQueue: 100, maxQueueBytes: 1024 * 1024, backoffBaseMs: 50, backoffMaxMs: 1000 });
    const body = JSON.stringify({ pad: 'p'.repeat(10_000) });
    const t0 = performance.now();
    for (let i = 0; i < 5000; i++) s.enqueue('session.ended', body);
    const ms = performance.now() - t0;
    const st = s.stats();
    expect(st.waiting + st.inFlight).toBeLessThanOrEqual(100 + 2);
    expect(st.waitingBytes).toBeLessThanOrEqual(1024 * 1024 + 2 * 2 * body.length);
    expect(st.dropped).toBeGreaterThanOrEqual(5000 - 102);
    expect(ms).toBeLessThan(2000); // measured ~60 ms: enqueue is O(1) amortised
  });

  it('never logs the secret, and logs the URL without its query (a token in it stays out)', async () => {
    const rx = await startReceiver(SECRET, (n, _req, res) => res.writeHead(n === 1 ? 500 : 200).end());
    cleanups.push(() => rx.stop());
    const s = sender(`${rx.url}?token=sekrit-query-token`);
    await new Promise<void>((resolve) => {
      s.on('delivered', () => resolve());
      s.enqueue('session.ended', '{"x":1}');
    });
    expect(logs.text).toContain('webhook attempt failed; retrying');
    expect(logs.text).not.toContain(SECRET);
    expect(logs.text).not.toContain('sekrit-query-token');
    expect(rx.received.at(-1)?.verified).toBe(true);
  });

  it('refuses to start without a secret or with a non-http URL', () => {
    expect(() => new WebhookSender({ url: 'http://127.0.0.1:1/x', secret: '' })).toThrow(/SECRET is required/);
    expect(() => new WebhookSender({ url: 'file:///etc/passwd', secret: 's' })).toThrow(/http\(s\) URL/);
  });
});

test('the body usage is the sum of the per-turn usage', () => {
  const input = sessionEnded(3);
  expect(buildSessionEndedBody(input, 1 << 20).event.data.usage.totalTokens).toBe(3 * fromUsageMetadata({ totalTokenCount: 15 }).totalTokens);
});

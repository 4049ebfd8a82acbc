/**
 * A real process holding a WebhookSender (the building block the server will host): it enqueues `count` deliveries
 * of `bytes` each, as fast as it can, to a receiver that hangs, and reports its memory and the sender's stats.
 */
import { WebhookSender } from '../../src/services/webhook';

const [url, count, bytes] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
const sender = new WebhookSender({ url, secret: 'host-secret-value', attemptTimeoutMs: 300, backoffBaseMs: 50, backoffMaxMs: 500, maxQueue: 200, maxQueueBytes: 16 * 1024 * 1024 });
const report = (phase: string) => process.stdout.write(`${JSON.stringify({ phase, rss: process.memoryUsage().rss, ...sender.stats() })}\n`);
report('start');
const pad = 'x'.repeat(bytes);
const t0 = performance.now();
for (let i = 0; i < count; i++) {
  sender.enqueue('session.ended', `{"i":${i},"pad":"${pad}"}`);
  if (i % 500 === 0) report('enqueue');
}
process.stdout.write(`${JSON.stringify({ phase: 'enqueued', ms: performance.now() - t0 })}\n`);
setTimeout(() => {
  report('end');
  void sender.stop(100).then(() => process.exit(0));
}, 2000);

/**
 * One node of the forwarding benchmark, as its own process. ROLE=owner: a guarded HTTP server answering a
 * /transcribe-sized POST with a small JSON (what an owner does, minus the session work). ROLE=front: registers
 * nothing, forwards every request to instance `owner` through the Forwarder (peer directory in Redis).
 * Env: ROLE, PORT, REDIS_URL, SECRET, KEY_PREFIX. Prints "ready".
 */
import http from 'node:http';
import { ClusterGuard } from '../../src/cluster/cluster-guard';
import { Forwarder } from '../../src/cluster/forwarder';
import { InstanceRegistry } from '../../src/cluster/instance-registry';
import { RedisConnection } from '../../src/cluster/redis-connection';

async function main(): Promise<void> {
  const port = Number(process.env.PORT);
  const connection = new RedisConnection({ url: process.env.REDIS_URL!, keyPrefix: process.env.KEY_PREFIX });
  connection.start();
  await connection.waitUntilConnected(10_000);
  const role = process.env.ROLE;
  const registry = new InstanceRegistry({ connection, instanceId: role, advertiseUrl: `http://127.0.0.1:${port}` });
  await registry.start();
  const guard = new ClusterGuard(process.env.SECRET!);
  const forwarder = new Forwarder({ selfId: String(role), secret: process.env.SECRET!, peers: registry });
  const server = http.createServer((req, res) => {
    guard.middleware()(req, res, () => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        if (role === 'owner') {
          const out = JSON.stringify({ success: true, transcript: 'hello there', data: { bytes: body.length, turnComplete: false } });
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) });
          res.end(out);
          return;
        }
        forwarder.forward('owner', { incoming: req, body }, res).catch((err: Error) => {
          res.writeHead(503, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ success: false, error: err.message, code: 'CLUSTER_UNAVAILABLE' }));
        });
      });
    });
  });
  server.keepAliveTimeout = 30_000;
  server.listen(port, '127.0.0.1', () => console.log('ready'));
}

void main();

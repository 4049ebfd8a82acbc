/**
 * ClusterNode, the building blocks together, against a real redis-server: two nodes with their own HTTP servers
 * see each other; a call for a session landing on the non-owner is forwarded to the owner (which answers from its
 * record); when the owner leaves, the other node takes the session over (exactly the flow the door will run);
 * a node started while Redis is down starts anyway, reports `down`, then registers once Redis is there.
 */
import http from 'node:http';
import { ClusterNode, type ClusterSettings } from '../../src/cluster';
import { startRedis, type RedisServer } from '../helpers/redis-server';
import { freePort } from '../helpers/system-binary';

const SECRET = 's'.repeat(16) + '-cluster-node-secret-0123456789';
let redis: RedisServer;
const stops: (() => Promise<void>)[] = [];

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.close();
});
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s();
});

interface Node {
  node: ClusterNode;
  url: string;
}

/** A node plus a tiny HTTP front: local sessions answered here, others forwarded to their owner, dead owners taken over. */
async function startNode(id: string, extra: Partial<ClusterSettings> = {}): Promise<Node> {
  const port = await freePort();
  const settings: ClusterSettings = {
    redisUrl: redis.url,
    secret: SECRET,
    instanceId: id,
    host: '127.0.0.1',
    port,
    keyPrefix: 'node:',
    heartbeatIntervalMs: 200,
    missedHeartbeats: 3,
    maxForwardBodyBytes: 1024 * 1024,
    tombstoneMs: 60_000,
    maxSessionsPerPrincipal: 5,
    ...extra,
  };
  const node = new ClusterNode(settings);
  const server = http.createServer((req, res) => {
    node.guard.middleware()(req, res, () => {
      void (async () => {
        const sessionId = (req.url ?? '').split('/').pop()!;
        const ref = { principal: 'key:alice', sessionId };
        try {
          let rec = await node.records.get(ref);
          if (!rec || rec.status !== 'live') {
            res.writeHead(404).end(JSON.stringify({ code: 'SESSION_NOT_FOUND' }));
            return;
          }
          if (rec.owner !== node.id) {
            if (await node.registry.isAlive(rec.owner)) {
              await node.forwarder.forward(rec.owner, { incoming: req, body: Buffer.alloc(0) }, res);
              return;
            }
            const t = await node.records.takeOver(ref, rec.owner, node.id);
            if (!t.taken) {
              res.writeHead(503).end(JSON.stringify({ code: 'CLUSTER_UNAVAILABLE' }));
              return;
            }
            rec = (await node.records.get(ref))!;
          }
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ servedBy: node.id, epoch: rec.epoch, handle: rec.resumptionHandle }));
        } catch (err) {
          res.writeHead(503).end(JSON.stringify({ code: 'CLUSTER_UNAVAILABLE', error: (err as Error).message }));
        }
      })();
    });
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  await node.start(2000);
  stops.push(async () => {
    await node.stop();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });
  return { node, url: `http://127.0.0.1:${port}` };
}

async function until(cond: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > ms) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

it('a call on the non-owner is forwarded to the owner; after the owner leaves, the other node takes the session over', async () => {
  const a = await startNode('node-a');
  const b = await startNode('node-b');
  await until(() => a.node.registry.peers().length === 1 && b.node.registry.peers().length === 1, 3000, 'the nodes see each other');
  expect(a.node.connection.readiness().state).toBe('connected');

  const created = await a.node.records.create({ principal: 'key:alice', sessionId: 's1', owner: 'node-a', setup: {}, resumptionHandle: 'h-1', maxAgeMs: 60_000 });
  expect(created.created).toBe(true);

  const viaB = (await (await fetch(`${b.url}/session/s1`)).json()) as { servedBy: string };
  expect(viaB.servedBy).toBe('node-a'); // forwarded: the owner answered

  await a.node.stop(); // a leaves (its heartbeat key is deleted at once)
  const after = (await (await fetch(`${b.url}/session/s1`)).json()) as { servedBy: string; epoch: number; handle: string };
  expect(after).toEqual({ servedBy: 'node-b', epoch: 2, handle: 'h-1' }); // taken over, with the stored handle
});

it('started while Redis is down: starts anyway, reports down, registers once Redis is back', async () => {
  await redis.stop();
  try {
    const a = await startNode('node-late');
    expect(a.node.connection.readiness().state).toBe('down');
    expect(a.node.registry.registered).toBe(false);
    const r = await fetch(`${a.url}/session/x`);
    expect(r.status).toBe(503);
    await redis.restart();
    await until(() => a.node.registry.registered, 5000, 'registered after Redis came back');
    expect(a.node.connection.readiness().state).toBe('connected');
  } finally {
    if (!redis.pid) await redis.restart();
  }
});

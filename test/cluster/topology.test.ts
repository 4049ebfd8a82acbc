/**
 * The cluster's test topology, for real: one redis-server, one emulator, three server processes, Debian's nginx
 * in front from deploy/nginx/live-audio.conf.template (plain round-robin, no stickiness). Proves the harness:
 * every instance answers, nginx spreads requests over all three, a WebSocket upgrade goes through nginx to an
 * instance and on to the emulator, an instance killed with SIGKILL is routed around, and everything is stopped
 * by PID. The template itself is checked against a plain echo server: client-sent cluster headers are dropped,
 * X-Forwarded-For is set, bodies up to the legal maximum pass and larger ones are refused.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { processAlive } from '../ops/helpers';
import { connect, wsUrl } from '../helpers/ws-test-client';
import { startCluster, type TestCluster, stopClusterLeavingNone } from '../helpers/cluster';
import { startNginx, type NginxLoadBalancer } from '../helpers/nginx';
import { timedGet } from '../helpers/spawned-server';

jest.setTimeout(120_000);

describe('three instances behind nginx', () => {
  let cluster: TestCluster;

  beforeAll(async () => {
    cluster = await startCluster({ instances: 3, nginx: true });
  }, 120_000);

  afterAll(async () => {
    if (!cluster) return;
    expect(await stopClusterLeavingNone(cluster)).toEqual([]);
  });

  const portOf = (upstream: string) => Number(upstream.split(',').pop()!.trim().split(':').pop());

  it('each instance answers /health itself, on its own port, sharing one Redis and one emulator', async () => {
    expect(cluster.instances.map((i) => i.id)).toEqual(['inst-1', 'inst-2', 'inst-3']);
    for (const inst of cluster.instances) {
      expect(inst.server.url).toBe(inst.advertiseUrl);
      expect((await timedGet(`${inst.advertiseUrl}/health`)).status).toBe(200);
    }
    expect(new Set(cluster.instances.map((i) => i.port)).size).toBe(3);
  });

  it('nginx spreads requests round-robin over all three (no stickiness)', async () => {
    const before = cluster.nginx!.accessLog().length;
    for (let i = 0; i < 30; i++) expect((await timedGet(`${cluster.url}/health`)).status).toBe(200);
    // authenticated REST through nginx: every instance accepts the shared keys
    for (let i = 0; i < 6; i++) {
      const r = await fetch(`${cluster.url}/api/v1/live-audio/sessions`, { headers: { 'X-API-Key': cluster.keys.alice } });
      expect(r.status).toBe(200);
    }
    // nginx writes a request's log line just after its answer: wait for the last one
    const deadline = Date.now() + 5000;
    while (cluster.nginx!.accessLog().length < before + 36 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const served = cluster.nginx!.accessLog().slice(before);
    expect(served).toHaveLength(36);
    const perPort = new Map<number, number>();
    for (const e of served) perPort.set(portOf(e.upstream), (perPort.get(portOf(e.upstream)) ?? 0) + 1);
    console.log(`36 requests through nginx per instance port: ${JSON.stringify(Object.fromEntries(perPort))}`);
    expect([...perPort.keys()].sort()).toEqual(cluster.instances.map((i) => i.port).sort());
    for (const count of perPort.values()) expect(count).toBeGreaterThanOrEqual(8);
  });

  it('a WebSocket upgrade goes through nginx; the session reaches the emulator', async () => {
    const ws = await connect(wsUrl(cluster.url, { token: cluster.keys.alice }));
    try {
      await ws.waitFor((m) => m.type === 'auth_success', 10_000);
      const started = await ws.ask({ type: 'start_session', session_id: 'topology_ws', response_modality: 'text' }, ['session_started', 'error'], 15_000);
      expect(started.type).toBe('session_started');
      await ws.ask({ type: 'end_session' }, ['session_ended'], 10_000);
    } finally {
      await ws.close();
    }
    expect(cluster.emulator.connections.length).toBeGreaterThanOrEqual(1);
    // nginx logs an upgraded connection when it closes
    const deadline = Date.now() + 5000;
    const upgraded = () => cluster.nginx!.accessLog().filter((e) => e.status === 101 && e.request.includes('/ws/live-audio'));
    while (upgraded().length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(upgraded()).toHaveLength(1);
  });

  it('an instance killed with SIGKILL is routed around: every request still answered', async () => {
    const victim = cluster.instances[2];
    victim.server.child.kill('SIGKILL');
    await victim.server.exited;
    const statuses: (number | string)[] = [];
    for (let i = 0; i < 12; i++) statuses.push((await timedGet(`${cluster.url}/health`)).status);
    expect(statuses).toEqual(Array(12).fill(200));
  });
});

describe('the nginx template, over a plain echo server', () => {
  let nginx: NginxLoadBalancer;
  let echo: http.Server;
  let seen: { headers: http.IncomingHttpHeaders; bytes: number }[] = [];

  beforeAll(async () => {
    echo = http.createServer((req, res) => {
      let bytes = 0;
      req.on('data', (c: Buffer) => (bytes += c.length));
      req.on('end', () => {
        seen.push({ headers: req.headers, bytes });
        res.end(JSON.stringify({ bytes }));
      });
    });
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    nginx = await startNginx({ upstreamPorts: [(echo.address() as AddressInfo).port] });
  });

  afterAll(async () => {
    if (nginx) {
      const pid = nginx.pid;
      await nginx.stop();
      expect(processAlive(pid)).toBe(false);
    }
    echo.closeAllConnections();
    await new Promise((r) => echo.close(r));
  });

  beforeEach(() => {
    seen = [];
  });

  it('drops client-sent cluster headers, sets X-Forwarded-For, keeps the client headers', async () => {
    const r = await fetch(`${nginx.url}/api/v1/live-audio/sessions`, {
      headers: {
        'X-API-Key': 'ak_x',
        'X-Live-Audio-Cluster-Secret': 'guess',
        'X-Live-Audio-Forwarded-By': 'inst-1',
        'X-Live-Audio-Client-Ip': '10.6.6.6',
        'X-Forwarded-For': '198.51.100.7',
      },
    });
    expect(r.status).toBe(200);
    const h = seen[0].headers;
    expect(h['x-api-key']).toBe('ak_x');
    expect(h['x-live-audio-cluster-secret']).toBeUndefined();
    expect(h['x-live-audio-forwarded-by']).toBeUndefined();
    expect(h['x-live-audio-client-ip']).toBeUndefined();
    expect(h['x-forwarded-for']).toBe('198.51.100.7, 127.0.0.1');
    expect(h.connection).toBeUndefined(); // keep-alive to the instances
  });

  it('passes a body of the largest legal /transcribe size, refuses a larger one (413) without passing it on', async () => {
    const legal = Buffer.alloc(Math.ceil((5 * 1024 * 1024 * 4) / 3) + 64 * 1024, 0x61);
    const ok = await fetch(`${nginx.url}/api/v1/live-audio/transcribe`, { method: 'POST', body: legal, headers: { 'content-type': 'application/json' } });
    expect(ok.status).toBe(200);
    expect(seen[0].bytes).toBe(legal.length);
    const tooBig = await fetch(`${nginx.url}/api/v1/live-audio/transcribe`, { method: 'POST', body: Buffer.alloc(8 * 1024 * 1024 + 1), headers: { 'content-type': 'application/json' } });
    expect(tooBig.status).toBe(413);
    expect(seen).toHaveLength(1);
  });
});

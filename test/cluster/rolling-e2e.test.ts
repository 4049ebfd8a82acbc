/**
 * Rolling deploy, for real: three server processes sharing a real redis-server behind Debian's nginx
 * (round-robin). A WebSocket client streams speech (the 22 s Chromium recording's decode, as 16 kHz PCM, in real
 * time) through nginx while every instance in turn gets SIGTERM and is replaced by a new process on the same
 * port. The instance serving the session hands it over: the client gets `reconnect`, holds its audio, reconnects
 * through nginx and resumes the session on whichever instance it lands on; the upstream is resumed with the
 * stored handle. No session is dropped and no audio is lost: the emulator receives exactly the bytes sent, in
 * order.
 */
import { scriptedScenario } from '../../src/emulator';
import { referenceDecode } from '../helpers/ffmpeg';
import { loadRecording } from '../helpers/fixtures';
import { startCluster, type ClusterInstance, type TestCluster, stopClusterLeavingNone } from '../helpers/cluster';
import { spawnServer } from '../helpers/spawned-server';
import { prng } from '../ops/helpers';
import { connect, type WsTestClient, wsUrl, type Msg } from '../helpers/ws-test-client';

jest.setTimeout(240_000);

const speech = referenceDecode(Buffer.concat(loadRecording('chromium-long-22s').chunks));
const SEED = Number(process.env.TEST_SEED ?? Date.now() % 100_000);
const PIECE = 3200; // 100 ms of 16 kHz mono s16le
const ENV = { LIVE_AUDIO_HEARTBEAT_INTERVAL_MS: '300', LIVE_AUDIO_MISSED_HEARTBEATS: '3' };

let cluster: TestCluster;
const replacements: { stop(): Promise<void>; pid: number }[] = [];

beforeAll(async () => {
  cluster = await startCluster({ instances: 3, nginx: true, env: ENV });
  cluster.emulator.setScenario(scriptedScenario([], { fallback: { userTranscript: 'hello', reply: 'Hi there.' } }));
}, 240_000);

afterAll(async () => {
  for (const r of replacements) await r.stop();
  if (!cluster) return;
  expect(await stopClusterLeavingNone(cluster, replacements.map((r) => r.pid))).toEqual([]);
});

/** The client side of a rolling deploy: on `reconnect`, hold the audio, reconnect anywhere and resume. */
class ResumingClient {
  probe: WsTestClient | undefined;
  streaming = false;
  reconnects = 0;
  readonly errors: Msg[] = [];
  readonly held: Buffer[] = [];
  sent = 0;
  ended: Msg | undefined;

  constructor(
    private readonly url: string,
    private readonly sessionId: string,
  ) {}

  async connect(resume: boolean): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      let p: WsTestClient | undefined;
      let answer: Msg;
      try {
        p = await connect(this.url);
        await p.waitFor((m) => m.type === 'auth_success', 10_000);
        answer = await p.ask(
          { type: 'start_session', session_id: this.sessionId, response_modality: 'text', ...(resume ? { resume: true } : {}) },
          ['session_started', 'error'],
          15_000,
        );
      } catch (err) {
        // The socket went away with the instance it landed on (closed 1001 while it drained).
        answer = { type: 'closed', code: (err as Error).message.slice(0, 80) };
      }
      if (p && answer.type === 'session_started') {
        if (resume) expect(answer.data).toMatchObject({ resumed: true });
        this.probe = p;
        p.ws.on('message', (d) => this.onMessage(JSON.parse(d.toString()) as Msg));
        this.streaming = true;
        for (const b of this.held.splice(0)) this.push(b);
        return;
      }
      // Landed on an instance that is going away itself (or before the old one let go): try again.
      this.errors.push(answer);
      await p?.close();
      if (attempt > 20) throw new Error(`could not resume: ${JSON.stringify(this.errors.slice(-3))}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  private onMessage(m: Msg): void {
    if (m.type === 'reconnect') {
      expect(m).toEqual({ type: 'reconnect', session_id: this.sessionId, data: { sessionId: this.sessionId, action: 'reconnect and resume' } });
      this.streaming = false;
      this.reconnects++;
      const old = this.probe!;
      this.probe = undefined;
      void old.close().then(() => this.connect(true));
    } else if (m.type === 'session_ended') {
      this.ended = m;
    }
  }

  /** Sends (or holds while reconnecting) one piece of PCM. */
  push(pcm: Buffer): void {
    if (!this.streaming || !this.probe?.isOpen) {
      this.held.push(pcm);
      return;
    }
    this.probe.sendIfOpen({ type: 'audio_chunk', audio_data: pcm.toString('base64'), format: 'pcm', sample_rate: 16000, channels: 1 });
    this.sent += pcm.length;
  }
}

it(`a WebSocket session streams through a restart of every instance: reconnect, resume anywhere, nothing lost (seed ${SEED})`, async () => {
  const rnd = prng(SEED);
  const sessionId = `ws_rolling_${Date.now()}`;
  const pcmBefore = cluster.emulator.receivedPcm().length;
  const connsBefore = cluster.emulator.connections.length;
  const client = new ResumingClient(wsUrl(cluster.url, { token: cluster.keys.alice }), sessionId);
  await client.connect(false);

  // Real-time audio, 100 ms per piece, with a little jitter, looping over the recording.
  let offset = 0;
  let streaming = true;
  const pump = (async () => {
    while (streaming) {
      const piece = Buffer.from(speech.subarray(offset, offset + PIECE));
      offset = (offset + PIECE) % (speech.length - PIECE);
      client.push(piece);
      await new Promise((r) => setTimeout(r, 80 + rnd() * 40));
    }
  })();

  // The model has answered once (and issued a resumption handle) before the deploy begins.
  await cluster.emulator.waitFor(() => (cluster.emulator.connections[connsBefore]?.handlesIssued ?? 0) > 0, 20_000);

  // Rolling restart: each instance gets SIGTERM and is replaced on the same port (nginx keeps its upstream list).
  const restart = async (inst: ClusterInstance, n: number) => {
    await new Promise((r) => setTimeout(r, 1500 + rnd() * 1000));
    const t0 = Date.now();
    await inst.server.stop(30_000);
    const exited = await inst.server.exited;
    expect(exited.signal === null ? exited.code : exited.signal).toBe(0); // drained and exited by itself
    const next = await spawnServer({
      geminiBaseUrl: cluster.emulator.baseUrl,
      keys: cluster.keys,
      env: {
        PORT: String(inst.port),
        REDIS_URL: cluster.redis.url,
        LIVE_AUDIO_INSTANCE_ID: `${inst.id}-r${n}`,
        LIVE_AUDIO_ADVERTISE_URL: inst.advertiseUrl,
        LIVE_AUDIO_CLUSTER_SECRET: cluster.secret,
        TRUST_PROXY: 'loopback',
        ...ENV,
      },
    });
    replacements.push(next);
    console.log(`${inst.id} stopped and replaced in ${Date.now() - t0} ms (handed over so far: ${client.reconnects})`);
  };
  for (const [n, inst] of cluster.instances.entries()) await restart(inst, n);
  await new Promise((r) => setTimeout(r, 1500));
  streaming = false;
  await pump;

  // Every byte sent reached the emulator once and in order (the framer may still hold < 20 ms).
  await cluster.emulator.waitFor(() => cluster.emulator.receivedPcm().length - pcmBefore >= client.sent - 640, 20_000);
  const received = cluster.emulator.receivedPcm().subarray(pcmBefore);
  const conns = cluster.emulator.connections.slice(connsBefore);
  console.log(
    `sent ${client.sent / 32} ms, emulator received ${received.length / 32} ms over ${conns.length} upstream connections ` +
      `(${conns.map((c) => `${c.id}${c.resumedFrom ? ' resumed' : ''}:${c.audioBytes / 32}ms`).join(', ')}); client reconnects ${client.reconnects}, retries ${client.errors.map((e) => (e.data as { code?: string })?.code ?? e.code).join(',') || 'none'}`,
  );
  expect(client.ended).toBeUndefined();
  expect(client.reconnects).toBeGreaterThanOrEqual(1);
  expect(client.sent - received.length).toBeGreaterThanOrEqual(0);
  expect(client.sent - received.length).toBeLessThan(640);
  const sentBytes = Buffer.concat(sentLog(client)).subarray(0, received.length);
  expect(received.equals(sentBytes)).toBe(true);
  // One upstream per owner, each later one resumed with the stored handle.
  expect(conns.length).toBe(client.reconnects + 1);
  for (const c of conns.slice(1)) expect(c.resumedFrom).toBeDefined();
  await client.probe?.ask({ type: 'end_session' }, ['session_ended'], 10_000);
});

/** The PCM the client sent, in order: the recording looped from its start, `sent` bytes of it. */
function sentLog(client: ResumingClient): Buffer[] {
  const out: Buffer[] = [];
  let left = client.sent;
  let offset = 0;
  while (left > 0) {
    const piece = speech.subarray(offset, offset + Math.min(PIECE, left));
    out.push(piece);
    left -= piece.length;
    offset = (offset + PIECE) % (speech.length - PIECE);
  }
  return out;
}

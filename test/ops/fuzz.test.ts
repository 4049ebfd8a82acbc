/**
 * Proof against bad input, on a real spawned server process: a seeded (deterministic) generator throws ≥ 10,000
 * bad HTTP requests and ≥ 5,000 bad WebSocket frames at it — wrong types, missing and extra fields, huge and
 * empty strings, invalid base64, truncated and bit-flipped WebM, WAV headers that lie, random bytes, binary
 * frames, unknown message types, broken and deeply nested JSON, odd methods, paths, headers and credentials.
 *
 * Asserted: no 5xx (REST) and no INTERNAL_ERROR / 1011 (WebSocket); every refusal in the common error shape; the
 * process never crashes and never logs an error; it still answers afterwards; after cleanup no session, no
 * ffmpeg child and no upstream connection is left; heap back near its start (after full GCs forced through the
 * inspector, with a tolerance for the bounded state the server keeps by design: tombstones of ended sessions,
 * limiter windows). The WebSocket part asserts invariants only (no 5xx-like error, no crash, no leak), not the
 * exact replies before authentication.
 *
 * Seed: FUZZ_SEED (default below) — every failure message carries the seed and the request that caused it.
 */
import http from 'node:http';
import request from 'supertest';
import { InspectorSession, inspectorUrl } from '../../bench/inspector-gc';
import { startGeminiLiveEmulator, type GeminiLiveEmulator } from '../../src/emulator';
import { signAccessToken } from '../helpers/jwt';
import { loadRecording } from '../helpers/fixtures';
import { spawnServer, type SpawnedServer } from '../helpers/spawned-server';
import { sleep } from '../helpers/test-server';
import { childProcesses, prng, setProcessTreePriority } from './helpers';
import { connect, type WsTestClient, wsUrl, type Msg } from '../helpers/ws-test-client';

const API = '/api/v1/live-audio';
const SEED = Number(process.env.FUZZ_SEED ?? 20250717);
const HTTP_CASES = 10_000;
const WS_FRAMES = 5_000;
const CONCURRENCY = 8;
const JWT_SECRET = 'fuzz-secret-that-is-long-enough-for-hs256-0123456789';

/** The fuzz target: a spawned server, its upstream emulator (in this process) and a way to read its insides. */
interface Target {
  s: SpawnedServer;
  emu: GeminiLiveEmulator;
  url: string;
  port: number;
  keys: { alice: string; bob: string };
  jwtFor(userId: number, username: string): string;
}

/** One sample of the server's Prometheus text: `name{labels}` → value. */
async function scrape(url: string): Promise<(name: string, labels?: string) => number> {
  const text = await fetch(`${url}/metrics`).then((r) => r.text());
  return (name, labels = '') => {
    const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
    return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
  };
}

// ------------------------------------------------------------------------------------------------ generators

const rec = loadRecording('chromium-hello-1000ms');

class Gen {
  readonly r: () => number;
  constructor(seed: number) {
    this.r = prng(seed);
  }
  int(a: number, b: number): number {
    return a + Math.floor(this.r() * (b - a + 1));
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.r() * xs.length)];
  }
  chance(p: number): boolean {
    return this.r() < p;
  }
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i += 4) {
      const v = Math.floor(this.r() * 4294967296);
      for (let k = 0; k < 4 && i + k < n; k++) b[i + k] = (v >>> (8 * k)) & 0xff;
    }
    return b;
  }
  str(n: number): string {
    const alphabet = 'abcXYZ019 _-.:/\\"\'{}[]<>%&?=#\u0000\u00e9\u4e2d\ud83d\ude00\n\t';
    let s = '';
    for (let i = 0; i < n; i++) s += alphabet[Math.floor(this.r() * alphabet.length)];
    return s;
  }

  /** Any JSON-ish value of a wrong type. */
  junk(depth = 0): unknown {
    switch (this.int(0, 14)) {
      case 0: return null;
      case 1: return this.chance(0.5);
      case 2: return this.int(-1e9, 1e9);
      case 3: return this.pick([0, -1, 1.5, 1e308, -1e308, Number.MAX_SAFE_INTEGER + 2]);
      case 4: return '';
      case 5: return ' ';
      case 6: return this.str(this.int(1, 40));
      case 7: return 'x'.repeat(this.int(1_000, 60_000));
      case 8: return depth > 2 ? [] : Array.from({ length: this.int(0, 4) }, () => this.junk(depth + 1));
      case 9: return depth > 2 ? {} : this.obj(depth + 1);
      case 10: return { __proto__: { polluted: true }, constructor: { prototype: { polluted: true } } };
      case 11: return this.pick(['NaN', 'Infinity', '-0', '1e999', '0x10', 'true', 'null', 'undefined']);
      case 12: return this.audio();
      case 13: return [this.audio()];
      default: return this.pick(['webm', 'wav', 'pcm', 'WEBM', 'mp3', 'ogg', 'webm; codecs=opus', 'audio/webm']);
    }
  }

  obj(depth = 0): Record<string, unknown> {
    const o: Record<string, unknown> = {};
    for (let i = 0, n = this.int(0, 4); i < n; i++) o[this.pick(['a', 'session_id', 'audio_data', 'type', '__proto__', 'constructor', this.str(5)])] = this.junk(depth + 1);
    return o;
  }

  sessionId(pool: string[]): unknown {
    switch (this.int(0, 9)) {
      case 0: case 1: case 2: case 3: return this.pick(pool);
      case 4: return `fz_${this.int(0, 999)}`;
      case 5: return 'x'.repeat(this.pick([128, 129, 5000]));
      case 6: return this.pick(['', ' ', '../../etc/passwd', 'a b', 'é', 'a/b', '%00', 'session_1_\u0000']);
      case 7: return this.junk();
      case 8: return undefined;
      default: return this.str(this.int(1, 20));
    }
  }

  /** Bad (or occasionally good) audio payloads, as the base64 strings clients send. */
  audio(): string {
    const b64 = (b: Buffer) => b.toString('base64');
    switch (this.int(0, 15)) {
      case 0: return this.pick(['!!!', 'A', 'AA=', '====', 'QUJD\u0000', '@@@@', 'AAAA====AAAA', 'Zm9v YmFy\n', '-_-_', 'data:audio/webm,AAAA', 'data:;base64,']);
      case 1: return b64(this.bytes(this.int(0, 4000)));
      case 2: return b64(rec.chunks[0].subarray(0, this.int(0, rec.chunks[0].length)));
      case 3: case 4: return b64(this.flip(rec.chunks[0], this.int(1, 40)));
      case 5: return b64(this.flip(this.pick(rec.chunks.slice(1)), this.int(0, 20)));
      case 6: return b64(this.pick(rec.chunks.slice(1)).subarray(this.int(0, 3000)));
      case 7: case 8: return b64(this.lyingWav());
      case 9: return b64(this.bytes(this.pick([1, 3, 31999, 32001])));
      case 10: return `data:audio/webm;codecs=opus;base64,${b64(this.bytes(this.int(1, 500)))}`;
      case 11: return b64(Buffer.concat([Buffer.from([0x1a, 0x45, 0xdf, 0xa3]), this.bytes(this.int(0, 3000))]));
      case 12: return b64(this.bytes(this.int(100_001, 120_000))); // over the decoded cap
      case 13: return b64(this.bytes(this.int(1, 100))).replace(/=+$/, '');
      case 14: return b64(this.bytes(this.int(1, 100))).replace(/\+/g, '-').replace(/\//g, '_');
      default: return b64(rec.chunks[0]); // a valid header now and then, so later chunks reach ffmpeg
    }
  }

  flip(buf: Buffer, bits: number): Buffer {
    const b = Buffer.from(buf);
    for (let i = 0; i < bits; i++) {
      const at = this.int(0, b.length - 1);
      b[at] ^= 1 << this.int(0, 7);
    }
    return b;
  }

  lyingWav(): Buffer {
    const data = this.bytes(this.int(0, 4000));
    const h = Buffer.alloc(44);
    h.write(this.pick(['RIFF', 'RIFF', 'RF64', 'RIFX', 'JUNK']), 0, 'latin1');
    h.writeUInt32LE(this.pick([0, 36 + data.length, 0xffffffff, 12]), 4);
    h.write(this.pick(['WAVE', 'WAVE', 'AVI ']), 8, 'latin1');
    h.write(this.pick(['fmt ', 'fmt ', 'data', 'LIST']), 12, 'latin1');
    h.writeUInt32LE(this.pick([16, 18, 40, 0, 1, 0xffffffff]), 16);
    h.writeUInt16LE(this.pick([1, 3, 0xfffe, 0x55, 0]), 20);
    h.writeUInt16LE(this.pick([1, 2, 0, 255, 65535]), 22);
    h.writeUInt32LE(this.pick([16000, 48000, 0, 1, 7999, 192001, 0xffffffff]), 24);
    h.writeUInt32LE(this.pick([32000, 0, 0xffffffff]), 28);
    h.writeUInt16LE(this.pick([2, 4, 0, 3, 65535]), 32);
    h.writeUInt16LE(this.pick([16, 8, 24, 32, 0, 7, 64]), 34);
    h.write(this.pick(['data', 'data', 'fact', 'junk']), 36, 'latin1');
    h.writeUInt32LE(this.pick([data.length, 0, 0xffffffff, data.length + 1000, 1]), 40);
    return Buffer.concat([h.subarray(0, this.pick([44, 44, 44, 20, 36, 43])), data]);
  }
}

// ------------------------------------------------------------------------------------------------ HTTP cases

interface HttpCase {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
}

function httpCase(g: Gen, t: Target, pools: Record<'alice' | 'bob', string[]>): HttpCase {
  const who = g.pick(['alice', 'alice', 'bob'] as const);
  const auth = ((): Record<string, string> => {
    switch (g.int(0, 11)) {
      case 0: return {};
      case 1: return { 'X-API-Key': 'ak_' + '0'.repeat(64) };
      case 2: return { 'X-API-Key': g.str(g.int(0, 80)).replace(/[^\x20-\x7e]/g, 'x') };
      case 3: return { Authorization: `Bearer ${g.pick(['eyJhbGciOiJub25lIn0.eyJ1c2VySWQiOjF9.', 'garbage', '', t.jwtFor(1, 'x') + 'x'])}` };
      case 4: return { Authorization: g.pick(['Basic YTpi', 'Bearer', 'bearer  a b', 'x'.repeat(5000)]) };
      default: return { 'X-API-Key': t.keys[who] };
    }
  })();
  const pool = pools[who];
  const json = (v: unknown) => Buffer.from(JSON.stringify(v) ?? 'null');
  const headers: Record<string, string> = { ...auth };
  const ct = g.pick(['application/json', 'application/json', 'application/json', 'application/json; charset=utf-8', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/json; charset=latin1', '']);
  if (ct) headers['Content-Type'] = ct;
  if (g.chance(0.05)) headers['X-Forwarded-For'] = g.pick(['1.2.3.4', 'garbage', '::1, 10.0.0.1']);
  if (g.chance(0.05)) headers['Origin'] = g.pick(['https://evil.example', 'null', 'https://app.example.com', 'http://localhost:5173']);
  if (g.chance(0.03)) headers['Content-Encoding'] = g.pick(['gzip', 'br', 'identity', 'x-junk']);
  if (g.chance(0.03)) headers['X-Request-Id'] = g.str(g.int(0, 100)).replace(/[^\x20-\x7e]/g, 'x');

  const kind = g.int(0, 19);
  const audioFields = () => {
    const o: Record<string, unknown> = { session_id: g.sessionId(pool), audio_data: g.chance(0.85) ? g.audio() : g.junk() };
    if (g.chance(0.7)) o.format = g.chance(0.8) ? g.pick(['webm', 'wav', 'pcm']) : g.junk();
    if (g.chance(0.3)) o.sample_rate = g.chance(0.5) ? g.pick([16000, 48000, 8000, 192000]) : g.junk();
    if (g.chance(0.3)) o.channels = g.chance(0.5) ? g.pick([1, 2]) : g.junk();
    if (g.chance(0.2)) Object.assign(o, g.obj());
    if (g.chance(0.1)) delete o[g.pick(['session_id', 'audio_data'])];
    return o;
  };
  const startFields = () => {
    const o: Record<string, unknown> = { session_id: g.sessionId([`fz_${g.int(0, 20)}`, ...pool]) };
    for (const f of ['model', 'response_modality', 'input_transcription', 'output_transcription']) if (g.chance(0.4)) o[f] = g.chance(0.5) ? g.pick(['gemini-2.5-pro', 'audio', 'text', true, false]) : g.junk();
    if (g.chance(0.2)) Object.assign(o, g.obj());
    return o;
  };
  switch (kind) {
    case 0: case 1: case 2: case 3: case 4: case 5: case 6: case 7:
      return { method: 'POST', path: `${API}/transcribe`, headers, body: json(audioFields()) };
    case 8: case 9:
      return { method: 'POST', path: `${API}/${g.pick(['session/start', 'streaming/start'])}`, headers, body: json(startFields()) };
    case 10:
      return { method: 'POST', path: `${API}/session/end`, headers, body: json(g.chance(0.7) ? { session_id: g.sessionId(pool) } : g.junk()) };
    case 11: {
      const id = g.sessionId(pool);
      const enc = (v: string) => {
        try {
          return encodeURIComponent(v);
        } catch {
          return encodeURIComponent(v.replace(/[\ud800-\udfff]/g, '?')); // lone surrogates
        }
      };
      const seg = typeof id === 'string' ? g.pick([enc(id), id.replace(/[^\x21-\x7e]/g, '_'), '%E0%A4%A', '%', '..%2F..', '%00']) : enc(String(id));
      return { method: g.pick(['GET', 'GET', 'HEAD', 'POST', 'DELETE']), path: `${API}/session/${seg}/status`, headers };
    }
    case 12:
      return { method: g.pick(['GET', 'POST', 'HEAD', 'OPTIONS']), path: `${API}/sessions${g.pick(['', '?token=abc', '?x=%', '?a[b][c]=1&a=2'])}`, headers, body: g.chance(0.3) ? json(g.junk()) : undefined };
    case 13: {
      // Broken JSON bodies.
      const valid = JSON.stringify(audioFields());
      const body = g.pick([
        valid.slice(0, g.int(0, Math.max(0, valid.length - 1))),
        '{"session_id": tru',
        '[' .repeat(g.int(10, 6000)),
        '{"a":' .repeat(g.int(10, 3000)),
        '\u0000\u0001\u0002',
        '"just a string"',
        '12345',
        'null',
        '{"session_id":"a","session_id":"b"}',
        '\ufeff{"session_id":"x"}',
      ]);
      return { method: 'POST', path: `${API}/${g.pick(['transcribe', 'session/start', 'session/end'])}`, headers: { ...headers, 'Content-Type': 'application/json' }, body: Buffer.from(body) };
    }
    case 14:
      return { method: 'POST', path: `${API}/${g.pick(['transcribe', 'session/start'])}`, headers, body: g.bytes(g.int(0, 3000)) };
    case 15:
      // Huge strings: over the (lowered) JSON cap → 413.
      return { method: 'POST', path: `${API}/transcribe`, headers: { ...headers, 'Content-Type': 'application/json' }, body: json({ session_id: g.pick(pool), audio_data: 'A'.repeat(g.int(300_000, 400_000)) }) };
    case 16:
      return { method: g.pick(['PUT', 'DELETE', 'PATCH', 'TRACE', 'OPTIONS', 'GET']), path: `${API}/${g.pick(['transcribe', 'session/start', 'session/end', 'nope', ''])}`, headers, body: g.chance(0.5) ? json(audioFields()) : undefined };
    case 17:
      return { method: 'GET', path: g.pick(['/', '/health', '/ready', '/metrics', '/%', '/..%2f..%2fetc/passwd', '/api', '/api/v1/live-audio/', '/ws/live-audio', `/${g.str(10).replace(/[^\x21-\x7e]/g, '_')}`]), headers };
    default:
      return { method: 'POST', path: `${API}/transcribe`, headers, body: json(g.junk()) };
  }
}

const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });

function send(port: number, c: HttpCase): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: c.method, path: c.path, headers: { ...c.headers, ...(c.body ? { 'Content-Length': String(c.body.length) } : {}) }, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(15_000, () => req.destroy(new Error('timeout')));
    req.end(c.body);
  });
}

// ------------------------------------------------------------------------------------------------ WS frames

function wsFrame(g: Gen, pool: string[]): string | Buffer {
  const types = ['auth', 'api_key', 'bearer', 'start_session', 'audio_chunk', 'end_session', 'get_status', 'get_rate_limits', 'text', 'image', 'interrupt', 'ping'];
  switch (g.int(0, 19)) {
    case 0: return g.bytes(g.int(0, 2000)); // binary frame
    case 1: return g.str(g.int(0, 200)); // not JSON
    case 2: return JSON.stringify(g.junk()); // JSON, not an object
    case 3: return JSON.stringify({ type: g.chance(0.5) ? g.junk() : g.str(g.int(0, 30)), ...g.obj() }); // unknown type
    case 4: return JSON.stringify({ ...g.obj(), type: g.pick(types) }); // known type, junk fields
    case 5: return '{"type":"audio_chunk","audio_data":' .repeat(g.int(1, 500)); // broken JSON
    case 6: return JSON.stringify({ type: g.pick(['auth', 'api_key', 'bearer']), token: g.chance(0.5) ? g.junk() : g.str(g.int(0, 100)), auth_type: g.junk() });
    case 7: return JSON.stringify({ type: 'start_session', session_id: g.sessionId(pool), model: g.chance(0.5) ? g.junk() : 'gemini-2.5-pro', response_modality: g.chance(0.7) ? g.pick(['text', 'audio', 'TEXT']) : g.junk(), keep_alive_on_close: g.chance(0.2) ? true : g.junk(), resume: g.chance(0.3) });
    case 8: return JSON.stringify({ type: 'text', text: g.chance(0.5) ? g.junk() : 'y'.repeat(g.int(0, 20_000)) });
    case 9: return JSON.stringify({ type: 'image', image_data: g.chance(0.5) ? g.audio() : g.junk(), mime_type: g.junk() });
    case 10: return JSON.stringify({ type: g.pick(['end_session', 'get_status', 'interrupt', 'ping', 'get_rate_limits']), session_id: g.sessionId(pool) });
    default: {
      const o: Record<string, unknown> = { type: 'audio_chunk', audio_data: g.chance(0.9) ? g.audio() : g.junk() };
      if (g.chance(0.6)) o.format = g.chance(0.8) ? g.pick(['webm', 'wav', 'pcm']) : g.junk();
      if (g.chance(0.3)) o.sample_rate = g.junk();
      if (g.chance(0.2)) o.channels = g.junk();
      if (g.chance(0.2)) o.session_id = g.sessionId(pool);
      return JSON.stringify(o);
    }
  }
}

// ------------------------------------------------------------------------------------------------ the run

describe(`fuzz on a spawned server (seed ${SEED})`, () => {
  let t: Target;
  let inspector: InspectorSession;
  const pools = { alice: ['fz_a_0', 'fz_a_1', 'fz_a_2'], bob: ['fz_b_0', 'fz_b_1'] };
  let heapBefore = 0;

  /** Heap used after forced full GCs (the server's own gauge). */
  async function heapAfterGc(): Promise<number> {
    await inspector.collectGarbage();
    await inspector.collectGarbage();
    return (await scrape(t.url))('live_audio_process_memory_bytes', '{kind="heap_used"}');
  }

  beforeAll(async () => {
    const emu = await startGeminiLiveEmulator({ apiKeys: ['test-gemini-key'] });
    const s = await spawnServer({
      geminiBaseUrl: emu.baseUrl,
      nodeArgs: ['--import', 'tsx', '--inspect=127.0.0.1:0'],
      env: {
        // Counts the server's ffmpeg children at the end: the warm decoder pool (its processes look the same) is off.
        LIVE_AUDIO_DECODER_POOL_SIZE: '0',
        JWT_SECRET,
        CORS_ORIGINS: 'https://app.example.com',
        GEMINI_SETUP_TIMEOUT_MS: '3000',
        LIVE_AUDIO_TRANSCRIBE_WAIT_MS: '0',
        LIVE_AUDIO_JSON_LIMIT: '256kb',
        LIVE_AUDIO_MAX_CHUNK_BYTES: '100000',
        LIVE_AUDIO_MAX_REQUESTS_PER_MINUTE: '0',
        LIVE_AUDIO_MAX_TRANSCRIPTIONS_PER_MINUTE: '0',
        LIVE_AUDIO_MAX_SESSION_CREATES_PER_MINUTE: '400',
        LIVE_AUDIO_MAX_AUDIO_SECONDS_PER_MINUTE: '0',
        LIVE_AUDIO_MAX_REQUESTS_PER_IP_PER_MINUTE: '100000',
        LIVE_AUDIO_MAX_MESSAGES_PER_MINUTE: '1000000',
        LIVE_AUDIO_MAX_CONNECTIONS_PER_IP_PER_MINUTE: '100000',
        LIVE_AUDIO_MAX_SESSIONS_PER_USER: '6',
        LIVE_AUDIO_AUTH_TIMEOUT_MS: '60000',
      },
    });
    // The fuzz asserts no timing: its server yields the CPU to the timing-sensitive suites that jest runs in the
    // other worker at the same time (raising a child's niceness needs no privilege). The whole server: every thread,
    // its ffmpeg launcher (started at boot, before this) and the decoders it forks (os.setPriority(pid) alone would
    // lower only the main thread, and the launcher's ffmpegs would run at 0, ahead of the suites they should yield to).
    setProcessTreePriority(s.pid, 10);
    t = {
      s,
      emu,
      url: s.url,
      port: s.port,
      keys: s.keys,
      jwtFor: (userId, username) => signAccessToken(JWT_SECRET, { userId, username }),
    };
    inspector = await InspectorSession.connect(inspectorUrl(s.output())!);
    await restartPools();
    // Warm-up (JIT, lazy modules) before the heap baseline.
    for (let i = 0; i < 30; i++) await request(t.url).post(`${API}/transcribe`).set('X-API-Key', t.keys.alice).send({ session_id: 'fz_a_0', audio_data: 'AAAA', format: 'pcm' });
    heapBefore = await heapAfterGc();
  }, 60_000);
  afterAll(async () => {
    agent.destroy();
    inspector?.close();
    await t?.s.stop();
    await t?.emu.stop();
  });

  async function restartPools() {
    for (const who of ['alice', 'bob'] as const) {
      for (const id of pools[who]) {
        const st = await request(t.url).get(`${API}/session/${id}/status`).set('X-API-Key', t.keys[who]);
        if (st.body?.data?.status !== 'active') await request(t.url).post(`${API}/session/start`).set('X-API-Key', t.keys[who]).send({ session_id: id });
      }
    }
  }

  const failures: string[] = [];
  const check = (what: string, ok: boolean, detail: () => string) => {
    if (!ok && failures.length < 20) failures.push(`seed ${SEED}: ${what}: ${detail()}`);
  };

  it(`${HTTP_CASES} bad HTTP requests: no 5xx, every refusal in the common JSON shape`, async () => {
    const g = new Gen(SEED);
    const statuses = new Map<number, number>();
    let next = 0;
    const worker = async () => {
      while (next < HTTP_CASES) {
        const i = next++;
        // Generated when claimed: the sequence stays deterministic (claims are sequential).
        const c = httpCase(g, t, pools);
        if (i > 0 && i % 500 === 0) await restartPools();
        let res;
        try {
          res = await send(t.port, c);
        } catch (err) {
          check(`#${i} transport`, false, () => `${(err as Error).message} for ${c.method} ${c.path.slice(0, 80)}`);
          continue;
        }
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        const show = () => `#${i} ${c.method} ${c.path.slice(0, 80)} ${JSON.stringify(c.headers).slice(0, 120)} body=${c.body?.toString().slice(0, 160)} → ${res.status} ${res.body.slice(0, 200)}`;
        check('5xx', res.status < 500, show);
        check('no stack', !/\bat .+\.(ts|js):\d+/.test(res.body), show);
        // (GET / serves the browser test page; errors are never HTML.)
        if (res.status >= 400) check('no HTML error page', !/<html|<pre>/i.test(res.body), show);
        if (res.status >= 400 && c.method !== 'HEAD') {
          let body: { success?: unknown; error?: unknown; code?: unknown } = {};
          try {
            body = JSON.parse(res.body);
          } catch {
            body = {};
          }
          check('error shape', /json/.test(String(res.headers['content-type'])) && body.success === false && typeof body.error === 'string' && typeof body.code === 'string', show);
          if (res.status === 429 || res.status === 503) check('Retry-After', res.status === 503 || Number(res.headers['retry-after']) >= 1, show);
        }
      }
    };
    const t0 = Date.now();
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    const summary = [...statuses.entries()].sort((a, b) => a[0] - b[0]).map(([st, n]) => `${st}:${n}`).join(' ');
    const m = await scrape(t.url);
    const spawned = m('live_audio_ffmpeg_processes_spawned_total');
    // WebM recordings are decoded in-process (the default): those decoder starts are counted apart.
    const inProcess = m('live_audio_in_process_decoders_started_total');
    console.log(`fuzz seed ${SEED}: ${HTTP_CASES} HTTP cases in ${Date.now() - t0} ms; statuses ${summary}; ffmpeg spawned ${spawned}, in-process decoders ${inProcess}`);
    expect(failures).toEqual([]);
    expect([...statuses.values()].reduce((a, b) => a + b, 0)).toBe(HTTP_CASES);
    // The generator reached the decoders, the validators and the limits, not just the 404 handler.
    for (const st of [200, 400, 401, 404, 413, 415, 422]) expect(statuses.get(st) ?? 0).toBeGreaterThan(0);
    expect(spawned + inProcess).toBeGreaterThanOrEqual(10);
    expect(t.s.child.exitCode).toBeNull();
  }, 240_000);

  it(`${WS_FRAMES} bad WebSocket frames: no INTERNAL_ERROR, no 1011, the endpoint keeps serving`, async () => {
    const g = new Gen(SEED + 1);
    const seen: Msg[] = [];
    const closes: number[] = [];
    let refusedUpgrades = 0;
    let sock: WsTestClient | undefined;
    const open = async (): Promise<WsTestClient> => {
      const authed = g.chance(0.8);
      for (let attempt = 0; ; attempt++) {
        try {
          return await connect(wsUrl(t.url, authed ? { token: t.keys.alice } : {}));
        } catch (err) {
          // A refused upgrade (e.g. a per-user connection cap while earlier sockets close) is a 4xx, not a failure.
          const m = /upgrade refused: (\d+)/.exec((err as Error).message);
          check('upgrade refused with 5xx', !!m && Number(m[1]) < 500, () => (err as Error).message);
          refusedUpgrades++;
          if (attempt >= 20) throw err;
          await sleep(50);
        }
      }
    };
    const retire = async (p: WsTestClient) => {
      await p.close();
      seen.push(...p.messages);
      if (p.closeInfo) closes.push(p.closeInfo.code);
    };
    const t0 = Date.now();
    for (let i = 0; i < WS_FRAMES; i++) {
      if (!sock || !sock.isOpen || g.chance(0.01)) {
        if (sock) await retire(sock);
        sock = await open();
      }
      sock.sendIfOpen(wsFrame(g, pools.alice));
      if (i % 50 === 49) {
        // Oversized frame now and then (over maxPayload: the socket is closed by `ws`, 1009).
        if (g.chance(0.1)) sock.sendIfOpen(Buffer.alloc(3 * 1024 * 1024, 0x41));
        await sleep(5);
      }
    }
    if (sock) await retire(sock);
    const closeCounts = closes.reduce<Record<number, number>>((m, c) => ((m[c] = (m[c] ?? 0) + 1), m), {});
    console.log(`fuzz seed ${SEED}: ${WS_FRAMES} WS frames in ${Date.now() - t0} ms; ${seen.length} server messages; closes ${JSON.stringify(closeCounts)}; refused upgrades ${refusedUpgrades}`);
    expect(failures).toEqual([]);
    const internal = seen.filter((m) => m.code === 'INTERNAL_ERROR' || m.type === '__unparseable__');
    expect(internal.slice(0, 5)).toEqual([]);
    expect(closes.filter((c) => c === 1011)).toEqual([]);
    expect(seen.some((m) => m.type === 'error')).toBe(true);
    // Still serving: a fresh client gets its pong.
    const probe = await connect(wsUrl(t.url, { token: t.keys.bob }));
    await probe.waitFor((m) => m.type === 'auth_success');
    expect((await probe.ask({ type: 'ping' }, ['pong'])).type).toBe('pong');
    await probe.close();
    expect(t.s.child.exitCode).toBeNull();
  }, 240_000);

  it('afterwards: the process never crashed or logged an error, answers, and has no session, ffmpeg child or upstream left; the heap is back near its start', async () => {
    expect(t.s.child.exitCode).toBeNull();
    expect((await request(t.url).get('/health')).status).toBe(200);
    expect((await request(t.url).get('/ready')).status).toBe(200);
    for (const who of ['alice', 'bob'] as const) {
      const list = await request(t.url).get(`${API}/sessions`).set('X-API-Key', t.keys[who]);
      expect(list.status).toBe(200);
      for (const sess of list.body.data.sessions as { sessionId: string }[]) {
        expect((await request(t.url).post(`${API}/session/end`).set('X-API-Key', t.keys[who]).send({ session_id: sess.sessionId })).status).toBe(200);
      }
    }
    const live = async () => {
      const m = await scrape(t.url);
      return m('live_audio_sessions_live', '{transport="rest"}') + m('live_audio_sessions_live', '{transport="ws"}') + m('live_audio_ffmpeg_processes_alive');
    };
    const deadline = Date.now() + 10_000;
    while ((await live()) > 0 && Date.now() < deadline) await sleep(100);
    expect(await live()).toBe(0);
    expect(childProcesses(t.s.pid, 'ffmpeg')).toEqual([]);
    await t.emu.waitFor(() => t.emu.connections.every((c) => c.closed !== undefined), 5000);
    // No error (or fatal) line in the whole run: no 500, no unhandled rejection, no crash report.
    const errors = t.s.logLines().filter((l) => Number(l.level) >= 50);
    expect(errors.slice(0, 3)).toEqual([]);
    const heapAfter = await heapAfterGc();
    const grewMb = (heapAfter - heapBefore) / 1024 / 1024;
    console.log(`fuzz heap (spawned server, after forced GC): before ${(heapBefore / 1048576).toFixed(1)} MiB, after ${(heapAfter / 1048576).toFixed(1)} MiB (+${grewMb.toFixed(1)}); ${t.emu.connections.length} upstream connections, all closed`);
    expect(grewMb).toBeLessThan(40);
    expect(t.s.child.exitCode).toBeNull();
  }, 60_000);
});

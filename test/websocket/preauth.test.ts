/**
 * `/ws/live-audio` before authentication (issue 11 item 2), in-process and at the TCP level (test/helpers/raw-ws.ts):
 * only small auth frames, a few of them, are accepted; anything else closes 1008 without a reply; every frame
 * counts, after authentication toward the user's message budget before it is parsed; deep nesting is refused
 * before JSON.parse; the per-address upgrade budget counts strangers only. The attacks themselves, on a spawned
 * server process, are in test/security/ws-preauth.test.ts.
 */
import { LogCapture } from '../helpers/log-capture';
import { clientFrame, rawWsConnect, type RawWs } from '../helpers/raw-ws';
import { sleep, startTestServer, type TestServer } from '../helpers/test-server';
import { ConfigError, loadConfig } from '../../src/config/config';
import { jsonNestingExceeds } from '../../src/websocket/json-depth';
import { MAX_MESSAGE_DEPTH } from '../../src/contracts/ws-client-messages';
import { PreAuthFrameFilter } from '../../src/websocket/preauth-frame-filter';
import { PreAuthGate, type PreAuthRefusal } from '../../src/websocket/preauth-gate';
import { PassThrough } from 'node:stream';
import { prng, randomText } from '../ops/helpers';
import { connect, connectRefused, wsUrl } from '../helpers/ws-test-client';

const PATH = '/ws/live-audio';
const frame = (msg: unknown) => clientFrame(typeof msg === 'string' ? msg : JSON.stringify(msg));

async function closedWith(c: RawWs, timeoutMs = 3000): Promise<{ code: number; reason: string } | undefined> {
  await Promise.race([c.ended, sleep(timeoutMs)]);
  return c.closeFrame();
}

describe('settings', () => {
  it('LIVE_AUDIO_WS_PREAUTH_MAX_FRAMES / _BYTES: defaults 4 and 4 KiB, bounded', () => {
    expect(loadConfig({}).ws).toMatchObject({ preauthMaxFrames: 4, preauthMaxBytes: 4096 });
    expect(loadConfig({ LIVE_AUDIO_WS_PREAUTH_MAX_FRAMES: '2', LIVE_AUDIO_WS_PREAUTH_MAX_BYTES: '8192' }).ws).toMatchObject({ preauthMaxFrames: 2, preauthMaxBytes: 8192 });
    expect(() => loadConfig({ LIVE_AUDIO_WS_PREAUTH_MAX_FRAMES: '0' })).toThrow(ConfigError);
    expect(() => loadConfig({ LIVE_AUDIO_WS_PREAUTH_MAX_BYTES: '10000000' })).toThrow(ConfigError);
  });
});

describe('PreAuthGate', () => {
  it('counts every frame and refuses the first one past a bound', () => {
    const g = new PreAuthGate({ maxFrames: 3, maxFrameBytes: 100, maxUnreadBytes: 50 });
    expect(g.admit(10, 0)).toBeUndefined();
    expect(g.admit(100, 50)).toBeUndefined();
    expect(g.admit(101, 0)).toBe('frame_too_large');
    expect(g.admit(1, 0)).toBe('too_many_frames');
    expect(g.framesSeen).toBe(4);
    expect(new PreAuthGate({ maxFrames: 3, maxFrameBytes: 100, maxUnreadBytes: 50 }).admit(1, 51)).toBe('replies_unread');
  });
});

describe('PreAuthFrameFilter', () => {
  /** A socket with a downstream reader (standing in for ws) and a filter that refuses frames over `max` bytes. */
  function harness(max: number, maxFrames = 100) {
    const socket = new PassThrough();
    const seen: Buffer[] = [];
    socket.on('data', (d: Buffer) => seen.push(d));
    const sizes: number[] = [];
    const refusals: PreAuthRefusal[] = [];
    const filter = new PreAuthFrameFilter(
      socket,
      (bytes) => {
        sizes.push(bytes);
        if (bytes > max) return 'frame_too_large';
        return sizes.length > maxFrames ? 'too_many_frames' : undefined;
      },
      (r) => refusals.push(r),
    );
    filter.attach();
    const feed = (...chunks: Buffer[]) => chunks.forEach((c) => socket.emit('data', c));
    return { socket, seen: () => Buffer.concat(seen), sizes, refusals, filter, feed };
  }

  it('reads 7-bit, 16-bit and 64-bit lengths, across chunk boundaries, and passes admitted bytes on unchanged', () => {
    const h = harness(100_000);
    const frames = [clientFrame('x'.repeat(10)), clientFrame('y'.repeat(300)), clientFrame('z'.repeat(70_000))];
    const all = Buffer.concat(frames);
    // Cut into awkward pieces: inside headers, masks and payloads.
    const cuts = [1, 3, 17, 18, 330, 331, 335, 40_000, all.length];
    let prev = 0;
    for (const c of cuts) {
      h.feed(all.subarray(prev, c));
      prev = c;
    }
    expect(h.sizes).toEqual([10, 300, 70_000]);
    expect(h.seen().equals(all)).toBe(true);
    expect(h.refusals).toEqual([]);
  });

  it('stops at the header of the first refused frame: nothing of it or after it reaches the reader', () => {
    const h = harness(1000);
    const ok = clientFrame('{"type":"auth"}');
    const big = clientFrame('['.repeat(5000));
    h.feed(Buffer.concat([ok, big.subarray(0, 3)]));
    h.feed(Buffer.concat([big.subarray(3), clientFrame('{}')]));
    expect(h.sizes).toEqual([15, 5000]);
    expect(h.refusals).toEqual(['frame_too_large']);
    // The admitted frame, and the first 3 header bytes that came before the length was known.
    expect(h.seen().equals(Buffer.concat([ok, big.subarray(0, 3)]))).toBe(true);
    h.feed(clientFrame('{}'));
    expect(h.sizes).toHaveLength(2);
  });

  it('counts every frame but a close frame, and after release the reader gets the socket back', () => {
    const h = harness(1000, 2);
    h.feed(Buffer.concat([clientFrame('a'), clientFrame('b'), clientFrame(Buffer.from([0x03, 0xe8]), 0x8)]));
    expect(h.sizes).toEqual([1, 1]);
    expect(h.refusals).toEqual([]);
    h.filter.release();
    const later = clientFrame('x'.repeat(5000));
    h.feed(later);
    expect(h.sizes).toHaveLength(2);
    expect(h.seen().subarray(-later.length).equals(later)).toBe(true);
    expect(h.socket.listenerCount('data')).toBe(1);
  });
});

describe('jsonNestingExceeds', () => {
  it('measures nesting outside strings only, escapes included', () => {
    expect(jsonNestingExceeds(Buffer.from('{"a":[[1]]}'), 3)).toBe(false);
    expect(jsonNestingExceeds(Buffer.from('{"a":[[[1]]]}'), 3)).toBe(true);
    expect(jsonNestingExceeds(Buffer.from(JSON.stringify({ s: '[[[[[[{{{{' })), 2)).toBe(false);
    expect(jsonNestingExceeds(Buffer.from(JSON.stringify({ s: 'x\\"[[[[', t: '\\\\' })), 2)).toBe(false);
    expect(jsonNestingExceeds(Buffer.from(`{"s":"\\\\"}[[[[`), 2)).toBe(true);
    expect(jsonNestingExceeds(Buffer.from('['.repeat(2 * 1024 * 1024)), 8)).toBe(true);
  });
});

describe('jsonNestingExceeds against the plain byte loop (seeded random texts)', () => {
  /** The reference: one byte at a time, a backslash in a string skips the next byte. */
  const reference = (text: Buffer, maxDepth: number): boolean => {
    let depth = 0;
    let inString = false;
    for (let i = 0; i < text.length; i++) {
      const c = text[i];
      if (inString) {
        if (c === 0x5c) i++;
        else if (c === 0x22) inString = false;
      } else if (c === 0x22) inString = true;
      else if (c === 0x5b || c === 0x7b) {
        if (++depth > maxDepth) return true;
      } else if (c === 0x5d || c === 0x7d) depth--;
    }
    return false;
  };
  it('agrees on 20 000 texts made of quotes, backslashes, brackets and letters', () => {
    const seed = 1313;
    console.log(`jsonNestingExceeds property seed ${seed}`);
    const rnd = prng(seed);
    const alphabet = ['"', '\\', '[', ']', '{', '}', 'a', ':', ','];
    let exceeded = 0;
    for (let k = 0; k < 20_000; k++) {
      const text = randomText(rnd, alphabet, 40);
      const depth = Math.floor(rnd() * 4);
      const want = reference(text, depth);
      if (want) exceeded++;
      if (jsonNestingExceeds(text, depth) !== want) throw new Error(`seed ${seed}: ${JSON.stringify(text.toString())} depth ${depth}: want ${want}`);
    }
    expect(exceeded).toBeGreaterThan(1000); // both outcomes were exercised
    expect(exceeded).toBeLessThan(19_000);
  });
});

describe('the endpoint before and after authentication', () => {
  let t: TestServer;
  let logs: LogCapture;
  const sockets: RawWs[] = [];
  const open = async (query = '', headers: Record<string, string> = {}) => {
    const c = await rawWsConnect(t.url, `${PATH}${query}`, headers);
    sockets.push(c);
    return c;
  };

  beforeAll(async () => {
    logs = new LogCapture();
    t = await startTestServer({
      env: { LIVE_AUDIO_MAX_MESSAGES_PER_MINUTE: '6', LIVE_AUDIO_MAX_CONNECTIONS_PER_IP_PER_MINUTE: '0', LOG_LEVEL: 'info' },
      overrides: { logDestination: logs },
    });
  });
  afterEach(async () => {
    for (const c of sockets.splice(0)) c.destroy();
    await t.emu.waitFor(() => t.server.liveAudioWs.connections === 0, 3000);
  });
  afterAll(async () => t.close());

  const refusals = () => logs.lines().filter((l) => l.msg === 'websocket refused before authentication');

  it('a first frame that is not an auth message closes 1008 with no reply', async () => {
    const c = await open();
    await c.write(frame('{}'));
    expect(await closedWith(c)).toEqual({ code: 1008, reason: 'Authentication required' });
    expect(c.messages().map((m) => m.type)).toEqual(['connected']);
  });

  it('a frame over LIVE_AUDIO_WS_PREAUTH_MAX_BYTES closes 1008 before it is parsed, even a valid auth message', async () => {
    const c = await open();
    await c.write(frame({ type: 'auth', token: t.keys.alice, pad: 'x'.repeat(5000) }));
    expect(await closedWith(c)).toEqual({ code: 1008, reason: 'Message too large before authentication' });
    expect(c.messages().map((m) => m.type)).toEqual(['connected']);
    expect(refusals().at(-1)).toMatchObject({ reason: 'frame_too_large', frames: 1 });
  });

  it('frames pipelined behind a pending auth frame are handled after it, each counted', async () => {
    const c = await open();
    // One TCP write: the auth frame and three more, all read before the key is verified.
    await c.write([frame({ type: 'auth', token: t.keys.bob }), ...[1, 2, 3].map(() => frame({ type: 'get_rate_limits' }))]);
    await t.emu.waitFor(() => c.messages().filter((m) => m.type === 'rate_limit_status').length === 3, 3000);
    const types = c.messages().map((m) => m.type);
    expect(types).toEqual(['connected', 'auth_success', 'rate_limit_status', 'rate_limit_status', 'rate_limit_status']);
    // The auth frame counted too: 1 + 3.
    const last = c.messages().at(-1) as { data: { messages: { count: number } } };
    expect(last.data.messages.count).toBe(4);
  });

  it('more than LIVE_AUDIO_WS_PREAUTH_MAX_FRAMES frames before authentication completes close 1008', async () => {
    const c = await open();
    await c.write([frame({ type: 'auth', token: `ak_${'0'.repeat(64)}` }), ...[1, 2, 3, 4].map(() => frame({ type: 'ping' }))]);
    expect(await closedWith(c)).toEqual({ code: 1008, reason: 'Too many messages before authentication' });
    expect(c.messages().map((m) => m.type)).toEqual(['connected']);
    expect(refusals().at(-1)).toMatchObject({ reason: 'too_many_frames', frames: 5 });
  });

  it('after authentication every frame counts before it is parsed: bad JSON and unknown types use up the budget', async () => {
    const c = await open(`?token=${t.keys.alice}`);
    // Budget 6 a minute: 5 refused frames and one ping fit; the next ping is refused unparsed.
    await c.write([frame('{oops'), frame('[]'), frame({ type: 'nope' }), frame({ type: 'ping', pad: 1 }), frame('null'), frame({ type: 'ping' }), frame({ type: 'ping' })]);
    await t.emu.waitFor(() => c.messages().length >= 9, 3000);
    const got = c.messages().map((m) => (m.type === 'error' ? `error:${m.code}` : m.type));
    expect(got).toEqual([
      'connected',
      'auth_success',
      'error:INVALID_JSON',
      'error:INVALID_MESSAGE',
      'error:UNKNOWN_MESSAGE_TYPE',
      'pong',
      'error:INVALID_MESSAGE',
      'pong',
      'rate_limit_exceeded',
    ]);
  });

  it('a deeply nested frame after authentication is refused without JSON.parse (fast, no memory)', async () => {
    const c = await open(`?token=${t.keys.bob}`, {});
    const t0 = Date.now();
    await c.write(clientFrame('['.repeat(1024 * 1024) + ']'.repeat(1024 * 1024)));
    await t.emu.waitFor(() => c.messages().some((m) => m.type === 'error'), 3000);
    // JSON.parse of this frame alone takes about a second of CPU here; the check stops one level past MAX_MESSAGE_DEPTH.
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(c.messages().find((m) => m.type === 'error')).toMatchObject({ code: 'INVALID_MESSAGE', error: `Message nested deeper than ${MAX_MESSAGE_DEPTH} levels` });
  });
});

describe('an authenticated client that floods refused frames and never reads', () => {
  let t: TestServer;
  afterEach(async () => t?.close());

  it('is closed (1008) once its unread replies pass the send buffer cap, instead of piling up more replies', async () => {
    const logs = new LogCapture();
    t = await startTestServer({
      env: { LIVE_AUDIO_MAX_MESSAGES_PER_MINUTE: '10000000', LIVE_AUDIO_WS_SEND_BUFFER_BYTES: '1024', LOG_LEVEL: 'info' },
      overrides: { logDestination: logs },
    });
    const c = await rawWsConnect(t.url, `${PATH}?token=${t.keys.alice}`);
    c.socket.pause(); // never reads a reply
    c.socket.on('error', () => undefined);
    const batch = Buffer.concat(Array.from({ length: 4096 }, () => clientFrame('{oops')));
    const t0 = Date.now();
    let sent = 0;
    while (!c.socket.destroyed && Date.now() - t0 < 20_000) {
      if (c.socket.write(batch)) sent += 4096;
      else await Promise.race([new Promise((r) => c.socket.once('drain', r)), c.ended, sleep(200)]);
      await new Promise((r) => setImmediate(r));
      if (logs.lines().some((l) => l.msg === 'websocket refused frames while its replies are unread: closing')) break;
    }
    await Promise.race([c.ended, sleep(5_000)]);
    const closing = logs.lines().find((l) => l.msg === 'websocket refused frames while its replies are unread: closing');
    expect(closing).toBeDefined();
    expect(Number(closing!.buffered)).toBeGreaterThanOrEqual(1024);
    await t.emu.waitFor(() => t.server.liveAudioWs.connections === 0, 5_000);
    c.destroy();
    expect(sent).toBeGreaterThan(0);
  }, 40_000);
});

describe('the per-address upgrade budget', () => {
  let t: TestServer;
  afterEach(async () => t?.close());

  it('counts strangers only: valid credentials on the upgrade never count, a message auth is given back', async () => {
    t = await startTestServer({ env: { LIVE_AUDIO_MAX_CONNECTIONS_PER_IP_PER_MINUTE: '2', LIVE_AUDIO_MAX_CONNECTIONS_PER_USER: '50' } });
    // Ten clients that authenticate with their first message, one after the other: each is given back.
    for (let i = 0; i < 10; i++) {
      const c = await connect(wsUrl(t.url));
      await c.next('connected');
      c.send({ type: 'auth', token: t.keys.alice });
      await c.next('auth_success');
      c.close();
    }
    expect(t.server.limits.status('127.0.0.1', 'ws_connects_ip').used).toBe(0);
    // Ten with the key in the query: never counted.
    const held = [];
    for (let i = 0; i < 10; i++) held.push(await connect(wsUrl(t.url, { token: t.keys.bob })));
    expect(t.server.limits.status('127.0.0.1', 'ws_connects_ip').used).toBe(0);
    // Strangers: two sockets, then 429; a bad key counts and is refused like a stranger.
    const s1 = await connect(wsUrl(t.url));
    const s2 = await connectRefused(wsUrl(t.url, { token: `ak_${'1'.repeat(64)}` }));
    expect(s2.status).toBe(401);
    const s3 = await connectRefused(wsUrl(t.url));
    expect(s3).toMatchObject({ status: 429, body: { success: false, code: 'CONNECTION_RATE_LIMITED' } });
    // ...and a valid key still connects from the same address.
    const ok = await connect(wsUrl(t.url, { token: t.keys.alice }));
    await ok.next('auth_success');
    for (const c of [...held, s1, ok]) c.close();
  });
});

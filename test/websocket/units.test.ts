/**
 * The WebSocket building blocks on their own: send backpressure, heartbeat, rate windows, message schemas and the
 * upgrade router.
 */
import { EventEmitter } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { validateClientMessage, parseClientFrame, clientMessageSchemas } from '../../src/contracts/ws-client-messages';
import { ConnectionCounter } from '../../src/websocket/connection-counter';
import { Heartbeat } from '../../src/websocket/heartbeat';
import { sniffImage } from '../../src/websocket/handlers/model-input';
import { SocketSender } from '../../src/websocket/socket-sender';
import { upgradeRouterFor } from '../../src/websocket/upgrade-router';
import { connectRefused } from '../helpers/ws-test-client';

class FakeSocket extends EventEmitter {
  readyState = 1;
  bufferedAmount = 0;
  sent: string[] = [];
  pings = 0;
  send(data: string) {
    this.sent.push(data);
    this.bufferedAmount += data.length;
  }
  ping() {
    this.pings++;
  }
}

describe('SocketSender', () => {
  afterEach(() => jest.useRealTimers());

  it('sends in order and drops only droppable messages while the buffer is at the cap', () => {
    const ws = new FakeSocket();
    const s = new SocketSender(ws, { maxBufferedBytes: 100, stallMs: 1000, onStall: () => undefined });
    expect(s.send({ type: 'a', pad: 'x'.repeat(120) })).toBe(true); // over the cap now
    let built = 0;
    expect(s.send(() => (built++, { type: 'audio' }), 'droppable', 4800)).toBe(false);
    expect(built).toBe(0); // a dropped message is never even encoded
    expect(s.send({ type: 'text' })).toBe(true);
    expect(s.send({ type: 'control' }, 'control')).toBe(true);
    ws.bufferedAmount = 0; // drained
    expect(s.send({ type: 'audio' }, 'droppable')).toBe(true);
    expect(ws.sent.map((d) => JSON.parse(d).type)).toEqual(['a', 'text', 'control', 'audio']);
    expect(s.stats).toMatchObject({ sentMessages: 4, droppedMessages: 1, droppedBytes: 4800 });
    s.stop();
  });

  it('calls onStall once when the buffer stays above the cap for stallMs, not when it drains in time', () => {
    jest.useFakeTimers();
    const ws = new FakeSocket();
    const stalls: number[] = [];
    const s = new SocketSender(ws, { maxBufferedBytes: 10, stallMs: 500, onStall: (b) => stalls.push(b) });
    s.send({ big: 'x'.repeat(20) });
    jest.advanceTimersByTime(300);
    ws.bufferedAmount = 0; // the client read it
    jest.advanceTimersByTime(1000);
    expect(stalls).toEqual([]);
    expect(s.congested).toBe(false);

    s.send({ big: 'y'.repeat(20) });
    jest.advanceTimersByTime(499);
    expect(stalls).toEqual([]);
    jest.advanceTimersByTime(200);
    expect(stalls).toEqual([ws.bufferedAmount]);
    jest.advanceTimersByTime(5000);
    expect(stalls).toHaveLength(1);
    s.stop();
  });

  it('sends nothing once stopped or when the socket is not open', () => {
    const ws = new FakeSocket();
    const s = new SocketSender(ws, { maxBufferedBytes: 100, stallMs: 100, onStall: () => undefined });
    ws.readyState = 2;
    expect(s.send({ type: 'x' })).toBe(false);
    ws.readyState = 1;
    s.stop();
    expect(s.send({ type: 'x' })).toBe(false);
    expect(ws.sent).toEqual([]);
  });
});

describe('Heartbeat', () => {
  afterEach(() => jest.useRealTimers());

  it('pings every interval and declares the peer dead after maxMissed unanswered pings', () => {
    jest.useFakeTimers();
    const ws = new FakeSocket();
    const dead: number[] = [];
    const hb = new Heartbeat(ws, { intervalMs: 100, maxMissed: 2, onDead: (m) => dead.push(m) });
    jest.advanceTimersByTime(200);
    expect(ws.pings).toBe(2);
    expect(dead).toEqual([]);
    jest.advanceTimersByTime(100);
    expect(dead).toEqual([2]);
    jest.advanceTimersByTime(1000);
    expect(ws.pings).toBe(2);
    hb.stop();
  });

  it('a pong (or any sign of life) resets the count', () => {
    jest.useFakeTimers();
    const ws = new FakeSocket();
    const dead: number[] = [];
    const hb = new Heartbeat(ws, { intervalMs: 100, maxMissed: 2, onDead: (m) => dead.push(m) });
    for (let i = 0; i < 10; i++) {
      jest.advanceTimersByTime(100);
      if (i % 2) ws.emit('pong');
      else hb.alive();
    }
    expect(dead).toEqual([]);
    expect(ws.pings).toBe(10);
    hb.stop();
    expect(ws.listenerCount('pong')).toBe(0);
  });
});

describe('ConnectionCounter', () => {
  it('caps connections per user and never goes negative', () => {
    const c = new ConnectionCounter(2);
    expect(c.tryAcquire('u')).toBe(true);
    expect(c.tryAcquire('u')).toBe(true);
    expect(c.tryAcquire('u')).toBe(false);
    c.release('u');
    expect(c.tryAcquire('u')).toBe(true);
    c.release('u');
    c.release('u');
    c.release('u');
    expect(c.countFor('u')).toBe(0);
  });
});

describe('client message schemas', () => {
  it('knows every documented type', () => {
    expect(Object.keys(clientMessageSchemas).sort()).toEqual(
      ['activity_end', 'activity_start', 'api_key', 'audio_chunk', 'auth', 'bearer', 'end_session', 'get_rate_limits', 'get_status', 'get_transcript', 'get_usage', 'image', 'interrupt', 'ping', 'start_session', 'text', 'tool_response'].sort(),
    );
  });

  it('accepts the documented shapes and normalises them', () => {
    // start_session keeps every other field: they are the per-session options, checked strictly by the session door.
    const r = validateClientMessage({ type: 'start_session', session_id: 's', response_modality: 'AUDIO', input_transcription: true, extra: 1 });
    expect(r).toEqual({ ok: true, message: { type: 'start_session', session_id: 's', response_modality: 'AUDIO', input_transcription: true, extra: 1 } });
    expect(validateClientMessage({ type: 'audio_chunk', audio_data: 'AAAA', sample_rate: '16000', channels: 1 }).ok).toBe(true);
    expect(validateClientMessage({ type: 'auth', token: '  ak_x  ' })).toEqual({ ok: true, message: { type: 'auth', token: 'ak_x' } });
  });

  it('names every bad field', () => {
    const r = validateClientMessage({ type: 'image', image_data: 5, mime_type: 'image/gif' });
    expect(r).toEqual({
      ok: false,
      problem: {
        code: 'INVALID_FIELD',
        error: 'Invalid fields in image: image_data must be a string; mime_type must be one of image/jpeg, image/png',
        messageType: 'image',
        fields: ['image_data', 'mime_type'],
      },
    });
    expect(parseClientFrame('{"type":"auth"}')).toMatchObject({ ok: false, problem: { code: 'MISSING_FIELD', fields: ['token'] } });
    const longType = 'x'.repeat(500);
    const u = parseClientFrame(JSON.stringify({ type: longType }));
    expect(u.ok).toBe(false);
    if (!u.ok) expect(u.problem.error.length).toBeLessThan(100);
  });

  it('sniffs JPEG and PNG only', () => {
    expect(sniffImage(Buffer.from([0xff, 0xd8, 0xff, 0xdb]))).toBe('image/jpeg');
    expect(sniffImage(Buffer.from('89504e470d0a1a0a0000', 'hex'))).toBe('image/png');
    expect(sniffImage(Buffer.from('GIF89a'))).toBeNull();
    expect(sniffImage(Buffer.alloc(0))).toBeNull();
  });
});

describe('upgrade router', () => {
  async function serve(setup: (s: http.Server) => void): Promise<{ server: http.Server; url: string }> {
    const server = http.createServer((_req, res) => res.end('http'));
    setup(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
  }

  it('answers 404 for unclaimed paths when it is the only upgrade listener', async () => {
    const { server, url } = await serve((s) => upgradeRouterFor(s).add('/ws/a', (_req, socket) => socket.destroy()));
    const r = await connectRefused(url.replace('http', 'ws') + '/ws/b');
    expect(r).toEqual({ status: 404, body: { success: false, error: 'Not found: /ws/b', code: 'NOT_FOUND' } });
    await new Promise((r2) => server.close(r2));
  });

  it('leaves unclaimed paths to other upgrade listeners', async () => {
    const { server, url } = await serve((s) => {
      const router = upgradeRouterFor(s);
      expect(upgradeRouterFor(s)).toBe(router);
      router.add('/ws/a', (_req, socket) => socket.destroy());
      expect(() => router.add('/ws/a', () => undefined)).toThrow(/already taken/);
      s.on('upgrade', (req, socket) => {
        if (req.url === '/ws/other') socket.end('HTTP/1.1 418 I am a teapot\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok');
      });
    });
    const r = await connectRefused(url.replace('http', 'ws') + '/ws/other');
    expect(r.status).toBe(418);
    await new Promise((r2) => server.close(r2));
  });
});

/**
 * The access log: one line per request, except that a successful audio chunk POST (`/transcribe`, one per second per
 * session) is a debug line, not an info line. Refusals and failures of those posts stay at info / error; no line
 * ever carries a key. Checked in-process (the line's fields, the levels) and on a spawned server process (what a
 * production-like process at LOG_LEVEL=info writes while a stranger posts chunks with random keys).
 */
import net from 'node:net';
import request from 'supertest';
import { generateApiKey } from '../../src/services/auth';
import { LogCapture } from '../helpers/log-capture';
import { spawnServer } from '../helpers/spawned-server';
import { sleep, startTestServer } from '../helpers/test-server';

const API = '/api/v1/live-audio';
const PCM = Buffer.alloc(3200).toString('base64');

type Line = Record<string, unknown> & { req?: { url?: string; method?: string; id?: string }; res?: { statusCode?: number } };
const accessLines = (lines: Line[]) => lines.filter((l) => l.req !== undefined && l.res !== undefined);
const transcribeLines = (lines: Line[]) => accessLines(lines).filter((l) => l.req?.url === `${API}/transcribe`);

jest.setTimeout(60_000);

describe('access log (in-process)', () => {
  async function traffic(level: string) {
    const capture = new LogCapture();
    const t = await startTestServer({ env: { LOG_LEVEL: level, LIVE_AUDIO_TRANSCRIBE_WAIT_MS: '0' }, overrides: { logDestination: capture } });
    try {
      const h = { 'X-API-Key': t.keys.alice };
      expect((await request(t.url).post(`${API}/session/start`).set(h).send({ session_id: 'a1' })).status).toBe(200);
      const ok = await request(t.url).post(`${API}/transcribe`).set(h).send({ session_id: 'a1', audio_data: PCM, format: 'pcm' });
      expect(ok.status).toBe(200);
      const stranger = generateApiKey();
      const refused = await request(t.url).post(`${API}/transcribe`).set('X-API-Key', stranger).send({ session_id: 'a1', audio_data: PCM, format: 'pcm' });
      expect(refused.status).toBe(401);
      const bad = await request(t.url).post(`${API}/transcribe`).set(h).send({ session_id: 'a1', audio_data: 'not base64!', format: 'pcm' });
      expect(bad.status).toBe(400);
      await sleep(50);
      return { lines: capture.lines() as Line[], text: capture.text, ok, stranger, alice: t.keys.alice };
    } finally {
      await t.close();
    }
  }

  it('LOG_LEVEL=info: no line for a successful chunk post; its refusals and the session start are info lines; no key', async () => {
    const { lines, text, stranger, alice } = await traffic('info');
    const posts = transcribeLines(lines);
    expect(posts.map((l) => l.res?.statusCode).sort()).toEqual([400, 401]);
    for (const l of posts) expect(l).toMatchObject({ level: 30, msg: 'request completed' });
    expect(accessLines(lines).find((l) => l.req?.url === `${API}/session/start`)).toMatchObject({ level: 30, principal: 'key:alice', res: { statusCode: 200 } });
    expect(text).not.toContain(stranger);
    expect(text).not.toContain(alice);
  });

  it('LOG_LEVEL=debug: the successful chunk post is a debug line with its request id, principal and time', async () => {
    const { lines, ok } = await traffic('debug');
    const line = transcribeLines(lines).find((l) => l.res?.statusCode === 200);
    expect(line).toMatchObject({ level: 20, msg: 'request completed', principal: 'key:alice', reqId: ok.headers['x-request-id'] });
    expect(line?.req).toMatchObject({ id: ok.headers['x-request-id'], method: 'POST' });
    expect(typeof line?.responseTime).toBe('number');
  });

  it('a request whose client goes away before the answer is logged as aborted', async () => {
    const capture = new LogCapture();
    const t = await startTestServer({ env: { LOG_LEVEL: 'info' }, overrides: { logDestination: capture } });
    try {
      const port = Number(new URL(t.url).port);
      const sock = net.connect(port, '127.0.0.1');
      await new Promise<void>((r) => sock.once('connect', () => r()));
      // Authenticated headers, then half of the announced body, then gone.
      sock.write(`POST ${API}/transcribe HTTP/1.1\r\nHost: x\r\nX-API-Key: ${t.keys.alice}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"session_id":"a`);
      await sleep(100);
      sock.destroy();
      const deadline = Date.now() + 5000;
      let line: Line | undefined;
      while (!line && Date.now() < deadline) {
        line = transcribeLines(capture.lines() as Line[]).find((l) => l.aborted === true);
        if (!line) await sleep(20);
      }
      expect(line).toMatchObject({ level: 30, msg: 'request aborted before its answer was sent', principal: 'key:alice' });
      expect(capture.text).not.toContain(t.keys.alice);
    } finally {
      await t.close();
    }
  });
});

describe('access log (spawned server, LOG_LEVEL=info)', () => {
  it('a session of chunk posts writes no line per chunk; a stranger with 200 random keys gets a line per 401, never a key', async () => {
    const s = await spawnServer({ env: { LOG_LEVEL: 'info', LIVE_AUDIO_TRANSCRIBE_WAIT_MS: '0' } });
    try {
      const h = { 'X-API-Key': s.keys.alice };
      expect((await request(s.url).post(`${API}/session/start`).set(h).send({ session_id: 's1' })).status).toBe(200);
      for (let i = 0; i < 20; i++) {
        expect((await request(s.url).post(`${API}/transcribe`).set(h).send({ session_id: 's1', audio_data: PCM, format: 'pcm' })).status).toBe(200);
      }
      expect((await request(s.url).post(`${API}/session/end`).set(h).send({ session_id: 's1' })).status).toBe(200);
      const strangers = Array.from({ length: 200 }, () => generateApiKey());
      let unauthorized = 0;
      for (const k of strangers) {
        // 401, or 429 once the address's budget of failed authentications or of new connections is spent (the
        // latter answered before any HTTP parsing: no access line).
        const status = (await request(s.url).post(`${API}/transcribe`).set('X-API-Key', k).send({ session_id: 's1', audio_data: PCM })).status;
        expect([401, 429]).toContain(status);
        if (status === 401) unauthorized++;
      }
      expect(unauthorized).toBeGreaterThan(0);
      // The lines reach us through the process's stdout pipe: wait for the last 401's.
      const deadline = Date.now() + 10_000;
      while (transcribeLines(s.logLines() as Line[]).filter((l) => l.res?.statusCode === 401).length < unauthorized && Date.now() < deadline) await sleep(50);
      const lines = s.logLines() as Line[];
      const posts = transcribeLines(lines);
      expect(posts.filter((l) => l.res?.statusCode === 200)).toHaveLength(0);
      expect(posts.filter((l) => l.res?.statusCode === 401)).toHaveLength(unauthorized);
      expect(posts.length).toBeLessThanOrEqual(200);
      for (const l of posts) expect(l.level).toBe(30);
      expect(accessLines(lines).filter((l) => l.req?.url === `${API}/session/end`)).toHaveLength(1);
      const out = s.output();
      for (const k of [s.keys.alice, ...strangers]) expect(out).not.toContain(k);
    } finally {
      await s.stop();
    }
  });
});

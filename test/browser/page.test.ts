/**
 * The browser page at `/`, driven in a real Chromium (Debian's /usr/bin/chromium via playwright-core) with a fake
 * microphone playing a spoken sentence. Both transports: the user's words and the reply appear, reply audio
 * plays (counted by the page's player), Stop ends the session on the server. Also: barge-in stops playback at
 * once, the page's caching headers and CSP (no violations while it works).
 *
 * Chromium is required: when it is missing the suite fails with a clear message (`.ci/run` installs it).
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { scriptedScenario, type Scenario } from '../../src/emulator';
import { ASSET_CACHE_CONTROL, INDEX_CACHE_CONTROL, PAGE_CSP } from '../../src/routes/web-routes';
import { buildWebAssets, type BuildWebResult } from '../../src/web/build/build-web';
import { startTestServer, type TestServer } from '../helpers/test-server';
import { CHROMIUM_PATH as CHROMIUM, chromiumArgs } from '../helpers/chromium';

const FAKE_MIC_WAV = path.resolve(__dirname, '../fixtures/audio/chromium-hello-1000ms/source-48k.wav');
const RESULTS_DIR = path.resolve(__dirname, '../../test-results');

const SPOKEN = 'Hello, my name is Alex and I would like to practice a job interview today.';
const REPLY = 'Nice to meet you, Alex. Tell me about your last job.';
const REPLY_AUDIO_MS = 1500;
const REPLY_SAMPLES = (REPLY_AUDIO_MS * 24000) / 1000;

/** Every user turn gets the same scripted answer (the fake microphone loops the sentence). */
const scripted = (extra: Partial<Scenario> = {}, replyAudioMs = REPLY_AUDIO_MS): Scenario =>
  scriptedScenario([], { fallback: { userTranscript: SPOKEN, reply: REPLY, replyAudioMs }, ...extra });

jest.setTimeout(90_000);

let browser: Browser;
let web: BuildWebResult;
let tmp: string;

beforeAll(async () => {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(
      `Chromium is required for the browser tests but ${CHROMIUM} does not exist. ` +
        'Install it with `apt-get update && apt-get install -y chromium` (.ci/run does this in CI).',
    );
  }
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'live-audio-browser-'));
  web = await buildWebAssets({ outDir: path.join(tmp, 'web') });
  fs.mkdirSync(RESULTS_DIR, { recursive: true });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: chromiumArgs(FAKE_MIC_WAV, ['--autoplay-policy=no-user-gesture-required']),
    // A fresh temporary --user-data-dir per launch is made (and removed) by playwright-core itself.
  });
});

afterAll(async () => {
  await browser?.close();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

interface Harness {
  ts: TestServer;
  context: BrowserContext;
  page: Page;
  /** Page errors, console errors and CSP violations seen so far. */
  problems: string[];
}

async function openPage(ts: TestServer): Promise<Harness> {
  const context = await browser.newContext({ viewport: { width: 960, height: 1000 } });
  await context.grantPermissions(['microphone'], { origin: ts.url });
  const problems: string[] = [];
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI}`);
    });
  });
  const page = await context.newPage();
  page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`console: ${msg.text()}`);
  });
  const res = await page.goto(`${ts.url}/`);
  expect(res?.status()).toBe(200);
  expect(res?.headers()['content-security-policy']).toBe(PAGE_CSP);
  return { ts, context, page, problems };
}

const byId = (page: Page, id: string) => page.locator(`[data-testid="${id}"]`);

async function attr(page: Page, id: string, name: string): Promise<string | null> {
  return byId(page, id).getAttribute(name);
}

type Cond = { eq: string } | { gte: number } | { gt: number };

/** Waits until the element's attribute meets `cond` (no eval in the page: its CSP forbids it). */
async function waitAttr(page: Page, id: string, name: string, cond: Cond, timeout = 30_000): Promise<void> {
  await page.waitForFunction(
    ([i, n, c]) => {
      const v = document.querySelector(`[data-testid="${i}"]`)?.getAttribute(n);
      if (v === null || v === undefined) return false;
      if ('eq' in c) return v === c.eq;
      if ('gte' in c) return Number(v) >= c.gte;
      return Number(v) > c.gt;
    },
    [id, name, cond] as const,
    { timeout, polling: 50 },
  );
}

async function waitText(page: Page, id: string, text: string, timeout = 30_000): Promise<void> {
  await page.waitForFunction(
    ([i, t]) => (document.querySelector(`[data-testid="${i}"]`)?.textContent ?? '').trim() === t,
    [id, text] as const,
    { timeout, polling: 50 },
  );
}

function statusOf(url: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { headers }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      })
      .on('error', reject);
  });
}

async function serverStatus(ts: TestServer, sessionId: string): Promise<Record<string, any>> {
  const res = await fetch(`${ts.url}/api/v1/live-audio/session/${sessionId}/status`, { headers: { 'X-API-Key': ts.keys.alice } });
  return ((await res.json()) as { data: Record<string, any> }).data;
}

/** One full conversation through the page: start, a spoken turn with an audio reply, Stop. */
async function talk(h: Harness, transport: 'ws' | 'rest', screenshot: string): Promise<string> {
  const { page, ts } = h;
  await byId(page, 'api-key').fill(ts.keys.alice);
  await byId(page, 'transport').selectOption(transport);
  await byId(page, 'modality').selectOption('audio');
  await page.waitForFunction(() => document.querySelector('[data-testid="key-hint"]')?.getAttribute('data-state') === 'ok');

  await byId(page, 'start').click();
  await waitAttr(page, 'status', 'data-state', { eq: 'active' });
  const sessionId = (await attr(page, 'status', 'data-session-id'))!;
  expect(sessionId).toMatch(transport === 'ws' ? /^web_ws_/ : /^web_rest_/);
  expect(await byId(page, 'stop').isEnabled()).toBe(true);

  // The user's words and the model's reply, exactly as the model sent them.
  await waitText(page, 'user-transcript', SPOKEN);
  await waitText(page, 'model-response', REPLY);
  // The whole reply audio was played by Web Audio (samples of sources that ended naturally), without gaps.
  await waitAttr(page, 'playback', 'data-played-samples', { gte: REPLY_SAMPLES });
  expect(Number(await attr(page, 'playback', 'data-scheduled-samples'))).toBeGreaterThanOrEqual(REPLY_SAMPLES);
  expect(await attr(page, 'playback', 'data-gaps')).toBe('0');
  expect(await attr(page, 'playback', 'data-stopped-samples')).toBe('0');

  // Session state: upstream connected, no reconnects, time left of the 15 minutes.
  await waitAttr(page, 'status', 'data-upstream', { eq: 'connected' });
  expect(await byId(page, 'upstream').textContent()).toBe('connected');
  expect(await byId(page, 'reconnects').textContent()).toBe('0');
  expect(await byId(page, 'time-left').textContent()).toMatch(/^1[45]:\d\d of 15:00$/);
  const server = await serverStatus(ts, sessionId);
  expect(server.status).toBe('active');
  expect(server.transport).toBe(transport);
  expect(server.responseModality).toBe('audio');

  await page.screenshot({ path: path.join(RESULTS_DIR, screenshot), fullPage: true });

  // Stop ends the session on the server.
  await byId(page, 'stop').click();
  await waitAttr(page, 'status', 'data-state', { eq: 'ended' });
  expect(await attr(page, 'status', 'data-end-reason')).toBe('client_end');
  expect(await byId(page, 'start').isEnabled()).toBe(true);
  expect(await byId(page, 'stop').isEnabled()).toBe(false);
  const after = await serverStatus(ts, sessionId);
  expect(after.status).toBe('ended');
  expect(after.reason).toBe('client_end');
  expect(ts.server.registry.listFor('key:alice')).toHaveLength(0);
  return sessionId;
}

describe('browser page in real Chromium', () => {
  let ts: TestServer | undefined;
  let h: Harness | undefined;

  afterEach(async () => {
    await h?.context.close();
    await ts?.close();
    h = undefined;
    ts = undefined;
  });

  it('WebSocket streaming, offline demo mode: words, reply, reply audio, Stop ends the session', async () => {
    ts = await startTestServer({ env: { LIVE_AUDIO_EMULATOR: 'on' }, overrides: { webRoot: web.outDir } });
    ts.server.emulator!.setScenario(scripted());
    h = await openPage(ts);
    const sent: Array<Record<string, any>> = [];
    const wsUrls: string[] = [];
    h.page.on('websocket', (ws) => {
      wsUrls.push(ws.url());
      ws.on('framesent', (f) => sent.push(JSON.parse(String(f.payload))));
    });
    await talk(h, 'ws', 'browser-ws.png');

    // The key goes in the first message, not the URL; then 16 kHz mono PCM in short chunks; end_session on Stop.
    expect(wsUrls).toEqual([`${ts.url.replace('http', 'ws')}/ws/live-audio`]);
    expect(sent[0]).toEqual({ type: 'auth', token: ts.keys.alice });
    expect(sent[1]).toMatchObject({ type: 'start_session', response_modality: 'audio', input_transcription: true, output_transcription: true });
    const chunks = sent.filter((m) => m.type === 'audio_chunk');
    expect(chunks.length).toBeGreaterThan(10);
    for (const c of chunks) expect(c).toMatchObject({ format: 'pcm', sample_rate: 16000, channels: 1 });
    expect(Buffer.from(chunks[0].audio_data, 'base64').length).toBe(6400); // 200 ms of s16 at 16 kHz
    expect(sent[sent.length - 1]).toEqual({ type: 'end_session' });

    // The server says it is the offline demo: the page says so.
    const banner = byId(h.page, 'demo-banner');
    expect(await banner.isVisible()).toBe(true);
    expect(await banner.textContent()).toContain('Offline demo mode');
    // The audio went over the socket as PCM (the embedded emulator heard it).
    expect(ts.server.emulator!.totalAudioBytes()).toBeGreaterThan(16000 * 2);
    expect(await byId(h.page, 'error').textContent()).toBe('');
    expect(h.problems).toEqual([]);
  });

  it('REST posting like the Sculptor frontend (WebM, 1 s timeslice): words, reply, reply audio, Stop ends the session', async () => {
    ts = await startTestServer({ overrides: { webRoot: web.outDir } });
    ts.emu.setScenario(scripted());
    h = await openPage(ts);
    const posts: Array<{ at: number; body: Record<string, any> }> = [];
    h.page.on('request', (r) => {
      if (r.method() === 'POST' && r.url().endsWith('/api/v1/live-audio/transcribe')) posts.push({ at: Date.now(), body: r.postDataJSON() });
    });
    await talk(h, 'rest', 'browser-rest.png');

    // Exactly the Sculptor frontend's requests: WebM from MediaRecorder, about one a second, base64 without the
    // data: prefix, the first carrying the EBML header, the hard-coded 16000 / 1 labels.
    expect(posts.length).toBeGreaterThanOrEqual(3);
    for (const p of posts) {
      expect(Object.keys(p.body).sort()).toEqual(['audio_data', 'channels', 'format', 'sample_rate', 'session_id']);
      expect(p.body).toMatchObject({ format: 'webm', sample_rate: 16000, channels: 1 });
      expect(p.body.audio_data).not.toMatch(/^data:/);
    }
    expect(Buffer.from(posts[0].body.audio_data, 'base64').subarray(0, 4).toString('hex')).toBe('1a45dfa3');
    // One a second on average (the last one is the partial chunk of Stop; a busy machine may bunch a few).
    const full = posts.slice(0, -1);
    const meanMs = (full[full.length - 1].at - full[0].at) / (full.length - 1);
    expect(meanMs).toBeGreaterThan(700);
    expect(meanMs).toBeLessThan(1500);

    expect(await byId(h.page, 'demo-banner').isVisible()).toBe(false);
    expect(await h.page.evaluate(() => document.body.dataset.mode)).toBe('gemini');
    expect(ts.emu.totalAudioBytes()).toBeGreaterThan(16000 * 2);
    expect(await byId(h.page, 'error').textContent()).toBe('');
    expect(h.problems).toEqual([]);

    // The CSP is enforced, not just sent: a connection elsewhere is refused and reported.
    const outcome = await h.page.evaluate(() => fetch('http://127.0.0.2:9/').then(() => 'connected', () => 'refused'));
    expect(outcome).toBe('refused');
    await h.page.waitForTimeout(100);
    expect(h.problems.some((p) => /CSP violation: connect-src/.test(p))).toBe(true);
  });

  it('stops reply audio at once when the model is interrupted (barge-in)', async () => {
    ts = await startTestServer({ overrides: { webRoot: web.outDir } });
    // A long reply paced in real time: the looping sentence barges in while it plays.
    ts.emu.setScenario(scripted({ pacing: 'realtime' }, 20_000));
    h = await openPage(ts);
    const { page } = h;
    const t0 = Date.now();
    const received: string[] = [];
    page.on('websocket', (ws) =>
      ws.on('framereceived', (f) => {
        const m = JSON.parse(String(f.payload));
        received.push(`${Date.now() - t0} ${m.type} ${m.data?.turnId ?? ''} ${m.data?.interrupted ?? ''} ${m.data?.turnComplete ?? ''}`);
      }),
    );
    await byId(page, 'api-key').fill(ts.keys.alice);
    await byId(page, 'transport').selectOption('ws');
    await byId(page, 'modality').selectOption('audio');
    await byId(page, 'start').click();
    await waitAttr(page, 'status', 'data-state', { eq: 'active' });
    // The moment reply audio is playing, read the interruption count (atomically, in the page)...
    const { n: before } = (await (
      await page.waitForFunction(
        () => {
          const playing = document.querySelector('[data-testid="playback"]')?.getAttribute('data-playing') === 'true';
          const n = Number(document.querySelector('[data-testid="status"]')?.getAttribute('data-interruptions') ?? '0');
          return playing ? { n } : false;
        },
        undefined,
        { timeout: 40_000, polling: 20 },
      )
    ).jsonValue()) as { n: number };
    // ...then the model is interrupted while it plays: the page must be silent right away.
    await waitAttr(page, 'status', 'data-interruptions', { gt: before }, 40_000);
    const snap = await page.evaluate(() => {
      const p = document.querySelector('[data-testid="playback"]')!;
      return {
        playing: p.getAttribute('data-playing'),
        played: Number(p.getAttribute('data-played-samples')),
        stopped: Number(p.getAttribute('data-stopped-samples')),
      };
    });
    if (snap.playing !== 'false') console.log(received.join('\n'));
    expect(snap.playing).toBe('false');
    expect(snap.stopped).toBeGreaterThan(0); // queued audio was cut, not played out
    expect(snap.played).toBeLessThan(10 * 24000); // far less than the 20 s reply
    await byId(page, 'stop').click();
    await waitAttr(page, 'status', 'data-state', { eq: 'ended' });
    expect(h.problems).toEqual([]);
  });

  it('a chosen profile, voice, language and instruction reach the model; the interview opens with a question; the transcript shows it all', async () => {
    const GREETING = 'Welcome. Please introduce yourself.';
    ts = await startTestServer({ overrides: { webRoot: web.outDir } });
    ts.emu.setScenario(scripted({ greeting: { userTranscript: '', reply: GREETING } }));
    h = await openPage(ts);
    const { page } = h;
    await byId(page, 'api-key').fill(ts.keys.alice);
    await byId(page, 'transport').selectOption('ws');
    await byId(page, 'modality').selectOption('audio');
    await byId(page, 'profile').selectOption('interview');
    await byId(page, 'voice').fill('Kore');
    await byId(page, 'language').fill('en-GB');
    await byId(page, 'system-instruction').fill('You interview candidates for a nursing role.');
    await page.waitForFunction(() => document.querySelector('[data-testid="key-hint"]')?.getAttribute('data-state') === 'ok');
    const first = ts.emu.connections.length;
    await byId(page, 'start').click();
    await waitAttr(page, 'status', 'data-state', { eq: 'active' });
    await waitText(page, 'user-transcript', SPOKEN);
    await waitText(page, 'model-response', REPLY);

    const rec = ts.emu.connections[first]!;
    expect(rec.model).toBe('gemini-3.8-live');
    expect(rec.setup.systemInstruction.parts[0].text).toBe('You interview candidates for a nursing role.');
    expect(rec.setup.generationConfig.speechConfig).toEqual({ voiceConfig: { prebuiltVoiceConfig: { voiceName: 'Kore' } }, languageCode: 'en-GB' });
    expect(rec.greeting).toBeDefined();

    await byId(page, 'show-transcript').click();
    await page.waitForFunction(() => (document.querySelector('[data-testid="transcript"]')?.children.length ?? 0) >= 2, undefined, { timeout: 10_000, polling: 50 });
    const items = byId(page, 'transcript').locator('li');
    expect(await items.nth(0).getAttribute('data-kind')).toBe('greeting');
    expect(await items.nth(0).locator('p.model').textContent()).toBe(GREETING);
    expect(await items.nth(1).locator('p.you').textContent()).toBe(SPOKEN);
    expect(await items.nth(1).locator('p.model').textContent()).toBe(REPLY);
    expect(await byId(page, 'usage').textContent()).toMatch(/^\d+ turns, \d+ tokens so far$/);

    // After Stop the transcript is still there (kept after the end).
    await byId(page, 'stop').click();
    await waitAttr(page, 'status', 'data-state', { eq: 'ended' });
    await byId(page, 'show-transcript').click();
    await page.waitForFunction(() => /tokens$/.test(document.querySelector('[data-testid="usage"]')?.textContent ?? ''), undefined, { timeout: 10_000, polling: 50 });
    expect(await items.nth(0).getAttribute('data-kind')).toBe('greeting');
    expect(h.problems).toEqual([]);
  });

  it('says in plain words when the key is wrong, and starts nothing', async () => {
    ts = await startTestServer({ overrides: { webRoot: web.outDir } });
    h = await openPage(ts);
    const { page } = h;
    await byId(page, 'api-key').fill(`ak_${'0'.repeat(64)}`);
    await byId(page, 'start').click();
    await waitAttr(page, 'status', 'data-state', { eq: 'failed' });
    const item = byId(page, 'error').locator('li');
    await expect(item.count()).resolves.toBe(1);
    expect(await item.getAttribute('data-code')).toBe('INVALID_API_KEY');
    expect(await item.textContent()).toContain('The server did not accept this API key. Paste the API key the server printed');
    expect(await byId(page, 'key-hint').getAttribute('data-state')).toBe('bad');
    expect(await byId(page, 'start').isEnabled()).toBe(true);
    expect(await byId(page, 'stop').isEnabled()).toBe(false);
    expect(ts.emu.connections).toHaveLength(0); // no Gemini session was opened
    // The 401 of the key check is the only console error.
    expect(h.problems.every((p) => /401/.test(p))).toBe(true);
  });

  it('serves the page with revalidation, hashed assets as immutable, and the strict CSP', async () => {
    ts = await startTestServer({ overrides: { webRoot: web.outDir } });
    const index = await fetch(`${ts.url}/`);
    expect(index.status).toBe(200);
    expect(index.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(index.headers.get('cache-control')).toBe(INDEX_CACHE_CONTROL);
    expect(index.headers.get('content-security-policy')).toBe(PAGE_CSP);
    expect(index.headers.get('x-content-type-options')).toBe('nosniff');
    const html = await index.text();
    expect(html).toContain(`src="${web.assets['app.js']}"`);
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/); // no inline script
    expect(html).not.toMatch(/\sstyle=|<style/); // no inline style
    const etag = index.headers.get('etag')!;
    expect(etag).toMatch(/^"[\w-]+"$/);
    // (node:http, not fetch: fetch adds `Cache-Control: no-cache` to conditional requests, which disables 304s.)
    expect(await statusOf(`${ts.url}/`, { 'If-None-Match': etag })).toBe(304);
    expect(await statusOf(`${ts.url}/`, { 'If-None-Match': '"something-else"' })).toBe(200);

    for (const [name, url] of Object.entries(web.assets)) {
      expect(url).toMatch(/^\/assets\/[\w-]+-[A-Z0-9]{8}\.(js|css)$/);
      const a = await fetch(`${ts.url}${url}`);
      expect({ name, status: a.status }).toEqual({ name, status: 200 });
      expect(a.headers.get('cache-control')).toBe(ASSET_CACHE_CONTROL);
      expect(a.headers.get('content-type')).toMatch(name.endsWith('.css') ? /^text\/css/ : /^text\/javascript/);
    }
    const missing = await fetch(`${ts.url}/assets/app-00000000.js`);
    expect(missing.status).toBe(404);
    const traversal = await fetch(`${ts.url}/assets/..%2Findex.html`);
    expect(traversal.status).toBe(404);
  });
});

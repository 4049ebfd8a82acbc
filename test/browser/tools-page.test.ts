/**
 * Issue 16 §8 in a real Chromium: the page declares a function from its Tools box, shows the model's call, the
 * user answers it by hand in the call's JSON box, and the model's reply (which uses the answer) appears. Both
 * transports. The fake microphone speaks a sentence once; the emulator's scripted turn calls `get_time`.
 *
 * Chromium loops its fake-microphone file, and every utterance is a new turn that calls `get_time` again; the fixture
 * is padded with silence past the test's length, so there is one utterance, one call and one answer. The call is
 * answered by its id: if it were withdrawn meanwhile, the test must not type into it and then press the Answer
 * button of the next call (whose box is empty).
 * (The REST variant used to time out now and then: the session sent `audioStreamEnd` in the middle of the sentence,
 * which the page posts in 1 s chunks, so it became two turns and the first call was withdrawn; see
 * test/rest/sentence-in-1s-chunks.test.ts.)
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { scriptedScenario } from '../../src/emulator';
import { PAGE_CSP } from '../../src/routes/web-routes';
import { buildWebAssets, type BuildWebResult } from '../../src/web/build/build-web';
import { startTestServer, type TestServer } from '../helpers/test-server';
import { CHROMIUM_PATH as CHROMIUM, chromiumArgs } from '../helpers/chromium';
import { ffmpegBinary } from '../helpers/ffmpeg';

const SPOKEN_WAV = path.resolve(__dirname, '../fixtures/audio/chromium-hello-1000ms/source-48k.wav');
const RESULTS_DIR = path.resolve(__dirname, '../../test-results');
const TOOLS = [{ name: 'get_time', description: 'The time', parameters: { type: 'object', properties: { city: { type: 'string' } } } }];

jest.setTimeout(90_000);

let browser: Browser;
let web: BuildWebResult;
let tmp: string;

beforeAll(async () => {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`Chromium is required for the browser tests but ${CHROMIUM} does not exist.`);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'live-audio-browser-tools-'));
  web = await buildWebAssets({ outDir: path.join(tmp, 'web') });
  fs.mkdirSync(RESULTS_DIR, { recursive: true });
  // The sentence, then silence for longer than a test may last (Chromium starts the file again only after it).
  const fakeMicWav = path.join(tmp, 'hello-then-silence.wav');
  execFileSync(ffmpegBinary(), ['-hide_banner', '-loglevel', 'error', '-i', SPOKEN_WAV, '-af', 'apad=whole_dur=300', '-y', fakeMicWav]);
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: chromiumArgs(fakeMicWav, ['--autoplay-policy=no-user-gesture-required']) });
});
afterAll(async () => {
  await browser?.close();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

const byId = (page: Page, id: string) => page.locator(`[data-testid="${id}"]`);

describe('the page answers function calls by hand, in real Chromium', () => {
  let ts: TestServer | undefined;
  afterEach(async () => {
    await ts?.close();
    ts = undefined;
  });

  for (const transport of ['ws', 'rest'] as const) {
    it(`${transport}: the call is shown, answered in its JSON box, and the model's reply uses the answer`, async () => {
      ts = await startTestServer({ env: { LIVE_AUDIO_EMULATOR: 'on', LIVE_AUDIO_TOOL_TIMEOUT_MS: '60000' }, overrides: { webRoot: web.outDir } });
      ts.server.emulator!.setScenario(
        scriptedScenario([], {
          fallback: { userTranscript: 'what time is it', reply: 'It is', replyAudioMs: 300, toolCalls: [{ name: 'get_time', args: { city: 'Lima' } }] },
        }),
      );
      const context = await browser.newContext({ viewport: { width: 960, height: 1200 } });
      await context.grantPermissions(['microphone'], { origin: ts.url });
      const problems: string[] = [];
      const page = await context.newPage();
      page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
      page.on('console', (msg) => {
        if (msg.type() === 'error') problems.push(`console: ${msg.text()}`);
      });
      const res = await page.goto(`${ts.url}/`);
      expect(res?.headers()['content-security-policy']).toBe(PAGE_CSP);
      await byId(page, 'api-key').fill(ts.keys.alice);
      await byId(page, 'transport').selectOption(transport);
      await byId(page, 'modality').selectOption('text');
      await byId(page, 'tools').fill(JSON.stringify(TOOLS));
      await page.waitForFunction(() => document.querySelector('[data-testid="key-hint"]')?.getAttribute('data-state') === 'ok');
      await byId(page, 'start').click();

      const first = byId(page, 'tool-call').first();
      await first.waitFor({ state: 'visible', timeout: 30_000 });
      const call = page.locator(`[data-testid="tool-call"][data-call-id="${await first.getAttribute('data-call-id')}"]`);
      expect(await call.locator('.tool-name').textContent()).toBe('get_time({"city":"Lima"})');
      await page.screenshot({ path: path.join(RESULTS_DIR, `browser-tools-${transport}-call.png`), fullPage: true });
      await call.locator('[data-testid="tool-answer"]').fill('{"output": "half past four"}');
      await call.locator('[data-testid="tool-answer-send"]').click();
      await page.waitForFunction(() => (document.querySelector('[data-testid="model-response"]')?.textContent ?? '').includes('half past four'), undefined, {
        timeout: 30_000,
        polling: 50,
      });
      expect(await byId(page, 'tool-call').count()).toBe(0);
      // The answer reached the model once, under the declared name (one utterance, so one call).
      const answers = ts.server.emulator!.connections.flatMap((c) => c.toolResponses);
      expect(answers.filter((a) => a.name === 'get_time').map((a) => a.response)).toEqual([{ output: 'half past four' }]);
      await page.screenshot({ path: path.join(RESULTS_DIR, `browser-tools-${transport}-answered.png`), fullPage: true });
      await byId(page, 'stop').click();
      expect(problems).toEqual([]);
      await context.close();
    });
  }
});

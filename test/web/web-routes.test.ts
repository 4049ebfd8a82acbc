import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import express from 'express';
import request from 'supertest';
import { ASSET_CACHE_CONTROL, createWebPageRouter, INDEX_CACHE_CONTROL, PAGE_CSP } from '../../src/routes/web-routes';
import { buildWebAssets } from '../../src/web/build/build-web';

/** The static page routes without a browser: not-built answer, pick-up of a new build, caching, HEAD, unknown assets. */
describe('web page routes', () => {
  let dir: string;
  let app: express.Express;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'live-audio-web-'));
    app = express();
    app.use(createWebPageRouter({ root: path.join(dir, 'web') }));
    app.use((_req, res) => {
      res.status(404).json({ success: false, code: 'NOT_FOUND' });
    });
  });

  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('answers 503 with instructions (and the CSP) while nothing is built, then serves a build made later', async () => {
    const before = await request(app).get('/');
    expect(before.status).toBe(503);
    expect(before.text).toContain('npm run build:web');
    expect(before.headers['content-security-policy']).toBe(PAGE_CSP);
    expect(before.headers['cache-control']).toBe('no-store');

    const built = await buildWebAssets({ outDir: path.join(dir, 'web'), sourcemap: false });
    const after = await request(app).get('/');
    expect(after.status).toBe(200);
    expect(after.text).toContain(built.assets['app.js']);
    expect(after.headers['cache-control']).toBe(INDEX_CACHE_CONTROL);

    const js = await request(app).get(built.assets['app.js']);
    expect(js.status).toBe(200);
    expect(js.headers['cache-control']).toBe(ASSET_CACHE_CONTROL);
    expect(js.headers['content-security-policy']).toBe(PAGE_CSP);
    expect(Number(js.headers['content-length'])).toBeGreaterThan(1000);
  });

  it('revalidates index.html by ETag, answers HEAD without a body, and leaves unknown assets to the 404 handler', async () => {
    await buildWebAssets({ outDir: path.join(dir, 'web'), sourcemap: false });
    const first = await request(app).get('/index.html');
    const etag = first.headers.etag;
    expect(first.status).toBe(200);
    expect((await request(app).get('/').set('If-None-Match', etag)).status).toBe(304);

    const head = await request(app).head('/');
    expect(head.status).toBe(200);
    expect(head.headers['content-length']).toBe(String(Buffer.byteLength(first.text)));
    expect(head.text ?? '').toBe('');

    expect((await request(app).get('/assets/nope-ABCDEFGH.js')).status).toBe(404);
    expect((await request(app).get('/assets/..%2F..%2Fpackage.json')).status).toBe(404);
    expect((await request(app).post('/')).status).toBe(404);
  });

  it('picks up a rebuild with new hashed names without a restart', async () => {
    const a = await buildWebAssets({ outDir: path.join(dir, 'web'), sourcemap: false, minify: true });
    expect((await request(app).get('/')).text).toContain(a.assets['app.js']);
    const b = await buildWebAssets({ outDir: path.join(dir, 'web'), sourcemap: false, minify: false });
    expect(b.assets['app.js']).not.toBe(a.assets['app.js']);
    // The new index is served after the mtime change (same-second builds: touch it forward to be sure).
    const future = new Date(Date.now() + 5000);
    fs.utimesSync(path.join(dir, 'web', 'index.html'), future, future);
    const page = await request(app).get('/');
    expect(page.text).toContain(b.assets['app.js']);
    expect((await request(app).get(b.assets['app.js'])).status).toBe(200);
    expect((await request(app).get(a.assets['app.js'])).status).toBe(404);
  });
});

import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Router, type Request, type Response } from 'express';
import type { Logger } from '../util/logger';

/**
 * Serves the browser test page built by `npm run build:web` (src/web → dist/web):
 * - `GET /` (and `/index.html`): the page, `Cache-Control: no-cache` + strong ETag (revalidated on every load,
 *   304 when unchanged), so a rebuild is picked up at once;
 * - `GET /assets/<name>-<hash>.<ext>`: content-hashed bundles, `max-age=1y, immutable`.
 * Every response carries the page's strict Content-Security-Policy, set here explicitly so it holds whatever
 * global security middleware runs before it. Only files of the built folder are served (no path from the URL
 * reaches the file system). The folder is re-read when index.html changes (a new build).
 */

/** The page needs: its own scripts and styles, its worklet, fetch + WebSocket to this origin. Nothing inline. */
export const PAGE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "object-src 'none'",
  "require-trusted-types-for 'script'",
  "trusted-types 'none'",
].join('; ');

const PAGE_HEADERS: Record<string, string> = {
  'Content-Security-Policy': PAGE_CSP,
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'Permissions-Policy': 'microphone=(self), camera=(), geolocation=(), payment=(), usb=()',
};

export const INDEX_CACHE_CONTROL = 'no-cache';
export const ASSET_CACHE_CONTROL = 'public, max-age=31536000, immutable';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
};

interface ServedFile {
  body: Buffer;
  type: string;
  etag: string;
}

interface Loaded {
  indexMtimeMs: number;
  index: ServedFile;
  assets: Map<string, ServedFile>;
}

/** `dist/web` next to the compiled server (dist/src/routes → dist/web) or from the sources (src/routes → dist/web). */
export function defaultWebRoot(): string {
  const candidates = [path.resolve(__dirname, '../../web'), path.resolve(__dirname, '../../dist/web')];
  return candidates.find((c) => fs.existsSync(path.join(c, 'index.html'))) ?? candidates[candidates.length - 1];
}

const served = (body: Buffer, ext: string): ServedFile => ({
  body,
  type: TYPES[ext] ?? 'application/octet-stream',
  etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`,
});

export interface WebPageOptions {
  /** The built folder (contains index.html and assets/). */
  root: string;
  logger?: Logger;
}

export function createWebPageRouter(opts: WebPageOptions): Router {
  const root = path.resolve(opts.root);
  let loaded: Loaded | null = null;
  let loading: Promise<Loaded | null> | null = null;

  async function readFolder(mtimeMs: number): Promise<Loaded> {
    const index = served(await fs.promises.readFile(path.join(root, 'index.html')), '.html');
    const assets = new Map<string, ServedFile>();
    const dir = path.join(root, 'assets');
    const names = await fs.promises.readdir(dir).catch(() => [] as string[]);
    for (const name of names) {
      if (!/^[\w.-]+$/.test(name)) continue;
      const st = await fs.promises.stat(path.join(dir, name));
      if (!st.isFile()) continue;
      assets.set(name, served(await fs.promises.readFile(path.join(dir, name)), path.extname(name)));
    }
    opts.logger?.debug({ root, assets: assets.size }, 'web page loaded');
    return { indexMtimeMs: mtimeMs, index, assets };
  }

  /** The current build, re-read when index.html changed; null while nothing is built. */
  async function current(): Promise<Loaded | null> {
    let mtimeMs: number;
    try {
      mtimeMs = (await fs.promises.stat(path.join(root, 'index.html'))).mtimeMs;
    } catch {
      return loaded; // mid-swap or not built: keep serving what we have
    }
    if (loaded && loaded.indexMtimeMs === mtimeMs) return loaded;
    if (!loading) {
      loading = readFolder(mtimeMs)
        .then((l) => (loaded = l))
        .catch((err: unknown) => {
          opts.logger?.warn({ err: (err as Error).message, root }, 'could not read the web page build');
          return loaded;
        })
        .finally(() => {
          loading = null;
        });
    }
    return loading;
  }

  function send(req: Request, res: Response, file: ServedFile, cacheControl: string): void {
    res.set(PAGE_HEADERS);
    res.setHeader('Cache-Control', cacheControl);
    res.setHeader('ETag', file.etag);
    res.setHeader('Content-Type', file.type);
    if (req.fresh) {
      res.status(304).end();
      return;
    }
    res.setHeader('Content-Length', String(file.body.length));
    res.status(200).end(req.method === 'HEAD' ? undefined : file.body);
  }

  const r = Router();
  const page = async (req: Request, res: Response) => {
    const l = await current();
    if (!l) {
      res.set(PAGE_HEADERS);
      res.setHeader('Cache-Control', 'no-store');
      res
        .status(503)
        .type('html')
        .send(
          '<!doctype html><meta charset="utf-8"><title>live-audio</title>' +
            '<h1>The browser page is not built</h1><p>Run <code>npm run build:web</code> (or <code>npm run build</code>) and reload. ' +
            'The API under /api/v1/live-audio works without it.</p>',
        );
      return;
    }
    send(req, res, l.index, INDEX_CACHE_CONTROL);
  };
  r.get('/', page);
  r.get('/index.html', page);
  r.get('/assets/:name', async (req: Request, res: Response, next) => {
    const l = await current();
    const file = l?.assets.get(String(req.params.name));
    if (!file) return next();
    send(req, res, file, ASSET_CACHE_CONTROL);
  });
  return r;
}

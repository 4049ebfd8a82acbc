import fs from 'node:fs';
import path from 'node:path';
import { build } from 'esbuild';

/**
 * Bundles the browser page (src/web) into a served folder:
 *   <outDir>/index.html                 (references the hashed assets; served with ETag + no-cache)
 *   <outDir>/assets/<name>-<hash>.js|css (+ .map; served immutable)
 * esbuild bundles the TypeScript modules into one ES module for the page and one for the AudioWorklet,
 * so the page needs no inline script and works under `script-src 'self'`.
 */

export const WEB_SRC_DIR = path.resolve(__dirname, '..');
export const DEFAULT_WEB_OUT_DIR = path.resolve(__dirname, '../../../dist/web');

export interface BuildWebOptions {
  outDir?: string;
  minify?: boolean;
  sourcemap?: boolean;
}

export interface BuildWebResult {
  outDir: string;
  /** Entry name → served URL path (`/assets/app-XXXX.js`). */
  assets: Record<'app.js' | 'pcm-capture.js' | 'styles.css', string>;
  files: string[];
}

const ENTRIES = {
  app: path.join(WEB_SRC_DIR, 'main.ts'),
  'pcm-capture': path.join(WEB_SRC_DIR, 'pcm-capture-worklet.ts'),
  styles: path.join(WEB_SRC_DIR, 'styles.css'),
};

export async function buildWebAssets(opts: BuildWebOptions = {}): Promise<BuildWebResult> {
  const outDir = path.resolve(opts.outDir ?? DEFAULT_WEB_OUT_DIR);
  const assetsDir = path.join(outDir, 'assets');
  const staging = `${outDir}.tmp-${process.pid}-${Date.now()}`;
  fs.rmSync(staging, { recursive: true, force: true });

  const result = await build({
    entryPoints: ENTRIES,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: ['chrome109', 'firefox115', 'safari16'],
    outdir: path.join(staging, 'assets'),
    entryNames: '[name]-[hash]',
    minify: opts.minify ?? true,
    sourcemap: opts.sourcemap ?? true ? 'linked' : false,
    legalComments: 'none',
    metafile: true,
    write: true,
    logLevel: 'silent',
  });

  const assets = {} as BuildWebResult['assets'];
  const wanted: Record<string, keyof BuildWebResult['assets']> = {
    [ENTRIES.app]: 'app.js',
    [ENTRIES['pcm-capture']]: 'pcm-capture.js',
    [ENTRIES.styles]: 'styles.css',
  };
  for (const [outFile, meta] of Object.entries(result.metafile.outputs)) {
    if (!meta.entryPoint || outFile.endsWith('.map')) continue;
    const key = wanted[path.resolve(meta.entryPoint)];
    if (key) assets[key] = `/assets/${path.basename(outFile)}`;
  }
  for (const k of Object.values(wanted)) {
    if (!assets[k]) throw new Error(`web build: no output for ${k}`);
  }

  let html = fs.readFileSync(path.join(WEB_SRC_DIR, 'index.html'), 'utf8');
  html = html.replace(/\{\{(app\.js|pcm-capture\.js|styles\.css)\}\}/g, (_m, k: keyof BuildWebResult['assets']) => assets[k]);
  if (/\{\{[^}]*\}\}/.test(html)) throw new Error('web build: unknown placeholder left in index.html');
  fs.writeFileSync(path.join(staging, 'index.html'), html);

  // Swap the finished folder in, so a running server never sees half a build.
  fs.mkdirSync(path.dirname(outDir), { recursive: true });
  const old = `${outDir}.old-${process.pid}-${Date.now()}`;
  if (fs.existsSync(outDir)) fs.renameSync(outDir, old);
  fs.renameSync(staging, outDir);
  fs.rmSync(old, { recursive: true, force: true });

  const files = ['index.html', ...fs.readdirSync(assetsDir).map((f) => `assets/${f}`)];
  return { outDir, assets, files };
}

async function main(): Promise<void> {
  const outArg = process.argv.indexOf('--out');
  const outDir = outArg > 0 ? process.argv[outArg + 1] : undefined;
  const r = await buildWebAssets({ outDir, minify: !process.argv.includes('--no-minify') });
  const rel = path.relative(process.cwd(), r.outDir) || '.';
  console.log(`web page built into ${rel}: ${r.files.filter((f) => !f.endsWith('.map')).join(', ')}`);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error('web build failed:', err instanceof Error ? err.message : err);
    process.exit(1);
  });
}

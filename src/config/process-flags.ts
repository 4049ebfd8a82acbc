/**
 * What the process is started with, outside the settings table (read by glibc and V8 when the process starts, so no
 * `.env` can set them): `npm start` (package.json) and the Docker image (deploy/Dockerfile) pass exactly these, the
 * bench starts its server with them, and test/config/process-flags.test.ts holds the three together.
 * Why each one: BENCHMARKS.md, soak.
 */

/** glibc's allocator: 2 malloc arenas instead of 8 per core for Node's threads (freed memory is reused, not spread). */
export const START_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: '2' };

/**
 * V8: the heap may grow to 1.5× what the last full GC kept before the next one (V8 picks 1.1–4× by itself, and
 * picked up to 4×): dead Buffers wait for that GC in glibc's arena, which keeps their memory afterwards.
 */
export const START_NODE_FLAGS: readonly string[] = ['--heap-growing-percent=50'];

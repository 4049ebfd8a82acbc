/**
 * The attacker of http-abuse.test.ts, run as its own process (`node --import tsx test/security/attacker.ts
 * '<json plan>'`) so that its own work never delays the test's /health probe: what the probe measures is the
 * server. Prints one JSON line with what it saw.
 *
 * Plans:
 * - `bodies`: `total` POSTs (`parallel` at a time) of a `bodyBytes` body (nested `[[[…]]]` or filler), sent as
 *   fast as the socket takes it, round-robin over `paths`: status counts and time to the answer.
 * - `slow-bodies`: `count` connections announcing `declaredBytes` and dribbling `dribbleBytes` every
 *   `dribbleEveryMs` for `holdMs`, ignoring the server's FIN: when each was answered, how much had been sent by
 *   then, and when the server closed it.
 * - `urls`: `total` GETs (`parallel` at a time), round-robin over `paths`: status counts and times.
 * - `hold`: `count` idle connections held for `holdMs`: how many the server refused with 429 at once and when
 *   the others were closed.
 */
import http from 'node:http';
import { parseResponse, RawConn } from './raw-http';

interface Common {
  port: number;
  localAddress?: string;
  headers?: Record<string, string>;
}
type Plan =
  | (Common & { kind: 'bodies'; paths: string[]; bodyBytes: number; body: 'nested' | 'filler'; parallel: number; total: number })
  | (Common & { kind: 'slow-bodies'; path: string; count: number; declaredBytes: number; dribbleBytes: number; dribbleEveryMs: number; holdMs: number })
  | (Common & { kind: 'urls'; paths: string[]; parallel: number; total: number })
  | (Common & { kind: 'hold'; count: number; holdMs: number });

const quantiles = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => (s.length ? s[Math.min(s.length - 1, Math.floor(s.length * p))] : 0);
  return { n: s.length, p50: q(0.5), p99: q(0.99), max: s.length ? s[s.length - 1] : 0 };
};
const count = (xs: (number | string)[]) => xs.reduce<Record<string, number>>((m, x) => ((m[String(x)] = (m[String(x)] ?? 0) + 1), m), {});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function pool(parallel: number, total: number, one: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < total) await one(next++);
    }),
  );
}

/** One request on a fresh connection; resolves at the end of the answer (or the error). */
function send(p: Common, method: string, path: string, body?: Buffer): Promise<{ status: number | string; answerMs: number; code?: string }> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    let answerMs = 0;
    const req = http.request(
      { host: '127.0.0.1', port: p.port, method, path, localAddress: p.localAddress, agent: false, headers: { ...p.headers, ...(body ? { 'Content-Type': 'application/json', 'Content-Length': body.length } : {}) } },
      (res) => {
        answerMs = performance.now() - t0;
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => {
          let code: string | undefined;
          try {
            code = (JSON.parse(Buffer.concat(chunks).toString()) as { code?: string }).code;
          } catch {
            code = undefined;
          }
          resolve({ status: res.statusCode ?? 0, answerMs, code });
        });
        res.on('error', () => resolve({ status: res.statusCode ?? 0, answerMs }));
      },
    );
    // Writing into a connection the server closed after answering: expected, the answer already arrived.
    req.on('error', (e: NodeJS.ErrnoException) => {
      if (!answerMs) resolve({ status: e.code ?? 'error', answerMs: performance.now() - t0 });
    });
    req.setTimeout(30_000, () => req.destroy(new Error('timeout')));
    req.end(body);
  });
}

async function run(plan: Plan): Promise<unknown> {
  const t0 = performance.now();
  switch (plan.kind) {
    case 'bodies': {
      const body =
        plan.body === 'nested'
          ? Buffer.from('['.repeat(plan.bodyBytes / 2) + ']'.repeat(plan.bodyBytes / 2))
          : Buffer.from(`{"session_id":"x","audio_data":"${'A'.repeat(plan.bodyBytes - 40)}"}`);
      const results: { status: number | string; answerMs: number; code?: string }[] = [];
      await pool(plan.parallel, plan.total, async (i) => {
        results.push(await send(plan, 'POST', plan.paths[i % plan.paths.length], body));
      });
      return { statuses: count(results.map((r) => r.status)), codes: count(results.map((r) => r.code ?? '-')), answerMs: quantiles(results.map((r) => r.answerMs)), wallMs: performance.now() - t0 };
    }
    case 'urls': {
      const results: { status: number | string; answerMs: number }[] = [];
      await pool(plan.parallel, plan.total, async (i) => {
        results.push(await send(plan, 'GET', plan.paths[i % plan.paths.length]));
      });
      return { statuses: count(results.map((r) => r.status)), answerMs: quantiles(results.map((r) => r.answerMs)), wallMs: performance.now() - t0 };
    }
    case 'slow-bodies': {
      const conns = await Promise.all(Array.from({ length: plan.count }, () => RawConn.open(plan.port, { localAddress: plan.localAddress, allowHalfOpen: true })));
      const headerLines = Object.entries({ ...plan.headers, 'Content-Type': 'application/json', 'Content-Length': String(plan.declaredBytes) })
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join('');
      for (const c of conns) c.write(`POST ${plan.path} HTTP/1.1\r\nHost: x\r\n${headerLines}\r\n{"session_id":"slow","audio_data":"`);
      const filler = 'A'.repeat(plan.dribbleBytes);
      const deadline = performance.now() + plan.holdMs;
      while (performance.now() < deadline && conns.some((c) => !c.closed)) {
        for (const c of conns) if (!c.closed) c.write(filler);
        await sleep(plan.dribbleEveryMs);
      }
      const answers = conns.map((c) => parseResponse(c.text));
      const firstByteMs = conns.map((c) => c.firstByteAt ?? NaN);
      const out = {
        statuses: count(answers.map((a) => a?.status ?? 'none')),
        codes: count(answers.map((a) => (a ? ((JSON.parse(a.body) as { code?: string }).code ?? '-') : '-'))),
        answerMs: quantiles(conns.map((c, i) => firstByteMs[i] - c.openedAt).filter(Number.isFinite)),
        sentBeforeAnswer: quantiles(conns.map((c) => c.writtenAtFirstByte ?? Infinity)),
        closedAfterAnswerMs: quantiles(conns.filter((c) => c.closedAt !== undefined && c.firstByteAt !== undefined).map((c) => c.closedAt! - c.firstByteAt!)),
        stillOpen: conns.filter((c) => !c.closed).length,
        totalSent: conns.reduce((n, c) => n + c.written, 0),
        wallMs: performance.now() - t0,
      };
      for (const c of conns) c.destroy();
      return out;
    }
    case 'hold': {
      const conns: RawConn[] = [];
      for (let i = 0; i < plan.count; i++) conns.push(await RawConn.open(plan.port, { localAddress: plan.localAddress }));
      await sleep(300);
      const refused = conns.filter((c) => parseResponse(c.text)?.status === 429);
      const held = conns.filter((c) => !refused.includes(c));
      const deadline = performance.now() + plan.holdMs;
      while (performance.now() < deadline && held.some((c) => !c.closed)) await sleep(50);
      const out = {
        opened: conns.length,
        refused429: refused.length,
        refusedClosed: refused.filter((c) => c.closed).length,
        heldClosedByServer: held.filter((c) => c.closed).length,
        heldClosedAfterMs: quantiles(held.filter((c) => c.closedAt !== undefined).map((c) => c.closedAt! - c.openedAt)),
        heldAnswers: count(held.map((c) => parseResponse(c.text)?.status ?? 'none')),
        wallMs: performance.now() - t0,
      };
      for (const c of conns) c.destroy();
      return out;
    }
  }
}

run(JSON.parse(process.argv[2]) as Plan).then(
  (r) => {
    process.stdout.write(JSON.stringify(r) + '\n');
    process.exit(0);
  },
  (e: unknown) => {
    process.stderr.write(`attacker failed: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  },
);

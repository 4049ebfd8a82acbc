/**
 * The benchmark's upstream: the Gemini Live emulator in a process of its own (so the server's CPU figures are the
 * relay alone), plus a small control endpoint the bench reads the upstream lag from.
 *
 *   node emulator-host.js <plan.json>
 *
 * plan.json: { timesliceMs, chunkEndMs, loopMs, userTranscript, reply, track }. Prints one JSON line
 * `{"baseUrl":…,"controlUrl":…}` on stdout when ready; stops on SIGTERM/SIGINT.
 * GET <controlUrl>/lag → `{ connections: ConnectionLag[] }`; GET <controlUrl>/stats → counts.
 */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { scriptedScenario, startGeminiLiveEmulator } from '../src/emulator';
import { UpstreamLagTracker, type LagPlan } from './upstream-lag';

export interface EmulatorHostPlan extends LagPlan {
  userTranscript: string;
  reply: string;
  /** Track per-chunk arrival (off for the soak, whose sessions are too short to matter). */
  track: boolean;
}

async function main(): Promise<void> {
  const plan = JSON.parse(fs.readFileSync(process.argv[2], 'utf8')) as EmulatorHostPlan;
  const emulator = await startGeminiLiveEmulator({
    host: '127.0.0.1',
    port: 0,
    keepPcm: false,
    scenario: scriptedScenario([], { fallback: { userTranscript: plan.userTranscript, reply: plan.reply } }),
    logger: pino({ level: 'warn' }, pino.destination(2)),
  });
  const tracker = plan.track ? new UpstreamLagTracker(() => emulator.connections, plan) : undefined;
  // Walk new records regularly so that the final read is short.
  const poller = tracker ? setInterval(() => tracker.poll(), 500) : undefined;

  const control = http.createServer((req, res) => {
    const send = (body: unknown) => {
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify(body));
    };
    if (req.url === '/lag') return send({ connections: tracker ? tracker.lags() : [] });
    if (req.url === '/stats') {
      const conns = emulator.connections;
      return send({
        connections: conns.length,
        open: conns.filter((c) => !c.closed).length,
        turns: conns.reduce((t, c) => t + c.turns, 0),
        audioBytes: emulator.totalAudioBytes(),
      });
    }
    res.statusCode = 404;
    res.end();
  });
  await new Promise<void>((resolve) => control.listen(0, '127.0.0.1', resolve));
  const controlUrl = `http://127.0.0.1:${(control.address() as AddressInfo).port}`;
  process.stdout.write(`${JSON.stringify({ baseUrl: emulator.baseUrl, controlUrl })}\n`);

  const stop = () => {
    if (poller) clearInterval(poller);
    control.close();
    emulator.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});

/**
 * A real process holding a ProfileStore (the building block the server will host), driven over stdin/stdout:
 * each line `get <name>` is answered with one JSON line. Used by the attacker's test on a spawned process.
 */
import readline from 'node:readline';
import { LiveModelTable } from '../../src/services/models';
import { ProfileStore } from '../../src/services/profiles';
import { createLogger } from '../../src/util/logger';

const file = process.argv[2];
const store = new ProfileStore({
  models: new LiveModelTable(),
  filePath: file,
  reloadIntervalMs: 0,
  server: { systemInstruction: 'server persona' },
  log: createLogger({ level: 'warn', pretty: false, destination: process.stderr }),
});
const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const [cmd, name] = line.trim().split(/\s+/);
  if (cmd !== 'get') return;
  void store.get(name).then((p) => {
    const s = store.status();
    process.stdout.write(`${JSON.stringify({ name, found: !!p, voice: p?.defaults.voice ?? null, profiles: s.profiles.length, lastError: s.lastError, rss: process.memoryUsage().rss })}\n`);
  });
});
process.stdout.write('ready\n');

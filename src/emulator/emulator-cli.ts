/**
 * Standalone Gemini Live emulator: `npx tsx src/emulator/emulator-cli.ts --port 9999`.
 * Prints its base URL on stdout (one line), logs to stderr, runs until SIGINT/SIGTERM.
 * Point a client at it with `GOOGLE_GEMINI_BASE_URL=<url>` or `httpOptions.baseUrl`.
 */
import pino from 'pino';
import { mergeFaults, namedFault, type FaultOptions } from './faults';
import { startGeminiLiveEmulator, type GeminiLiveEmulator } from './gemini-live-emulator';
import { DEMO_RETENTION } from './connection-records';
import { namedScenario, type Scenario } from './scenario';
import { isEmulatorTiming, type EmulatorTiming } from './timing';

export const EMULATOR_CLI_USAGE = [
  'Usage: npx tsx src/emulator/emulator-cli.ts [options]',
  '',
  'Options:',
  '  --port <n>            port (default 9999; 0 = random)',
  '  --host <addr>         address to listen on (default 127.0.0.1)',
  '  --frames binary|text  server frame type (default binary, like production)',
  '  --timing spaced|eager spaced: one write per message; eager (default): a handle and usage in the same',
  '                        read as setupComplete, messages of one tick coalesced (like a busy server)',
  '  --api-key <key>       accept only this key (repeatable; default: any key)',
  '  --scenario <name>     default | short | realtime (default: default, the offline demo)',
  '  --fault <name>        e.g. goaway, drop, internal-error, quota, slow, split, http-429 (repeatable)',
  '  --log-level <level>   pino level for stderr (default info)',
  '  -h, --help            show this help',
  '',
  'Per connection, the API key can also select `scenario:<name>` and `fault:<name>[@N]` (comma-separated).',
].join('\n');

export interface EmulatorCliArgs {
  help: boolean;
  port: number;
  host: string;
  frames: 'binary' | 'text';
  timing: EmulatorTiming;
  apiKeys: string[];
  scenario: Scenario | undefined;
  faults: FaultOptions;
  logLevel: string;
}

export class EmulatorCliUsageError extends Error {}

/** Parses the arguments (without `node` and the script). Throws {@link EmulatorCliUsageError}. */
export function parseEmulatorCliArgs(argv: readonly string[]): EmulatorCliArgs {
  const out: EmulatorCliArgs = {
    help: false,
    port: 9999,
    host: '127.0.0.1',
    frames: 'binary',
    timing: 'eager',
    apiKeys: [],
    scenario: undefined,
    faults: {},
    logLevel: 'info',
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined || v.startsWith('--')) throw new EmulatorCliUsageError(`${arg} needs a value`);
      return v;
    };
    switch (arg) {
      case '-h':
      case '--help':
        out.help = true;
        break;
      case '--port': {
        const port = Number(value());
        if (!Number.isInteger(port) || port < 0 || port > 65535) throw new EmulatorCliUsageError(`invalid port ${argv[i]}`);
        out.port = port;
        break;
      }
      case '--host':
        out.host = value();
        break;
      case '--frames': {
        const frames = value();
        if (frames !== 'binary' && frames !== 'text') throw new EmulatorCliUsageError(`--frames must be binary or text`);
        out.frames = frames;
        break;
      }
      case '--timing': {
        const timing = value();
        if (!isEmulatorTiming(timing)) throw new EmulatorCliUsageError(`--timing must be spaced or eager`);
        out.timing = timing;
        break;
      }
      case '--api-key':
        out.apiKeys.push(value());
        break;
      case '--scenario': {
        const name = value();
        out.scenario = namedScenario(name);
        if (!out.scenario) throw new EmulatorCliUsageError(`unknown scenario ${name}`);
        break;
      }
      case '--fault': {
        const name = value();
        const fault = namedFault(name);
        if (!fault) throw new EmulatorCliUsageError(`unknown fault ${name}`);
        out.faults = mergeFaults(out.faults, fault);
        break;
      }
      case '--log-level':
        out.logLevel = value();
        break;
      default:
        throw new EmulatorCliUsageError(`unknown argument ${arg}`);
    }
  }
  return out;
}

/** Starts the emulator for `args` and prints its base URL with `print`. */
export async function runEmulatorCli(args: EmulatorCliArgs, print: (line: string) => void): Promise<GeminiLiveEmulator> {
  const logger = pino({ level: args.logLevel, base: { service: 'gemini-live-emulator' } }, pino.destination(2));
  const emulator = await startGeminiLiveEmulator({
    host: args.host,
    port: args.port,
    frames: args.frames,
    apiKeys: args.apiKeys.length > 0 ? args.apiKeys : undefined,
    scenario: args.scenario,
    faults: args.faults,
    timing: args.timing,
    retention: DEMO_RETENTION, // a long-running process must not keep every byte it hears
    logger,
  });
  print(emulator.baseUrl);
  return emulator;
}

async function main(): Promise<void> {
  let args: EmulatorCliArgs;
  try {
    args = parseEmulatorCliArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${EMULATOR_CLI_USAGE}\n`);
    process.exit(2);
  }
  if (args.help) {
    process.stdout.write(`${EMULATOR_CLI_USAGE}\n`);
    return;
  }
  const emulator = await runEmulatorCli(args, (line) => process.stdout.write(`${line}\n`));
  const shutdown = (signal: string) => {
    process.stderr.write(`${signal}: stopping the emulator\n`);
    emulator.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGINT', () => shutdown('SIGINT'));
  process.once('SIGTERM', () => shutdown('SIGTERM'));
}

if (require.main === module) {
  main().catch((err) => {
    process.stderr.write(`${(err as Error).stack ?? err}\n`);
    process.exit(1);
  });
}

/**
 * API key administration: `npm run keys -- <command>`.
 *
 *   create <name>   generate a key, store its SHA-256 hash, print the key once
 *   list            name, created, revoked, hash prefix (never keys)
 *   revoke <name>   revoke the active key with this name
 *
 * Option `--file <path>` (default: env `LIVE_AUDIO_API_KEYS_FILE`, else `.live-audio/api-keys.json`).
 * A running server re-reads the key file within about a second, so no restart is needed.
 *
 * Cluster mode: with `REDIS_URL` set (and no `--file`), the keys go to Redis (`RedisKeyStore`, key prefix
 * `LIVE_AUDIO_REDIS_KEY_PREFIX`), where every instance reads them (within `LIVE_AUDIO_CLUSTER_KEY_CACHE_MS`).
 *
 * The core is `runKeysCli()`, which tests call directly; `.env` is loaded only when this file is the entry point.
 */
import * as path from 'node:path';
import { RedisConnection } from '../cluster/redis-connection';
import { RedisKeyStore } from '../cluster/redis-key-store';
import { ApiKeyConfigError, parseEnvApiKeys } from '../services/auth/api-key';
import {
  createKeyInFile,
  DEFAULT_KEY_FILE,
  KeyAdminError,
  KeyFileError,
  listKeysInFile,
  revokeKeyInFile,
} from '../services/auth/key-file';

export interface KeysCliContext {
  /** Environment to read `LIVE_AUDIO_API_KEYS_FILE` / `LIVE_AUDIO_API_KEYS` from. Default: none. */
  env?: Record<string, string | undefined>;
  /** Base for relative paths. Default `process.cwd()`. */
  cwd?: string;
  stdout?: (line: string) => void;
  stderr?: (line: string) => void;
  now?: () => Date;
}

export interface KeysCliArgs {
  command: 'create' | 'list' | 'revoke' | 'help';
  name?: string;
  file?: string;
}

export class KeysCliUsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KeysCliUsageError';
  }
}

export const KEYS_CLI_USAGE = [
  'Usage: npm run keys -- <command> [--file <path>]',
  '',
  'Commands:',
  '  create <name>   create an API key (name: 1-64 of A-Z a-z 0-9 _ . -); the key is printed once',
  '  list            list keys: name, created, revoked, hash prefix',
  '  revoke <name>   revoke the active key with this name',
  '',
  'Options:',
  `  --file <path>   key file (default: $LIVE_AUDIO_API_KEYS_FILE or ${DEFAULT_KEY_FILE})`,
  '                  With REDIS_URL set and no --file, keys are kept in Redis for every instance.',
  '  -h, --help      show this help',
].join('\n');

/** Parses the CLI arguments (without `node` and the script). Throws {@link KeysCliUsageError}. */
export function parseKeysCliArgs(argv: readonly string[]): KeysCliArgs {
  const positional: string[] = [];
  let file: string | undefined;
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--file' || a === '-f') {
      const v = argv[++i];
      if (v === undefined || v === '') throw new KeysCliUsageError(`${a} needs a path`);
      file = v;
    } else if (a.startsWith('--file=')) {
      file = a.slice('--file='.length);
      if (!file) throw new KeysCliUsageError('--file needs a path');
    } else if (a === '-h' || a === '--help') {
      help = true;
    } else if (a === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    } else if (a.startsWith('-') && a.length > 1) {
      throw new KeysCliUsageError(`Unknown option ${a.slice(0, 40)}`);
    } else {
      positional.push(a);
    }
  }
  if (help) return { command: 'help', file };
  const [command, ...rest] = positional;
  switch (command) {
    case 'create':
    case 'revoke':
      if (rest.length !== 1) throw new KeysCliUsageError(`"${command}" needs exactly one <name>`);
      return { command, name: rest[0], file };
    case 'list':
      if (rest.length !== 0) throw new KeysCliUsageError('"list" takes no arguments');
      return { command, file };
    case undefined:
      throw new KeysCliUsageError('Missing command');
    default:
      throw new KeysCliUsageError(`Unknown command "${command.slice(0, 40)}"`);
  }
}

/** The key file the CLI works on: `--file`, else `LIVE_AUDIO_API_KEYS_FILE`, else the default; made absolute. */
export function resolveKeyFilePath(file: string | undefined, env: Record<string, string | undefined>, cwd: string): string {
  return path.resolve(cwd, file || env.LIVE_AUDIO_API_KEYS_FILE || DEFAULT_KEY_FILE);
}

/** Names of the keys in `LIVE_AUDIO_API_KEYS`, or the (key-free) parse error. */
function envKeyNames(env: Record<string, string | undefined>): { names: string[]; error?: string } {
  try {
    return { names: parseEnvApiKeys(env.LIVE_AUDIO_API_KEYS).map((k) => k.name) };
  } catch (e) {
    return { names: [], error: e instanceof ApiKeyConfigError ? e.message : 'LIVE_AUDIO_API_KEYS cannot be parsed' };
  }
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  '));
}

/** Runs one CLI command. Returns the process exit code (0 ok, 1 failure, 2 usage error). Never throws. */
export function runKeysCli(argv: readonly string[], ctx: KeysCliContext = {}): number {
  const out = ctx.stdout ?? ((l: string) => process.stdout.write(`${l}\n`));
  const err = ctx.stderr ?? ((l: string) => process.stderr.write(`${l}\n`));
  const env = ctx.env ?? {};
  let args: KeysCliArgs;
  try {
    args = parseKeysCliArgs(argv);
  } catch (e) {
    err(`Error: ${(e as Error).message}`);
    err('');
    err(KEYS_CLI_USAGE);
    return 2;
  }
  if (args.command === 'help') {
    out(KEYS_CLI_USAGE);
    return 0;
  }
  const filePath = resolveKeyFilePath(args.file, env, ctx.cwd ?? process.cwd());
  try {
    switch (args.command) {
      case 'create': {
        const created = createKeyInFile(filePath, args.name!, {
          reservedNames: envKeyNames(env).names,
          now: ctx.now,
        });
        out(`Created API key "${created.name}" (stored as a SHA-256 hash in ${filePath}).`);
        out('');
        out(`  ${created.key}`);
        out('');
        out('Copy it now: this key cannot be shown again. Send it in the X-API-Key header.');
        out('A running server accepts it within about a second; no restart needed.');
        return 0;
      }
      case 'revoke': {
        const revoked = revokeKeyInFile(filePath, args.name!, { now: ctx.now });
        out(`Revoked API key "${args.name}" (${revoked.length} key${revoked.length === 1 ? '' : 's'}) in ${filePath}.`);
        if (envKeyNames(env).names.includes(args.name!)) {
          out(`Note: a key named "${args.name}" is also set in LIVE_AUDIO_API_KEYS; remove it there too.`);
        }
        return 0;
      }
      case 'list': {
        const keys = listKeysInFile(filePath);
        out(`Key file: ${filePath}`);
        if (keys.length === 0) {
          out('No API keys in the key file.');
        } else {
          const rows = [['NAME', 'CREATED', 'REVOKED', 'HASH']];
          for (const k of keys) rows.push([k.name, k.createdAt, k.revokedAt ?? '-', `${k.hashPrefix}…`]);
          for (const line of table(rows)) out(line);
        }
        const envInfo = envKeyNames(env);
        if (envInfo.names.length) out(`Also configured in LIVE_AUDIO_API_KEYS: ${envInfo.names.join(', ')}`);
        if (envInfo.error) out(`Warning: ${envInfo.error}`);
        return 0;
      }
      default:
        return 2;
    }
  } catch (e) {
    if (e instanceof KeyAdminError || e instanceof KeyFileError) {
      err(`Error: ${e.message}`);
    } else {
      const code = (e as NodeJS.ErrnoException)?.code;
      err(`Error: cannot update ${filePath}${code ? ` (${code})` : ''}`);
    }
    return 1;
  }
}

/**
 * Runs one CLI command where the keys live: Redis when `REDIS_URL` is set and no `--file` was given (cluster
 * mode), else the key file (`runKeysCli`). Returns the exit code. Never throws; never prints the Redis password.
 */
export async function runKeysCommand(argv: readonly string[], ctx: KeysCliContext = {}): Promise<number> {
  const env = ctx.env ?? {};
  let args: KeysCliArgs | undefined;
  try {
    args = parseKeysCliArgs(argv);
  } catch {
    args = undefined; // runKeysCli prints the usage error
  }
  if (!env.REDIS_URL || !args || args.command === 'help' || args.file) return runKeysCli(argv, ctx);
  return runRedisKeysCli(args, env.REDIS_URL, ctx);
}

async function runRedisKeysCli(args: KeysCliArgs, url: string, ctx: KeysCliContext): Promise<number> {
  const out = ctx.stdout ?? ((l: string) => process.stdout.write(`${l}\n`));
  const err = ctx.stderr ?? ((l: string) => process.stderr.write(`${l}\n`));
  const env = ctx.env ?? {};
  const connection = new RedisConnection({ url, keyPrefix: env.LIVE_AUDIO_REDIS_KEY_PREFIX || 'live-audio:', connectionName: 'live-audio-keys' });
  const where = `Redis ${connection.safeUrl}`;
  try {
    connection.start();
    if (!(await connection.waitUntilConnected(5000))) {
      err(`Error: cannot reach ${where}`);
      return 1;
    }
    const store = new RedisKeyStore(connection);
    switch (args.command) {
      case 'create': {
        const created = await store.create(args.name!, { reservedNames: envKeyNames(env).names, now: ctx.now });
        out(`Created API key "${created.name}" (stored as a SHA-256 hash in ${where}, for every instance).`);
        out('');
        out(`  ${created.key}`);
        out('');
        out('Copy it now: this key cannot be shown again. Send it in the X-API-Key header.');
        out('Every running instance accepts it within LIVE_AUDIO_CLUSTER_KEY_CACHE_MS (2 s by default); no restart needed.');
        return 0;
      }
      case 'revoke': {
        const n = await store.revoke(args.name!, { now: ctx.now });
        out(`Revoked API key "${args.name}" (${n} key${n === 1 ? '' : 's'}) in ${where}; every instance refuses it within LIVE_AUDIO_CLUSTER_KEY_CACHE_MS.`);
        if (envKeyNames(env).names.includes(args.name!)) out(`Note: a key named "${args.name}" is also set in LIVE_AUDIO_API_KEYS; remove it there too.`);
        return 0;
      }
      case 'list': {
        const keys = await store.list();
        out(`Keys in ${where}`);
        if (keys.length === 0) out('No API keys in Redis.');
        else {
          const rows = [['NAME', 'CREATED', 'REVOKED', 'HASH']];
          for (const k of keys) rows.push([k.name, k.createdAt, k.revokedAt ?? '-', `${k.hashPrefix}…`]);
          for (const line of table(rows)) out(line);
        }
        return 0;
      }
      default:
        return 2;
    }
  } catch (e) {
    if (e instanceof KeyAdminError || e instanceof KeyFileError) err(`Error: ${e.message}`);
    else err(`Error: cannot update the keys in ${where} (${e instanceof Error ? e.name : 'error'})`);
    return 1;
  } finally {
    await connection.close();
  }
}

function main(): void {
  // Entry point only: load .env (quietly) so LIVE_AUDIO_API_KEYS_FILE (or REDIS_URL) set there is honoured.
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- resolved at run time (an optional or CommonJS-only module)
  (require('dotenv') as typeof import('dotenv')).config({ quiet: true });
  void runKeysCommand(process.argv.slice(2), { env: process.env }).then((code) => {
    process.exitCode = code;
  });
}

if (require.main === module) main();

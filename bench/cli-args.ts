/** `npm run bench -- [options]`: typed options. */
import type { Transport } from './load';

export type Mode = 'load' | 'ramp' | 'soak' | 'compare' | 'smoke';

export interface BenchArgs {
  mode: Mode;
  sessions: number;
  durationS: number;
  /** `both` (ramp only): the ramp runs once per transport and reports each one's capacity. */
  transport: Transport | 'both';
  recording: string | undefined;
  /** Ramp: stop raising N here. */
  maxSessions: number;
  /** Soak: sessions opened and closed, and how many at a time. */
  soakSessions: number;
  soakConcurrency: number;
  /** Compare: which designs (default all three). */
  designs: string[];
  /** Write a V8 CPU profile of the server (load mode) into this folder. */
  profileDir: string | undefined;
  /** Extra server settings (`--server-env KEY=VALUE`, repeatable), e.g. LIVE_AUDIO_TRANSCRIBE_WAIT_MS=0. */
  serverEnv: Record<string, string>;
  /** Extra `node` flags for the server (`--server-node-arg FLAG`, repeatable), e.g. --max-semi-space-size=4. */
  serverNodeArgs: string[];
  /** Soak: call glibc's malloc_trim(0) in the server (through gdb) after each checkpoint's GC and read RSS again. */
  soakMallocTrim: boolean;
  /** Soak: heap snapshots at the first 1,000 sessions and at the end, and what grew between them (by kind of node). */
  soakHeapDiff: boolean;
  /** Soak: how long the server is left idle at each checkpoint before its memory is read. */
  soakSettleMs: number;
  /** Load mode: server instances sharing a Redis behind nginx (cluster mode); 1 = the single process. */
  instances: number;
  help: boolean;
}

export const USAGE = `Usage: npm run bench -- [options]

  --mode load|ramp|soak|compare|smoke
                                 default load; smoke (npm run bench:smoke): a load run of 30 REST sessions × 25 s
                                 (unless --sessions/--duration say otherwise) ending with one line: cost ratio, relay p99
  --sessions N                   concurrent sessions (load, compare; first step of ramp). Default 50
  --duration S                   steady-phase seconds per run. Default 30 (ramp: per step)
  --transport rest|ws|both       REST like the frontend (one POST /transcribe per chunk) or /ws/live-audio. Default rest;
                                 both (ramp only): one ramp per transport, each one's capacity reported
  --recording NAME               fixture under test/fixtures/audio. Default chromium-long-22s
  --max-sessions N               ramp: highest N tried. Default 1000
  --soak-sessions N              soak: sessions opened and closed. Default 10000
  --soak-concurrency N           soak: sessions at a time. Default 50
  --designs a,b,c                compare: long-lived,per-chunk,redecode (default all)
  --profile DIR                  load: write a V8 CPU profile of the server into DIR
  --server-env KEY=VALUE         extra server setting (repeatable), e.g. LIVE_AUDIO_TRANSCRIBE_WAIT_MS=0
  --server-node-arg FLAG         extra node flag for the server (repeatable), e.g. --max-semi-space-size=4
  --soak-malloc-trim             soak: after each checkpoint's GC, call glibc's malloc_trim(0) in the server (gdb) and
                                 read RSS again (an experiment: changes what the next checkpoints see)
  --soak-settle-ms MS            soak: idle time at each checkpoint before memory is read. Default 3000 (V8's memory
                                 reducer starts after 8 s idle: 10000 shows RSS once it has run)
  --soak-heap-diff               soak: heap snapshots after the first 1,000 sessions and at the end; prints what grew
                                 (bytes per ended session by kind of object)
  --instances N                  load: N instances sharing a real redis-server behind nginx (round-robin); also
                                 measures the forwarding cost (p50/p99 added by a forwarded call). Default 1
The bench first prints the machine, Node and the ffmpeg build, and measures the floor (one ffmpeg's CPU per audio
second on this machine); the load summary reports the server's CPU per session-second as a multiple of it (cost_ratio).
The last line printed is one JSON object.`;

/** `bench:smoke`: enough sessions for a stable CPU figure, a steady phase that crosses a recording's restart (22 s loop). */
export const SMOKE_SESSIONS = 30;
export const SMOKE_DURATION_S = 25;

export class UsageError extends Error {}

export function parseBenchArgs(argv: readonly string[]): BenchArgs {
  const a: BenchArgs = {
    mode: 'load',
    sessions: 50,
    durationS: 30,
    transport: 'rest',
    recording: undefined,
    maxSessions: 1000,
    soakSessions: 10_000,
    soakConcurrency: 50,
    designs: ['long-lived', 'per-chunk', 'redecode'],
    profileDir: undefined,
    serverEnv: {},
    serverNodeArgs: [],
    soakMallocTrim: false,
    soakHeapDiff: false,
    soakSettleMs: 3000,
    instances: 1,
    help: false,
  };
  const given = new Set(argv);
  const int = (name: string, v: string | undefined, min: number) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new UsageError(`${name} must be an integer ≥ ${min}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${arg} needs a value`);
      return v;
    };
    switch (arg) {
      case '--mode': {
        const m = value();
        if (!['load', 'ramp', 'soak', 'compare', 'smoke'].includes(m)) throw new UsageError(`unknown mode ${m}`);
        a.mode = m as Mode;
        break;
      }
      case '--sessions':
        a.sessions = int(arg, value(), 1);
        break;
      case '--duration':
        a.durationS = int(arg, value(), 1);
        break;
      case '--transport': {
        const t = value();
        if (t !== 'rest' && t !== 'ws' && t !== 'both') throw new UsageError('--transport must be rest, ws or both');
        a.transport = t;
        break;
      }
      case '--recording':
        a.recording = value();
        break;
      case '--max-sessions':
        a.maxSessions = int(arg, value(), 1);
        break;
      case '--soak-sessions':
        a.soakSessions = int(arg, value(), 1);
        break;
      case '--soak-concurrency':
        a.soakConcurrency = int(arg, value(), 1);
        break;
      case '--designs': {
        const d = value().split(',').map((s) => s.trim()).filter(Boolean);
        for (const x of d) if (!['long-lived', 'per-chunk', 'redecode'].includes(x)) throw new UsageError(`unknown design ${x}`);
        a.designs = d;
        break;
      }
      case '--profile':
        a.profileDir = value();
        break;
      case '--server-env': {
        const kv = value();
        const m = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(kv);
        if (!m) throw new UsageError('--server-env needs KEY=VALUE');
        a.serverEnv[m[1]] = m[2];
        break;
      }
      case '--server-node-arg': {
        const f = value();
        if (!f.startsWith('--')) throw new UsageError('--server-node-arg needs a node flag (--name or --name=value)');
        a.serverNodeArgs.push(f);
        break;
      }
      case '--soak-malloc-trim':
        a.soakMallocTrim = true;
        break;
      case '--soak-settle-ms':
        a.soakSettleMs = int(arg, value(), 0);
        break;
      case '--soak-heap-diff':
        a.soakHeapDiff = true;
        break;
      case '--instances':
        a.instances = int(arg, value(), 1);
        break;
      case '-h':
      case '--help':
        a.help = true;
        break;
      default:
        throw new UsageError(`unknown argument ${arg}`);
    }
  }
  if (a.mode === 'smoke') {
    if (!given.has('--sessions')) a.sessions = SMOKE_SESSIONS;
    if (!given.has('--duration')) a.durationS = SMOKE_DURATION_S;
  }
  if (a.transport === 'both' && a.mode !== 'ramp') throw new UsageError('--transport both is for --mode ramp');
  return a;
}

import * as fs from 'node:fs';
import * as path from 'node:path';
import type { LiveModelTable } from '../models/live-model-table';
import { silentLogger, type Logger } from '../../util/logger';
import { WatchedFile, type FileCheck, type FileStat } from '../../util/watched-file';
import { builtinProfiles, type ServerProfileSettings } from './builtin-profiles';
import type { Profile } from './profile';
import { MAX_PROFILES_FILE_BYTES, parseProfilesText, ProfileFileError } from './profile-file';

export interface ProfileStoreOptions {
  /** `LIVE_AUDIO_PROFILES_FILE`; without it only the built-in profiles exist. */
  filePath?: string;
  /** The server-wide settings behind the `default` profile. */
  server?: ServerProfileSettings;
  models: LiveModelTable;
  log?: Logger;
  /** Minimum time between two checks of the file (on use). Default 1000 ms. */
  reloadIntervalMs?: number;
  now?: () => number;
}

/** What the store holds and how its last reload went (for status endpoints and tests). */
export interface ProfileStoreStatus {
  filePath: string | null;
  profiles: string[];
  /** Profiles taken from the file in the set in force. */
  fromFile: number;
  /** Successful loads of the file (the first included). */
  loads: number;
  /** The last reload's error (the set in force is then the last good one), cleared by a good reload. */
  lastError: string | null;
}

/**
 * The named profiles: built-ins, overridden or extended by the profiles file, which is re-read when it changes
 * (checked on use, at most once per interval, through the same `WatchedFile` as the API key file). A file that
 * is invalid at start-up stops the server (the constructor throws, naming the profile and field); an invalid
 * reload is logged and the last good set stays in force. A deleted file leaves the built-ins.
 */
export class ProfileStore {
  readonly filePath: string | undefined;
  private readonly builtins: Profile[];
  private readonly models: LiveModelTable;
  private readonly log: Logger;
  private readonly watch: WatchedFile | undefined;
  private profiles = new Map<string, Profile>();
  private fromFile = 0;
  private loads = 0;
  private lastError: string | null = null;

  constructor(opts: ProfileStoreOptions) {
    this.filePath = opts.filePath ? path.resolve(opts.filePath) : undefined;
    this.models = opts.models;
    this.log = (opts.log ?? silentLogger).child({ component: 'profiles' });
    this.builtins = builtinProfiles(opts.server);
    this.install([]);
    if (this.filePath) {
      this.watch = new WatchedFile(this.filePath, { intervalMs: opts.reloadIntervalMs ?? 1000, now: opts.now });
      this.apply(this.watch.checkSync(true), true);
    }
  }

  /** The profile named `name` after a (throttled) check of the file; undefined when there is none. */
  async get(name: string): Promise<Profile | undefined> {
    await this.refresh();
    return this.profiles.get(name);
  }

  /** The profile in the set in force now, without checking the file. */
  peek(name: string): Profile | undefined {
    return this.profiles.get(name);
  }

  async list(): Promise<Profile[]> {
    await this.refresh();
    return [...this.profiles.values()];
  }

  /** Checks the file (throttled; concurrent callers share one check). */
  refresh(): Promise<void> {
    return this.watch ? this.watch.refresh((c) => this.apply(c, false)) : Promise.resolve();
  }

  status(): ProfileStoreStatus {
    return {
      filePath: this.filePath ?? null,
      profiles: [...this.profiles.keys()],
      fromFile: this.fromFile,
      loads: this.loads,
      lastError: this.lastError,
    };
  }

  private apply(c: FileCheck, strict: boolean): void {
    if (c.kind === 'unchanged') return;
    if (c.kind === 'error') return this.reject(new ProfileFileError(`profiles file: cannot stat (${c.code ?? 'error'})`), strict);
    let fileProfiles: Profile[];
    try {
      fileProfiles = this.read(c.stat);
    } catch (e) {
      return this.reject(e instanceof ProfileFileError ? e : new ProfileFileError(`profiles file: ${(e as Error).message}`), strict);
    }
    this.install(fileProfiles);
    this.loads++;
    this.lastError = null;
    this.log[this.loads === 1 ? 'debug' : 'info'](
      { filePath: this.filePath, profiles: [...this.profiles.keys()], fromFile: fileProfiles.length },
      c.stat.exists ? (this.loads === 1 ? 'profiles loaded' : 'profiles reloaded') : 'no profiles file: built-in profiles only',
    );
  }

  private read(stat: FileStat): Profile[] {
    if (!stat.exists) return [];
    // Bounded before reading: an oversized file costs a stat, not its size in memory.
    if (stat.size > MAX_PROFILES_FILE_BYTES) throw new ProfileFileError(`profiles file: larger than ${MAX_PROFILES_FILE_BYTES} bytes`);
    const text = fs.readFileSync(this.filePath!, 'utf8');
    return parseProfilesText(text, this.filePath!, this.models);
  }

  private reject(err: ProfileFileError, strict: boolean): void {
    if (strict) throw err;
    this.lastError = err.message;
    this.log.warn({ filePath: this.filePath, reason: err.message }, 'profiles file is invalid; keeping the previous profiles');
  }

  private install(fromFile: Profile[]): void {
    const next = new Map<string, Profile>();
    for (const p of this.builtins) next.set(p.name, p);
    for (const p of fromFile) next.set(p.name, p);
    this.profiles = next;
    this.fromFile = fromFile.length;
  }
}

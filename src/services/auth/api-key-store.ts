import * as path from 'node:path';
import { timingSafeEqual } from 'node:crypto';
import type { Logger } from '../../util/logger';
import { redactText, silentLogger } from '../../util/logger';
import { WatchedFile, type FileCheck, type FileStat } from '../../util/watched-file';
import { apiKeyDigest, isWellFormedApiKey, LEAKED_KEY_HASHES, parseEnvApiKeys, type EnvApiKey } from './api-key';
import {
  createKeyInFile,
  DEFAULT_KEY_FILE,
  isActive,
  KeyFileError,
  readKeyFile,
  type CreatedApiKey,
  type KeyRecord,
} from './key-file';

export interface ApiKeyStoreOptions {
  /** Raw `LIVE_AUDIO_API_KEYS` value (`name:key,name:key`). Parsed once, at construction; keys are kept hashed. */
  envKeys?: string;
  /** Key file path; relative paths are resolved against the working directory. Default `.live-audio/api-keys.json`. */
  filePath?: string;
  log?: Logger;
  /** Minimum time between two checks of the key file's mtime. Default 1000 ms; 0 checks on every lookup. */
  reloadIntervalMs?: number;
  /** Clock for the reload throttle (tests). */
  now?: () => number;
  /**
   * Cluster mode: the keys every instance shares (`npm run keys` with `REDIS_URL`), besides the env keys and the
   * key file. Re-read at most once per `sharedCacheMs` (a revoked key stops working within that bound, plus one
   * Redis round trip); while they cannot be read, the last set read stays in force.
   */
  shared?: SharedKeySource;
  /** Default 2000 ms (`LIVE_AUDIO_CLUSTER_KEY_CACHE_MS`); 0 reads them on every check. */
  sharedCacheMs?: number;
}

/** Where shared key records come from (`RedisKeyStore`). */
export interface SharedKeySource {
  records(): Promise<KeyRecord[]>;
}

/** Who a valid API key belongs to. */
export interface ApiKeyIdentity {
  name: string;
  source: 'env' | 'file' | 'shared';
}

export type ApiKeyCheck =
  | { ok: true; name: string; source: 'env' | 'file' | 'shared'; maxTokensPerDay?: number }
  | { ok: false; reason: 'malformed' | 'unknown' | 'revoked' | 'leaked' };

export interface StoredKey {
  name: string;
  /** 32-byte SHA-256 digest. */
  digest: Buffer;
  source: 'env' | 'file' | 'shared' | 'leaked';
  revoked: boolean;
  /** The key's own daily token budget (key file `maxTokensPerDay`; 0 = none), over `LIVE_AUDIO_MAX_TOKENS_PER_DAY`. */
  maxTokensPerDay?: number;
}

export interface ApiKeyStoreSummary {
  filePath: string;
  envKeys: number;
  fileKeys: number;
  revokedFileKeys: number;
}

/**
 * The set of valid API keys: `LIVE_AUDIO_API_KEYS` (fixed at start) plus the key file (re-read when it changes,
 * so keys created or revoked with the CLI take effect within about a second, without a restart).
 *
 * Construction parses the env value (throws `ApiKeyConfigError`) and reads the key file (throws `KeyFileError`
 * if it exists but is invalid). Later reload failures keep the last good key set and log a warning.
 */
export class ApiKeyStore {
  readonly filePath: string;
  private readonly log: Logger;
  private readonly reloadIntervalMs: number;
  private readonly now: () => number;
  private readonly envKeys: EnvApiKey[];
  private fileRecords: KeyRecord[] = [];
  private entries: StoredKey[] = [];
  private readonly watch: WatchedFile;
  private loaded = false;
  private sharedRecords: KeyRecord[] = [];
  private sharedReadAt = -Infinity;
  private sharedRead: Promise<void> | undefined;
  private sharedFailing = false;

  constructor(private readonly opts: ApiKeyStoreOptions = {}) {
    this.filePath = path.resolve(opts.filePath || DEFAULT_KEY_FILE);
    this.log = (opts.log ?? silentLogger).child({ component: 'auth' });
    this.reloadIntervalMs = Math.max(0, opts.reloadIntervalMs ?? 1000);
    this.now = opts.now ?? Date.now;
    this.envKeys = parseEnvApiKeys(opts.envKeys);
    this.watch = new WatchedFile(this.filePath, { intervalMs: this.reloadIntervalMs, now: this.now });
    this.reloadSync(true);
  }

  /**
   * Checks a presented key. Malformed input (wrong prefix, length, non-hex, Google `AIza…` keys) is rejected
   * before the key set is consulted or the file is checked.
   */
  async check(presented: unknown): Promise<ApiKeyCheck> {
    if (!isWellFormedApiKey(presented)) return { ok: false, reason: 'malformed' };
    await this.refresh();
    const found = this.findByDigest(apiKeyDigest(presented));
    if (!found) return { ok: false, reason: 'unknown' };
    if (found.source === 'leaked') return { ok: false, reason: 'leaked' };
    if (found.revoked) return { ok: false, reason: 'revoked' };
    return {
      ok: true,
      name: found.name,
      source: found.source,
      ...(found.maxTokensPerDay !== undefined ? { maxTokensPerDay: found.maxTokensPerDay } : {}),
    };
  }

  /** The key's owner, or null when the key is malformed, unknown, revoked or publicly leaked. */
  async verify(presented: unknown): Promise<ApiKeyIdentity | null> {
    const r = await this.check(presented);
    return r.ok ? { name: r.name, source: r.source } : null;
  }

  /**
   * Constant-time look-up. The presented key has already been hashed to a fixed 32-byte SHA-256 digest, and it
   * is compared with `timingSafeEqual` against EVERY stored digest (env keys, file keys including revoked ones,
   * and the leaked-key deny list) without breaking out of the loop on a match. The time taken therefore depends
   * only on the number of stored keys, never on which key matched or how many leading bytes agreed.
   * A Map keyed by hash would be O(1) but hashes the attacker-chosen digest through a non-constant-time string
   * comparison; with the handful of keys a deployment has, the full scan costs microseconds and is obviously
   * leak-free, so we prefer it. The first matching entry wins (leaked entries come first, so they always deny).
   */
  findByDigest(digest: Buffer): StoredKey | null {
    let found: StoredKey | null = null;
    for (const entry of this.entries) {
      // Both sides are SHA-256 digests: always 32 bytes, as timingSafeEqual requires.
      const match = timingSafeEqual(entry.digest, digest);
      if (match && found === null) found = entry;
    }
    return found;
  }

  /** True when at least one usable key exists (env or an active file key). Re-reads the file first. */
  hasActiveKeys(): boolean {
    this.reloadSync(false);
    return this.envKeys.length > 0 || this.fileRecords.some(isActive);
  }

  summary(): ApiKeyStoreSummary {
    return {
      filePath: this.filePath,
      envKeys: this.envKeys.length,
      fileKeys: this.fileRecords.filter(isActive).length,
      revokedFileKeys: this.fileRecords.filter((r) => !isActive(r)).length,
    };
  }

  /** Names of the keys from `LIVE_AUDIO_API_KEYS`. */
  envKeyNames(): string[] {
    return this.envKeys.map((k) => k.name);
  }

  /** Creates a key in the key file (see `createKeyInFile`) and makes it valid immediately. */
  createKey(name: string, opts: { now?: () => Date } = {}): CreatedApiKey {
    const created = createKeyInFile(this.filePath, name, { reservedNames: this.envKeyNames(), now: opts.now });
    this.reloadSync(false);
    return created;
  }

  /**
   * Re-reads the key file if its mtime/size/inode changed, at most once per `reloadIntervalMs`. Called by
   * every look-up; concurrent callers share one check.
   */
  async refresh(): Promise<void> {
    await Promise.all([this.watch.refresh((c) => this.apply(c, false)), this.refreshShared()]);
  }

  /** Re-reads the shared keys when the copy is older than `sharedCacheMs`; concurrent callers share one read. */
  private refreshShared(): Promise<void> {
    const shared = this.opts.shared;
    if (!shared) return Promise.resolve();
    if (this.sharedRead) return this.sharedRead;
    if (this.now() - this.sharedReadAt < Math.max(0, this.opts.sharedCacheMs ?? 2000)) return Promise.resolve();
    this.sharedRead = shared
      .records()
      .then((records) => {
        this.sharedRecords = records;
        this.sharedReadAt = this.now();
        if (this.sharedFailing) this.log.info({ keys: records.length }, 'shared API keys readable again');
        this.sharedFailing = false;
        this.rebuild();
      })
      .catch((e: unknown) => {
        // Keep the last set (a Redis outage must not lock every client out); retried on the next check after the
        // cache time. Only the error's class and redacted message: never key material.
        this.sharedReadAt = this.now();
        if (!this.sharedFailing) this.log.warn({ errMessage: redactText(String((e as Error)?.message ?? e)) }, 'shared API keys unreadable; keeping the last set read');
        this.sharedFailing = true;
      })
      .finally(() => {
        this.sharedRead = undefined;
      });
    return this.sharedRead;
  }

  private reloadSync(strict: boolean): void {
    this.apply(this.watch.checkSync(strict), strict);
  }

  private apply(c: FileCheck, strict: boolean): void {
    if (c.kind === 'unchanged') return;
    if (c.kind === 'error') {
      if (strict) throw new KeyFileError(`API key file ${this.filePath}: cannot stat (${c.code ?? 'error'})`);
      this.log.warn({ filePath: this.filePath, errCode: c.code }, 'cannot stat API key file');
      return;
    }
    this.load(c.stat, strict);
  }

  private load(stat: FileStat, strict: boolean): void {
    const first = !this.loaded;
    let records: KeyRecord[];
    try {
      records = stat.exists ? readKeyFile(this.filePath).keys : [];
    } catch (e) {
      if (strict) throw e;
      // Keep the last good key set; the file is not re-read (nor the warning repeated) until it changes again.
      this.log.warn(
        { filePath: this.filePath, reason: e instanceof KeyFileError ? e.message : 'read error' },
        'API key file is invalid; keeping the previously loaded keys',
      );
      return;
    }
    this.loaded = true;
    this.fileRecords = records;
    this.rebuild();
    const active = records.filter(isActive);
    const mode = stat.exists ? stat.mode : undefined;
    if (mode !== undefined && process.platform !== 'win32' && (mode & 0o077) !== 0) {
      this.log.warn({ filePath: this.filePath }, 'API key file is accessible by other users; run chmod 600 on it');
    }
    const envNames = new Set(this.envKeyNames());
    const clashes = [...new Set(active.filter((r) => envNames.has(r.name)).map((r) => r.name))];
    if (clashes.length) {
      this.log.warn({ names: clashes }, 'API key names exist both in LIVE_AUDIO_API_KEYS and in the key file; they share one identity');
    }
    this.log[first ? 'debug' : 'info'](
      { filePath: this.filePath, activeKeys: active.length, revokedKeys: records.length - active.length },
      first ? 'API key file loaded' : 'API key file reloaded',
    );
  }

  private rebuild(): void {
    const entries: StoredKey[] = LEAKED_KEY_HASHES.map((h) => ({
      name: '(leaked)',
      digest: Buffer.from(h, 'hex'),
      source: 'leaked' as const,
      revoked: true,
    }));
    for (const k of this.envKeys) {
      entries.push({ name: k.name, digest: Buffer.from(k.hash, 'hex'), source: 'env', revoked: false });
    }
    for (const r of this.fileRecords) {
      entries.push({
        name: r.name,
        digest: Buffer.from(r.hash, 'hex'),
        source: 'file',
        revoked: !isActive(r),
        ...(typeof r.maxTokensPerDay === 'number' ? { maxTokensPerDay: r.maxTokensPerDay } : {}),
      });
    }
    for (const r of this.sharedRecords) {
      entries.push({
        name: r.name,
        digest: Buffer.from(r.hash, 'hex'),
        source: 'shared',
        revoked: !isActive(r),
        ...(typeof r.maxTokensPerDay === 'number' ? { maxTokensPerDay: r.maxTokensPerDay } : {}),
      });
    }
    this.entries = entries;
  }
}

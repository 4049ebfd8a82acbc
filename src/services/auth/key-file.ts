import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { redactText } from '../../util/logger';
import {
  generateApiKey,
  hashApiKey,
  isLeakedKeyHash,
  isValidKeyName,
  KEY_HASH_PATTERN,
  KEY_NAME_PATTERN,
} from './api-key';

/**
 * The JSON key file (default `.live-audio/api-keys.json`):
 * `{ "version": 1, "keys": [ { "name", "hash", "createdAt", "revokedAt"? } ] }`.
 * It holds only SHA-256 hashes, never keys. Unknown fields are preserved when the file is rewritten.
 */
export const DEFAULT_KEY_FILE = '.live-audio/api-keys.json';

export interface KeyRecord {
  name: string;
  /** SHA-256 hex of the key. */
  hash: string;
  /** ISO timestamp. */
  createdAt: string;
  /** ISO timestamp; present once the key is revoked. */
  revokedAt?: string;
  /** This key's daily token budget, over `LIVE_AUDIO_MAX_TOKENS_PER_DAY` (0 = none for this key). */
  maxTokensPerDay?: number;
  [extra: string]: unknown;
}

export interface KeyFileData {
  version: 1;
  keys: KeyRecord[];
  [extra: string]: unknown;
}

/** The key file is unreadable or not in the expected format. The message names the path, never its content. */
export class KeyFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KeyFileError';
  }
}

export const emptyKeyFile = (): KeyFileData => ({ version: 1, keys: [] });

export const isActive = (r: KeyRecord): boolean => !r.revokedAt;

/** Validates parsed JSON as a key file. Throws {@link KeyFileError}. */
export function parseKeyFileData(json: unknown, filePath: string): KeyFileData {
  const bad = (why: string) => new KeyFileError(`API key file ${filePath}: ${why}`);
  if (!json || typeof json !== 'object' || Array.isArray(json)) throw bad('expected a JSON object');
  const obj = json as Record<string, unknown>;
  if (obj.version !== 1) throw bad(`unsupported version ${JSON.stringify(obj.version)} (expected 1)`);
  if (!Array.isArray(obj.keys)) throw bad('"keys" must be an array');
  obj.keys.forEach((k: unknown, i: number) => {
    if (!k || typeof k !== 'object' || Array.isArray(k)) throw bad(`keys[${i}] must be an object`);
    const r = k as Record<string, unknown>;
    if (!isValidKeyName(r.name)) throw bad(`keys[${i}].name must match ${KEY_NAME_PATTERN.source}`);
    if (typeof r.hash !== 'string' || !KEY_HASH_PATTERN.test(r.hash)) {
      throw bad(`keys[${i}] ("${r.name}"): hash must be 64 lowercase hex characters`);
    }
    if (typeof r.createdAt !== 'string') throw bad(`keys[${i}] ("${r.name}"): createdAt must be a string`);
    if (r.revokedAt !== undefined && r.revokedAt !== null && typeof r.revokedAt !== 'string') {
      throw bad(`keys[${i}] ("${r.name}"): revokedAt must be a string`);
    }
    const budget = r.maxTokensPerDay;
    if (budget !== undefined && (typeof budget !== 'number' || !Number.isSafeInteger(budget) || budget < 0)) {
      throw bad(`keys[${i}] ("${r.name}"): maxTokensPerDay must be a whole number of tokens (0 = no budget)`);
    }
  });
  const keys = (obj.keys as Record<string, unknown>[]).map((r) => {
    const copy = { ...r } as KeyRecord;
    if (copy.revokedAt === null) delete copy.revokedAt;
    return copy;
  });
  return { ...obj, version: 1, keys };
}

/** Reads the key file. A missing file is an empty key set; anything unparsable throws {@link KeyFileError}. */
export function readKeyFile(filePath: string): KeyFileData {
  let text: string;
  try {
    text = fs.readFileSync(filePath, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return emptyKeyFile();
    throw new KeyFileError(`API key file ${filePath}: cannot read (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  if (!text.trim()) return emptyKeyFile();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new KeyFileError(`API key file ${filePath}: not valid JSON`);
  }
  return parseKeyFileData(json, filePath);
}

/**
 * Writes the key file atomically: the directory is created (mode 0700) if needed, the JSON goes to a temporary
 * file in the same directory created with mode 0600, is fsynced and then renamed over the target, so readers
 * (the running server) see either the old or the new file, never a partial one.
 */
export function writeKeyFile(filePath: string, data: KeyFileData): void {
  const dir = path.dirname(filePath);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = path.join(dir, `.${path.basename(filePath)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const text = `${JSON.stringify(data, null, 2)}\n`;
  const fd = fs.openSync(tmp, 'wx', 0o600);
  try {
    try {
      fs.writeSync(fd, text);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, filePath);
  } catch (e) {
    try {
      fs.unlinkSync(tmp);
    } catch {
      /* already gone */
    }
    throw e;
  }
  // The rename carries the temp file's 0600 mode; chmod again in case the platform or umask interfered.
  try {
    fs.chmodSync(filePath, 0o600);
  } catch {
    /* best effort (e.g. Windows) */
  }
}

export interface CreatedApiKey {
  name: string;
  /** The plain key: show it once, it is not stored anywhere. */
  key: string;
  record: KeyRecord;
  filePath: string;
}

export interface CreateKeyOptions {
  /** Names that count as taken besides active file keys (e.g. names from `LIVE_AUDIO_API_KEYS`). */
  reservedNames?: Iterable<string>;
  now?: () => Date;
}

/** Thrown for a request the key file cannot satisfy (bad or duplicate name, unknown key). */
export class KeyAdminError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KeyAdminError';
  }
}

/**
 * Generates a key, appends its hash to the key file (atomic rewrite) and returns the plain key once.
 * The name must match `^[A-Za-z0-9_.-]{1,64}$` and be unique among active keys.
 */
export function createKeyInFile(filePath: string, name: string, opts: CreateKeyOptions = {}): CreatedApiKey {
  if (!isValidKeyName(name)) {
    throw new KeyAdminError(`Invalid key name "${redactText(name.slice(0, 80))}": use 1-64 characters from A-Z a-z 0-9 _ . -`);
  }
  for (const reserved of opts.reservedNames ?? []) {
    if (reserved === name) {
      throw new KeyAdminError(`A key named "${name}" is already configured in LIVE_AUDIO_API_KEYS`);
    }
  }
  const data = readKeyFile(filePath);
  if (data.keys.some((r) => r.name === name && isActive(r))) {
    throw new KeyAdminError(`An active key named "${name}" already exists; revoke it first or pick another name`);
  }
  let key = generateApiKey();
  let hash = hashApiKey(key);
  while (isLeakedKeyHash(hash) || data.keys.some((r) => r.hash === hash)) {
    key = generateApiKey(); // astronomically unlikely; keeps hashes unique
    hash = hashApiKey(key);
  }
  const record: KeyRecord = { name, hash, createdAt: (opts.now?.() ?? new Date()).toISOString() };
  data.keys.push(record);
  writeKeyFile(filePath, data);
  return { name, key, record, filePath };
}

/** Marks every active key with this name as revoked. Returns the revoked records; throws if none was active. */
export function revokeKeyInFile(filePath: string, name: string, opts: { now?: () => Date } = {}): KeyRecord[] {
  const data = readKeyFile(filePath);
  const active = data.keys.filter((r) => r.name === name && isActive(r));
  if (active.length === 0) {
    const known = data.keys.some((r) => r.name === name);
    throw new KeyAdminError(
      known ? `The key "${name}" is already revoked` : `No key named "${redactText(name.slice(0, 80))}" in ${filePath}`,
    );
  }
  const at = (opts.now?.() ?? new Date()).toISOString();
  for (const r of active) r.revokedAt = at;
  writeKeyFile(filePath, data);
  return active;
}

export interface KeyListing {
  name: string;
  createdAt: string;
  revokedAt: string | null;
  /** The first 12 hex characters of the SHA-256 hash (enough to tell keys apart, useless to an attacker). */
  hashPrefix: string;
}

/** The keys in the file, oldest first, without any secret. */
export function listKeysInFile(filePath: string): KeyListing[] {
  return readKeyFile(filePath).keys.map((r) => ({
    name: r.name,
    createdAt: r.createdAt,
    revokedAt: r.revokedAt ?? null,
    hashPrefix: r.hash.slice(0, 12),
  }));
}

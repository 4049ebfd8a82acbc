import { generateApiKey, hashApiKey, isLeakedKeyHash, isValidKeyName } from '../services/auth/api-key';
import { KeyAdminError, parseKeyFileData, type KeyListing, type KeyRecord } from '../services/auth/key-file';
import type { CreatedApiKey } from '../services/auth/key-file';
import { redactText } from '../util/logger';
import { LuaScript } from './lua-script';
import type { RedisConnection } from './redis-connection';

/**
 * KEYS: keys hash, version counter. ARGV: name, hash, record JSON. Refuses a name with an active key (or a hash
 * already stored); else stores the record under its hash and bumps the version. Atomic: two `npm run keys create`
 * for the same name at once create one key.
 */
const CREATE = new LuaScript(
  'api-key-create',
  `if redis.call('HEXISTS', KEYS[1], ARGV[2]) == 1 then return 'hash_taken' end
for _, v in ipairs(redis.call('HVALS', KEYS[1])) do
  local r = cjson.decode(v)
  if r.name == ARGV[1] and (r.revokedAt == nil or r.revokedAt == cjson.null) then return 'name_taken' end
end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('INCR', KEYS[2])
return 'ok'`,
  2,
);

/** KEYS: keys hash, version counter. ARGV: name, revokedAt. Marks every active key of that name revoked. */
const REVOKE = new LuaScript(
  'api-key-revoke',
  `local n, known = 0, false
for _, h in ipairs(redis.call('HKEYS', KEYS[1])) do
  local r = cjson.decode(redis.call('HGET', KEYS[1], h))
  if r.name == ARGV[1] then
    known = true
    if r.revokedAt == nil or r.revokedAt == cjson.null then
      r.revokedAt = ARGV[2]
      redis.call('HSET', KEYS[1], h, cjson.encode(r))
      n = n + 1
    end
  end
end
if n > 0 then redis.call('INCR', KEYS[2]) end
if n == 0 and known then return -1 end
return n`,
  2,
);

/**
 * The API keys of a cluster (`REDIS_URL`), shared by every instance: what the key file is for one instance, in
 * one Redis hash (field: the key's SHA-256 hex; value: the same record the key file holds, name, hash, createdAt,
 * revokedAt, maxTokensPerDay). Only hashes are stored, as in the key file; the plain key is returned once by
 * `create`. `npm run keys` writes here when `REDIS_URL` is set; instances read it through `ApiKeyStore` (cached).
 */
export class RedisKeyStore {
  constructor(private readonly connection: RedisConnection) {}

  private get hashKey(): string {
    return this.connection.key('api-keys');
  }

  private get versionKey(): string {
    return this.connection.key('api-keys', 'version');
  }

  /** Every record (active and revoked), validated like a key file's; a corrupt entry fails the whole read. */
  async records(): Promise<KeyRecord[]> {
    const h = await this.connection.run((cl) => cl.hgetall(this.hashKey));
    const keys = Object.values(h).map((v) => JSON.parse(v) as unknown);
    return parseKeyFileData({ version: 1, keys }, `Redis ${this.hashKey}`).keys;
  }

  /** Bumped by every create and revoke (cheap to poll). */
  async version(): Promise<string> {
    return (await this.connection.run((cl) => cl.get(this.versionKey))) ?? '0';
  }

  async create(name: string, opts: { reservedNames?: Iterable<string>; now?: () => Date } = {}): Promise<CreatedApiKey> {
    if (!isValidKeyName(name)) {
      throw new KeyAdminError(`Invalid key name "${redactText(name.slice(0, 80))}": use 1-64 characters from A-Z a-z 0-9 _ . -`);
    }
    for (const reserved of opts.reservedNames ?? []) {
      if (reserved === name) throw new KeyAdminError(`A key named "${name}" is already configured in LIVE_AUDIO_API_KEYS`);
    }
    for (let attempt = 0; attempt < 5; attempt++) {
      const key = generateApiKey();
      const hash = hashApiKey(key);
      if (isLeakedKeyHash(hash)) continue;
      const record: KeyRecord = { name, hash, createdAt: (opts.now?.() ?? new Date()).toISOString() };
      const r = await this.connection.run((cl) => CREATE.run(cl, [this.hashKey, this.versionKey], [name, hash, JSON.stringify(record)]));
      if (r === 'name_taken') throw new KeyAdminError(`An active key named "${name}" already exists; revoke it first or pick another name`);
      if (r === 'ok') return { name, key, record, filePath: 'redis' };
    }
    throw new KeyAdminError('Could not create a unique key; try again');
  }

  /** Revokes every active key with this name; returns how many. */
  async revoke(name: string, opts: { now?: () => Date } = {}): Promise<number> {
    const at = (opts.now?.() ?? new Date()).toISOString();
    const n = Number(await this.connection.run((cl) => REVOKE.run(cl, [this.hashKey, this.versionKey], [name, at])));
    if (n === -1) throw new KeyAdminError(`The key "${name}" is already revoked`);
    if (n === 0) throw new KeyAdminError(`No key named "${redactText(name.slice(0, 80))}" in Redis`);
    return n;
  }

  /** The keys, oldest first, without any secret. */
  async list(): Promise<KeyListing[]> {
    return (await this.records())
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt))
      .map((r) => ({ name: r.name, createdAt: r.createdAt, revokedAt: r.revokedAt ?? null, hashPrefix: r.hash.slice(0, 12) }));
  }
}


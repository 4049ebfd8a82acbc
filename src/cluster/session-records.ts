import type { TranscriptRecord } from '../services/conversation/transcript-types';
import { LuaScript } from './lua-script';
import { parseStoredTranscript, storedTranscriptJson } from './stored-transcript';
import type { RedisConnection } from './redis-connection';

/** A session is named by its owning principal (API key or user) and its id: ids are namespaced per principal. */
export interface SessionRef {
  principal: string;
  sessionId: string;
}

/**
 * The fencing token an owner holds: every ownership change (takeover, hand-over) increments `epoch`, and every
 * write by an owner names the epoch it holds, so an instance that lost a session (paused, partitioned, then back)
 * can never overwrite the record of the instance that took it over.
 */
export interface Ownership {
  owner: string;
  epoch: number;
}

export type SessionRecordStatus = 'live' | 'ended' | 'expired';

export interface SessionRecord extends SessionRef, Ownership {
  /** `live` (being served or resumable), `ended` (tombstone), `expired` (past its max age, not ended by anyone). */
  status: SessionRecordStatus;
  /** The effective setup the upstream was opened with (opaque JSON here). */
  setup: unknown;
  /** Turn state (opaque JSON here). */
  turn: unknown;
  /** The session's function calls waiting for an answer and the latest settled (opaque JSON here; issue 16). */
  tools?: unknown;
  /** The latest resumable handle from the upstream. */
  resumptionHandle?: string;
  /** The WebM header (EBML + Segment/Tracks) of the client's MediaRecorder stream, to prime a new decoder. */
  webmHeader?: Buffer;
  /** Where that stream stood after the last accepted chunk (`WebmResumePoint`), rewritten with every chunk. */
  webmResume?: WebmResumePointRecord;
  createdAt: number;
  updatedAt: number;
  expiresAt: number;
  takeovers: number;
  endedAt?: number;
  endReason?: string;
  /** What the tombstone keeps of the session (`end`'s summary). */
  summary?: Record<string, string>;
}

export interface NewSession extends SessionRef {
  owner: string;
  setup: unknown;
  turn?: unknown;
  webmHeader?: Buffer;
  resumptionHandle?: string;
  /** Session max age from now (ms), `LIVE_AUDIO_SESSION_MAX_MS`. */
  maxAgeMs: number;
}

/** The resume point of a WebM stream (src/services/audio/webm-resume.ts), as stored. */
export interface WebmResumePointRecord {
  pending: Buffer;
  midBody: boolean;
  inCluster: boolean;
}

/** What the owner may change; anything else is fixed at creation or by ownership changes. */
export interface SessionPatch {
  setup?: unknown;
  turn?: unknown;
  /** Function calls (JSON; see `StoredToolCalls`). */
  tools?: unknown;
  resumptionHandle?: string;
  webmHeader?: Buffer;
  webmResume?: WebmResumePointRecord;
  /** The session's transcript so far (written at turn boundaries; kept beside the record, see `getTranscript`). */
  transcript?: TranscriptRecord;
}

export type CreateResult =
  | { created: true; ownership: Ownership }
  /** A live session with this id exists for this principal; `owner` holds it (maybe this instance). */
  | { created: false; reason: 'exists'; ownership: Ownership }
  /** The principal has `maxSessionsPerPrincipal` live sessions across the cluster. */
  | { created: false; reason: 'cap' };

export type TakeOverResult =
  | { taken: true; ownership: Ownership }
  | { taken: false; reason: 'gone' | 'expired' }
  /** The owner is not the one expected (someone else took it first), or it is still alive. */
  | { taken: false; reason: 'owner_changed' | 'owner_alive'; ownership: Ownership };

export type FencedResult = 'ok' | 'not_owner' | 'gone';

export interface LivenessKeys {
  /** The key whose existence means "instance `id` is alive" (`InstanceRegistry.heartbeatKey`). */
  heartbeatKey(id: string): string;
}

export interface SessionRecordStoreOptions {
  connection: RedisConnection;
  liveness: LivenessKeys;
  /** How long an ended or expired session answers `ended`/`expired` (default 15 min, `LIVE_AUDIO_SESSION_TOMBSTONE_MS`). */
  tombstoneMs?: number;
  /** Live sessions per principal across the cluster; 0 = no cap (`LIVE_AUDIO_MAX_SESSIONS_PER_USER`). */
  maxSessionsPerPrincipal?: number;
  /** Largest WebM header kept (default 256 KiB; MediaRecorder's is well under 1 KiB). */
  maxHeaderBytes?: number;
  /** Largest setup or turn JSON kept (default 64 KiB each). */
  maxJsonBytes?: number;
  /** How long an ended session's transcript stays readable (default 1 h, `LIVE_AUDIO_TRANSCRIPT_RETENTION_MS`). */
  transcriptRetentionMs?: number;
  /** Largest stored transcript copy (default 512 KiB, `LIVE_AUDIO_CLUSTER_TRANSCRIPT_MAX_BYTES`). */
  maxTranscriptBytes?: number;
  /** Ended sessions' transcripts kept per principal (default 100, `LIVE_AUDIO_CLUSTER_TRANSCRIPTS_PER_KEY`). */
  maxTranscriptsPerPrincipal?: number;
  now?: () => number;
}

const SESSION_ID = /^[A-Za-z0-9_-]{1,128}$/;
const OWNER_ID = /^[A-Za-z0-9_.-]{1,64}$/;
const RELEASED = '';

/**
 * KEYS: rec, by-principal zset, owner's owned zset, transcript, principal's transcripts zset. ARGV: sid, member,
 * owner, now, expiresAt, ttlMs, cap, principal, setup, turn, header, handle. (A new session with an id used before
 * starts without the old transcript.)
 */
const CREATE = new LuaScript(
  'session-create',
  `local now = tonumber(ARGV[4])
local f = redis.call('HMGET', KEYS[1], 'status', 'expiresAt', 'owner', 'epoch')
if f[1] == 'live' and tonumber(f[2]) > now then return {0, 'exists', f[3], f[4]} end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZREM', KEYS[2], ARGV[1])
local cap = tonumber(ARGV[7])
if cap > 0 and redis.call('ZCARD', KEYS[2]) >= cap then return {0, 'cap', '', '0'} end
redis.call('DEL', KEYS[1], KEYS[4])
redis.call('ZREM', KEYS[5], ARGV[1])
redis.call('HSET', KEYS[1], 'status', 'live', 'owner', ARGV[3], 'epoch', '1', 'principal', ARGV[8], 'sessionId', ARGV[1],
  'setup', ARGV[9], 'turn', ARGV[10], 'createdAt', ARGV[4], 'updatedAt', ARGV[4], 'expiresAt', ARGV[5], 'takeovers', '0')
if ARGV[11] ~= '' then redis.call('HSET', KEYS[1], 'header', ARGV[11]) end
if ARGV[12] ~= '' then redis.call('HSET', KEYS[1], 'handle', ARGV[12]) end
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[5], ARGV[2])
return {1, 'created', ARGV[3], '1'}`,
  5,
);

/**
 * KEYS: rec, transcript. ARGV: owner, epoch, now, transcript JSON ('' = unchanged), retention ms (the copy lives
 * until the session's max age plus the retention), then field/value pairs. The transcript is written under the same fence as the record: an owner that lost the session cannot
 * overwrite the taker's transcript.
 */
const UPDATE = new LuaScript(
  'session-update',
  `local f = redis.call('HMGET', KEYS[1], 'status', 'owner', 'epoch', 'expiresAt')
if f[1] ~= 'live' or tonumber(f[4]) <= tonumber(ARGV[3]) then return 'gone' end
if f[2] ~= ARGV[1] or f[3] ~= ARGV[2] then return 'not_owner' end
for i = 6, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('HSET', KEYS[1], 'updatedAt', ARGV[3])
if ARGV[4] ~= '' then redis.call('SET', KEYS[2], ARGV[4], 'PX', tonumber(f[4]) - tonumber(ARGV[3]) + tonumber(ARGV[5])) end
return 'ok'`,
  2,
);

/**
 * KEYS: rec, heartbeat key of the expected owner, expected owner's owned zset, taker's owned zset.
 * ARGV: expected owner ('' = released), taker, now, member. The owner's liveness is checked here, atomically
 * with the ownership change, so of several racing takers exactly one wins.
 */
const TAKE_OVER = new LuaScript(
  'session-take-over',
  `local f = redis.call('HMGET', KEYS[1], 'status', 'owner', 'epoch', 'expiresAt')
if f[1] ~= 'live' then return {0, 'gone', '', '0'} end
if tonumber(f[4]) <= tonumber(ARGV[3]) then return {0, 'expired', '', '0'} end
if f[2] ~= ARGV[1] then return {0, 'owner_changed', f[2], f[3]} end
if f[2] ~= '' and redis.call('EXISTS', KEYS[2]) == 1 then return {0, 'owner_alive', f[2], f[3]} end
local epoch = redis.call('HINCRBY', KEYS[1], 'epoch', 1)
redis.call('HINCRBY', KEYS[1], 'takeovers', 1)
redis.call('HSET', KEYS[1], 'owner', ARGV[2], 'updatedAt', ARGV[3])
redis.call('ZREM', KEYS[3], ARGV[4])
redis.call('ZADD', KEYS[4], f[4], ARGV[4])
return {1, 'taken', ARGV[2], tostring(epoch)}`,
  4,
);

/** KEYS: rec, from's owned zset, to's owned zset (the released zset for ''). ARGV: from, epoch, to, now, member. */
const TRANSFER = new LuaScript(
  'session-transfer',
  `local f = redis.call('HMGET', KEYS[1], 'status', 'owner', 'epoch', 'expiresAt')
if f[1] ~= 'live' or tonumber(f[4]) <= tonumber(ARGV[4]) then return {0, 'gone', '0'} end
if f[2] ~= ARGV[1] or f[3] ~= ARGV[2] then return {0, 'not_owner', '0'} end
local epoch = redis.call('HINCRBY', KEYS[1], 'epoch', 1)
redis.call('HSET', KEYS[1], 'owner', ARGV[3], 'updatedAt', ARGV[4])
redis.call('ZREM', KEYS[2], ARGV[5])
redis.call('ZADD', KEYS[3], f[4], ARGV[5])
return {1, 'ok', tostring(epoch)}`,
  3,
);

/** The end of a live record (see `END`): KEYS 1-5 and ARGV 3-12 as there; `now` is set before it. */
const END_BODY = `if ARGV[9] ~= '' then redis.call('SET', KEYS[4], ARGV[9], 'PX', ARGV[10]) else redis.call('PEXPIRE', KEYS[4], ARGV[10]) end
if redis.call('EXISTS', KEYS[4]) == 1 then
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
  redis.call('ZADD', KEYS[5], now + tonumber(ARGV[10]), ARGV[6])
  local over = redis.call('ZCARD', KEYS[5]) - tonumber(ARGV[11])
  if over > 0 then
    local popped = redis.call('ZPOPMIN', KEYS[5], over)
    for i = 1, #popped, 2 do redis.call('DEL', ARGV[12] .. popped[i]) end
  end
  redis.call('PEXPIRE', KEYS[5], ARGV[10])
end
redis.call('HSET', KEYS[1], 'status', 'ended', 'endedAt', ARGV[3], 'endReason', ARGV[4], 'updatedAt', ARGV[3])
redis.call('HDEL', KEYS[1], 'header', 'handle', 'setup', 'turn', 'wpending', 'wflags', 'tools')
if ARGV[8] ~= '' then redis.call('HSET', KEYS[1], 'summary', ARGV[8]) end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('ZREM', KEYS[2], ARGV[6])
redis.call('ZREM', KEYS[3], ARGV[7])
return 'ok'`;

/**
 * KEYS: rec, by-principal zset, owner's owned zset, transcript, principal's transcripts zset. ARGV: owner, epoch,
 * now, reason, tombstone ms, sid, member, summary ('' = none), final transcript JSON ('' = keep what is stored),
 * retention ms, transcripts kept per principal, the principal's transcript key prefix. The transcript is kept the
 * retention time; beyond the per-principal count the principal's oldest stored transcripts are deleted.
 */
const END = new LuaScript(
  'session-end',
  `local f = redis.call('HMGET', KEYS[1], 'status', 'owner', 'epoch')
if f[1] ~= 'live' then return 'gone' end
if f[2] ~= ARGV[1] or f[3] ~= ARGV[2] then return 'not_owner' end
local now = tonumber(ARGV[3])
${END_BODY}`,
  5,
);

/**
 * The orphan sweep's claim and end in one step (see `endAbandoned`). KEYS: as `END` (the owned zset is the dead
 * owner's, or the released one), then the expected owner's heartbeat key. ARGV 1-12 as `END` (1, 2: the owner and
 * epoch read), then the `updatedAt` read, the idle timeout (ms) and the sweeping instance's id. It ends the session
 * only if nothing wrote the record since it was read, its owner is dead (heartbeat gone) or released, and its
 * deadline, read here from the record itself, has passed for the reason given: `expired` (max age) or
 * `idle_timeout` (the client's last activity, stored in the turn, plus the idle timeout). A client's takeover bumps
 * the epoch, a live owner's write bumps `updatedAt`: either makes this refuse, so a session is ended once, by one
 * instance, and never after a client took it back.
 */
const SWEEP_END = new LuaScript(
  'session-sweep-end',
  `local f = redis.call('HMGET', KEYS[1], 'status', 'owner', 'epoch', 'updatedAt', 'expiresAt', 'createdAt', 'turn')
if f[1] ~= 'live' then return 'gone' end
if f[2] ~= ARGV[1] or f[3] ~= ARGV[2] or f[4] ~= ARGV[13] then return 'changed' end
if f[2] ~= '' and redis.call('EXISTS', KEYS[6]) == 1 then return 'owner_alive' end
local now = tonumber(ARGV[3])
local due = 'none'
if tonumber(f[5]) <= now then
  due = 'expired'
else
  local last = tonumber(f[6])
  local ok, t = pcall(cjson.decode, f[7] or 'null')
  if ok and type(t) == 'table' and tonumber(t['lastActivityAt']) then last = tonumber(t['lastActivityAt']) end
  if last + tonumber(ARGV[14]) <= now then due = 'idle_timeout' end
end
if due ~= ARGV[4] then return 'not_due' end
redis.call('HINCRBY', KEYS[1], 'epoch', 1)
redis.call('HSET', KEYS[1], 'owner', ARGV[15])
${END_BODY}`,
  6,
);

/**
 * KEYS: rec, by-principal zset, owned zset. ARGV: sid, member, owner, epoch, ttl ms, expiresAt, then field/value
 * pairs. Rewrites the record of a session this instance still serves after Redis lost it (restart without
 * persistence); refuses when someone else holds it now.
 */
const RESTORE = new LuaScript(
  'session-restore',
  `local f = redis.call('HMGET', KEYS[1], 'status', 'owner', 'epoch')
if f[1] then
  if f[1] == 'live' and f[2] == ARGV[3] and f[3] == ARGV[4] then return 'present' end
  return 'conflict'
end
for i = 7, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('ZADD', KEYS[2], ARGV[6], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[6], ARGV[2])
return 'restored'`,
  3,
);

const enc = (principal: string) => Buffer.from(principal, 'utf8').toString('base64url');
const dec = (p: string) => Buffer.from(p, 'base64url').toString('utf8');
/** Escapes a literal for a SCAN MATCH pattern. */
const globEscape = (s: string) => s.replace(/[*?[\]\\]/g, (c) => `\\${c}`);

/** The session an owned-set member (`<principal, base64url>/<session id>`) names, if it is a valid one. */
function refOfMember(m: string): SessionRef[] {
  const i = m.indexOf('/');
  if (i <= 0) return [];
  const ref = { principal: dec(m.slice(0, i)), sessionId: m.slice(i + 1) };
  return typeof ref.principal === 'string' && ref.principal.length > 0 && ref.principal.length <= 512 && SESSION_ID.test(ref.sessionId) ? [ref] : [];
}

/**
 * Session records in Redis, one hash per (principal, session id): owner instance and epoch, the owning principal,
 * effective setup, latest resumption handle, WebM header bytes, turn state, timestamps. Keys are namespaced by the
 * principal, so another principal's id is simply absent: it looks exactly like an id nobody ever used. A record
 * lives until its max age plus the tombstone time; ending it leaves a tombstone (no header, handle or setup) for
 * the tombstone time. Ownership changes (takeover of a dead owner's session, hand-over) are Lua scripts: atomic,
 * exactly one of several racing takers wins.
 */
export class SessionRecordStore {
  private readonly tombstoneMs: number;
  private readonly cap: number;
  private readonly maxHeader: number;
  private readonly maxJson: number;
  private readonly retentionMs: number;
  private readonly maxTranscript: number;
  private readonly transcriptsPerPrincipal: number;
  private readonly now: () => number;

  constructor(private readonly o: SessionRecordStoreOptions) {
    this.tombstoneMs = o.tombstoneMs ?? 900_000;
    this.cap = o.maxSessionsPerPrincipal ?? 0;
    this.maxHeader = o.maxHeaderBytes ?? 256 * 1024;
    this.maxJson = o.maxJsonBytes ?? 64 * 1024;
    this.retentionMs = Math.max(1, o.transcriptRetentionMs ?? 3_600_000);
    this.maxTranscript = o.maxTranscriptBytes ?? 512 * 1024;
    this.transcriptsPerPrincipal = Math.max(1, o.maxTranscriptsPerPrincipal ?? 100);
    this.now = o.now ?? Date.now;
  }

  private get c(): RedisConnection {
    return this.o.connection;
  }

  private recKey(ref: SessionRef): string {
    return this.c.key('session', enc(ref.principal), ref.sessionId);
  }

  /** The session's transcript (JSON), beside its record: it outlives the record's tombstone (the retention time). */
  private transcriptKey(ref: SessionRef): string {
    return this.transcriptPrefix(ref.principal) + ref.sessionId;
  }

  private transcriptPrefix(principal: string): string {
    return this.c.key('transcript', enc(principal), '');
  }

  /** The principal's stored transcripts of ended sessions, scored by expiry (bounded per principal). */
  private transcriptsOfKey(principal: string): string {
    return this.c.key('transcripts-of', enc(principal));
  }

  private byPrincipalKey(principal: string): string {
    return this.c.key('sessions-of', enc(principal));
  }

  private ownedKey(owner: string): string {
    return owner === RELEASED ? this.c.key('released') : this.c.key('owned', owner);
  }

  private member(ref: SessionRef): string {
    return `${enc(ref.principal)}/${ref.sessionId}`;
  }

  private static validRef(ref: SessionRef): boolean {
    return typeof ref.principal === 'string' && ref.principal.length > 0 && ref.principal.length <= 512 && SESSION_ID.test(ref.sessionId);
  }

  private checkRef(ref: SessionRef): void {
    if (!SessionRecordStore.validRef(ref)) throw new Error('invalid session reference');
  }

  private checkOwner(owner: string): void {
    if (!OWNER_ID.test(owner)) throw new Error('invalid owner instance id');
  }

  private json(what: string, v: unknown): string {
    const s = JSON.stringify(v ?? null);
    if (Buffer.byteLength(s) > this.maxJson) throw new Error(`${what} too large for the session record`);
    return s;
  }

  private header(h: Buffer | undefined): Buffer | string {
    if (!h || h.length === 0) return '';
    if (h.length > this.maxHeader) throw new Error('WebM header too large for the session record');
    return h;
  }

  /** Creates a live record owned by `s.owner`, unless one is live (→ `exists`) or the principal is at its cap. */
  async create(s: NewSession): Promise<CreateResult> {
    this.checkRef(s);
    this.checkOwner(s.owner);
    const now = this.now();
    const expiresAt = now + s.maxAgeMs;
    const r = (await this.c.run((cl) =>
      CREATE.runBuffer(cl, [this.recKey(s), this.byPrincipalKey(s.principal), this.ownedKey(s.owner), this.transcriptKey(s), this.transcriptsOfKey(s.principal)], [
        s.sessionId,
        this.member(s),
        s.owner,
        now,
        expiresAt,
        s.maxAgeMs + this.tombstoneMs,
        this.cap,
        s.principal,
        this.json('setup', s.setup),
        this.json('turn', s.turn),
        this.header(s.webmHeader),
        s.resumptionHandle ?? '',
      ]),
    )) as [number, Buffer, Buffer, Buffer];
    const reason = r[1].toString();
    const ownership = { owner: r[2].toString(), epoch: Number(r[3].toString()) };
    if (r[0] === 1) return { created: true, ownership };
    if (reason === 'cap') return { created: false, reason: 'cap' };
    return { created: false, reason: 'exists', ownership };
  }

  /** The record, or undefined: never existed, tombstone gone, or another principal's (indistinguishable). */
  async get(ref: SessionRef): Promise<SessionRecord | undefined> {
    if (!SessionRecordStore.validRef(ref)) return undefined;
    const h = await this.c.run((cl) => cl.hgetallBuffer(this.recKey(ref)));
    return this.parse(h, ref);
  }

  /** Owner-only write (fenced by the epoch it holds): new handle, header, turn state, setup. */
  async update(ref: SessionRef, holder: Ownership, patch: SessionPatch): Promise<FencedResult> {
    this.checkRef(ref);
    const pairs: (string | Buffer)[] = [];
    if ('setup' in patch) pairs.push('setup', this.json('setup', patch.setup));
    if ('turn' in patch) pairs.push('turn', this.json('turn', patch.turn));
    if ('tools' in patch) pairs.push('tools', this.json('tools', patch.tools));
    if (patch.resumptionHandle !== undefined) pairs.push('handle', patch.resumptionHandle);
    if (patch.webmHeader !== undefined) pairs.push('header', this.header(patch.webmHeader));
    if (patch.webmResume !== undefined) {
      if (patch.webmResume.pending.length > 4096) throw new Error('WebM resume point too large for the session record');
      pairs.push('wpending', patch.webmResume.pending, 'wflags', `${patch.webmResume.midBody ? 1 : 0}${patch.webmResume.inCluster ? 1 : 0}`);
    }
    const transcript = patch.transcript ? storedTranscriptJson(patch.transcript, this.maxTranscript) : '';
    const r = await this.c.run((cl) =>
      UPDATE.run(cl, [this.recKey(ref), this.transcriptKey(ref)], [holder.owner, String(holder.epoch), this.now(), transcript, this.retentionMs, ...pairs]),
    );
    return r as FencedResult;
  }

  /**
   * The session's stored transcript (the owner's copy at its last turn boundary, or the final one of an ended
   * session for the retention time), or undefined: none, or another principal's (indistinguishable).
   */
  async getTranscript(ref: SessionRef): Promise<TranscriptRecord | undefined> {
    if (!SessionRecordStore.validRef(ref)) return undefined;
    const raw = await this.c.run((cl) => cl.get(this.transcriptKey(ref)));
    return raw === null ? undefined : parseStoredTranscript(raw, ref.principal, ref.sessionId);
  }

  /**
   * Takes the session over from `expectedOwner` (read from the record, e.g. by `get`), provided that owner is dead
   * (its heartbeat key is gone) or the session was released (`expectedOwner` ''). Atomic: of several instances
   * racing for the same session, exactly one gets `taken: true`.
   */
  async takeOver(ref: SessionRef, expectedOwner: string, taker: string): Promise<TakeOverResult> {
    this.checkRef(ref);
    this.checkOwner(taker);
    const r = (await this.c.run((cl) =>
      TAKE_OVER.run(
        cl,
        [this.recKey(ref), expectedOwner === RELEASED ? this.c.key('instance', '-released-') : this.o.liveness.heartbeatKey(expectedOwner), this.ownedKey(expectedOwner), this.ownedKey(taker)],
        [expectedOwner, taker, this.now(), this.member(ref)],
      ),
    )) as [number, string, string, string];
    const ownership = { owner: r[2], epoch: Number(r[3]) };
    if (r[0] === 1) return { taken: true, ownership };
    if (r[1] === 'gone' || r[1] === 'expired') return { taken: false, reason: r[1] };
    return { taken: false, reason: r[1] as 'owner_changed' | 'owner_alive', ownership };
  }

  /**
   * The owner hands the session to `to` (a live peer that will resume it), or releases it (`to` '') for any instance
   * to take over on its next call. Fenced like `update`. Returns the new ownership on success.
   */
  async transfer(ref: SessionRef, holder: Ownership, to: string): Promise<{ ok: true; ownership: Ownership } | { ok: false; reason: 'not_owner' | 'gone' }> {
    this.checkRef(ref);
    if (to !== RELEASED) this.checkOwner(to);
    const r = (await this.c.run((cl) =>
      TRANSFER.run(cl, [this.recKey(ref), this.ownedKey(holder.owner), this.ownedKey(to)], [holder.owner, String(holder.epoch), to, this.now(), this.member(ref)]),
    )) as [number, string, string];
    if (r[0] === 1) return { ok: true, ownership: { owner: to, epoch: Number(r[2]) } };
    return { ok: false, reason: r[1] as 'not_owner' | 'gone' };
  }

  /**
   * Ends the session (owner only): a tombstone without header, handle, setup or turn, kept `tombstoneMs`; `summary`
   * (small, e.g. the model) stays with it so other instances can describe the ended session. The transcript
   * (`transcript`, else the copy stored at the last turn boundary) stays readable for the retention time.
   */
  async end(ref: SessionRef, holder: Ownership, reason: string, summary?: Record<string, string>, transcript?: TranscriptRecord): Promise<FencedResult> {
    this.checkRef(ref);
    const r = await this.c.run((cl) =>
      END.run(cl, [this.recKey(ref), this.byPrincipalKey(ref.principal), this.ownedKey(holder.owner), this.transcriptKey(ref), this.transcriptsOfKey(ref.principal)], [
        holder.owner,
        String(holder.epoch),
        this.now(),
        reason.slice(0, 64),
        this.tombstoneMs,
        ref.sessionId,
        this.member(ref),
        summary ? this.json('summary', summary) : '',
        transcript ? storedTranscriptJson(transcript, this.maxTranscript) : '',
        this.retentionMs,
        this.transcriptsPerPrincipal,
        this.transcriptPrefix(ref.principal),
      ]),
    );
    return r as FencedResult;
  }

  /**
   * Ends an abandoned session (the orphan sweep): `rec` as read by `get`, its owner dead or released, its deadline
   * for `reason` passed. Claim and end are one script (see `SWEEP_END`): `ended` only if nothing touched the record
   * since `rec` was read (else `changed`: a client took it over, its owner wrote; read it again), its owner is not
   * alive (`owner_alive`) and the deadline, read from the record itself, has passed (`not_due`). The tombstone names
   * `sweeper`; `summary` and `transcript` as in `end`.
   */
  async endAbandoned(
    rec: SessionRecord,
    a: { sweeper: string; reason: 'idle_timeout' | 'expired'; idleTimeoutMs: number; summary?: Record<string, string>; transcript?: TranscriptRecord },
  ): Promise<'ended' | 'changed' | 'owner_alive' | 'not_due' | 'gone'> {
    this.checkRef(rec);
    this.checkOwner(a.sweeper);
    const r = await this.c.run((cl) =>
      SWEEP_END.run(
        cl,
        [
          this.recKey(rec),
          this.byPrincipalKey(rec.principal),
          this.ownedKey(rec.owner),
          this.transcriptKey(rec),
          this.transcriptsOfKey(rec.principal),
          rec.owner === RELEASED ? this.c.key('instance', '-released-') : this.o.liveness.heartbeatKey(rec.owner),
        ],
        [
          rec.owner,
          String(rec.epoch),
          this.now(),
          a.reason,
          this.tombstoneMs,
          rec.sessionId,
          this.member(rec),
          a.summary ? this.json('summary', a.summary) : '',
          a.transcript ? storedTranscriptJson(a.transcript, this.maxTranscript) : '',
          this.retentionMs,
          this.transcriptsPerPrincipal,
          this.transcriptPrefix(rec.principal),
          String(rec.updatedAt),
          Math.max(1, Math.round(a.idleTimeoutMs)),
          a.sweeper,
        ],
      ),
    );
    return r === 'ok' ? 'ended' : (r as 'changed' | 'owner_alive' | 'not_due' | 'gone');
  }

  /**
   * One step of a SCAN over the instances that hold sessions (their owned sets; an empty set does not exist):
   * `count` is SCAN's COUNT. Answers the owner ids found and the next cursor ('0' when the scan is complete).
   */
  async scanOwners(cursor: string, count: number): Promise<{ cursor: string; owners: string[] }> {
    const prefix = this.c.key('owned', '');
    const [next, keys] = await this.c.run((cl) => cl.scan(cursor, 'MATCH', `${globEscape(prefix)}*`, 'COUNT', count));
    const owners = keys.map((k) => k.slice(prefix.length)).filter((id) => OWNER_ID.test(id));
    return { cursor: next, owners };
  }

  /**
   * Up to `limit` sessions from position `offset` of the set `owner` holds ('' = the released ones), in order of
   * their max-age deadline; members of records long gone (past their max age plus the tombstone time) are pruned
   * first. `more`: the set goes on beyond this page.
   */
  async ownedPage(owner: string, offset: number, limit: number): Promise<{ refs: SessionRef[]; more: boolean }> {
    const key = this.ownedKey(owner);
    const members = await this.c.run(async (cl) => {
      await cl.zremrangebyscore(key, '-inf', this.now() - this.tombstoneMs);
      return cl.zrange(key, String(offset), String(offset + limit - 1));
    });
    return { refs: members.flatMap((m) => refOfMember(m)), more: members.length === limit };
  }

  /** Several records at once (one pipeline), in the order asked; absent ones left out. */
  async getMany(refs: SessionRef[]): Promise<SessionRecord[]> {
    return this.fetch(refs.filter((r) => SessionRecordStore.validRef(r)));
  }

  /**
   * Rewrites the record of a session this instance still serves, after Redis lost it (restarted without
   * persistence). `present` when it is there already, `conflict` when another owner (or epoch) holds it now.
   */
  async restore(rec: SessionRecord): Promise<'restored' | 'present' | 'conflict'> {
    this.checkRef(rec);
    this.checkOwner(rec.owner);
    const now = this.now();
    if (rec.expiresAt <= now) return 'conflict';
    const pairs: (string | Buffer)[] = [
      'status', 'live', 'owner', rec.owner, 'epoch', String(rec.epoch), 'principal', rec.principal, 'sessionId', rec.sessionId,
      'setup', this.json('setup', rec.setup), 'turn', this.json('turn', rec.turn), 'createdAt', String(rec.createdAt),
      'updatedAt', String(now), 'expiresAt', String(rec.expiresAt), 'takeovers', String(rec.takeovers),
    ];
    if (rec.resumptionHandle) pairs.push('handle', rec.resumptionHandle);
    if (rec.tools !== undefined) pairs.push('tools', this.json('tools', rec.tools));
    if (rec.webmHeader?.length) pairs.push('header', this.header(rec.webmHeader));
    if (rec.webmResume) pairs.push('wpending', rec.webmResume.pending, 'wflags', `${rec.webmResume.midBody ? 1 : 0}${rec.webmResume.inCluster ? 1 : 0}`);
    const r = await this.c.run((cl) =>
      RESTORE.run(cl, [this.recKey(rec), this.byPrincipalKey(rec.principal), this.ownedKey(rec.owner)], [
        rec.sessionId, this.member(rec), rec.owner, String(rec.epoch), rec.expiresAt - now + this.tombstoneMs, rec.expiresAt, ...pairs,
      ]),
    );
    return r as 'restored' | 'present' | 'conflict';
  }

  /** The principal's live sessions on every instance (`GET /sessions`). */
  async listByPrincipal(principal: string): Promise<SessionRecord[]> {
    const key = this.byPrincipalKey(principal);
    const now = this.now();
    const ids = await this.c.run(async (cl) => {
      await cl.zremrangebyscore(key, '-inf', now);
      return cl.zrange(key, '0', '-1');
    });
    const recs = await this.fetch(ids.filter((id) => SESSION_ID.test(id)).map((sessionId) => ({ principal, sessionId })));
    return recs.filter((r) => r.status === 'live');
  }

  /** Sessions `owner` holds (or, with '', the released ones waiting for anyone): for takeover after a death or a hand-over. */
  async listOwnedBy(owner: string): Promise<SessionRef[]> {
    const members = await this.c.run((cl) => cl.zrange(this.ownedKey(owner), '0', '-1'));
    return members.flatMap((m) => refOfMember(m));
  }

  private async fetch(refs: SessionRef[]): Promise<SessionRecord[]> {
    if (refs.length === 0) return [];
    const res = await this.c.run((cl) => {
      const p = cl.pipeline();
      for (const ref of refs) p.hgetallBuffer(this.recKey(ref));
      return p.exec();
    });
    const out: SessionRecord[] = [];
    (res ?? []).forEach(([err, h], i) => {
      if (err) throw err;
      const rec = this.parse(h as Record<string, Buffer>, refs[i]);
      if (rec) out.push(rec);
    });
    return out;
  }

  private parse(h: Record<string, Buffer> | null | undefined, ref: SessionRef): SessionRecord | undefined {
    if (!h || !h.status) return undefined;
    const s = (k: string) => h[k]?.toString('utf8');
    const n = (k: string) => Number(s(k) ?? 0);
    const j = (k: string): unknown => {
      const v = s(k);
      if (v === undefined) return undefined;
      try {
        return JSON.parse(v) as unknown;
      } catch {
        return undefined;
      }
    };
    // Defence in depth: a record must name the principal and id it is stored under.
    if (s('principal') !== ref.principal || s('sessionId') !== ref.sessionId) return undefined;
    const expiresAt = n('expiresAt');
    const stored = s('status');
    const status: SessionRecordStatus = stored === 'ended' ? 'ended' : expiresAt <= this.now() ? 'expired' : 'live';
    return {
      principal: ref.principal,
      sessionId: ref.sessionId,
      status,
      owner: s('owner') ?? '',
      epoch: n('epoch'),
      setup: j('setup'),
      turn: j('turn'),
      ...(h.tools ? { tools: j('tools') } : {}),
      ...(h.handle ? { resumptionHandle: s('handle') } : {}),
      ...(h.header?.length ? { webmHeader: Buffer.from(h.header) } : {}),
      ...(h.wflags ? { webmResume: { pending: Buffer.from(h.wpending ?? Buffer.alloc(0)), midBody: s('wflags')![0] === '1', inCluster: s('wflags')![1] === '1' } } : {}),
      createdAt: n('createdAt'),
      updatedAt: n('updatedAt'),
      expiresAt,
      takeovers: n('takeovers'),
      ...(h.endedAt ? { endedAt: n('endedAt') } : {}),
      ...(h.endReason ? { endReason: s('endReason') } : {}),
      ...(h.summary ? { summary: j('summary') as Record<string, string> } : {}),
    };
  }
}

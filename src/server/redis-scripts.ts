/**
 * The Lua scripts of {@link RedisStore} (`redis-store.ts`), over the keys of `redis-keys.ts`.
 * Each runs atomically in Redis; each touches only the keys it is given (those of one document,
 * which share a hash tag, or one store-wide key), so each runs in Redis Cluster too. Versions
 * and heads travel as the decimal strings JavaScript writes, and are compared and stored as
 * such: Lua's numbers would print large ones in exponent form. Every script that writes makes
 * all of its checks before its first write, so a refused call changes nothing.
 */
import { createHash } from 'node:crypto';

/** The part of an ioredis client (`Redis` or `Cluster`) a script runs on. */
export interface ScriptClient {
  evalsha(sha1: string, numkeys: number, ...args: string[]): Promise<unknown>;
  eval(script: string, numkeys: number, ...args: string[]): Promise<unknown>;
}

/** A Lua script, run by its SHA-1 (EVALSHA), and sent whole (EVAL) only when Redis lacks it. */
export class RedisScript {
  /** The script's SHA-1, as Redis names it. */
  readonly sha: string;

  /** @param lua the script's source. */
  constructor(readonly lua: string) {
    this.sha = createHash('sha1').update(lua).digest('hex');
  }

  /**
   * Runs the script with `keys` and `args`: EVALSHA, and on a NOSCRIPT reply (a restarted or
   * flushed Redis, or a new node) EVAL, which also caches it. Resolves with Redis's reply;
   * rejects with the client's error.
   */
  async run(client: ScriptClient, keys: readonly string[], args: readonly string[]): Promise<unknown> {
    try {
      return await client.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (e) {
      if (!(e instanceof Error) || !e.message.startsWith('NOSCRIPT')) throw e;
      return await client.eval(this.lua, keys.length, ...keys, ...args);
    }
  }
}

/** Most ops a refused append's reply carries (see {@link APPEND}). */
export const CONFLICT_OPS = 64;

/**
 * Most bytes of stored op members one message carries to another writer, sparing it a read of
 * the log: the ops of a change hint (`redis-store.ts`), those of a refused append's reply.
 */
export const CARRIED_OPS_BYTES = 64 * 1024;

/**
 * Appends one batch, all or nothing: "append only if the head is still V".
 * KEYS: meta, ops, marks, recoveries.
 * ARGV: expected head, new head, epoch, the command publishing the hint (`PUBLISH`, or
 * `SPUBLISH` on a Cluster, where the document's hint channel is a shard channel in its slot;
 * '' publishes nothing), hint channel, hint, the checksum at the expected head as the writer
 * holds it ('' unknown), the checksum at the new head ('' when no op is appended), n, then n
 * pairs (version, op member), m, then m pairs (client id, mark), then '1', lost epoch,
 * recovery — or '0' without a recovery.
 * The meta field `headsum` records "head checksum" of the last append that added ops; a
 * writer that does not keep it (an older server) leaves it behind the head, and then it is
 * not checked.
 * Refuses, writing nothing, when the recorded head (absent: '0') is not the expected one or the
 * document stored another epoch: replies {0, head, stored epoch or nil, missed}, where missed
 * holds the op members past the expected head when the head is ahead under the writer's epoch
 * (what the writer that lost the race reads next), at most {@link CONFLICT_OPS} of them and
 * {@link CARRIED_OPS_BYTES} in all, else none. Replies {3, checksum}, writing nothing, when
 * `headsum` records another checksum at the expected head than the writer's (the store went
 * back and another writer wrote up to that head again). Replies {2, n} when n ops lie past the
 * recorded head (damaged data: it would be doubled), also writing nothing. Else adds each op
 * scored by its version, upserts the marks and the recovery, records the new head (keeping the
 * meta for good: any append ends the expiry of an epoch {@link PIN}ned, even one that a
 * server without this rule wrote first), stores the
 * epoch unless one is stored, publishes the hint on the hint channel (unless the command is
 * empty) and replies {1} — or {1, error} when publishing failed (a Redis without SPUBLISH):
 * the append stands all the same (Redis does not undo a script's writes, so a failing last
 * call must not make a done append look failed). Published from the script, the hint goes out
 * after the append and never for an append that did not happen. The caller checks the
 * versions run on consecutively from the expected head + 1.
 */
export const APPEND = new RedisScript(`
local head = redis.call('HGET', KEYS[1], 'head') or '0'
local stored = redis.call('HGET', KEYS[1], 'epoch')
if head ~= ARGV[1] or (stored and stored ~= ARGV[3]) then
  local missed = {}
  if stored == ARGV[3] and tonumber(head) > tonumber(ARGV[1]) then
    local bytes = 0
    for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. ARGV[1], head, 'LIMIT', 0, ${CONFLICT_OPS})) do
      bytes = bytes + #m
      if bytes > ${CARRIED_OPS_BYTES} then break end
      missed[#missed + 1] = m
    end
  end
  return {0, head, stored or false, missed}
end
local headsum = redis.call('HGET', KEYS[1], 'headsum')
if headsum and ARGV[7] ~= '' and headsum ~= head .. ' ' .. ARGV[7] and string.sub(headsum, 1, #head + 1) == head .. ' ' then
  return {3, string.sub(headsum, #head + 2)}
end
local beyond = redis.call('ZCOUNT', KEYS[2], '(' .. head, '+inf')
if beyond > 0 then return {2, beyond} end
local i = 10
for _ = 1, tonumber(ARGV[9]) do
  redis.call('ZADD', KEYS[2], ARGV[i], ARGV[i + 1])
  i = i + 2
end
local m = tonumber(ARGV[i])
i = i + 1
for _ = 1, m do
  redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
  i = i + 2
end
if ARGV[i] == '1' then redis.call('HSET', KEYS[4], ARGV[i + 1], ARGV[i + 2]) end
redis.call('PERSIST', KEYS[1])
redis.call('HSET', KEYS[1], 'head', ARGV[2])
if ARGV[8] ~= '' then redis.call('HSET', KEYS[1], 'headsum', ARGV[2] .. ' ' .. ARGV[8]) end
redis.call('HSETNX', KEYS[1], 'epoch', ARGV[3])
if ARGV[4] ~= '' then
  local sent = redis.pcall(ARGV[4], ARGV[5], ARGV[6])
  if type(sent) == 'table' and sent.err then return {1, sent.err} end
end
return {1}
`);

/**
 * The marks of some clients, with the document's epoch, in one view. KEYS: meta, marks.
 * ARGV: the client ids. Replies {epoch or nil, mark or nil for each id}.
 */
export const MARKS = new RedisScript(`
local out = {redis.call('HGET', KEYS[1], 'epoch')}
local marks = redis.call('HMGET', KEYS[2], unpack(ARGV))
for i = 1, #marks do out[i + 1] = marks[i] end
return out
`);

/**
 * Reads everything `load` returns, in one consistent view.
 * KEYS: meta, ops, snapshots, snapshot texts, recoveries.
 * Replies {head, trim, epoch, snapshot version, snapshot, ops, recoveries}: the first three
 * from meta (nil where absent), the latest snapshot's version and stored value (nil without
 * one), the op members after it (after version 0 without one) in version order, and every
 * stored recovery.
 */
export const LOAD = new RedisScript(`
local meta = redis.call('HMGET', KEYS[1], 'head', 'trim', 'epoch')
local top = redis.call('ZREVRANGEBYSCORE', KEYS[3], '+inf', '-inf', 'LIMIT', 0, 1)[1]
local snapshot = false
local from = '0'
if top then
  snapshot = redis.call('HGET', KEYS[4], top)
  from = top
end
local ops = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. from, '+inf')
return {meta[1], meta[2], meta[3], top or false, snapshot, ops, redis.call('HVALS', KEYS[5])}
`);

/**
 * The latest snapshot at or before a version.
 * KEYS: meta, snapshots, snapshot texts. ARGV: the version ('+inf' for any).
 * Replies {version, stored snapshot} when there is one, else {nil, trim point} (absent: '0').
 */
export const GET_SNAPSHOT = new RedisScript(`
local top = redis.call('ZREVRANGEBYSCORE', KEYS[2], ARGV[1], '-inf', 'LIMIT', 0, 1)[1]
if top then return {top, redis.call('HGET', KEYS[3], top)} end
return {false, redis.call('HGET', KEYS[1], 'trim') or '0'}
`);

/**
 * Stores a snapshot unless its version has one. KEYS: snapshots, snapshot texts.
 * ARGV: version, stored snapshot. Replies 1.
 */
export const PUT_SNAPSHOT = new RedisScript(`
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 1 then
  redis.call('ZADD', KEYS[1], ARGV[1], ARGV[1])
end
return 1
`);

/**
 * Moves the trim point forward. KEYS: meta, ops, snapshots, snapshot texts. ARGV: version.
 * Replies 1 without a change when the trim point is already there or past it; 0, changing
 * nothing, when the version has no snapshot; else deletes the ops up to the version and the
 * snapshots before it, records the trim point, and replies 1.
 */
export const TRIM = new RedisScript(`
local trim = tonumber(redis.call('HGET', KEYS[1], 'trim') or '0')
if tonumber(ARGV[1]) <= trim then return 1 end
if redis.call('HEXISTS', KEYS[4], ARGV[1]) == 0 then return 0 end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
for _, v in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[1])) do
  redis.call('HDEL', KEYS[4], v)
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[1])
redis.call('HSET', KEYS[1], 'trim', ARGV[1])
return 1
`);

/**
 * The store's epoch for documents never written. KEYS: instance. ARGV: a new id.
 * Replies the stored id, first storing the new one if there is none (a new or emptied Redis).
 */
export const INSTANCE = new RedisScript(`
local v = redis.call('GET', KEYS[1])
if v then return v end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
`);

/**
 * Publishes ARGV[3] on channel ARGV[2] with command ARGV[1] (`PUBLISH`, or `SPUBLISH` for a
 * shard channel). KEYS: none, or a key of the channel's slot (so that a Cluster runs it on the
 * node serving that slot). Replies the number of receivers.
 */
export const PUBLISH = new RedisScript(`return redis.call(ARGV[1], ARGV[2], ARGV[3])`);

/** Sets KEYS[1] to ARGV[1], expiring in ARGV[2] ms. Replies 1 if it existed before, else 0. */
export const HEARTBEAT = new RedisScript(`
local existed = redis.call('EXISTS', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return existed
`);

/** Replies 1 if KEYS[1] exists, else 0. */
export const EXISTS = new RedisScript(`return redis.call('EXISTS', KEYS[1])`);

/**
 * Gives a document an epoch unless it has one. KEYS: meta. ARGV: the epoch, and the ms after
 * which a meta holding nothing else expires (an epoch pinned for a document only read, never
 * written; its first append keeps it for good). Replies the document's epoch: the stored one,
 * else ARGV[1], first stored.
 */
export const PIN = new RedisScript(`
local e = redis.call('HGET', KEYS[1], 'epoch')
if e then return e end
redis.call('HSET', KEYS[1], 'epoch', ARGV[1])
if redis.call('HLEN', KEYS[1]) == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return ARGV[1]
`);

/**
 * Retires an epoch that a document is about to store: if it is the store's epoch for new
 * documents, replaces that with a new id. KEYS: instance. ARGV: the epoch, a new id. Replies 1.
 */
export const RETIRE = new RedisScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2]) end
return 1
`);

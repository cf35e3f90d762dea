/**
 * The Lua scripts of the Redis broker and presence manager. Each runs atomically in Redis,
 * so what one script reads and writes is never interleaved with another node's command.
 *
 * Times come from Redis (`TIME`), never from a node: expiry decisions about history and
 * presence are made on one clock whatever the skew between nodes. (Scripts may call TIME
 * before writing since Redis 5 replicates scripts by their effects, the only mode of 7.)
 *
 * A script that fails half-way keeps the writes it made (Redis scripts do not roll back),
 * so every script does its fallible work before its first write.
 */
import { createHash } from 'node:crypto';
import type { RedisClient } from './connection.js';

/** A script run by EVALSHA, falling back to EVAL (which also caches it) when Redis lost it. */
export class LuaScript {
  readonly sha: string;

  constructor(
    readonly name: string,
    readonly source: string,
  ) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  async run(redis: RedisClient, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    try {
      return await redis.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (err) {
      // NOSCRIPT means the script did not run at all (Redis restarted, SCRIPT FLUSH): EVAL is safe.
      if (err instanceof Error && err.message.startsWith('NOSCRIPT')) return redis.eval(this.source, keys.length, ...keys, ...args);
      throw err;
    }
  }
}

const NOW_MS = `
local clock = redis.call('time')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
`;

/**
 * Publishes one publication, with history when ARGV[4] > 0. Guarantees, all at once or not
 * at all: the next offset of the channel is taken (the epoch created when the stream has
 * none), the publication is appended to the stream under the ID `<offset>-0`, the stream is
 * trimmed to the history size, the expiries are renewed, and the publication is sent on the
 * channel's bus channel. Offsets are therefore contiguous, every node receives them in
 * offset order (Redis delivers messages in the order scripts ran), and anything a history
 * read returns was published. With an idempotency key, a key already present returns the
 * stored position and nothing else happens.
 *
 * Stream IDs are the offsets (`<offset>-0`) rather than Redis-generated times: history reads
 * address offsets directly with XRANGE / XREVRANGE, in O(log n), without scanning entries.
 * The expiry of each entry is stored beside it (`x`, Redis ms): each publication honours the
 * TTL it was published with, even when the namespace's TTL changes later.
 *
 * KEYS: 1 stream, 2 meta, 3 idempotency result (optional)
 * ARGV: 1 'publish' | 'spublish', or '' to leave the sending to the caller (after WAIT: a
 *       publication is then seen by subscribers only once replicas hold it),
 *       2 bus channel, 3 frame tail (codec.publicationTail),
 *       4 history size, 5 history TTL ms, 6 meta TTL ms (<= 0: no expiry),
 *       7 epoch for a stream that has none, 8 idempotent result TTL ms
 * Returns: {offset, epoch, 1 when an earlier publish with the same key answered, the frame
 * to send when ARGV[1] is '' and this call published}
 */
export const PUBLISH = new LuaScript(
  'publish',
  `
if KEYS[3] then
  local previous = redis.call('get', KEYS[3])
  if previous then
    local sep = string.find(previous, ':', 1, true)
    return {tonumber(string.sub(previous, 1, sep - 1)), string.sub(previous, sep + 1), 1}
  end
end
${NOW_MS}
local size = tonumber(ARGV[4])
local offset = 0
local epoch = ''
local frame
if size > 0 then
  local ttl = tonumber(ARGV[5])
  local meta = redis.call('hmget', KEYS[2], 'e', 'o')
  epoch = meta[1]
  if epoch then
    offset = (tonumber(meta[2]) or 0) + 1
  else
    -- No position: a new lineage. Entries left in the stream belong to a lost one.
    epoch = ARGV[7]
    offset = 1
    redis.call('del', KEYS[1])
  end
  local offsetText = string.format('%d', offset)
  frame = '[{"offset":' .. offsetText .. ',"epoch":"' .. epoch .. '","time":' .. string.format('%d', now) .. ARGV[3]
  local id = offsetText .. '-0'
  local expires = string.format('%d', now + ttl)
  local added = redis.pcall('xadd', KEYS[1], 'MAXLEN', size, id, 'x', expires, 'p', frame)
  if type(added) == 'table' and added.err then
    -- The stream holds IDs at or past this offset that the position does not account for
    -- (its meta was deleted by hand and recreated): they are no lineage of this epoch.
    redis.call('del', KEYS[1])
    redis.call('xadd', KEYS[1], 'MAXLEN', size, id, 'x', expires, 'p', frame)
  end
  redis.call('hset', KEYS[2], 'e', epoch, 'o', offsetText)
  redis.call('pexpire', KEYS[1], ttl)
  local metaTtl = tonumber(ARGV[6])
  if metaTtl > 0 then
    redis.call('pexpire', KEYS[2], metaTtl)
  else
    redis.call('persist', KEYS[2])
  end
else
  frame = '[{"offset":0,"epoch":"","time":' .. string.format('%d', now) .. ARGV[3]
end
if KEYS[3] then
  redis.call('set', KEYS[3], string.format('%d', offset) .. ':' .. epoch, 'PX', ARGV[8])
end
if ARGV[1] == '' then return {offset, epoch, 0, frame} end
redis.call(ARGV[1], ARGV[2], frame)
return {offset, epoch, 0}
`,
);

/**
 * Publishes several publications of one channel, in order, with history: what PUBLISH does
 * for one, done for each in one script call (one TIME, one position read and write, one
 * expiry renewal for the whole batch). Offsets are consecutive, in ARGV order. No
 * idempotency key: publications with one go through PUBLISH.
 *
 * KEYS: 1 stream, 2 meta
 * ARGV: 1 'publish' | 'spublish' | '' (as PUBLISH), 2 bus channel, 3 history size (> 0),
 *       4 history TTL ms, 5 meta TTL ms (<= 0: no expiry), 6 epoch for a stream that has
 *       none, 7... the frame tails (codec.publicationTail)
 * Returns: {first offset, epoch, the frames to send when ARGV[1] is ''}
 */
export const PUBLISH_BATCH = new LuaScript(
  'publish_batch',
  `
${NOW_MS}
local size = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local meta = redis.call('hmget', KEYS[2], 'e', 'o')
local epoch = meta[1]
local last = 0
if epoch then
  last = tonumber(meta[2]) or 0
else
  epoch = ARGV[6]
  redis.call('del', KEYS[1])
end
local nowText = string.format('%d', now)
local expires = string.format('%d', now + ttl)
local out = {last + 1, epoch}
for i = 7, #ARGV do
  local offsetText = string.format('%d', last + 1)
  local frame = '[{"offset":' .. offsetText .. ',"epoch":"' .. epoch .. '","time":' .. nowText .. ARGV[i]
  local id = offsetText .. '-0'
  local added = redis.pcall('xadd', KEYS[1], 'MAXLEN', size, id, 'x', expires, 'p', frame)
  if type(added) == 'table' and added.err then
    -- As in PUBLISH: IDs past the position belong to no lineage of this epoch.
    redis.call('del', KEYS[1])
    redis.call('xadd', KEYS[1], 'MAXLEN', size, id, 'x', expires, 'p', frame)
  end
  if ARGV[1] == '' then out[#out + 1] = frame else redis.call(ARGV[1], ARGV[2], frame) end
  last = last + 1
end
redis.call('hset', KEYS[2], 'e', epoch, 'o', string.format('%d', last))
redis.call('pexpire', KEYS[1], ttl)
local metaTtl = tonumber(ARGV[5])
if metaTtl > 0 then
  redis.call('pexpire', KEYS[2], metaTtl)
else
  redis.call('persist', KEYS[2])
end
return out
`,
);

/**
 * Reads a stream's position and, when asked, its live publications (expiry after now),
 * skipping expired ones so that `limit` counts only what is returned. A stream without
 * position gets one (offset 0, the given epoch, ARGV[2] ms to live) so that its first
 * publish keeps the epoch a reader already saw.
 *
 * KEYS: 1 stream, 2 meta
 * ARGV: 1 epoch for a stream that has none, 2 meta TTL of a stream created by a read,
 *       3 limit, 4 '1' for newest first, 5 since offset ('' for none), 6 since epoch
 * Returns: {offset, epoch, frame...} with frames in the order asked
 */
export const HISTORY = new LuaScript(
  'history',
  `
local meta = redis.call('hmget', KEYS[2], 'e', 'o')
local epoch = meta[1]
local offset = tonumber(meta[2]) or 0
if not epoch then
  epoch = ARGV[1]
  offset = 0
  redis.call('del', KEYS[1])
  redis.call('hset', KEYS[2], 'e', epoch, 'o', '0')
  redis.call('pexpire', KEYS[2], ARGV[2])
end
local out = {offset, epoch}
local limit = tonumber(ARGV[3])
if limit <= 0 then return out end
local since = ARGV[5]
if since ~= '' and ARGV[6] ~= '' and ARGV[6] ~= epoch then return out end
${NOW_MS}
local reverse = ARGV[4] == '1'
local lo = '-'
local hi = '+'
if since ~= '' then
  if reverse then
    local top = tonumber(since) - 1
    if top < 1 then return out end
    hi = string.format('%d', top)
  else
    lo = string.format('%d', tonumber(since) + 1)
  end
end
local found = 0
while found < limit do
  local want = math.min(limit - found, 1000)
  local batch
  if reverse then
    batch = redis.call('xrevrange', KEYS[1], hi, lo, 'COUNT', want)
  else
    batch = redis.call('xrange', KEYS[1], lo, hi, 'COUNT', want)
  end
  for _, entry in ipairs(batch) do
    local fields = entry[2]
    local expires
    local frame
    for i = 1, #fields, 2 do
      if fields[i] == 'x' then expires = tonumber(fields[i + 1]) elseif fields[i] == 'p' then frame = fields[i + 1] end
    end
    if frame and expires and expires > now and found < limit then
      found = found + 1
      out[found + 2] = frame
    end
  end
  if #batch < want then break end
  local last = batch[#batch][1]
  if reverse then hi = '(' .. last else lo = '(' .. last end
end
return out
`,
);

/** Drops the expired entries of a presence hash and its expiry set (score <= now). */
const PRUNE_PRESENCE = `
local function prune(hash, expiry, now)
  while true do
    local dead = redis.call('zrangebyscore', expiry, '-inf', now, 'LIMIT', 0, 500)
    if #dead == 0 then return end
    redis.call('hdel', hash, unpack(dead))
    redis.call('zrem', expiry, unpack(dead))
    if #dead < 500 then return end
  end
end
`;

/**
 * Upserts a presence entry expiring ttl ms from now (Redis clock), prunes expired entries,
 * and keeps both keys alive at least as long as their longest-lived entry, so that the keys
 * of a channel whose nodes all died disappear by themselves.
 *
 * KEYS: 1 hash, 2 expiry set. ARGV: 1 client id, 2 ClientInfo JSON, 3 ttl ms
 */
export const PRESENCE_ADD = new LuaScript(
  'presence_add',
  `
${PRUNE_PRESENCE}
${NOW_MS}
local ttl = tonumber(ARGV[3])
if ttl <= 0 then
  redis.call('hdel', KEYS[1], ARGV[1])
  redis.call('zrem', KEYS[2], ARGV[1])
  return 0
end
redis.call('zadd', KEYS[2], string.format('%d', now + ttl), ARGV[1])
redis.call('hset', KEYS[1], ARGV[1], ARGV[2])
prune(KEYS[1], KEYS[2], now)
if redis.call('pttl', KEYS[1]) < ttl then
  redis.call('pexpire', KEYS[1], ttl)
  redis.call('pexpire', KEYS[2], ttl)
end
return 1
`,
);

/** KEYS: 1 hash, 2 expiry set. ARGV: 1 client id */
export const PRESENCE_REMOVE = new LuaScript(
  'presence_remove',
  `
redis.call('hdel', KEYS[1], ARGV[1])
redis.call('zrem', KEYS[2], ARGV[1])
return 1
`,
);

/** Live entries as a flat HGETALL reply. KEYS: 1 hash, 2 expiry set */
export const PRESENCE_GET = new LuaScript(
  'presence_get',
  `
${PRUNE_PRESENCE}
${NOW_MS}
prune(KEYS[1], KEYS[2], now)
return redis.call('hgetall', KEYS[1])
`,
);

/**
 * {clients, distinct users} of the live entries, counted in Redis so that stats of a large
 * channel do not ship every entry to the node. KEYS: 1 hash, 2 expiry set
 */
export const PRESENCE_STATS = new LuaScript(
  'presence_stats',
  `
${PRUNE_PRESENCE}
${NOW_MS}
prune(KEYS[1], KEYS[2], now)
local values = redis.call('hvals', KEYS[1])
local users = {}
local numUsers = 0
for _, value in ipairs(values) do
  local ok, info = pcall(cjson.decode, value)
  if ok and type(info) == 'table' and type(info.user) == 'string' and not users[info.user] then
    users[info.user] = true
    numUsers = numUsers + 1
  end
end
return {#values, numUsers}
`,
);

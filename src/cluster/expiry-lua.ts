/*
 * expiry.ts's Lua scripts, each one atomic step on a session's expiry (keys
 * in expiry.ts's header). Every deadline is by Redis's clock (LUA_NOW).
 */
import { LUA_NOW, Script } from './redis.js'

// KEYS: expiry session:<id> expiry-claim:<id> sessions:<me>
// ARGV: clientId me intervalMs ('' when the session ends with its connection or never) prefix
// Returns the claim's PTTL: > 0 while another node is ending the old session.
export const CONNECTED = new Script(`
redis.call('ZREM', KEYS[1], ARGV[1])
local prev = redis.call('HGET', KEYS[2], 'owner')
if prev and prev ~= ARGV[2] then redis.call('SREM', ARGV[4] .. 'sessions:' .. prev, ARGV[1]) end
if ARGV[3] == '' then
  redis.call('DEL', KEYS[2])
  redis.call('SREM', KEYS[4], ARGV[1])
else
  redis.call('HSET', KEYS[2], 'owner', ARGV[2], 'intervalMs', ARGV[3])
  redis.call('SADD', KEYS[4], ARGV[1])
end
return redis.call('PTTL', KEYS[3])`, 4)

// KEYS: expiry session:<id> sessions:<me>; ARGV: clientId me intervalMs (0: not kept)
// Only while this node still owns the session: a CONNECT elsewhere took it.
export const CLOSED = new Script(LUA_NOW + `
if redis.call('HGET', KEYS[2], 'owner') ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[3], ARGV[1])
local ms = tonumber(ARGV[3])
if ms > 0 then redis.call('ZADD', KEYS[1], now + ms, ARGV[1]) end
return 1`, 3)

// KEYS: expiry session:<id> sessions:<incarnation>; ARGV: clientId incarnation
// A session still connected on a dead (or closing) node: its connection is
// gone, so its interval starts now (-1: never expires, nothing to do). Idempotent: concurrent survivors move it once.
export const ORPHANED = new Script(LUA_NOW + `
if redis.call('HGET', KEYS[2], 'owner') == ARGV[2] then
  local ms = tonumber(redis.call('HGET', KEYS[2], 'intervalMs'))
  if ms >= 0 then redis.call('ZADD', KEYS[1], now + ms, ARGV[1]) end
  redis.call('DEL', KEYS[2])
end
redis.call('SREM', KEYS[3], ARGV[1])
return 1`, 3)

// KEYS: expiry; ARGV: prefix me leaseMs limit clientId ('' : every due one)
// Takes due sessions out of the set and leases each to this node, in one
// step: exactly one node ends a session, and a CONNECT either removed it
// first (nothing to end) or finds the lease and waits for the end.
export const CLAIM = new Script(LUA_NOW + `
local ids
if ARGV[5] ~= '' then
  local at = redis.call('ZSCORE', KEYS[1], ARGV[5])
  if at and tonumber(at) <= now then ids = { ARGV[5] } else ids = {} end
else
  ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[4]))
end
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('SET', ARGV[1] .. 'expiry-claim:' .. id, ARGV[2], 'PX', tonumber(ARGV[3]))
end
return ids`, 1)

// KEYS: expiry-claim:<id>; ARGV: me
export const RELEASE = new Script(`
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1`, 1)

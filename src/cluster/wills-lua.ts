/*
 * wills.ts's Lua scripts, each one atomic step on a will record (keys in
 * wills.ts's header). A record's owner is the incarnation that holds the
 * client's session, or 'due' for a dead node's delayed will.
 */
import { LUA_NOW, Script } from './redis.js'

// KEYS: will index due; ARGV: incarnation packet delayMs clientId prefix nodeId
export const RECORD = new Script(`
local prev = redis.call('HGET', KEYS[1], 'owner')
if prev == 'due' then redis.call('ZREM', KEYS[3], ARGV[4])
elseif prev and prev ~= ARGV[1] then redis.call('SREM', ARGV[5] .. 'wills:' .. prev, ARGV[4]) end
redis.call('DEL', KEYS[1])
if ARGV[2] == '' then
  redis.call('SREM', KEYS[2], ARGV[4])
else
  redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'node', ARGV[6], 'packet', ARGV[2], 'delayMs', ARGV[3], 'disconnectedAt', 0)
  redis.call('SADD', KEYS[2], ARGV[4])
end
return 1`, 3)

// KEYS: will index; ARGV: incarnation clientId
export const FORGET = new Script(`
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then redis.call('DEL', KEYS[1]) end
redis.call('SREM', KEYS[2], ARGV[2])
return 1`, 2)

// KEYS: will; ARGV: incarnation
export const DISCONNECTED = new Script(LUA_NOW + `
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then redis.call('HSET', KEYS[1], 'disconnectedAt', now) end
return 1`, 1)

// KEYS: will index due; ARGV: expected(incarnation|'due') me leaseMs clientId
export const CLAIM = new Script(LUA_NOW + `
local f = redis.call('HMGET', KEYS[1], 'owner', 'claimUntil', 'delayMs', 'disconnectedAt', 'dueAt', 'packet', 'node')
if f[1] ~= ARGV[1] then
  if ARGV[1] == 'due' then redis.call('ZREM', KEYS[3], ARGV[4]) else redis.call('SREM', KEYS[2], ARGV[4]) end
  return {'gone'}
end
if tonumber(f[2] or '0') > now then return {'leased'} end
if ARGV[1] == 'due' then
  if tonumber(f[5]) > now then return {'early'} end
else
  local delay = tonumber(f[3] or '0')
  if delay > 0 then
    local since = tonumber(f[4] or '0')
    if since == 0 then since = now end
    if since + delay > now then
      redis.call('HSET', KEYS[1], 'owner', 'due', 'dueAt', since + delay)
      redis.call('ZADD', KEYS[3], since + delay, ARGV[4])
      redis.call('SREM', KEYS[2], ARGV[4])
      return {'deferred'}
    end
  end
end
redis.call('HSET', KEYS[1], 'claimUntil', now + tonumber(ARGV[3]), 'claimedBy', ARGV[2])
return {'claimed', f[6], f[7]}`, 3)

// KEYS: will index due; ARGV: expected me clientId done(1)|release(0)
export const SETTLE = new Script(`
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] or redis.call('HGET', KEYS[1], 'claimedBy') ~= ARGV[2] then return 0 end
if ARGV[4] == '1' then
  redis.call('DEL', KEYS[1])
  if ARGV[1] == 'due' then redis.call('ZREM', KEYS[3], ARGV[3]) else redis.call('SREM', KEYS[2], ARGV[3]) end
else
  redis.call('HDEL', KEYS[1], 'claimUntil', 'claimedBy')
end
return 1`, 3)


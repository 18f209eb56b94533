/*
 * membership.ts's Lua scripts, each one atomic step on the registry (keys
 * in membership.ts's header). Times are Redis's clock (TIME), in ms.
 */
import { LUA_NOW, Script } from './redis.js'

// KEYS: members dead marker nodeKey; ARGV: incarnation address heartbeatMs ttlMs factor nodeId newGeneration
export const JOIN = new Script(LUA_NOW + `
local prev = redis.call('HGET', KEYS[1], ARGV[6])
if prev then
  local f = redis.call('HMGET', KEYS[4], 'incarnation', 'lastBeat', 'heartbeatMs', 'address')
  if f[1] == prev and now - tonumber(f[2]) <= tonumber(f[3]) * tonumber(ARGV[5]) then
    return {'taken', f[4], tostring(now - tonumber(f[2]))}
  end
  redis.call('HSET', KEYS[2], prev, now .. ':' .. ARGV[6])
end
redis.call('HSET', KEYS[1], ARGV[6], ARGV[1])
redis.call('SET', KEYS[3], ARGV[7], 'NX')
redis.call('DEL', KEYS[4])
redis.call('HSET', KEYS[4], 'incarnation', ARGV[1], 'address', ARGV[2], 'heartbeatMs', ARGV[3], 'startedAt', now, 'lastBeat', now, 'clients', 0, 'messagesPerSecond', 0)
redis.call('PEXPIRE', KEYS[4], ARGV[4])
return {'ok', prev or '', redis.call('GET', KEYS[3])}`, 4)

// KEYS: members marker nodeKey; ARGV: incarnation address heartbeatMs ttlMs clients mps nodeId generation newGeneration counters.
// counters: node-counters.ts's JSON, or '' when unchanged since the last beat;
// the third reply is 1 when the hash lacks it then (recreated), so that the next beat sends it.
export const BEAT = new Script(LUA_NOW + `
local cur = redis.call('HGET', KEYS[1], ARGV[7])
local status = 'ok'
local gen = ARGV[8]
if cur ~= ARGV[1] then
  if cur then return {'taken'} end
  gen = redis.call('GET', KEYS[2])
  if gen == ARGV[8] then return {'evicted'} end
  if not gen then
    gen = ARGV[9]
    redis.call('SET', KEYS[2], gen)
  end
  redis.call('HSET', KEYS[1], ARGV[7], ARGV[1])
  status = 'restored'
end
redis.call('HSETNX', KEYS[3], 'startedAt', now)
redis.call('HSET', KEYS[3], 'incarnation', ARGV[1], 'address', ARGV[2], 'heartbeatMs', ARGV[3], 'lastBeat', now, 'clients', ARGV[5], 'messagesPerSecond', ARGV[6])
local missing = 0
if ARGV[10] ~= '' then
  redis.call('HSET', KEYS[3], 'counters', ARGV[10])
elseif redis.call('HEXISTS', KEYS[3], 'counters') == 0 then
  missing = 1
end
redis.call('PEXPIRE', KEYS[3], ARGV[4])
return {status, gen, missing}`, 3)

// KEYS: members dead; ARGV: prefix factor selfNodeId declare(0|1) keepMs. Returns the dead hash.
export const REAP = new Script(LUA_NOW + `
if ARGV[4] == '1' then
  local members = redis.call('HGETALL', KEYS[1])
  for i = 1, #members, 2 do
    local id, inc = members[i], members[i + 1]
    if id ~= ARGV[3] then
      local key = ARGV[1] .. 'node:' .. id
      local f = redis.call('HMGET', key, 'incarnation', 'lastBeat', 'heartbeatMs')
      if f[1] ~= inc or now - tonumber(f[2]) > tonumber(f[3]) * tonumber(ARGV[2]) then
        redis.call('HDEL', KEYS[1], id)
        redis.call('HSET', KEYS[2], inc, now .. ':' .. id)
        if f[1] == inc then redis.call('DEL', key) end
      end
    end
  end
end
local dead = redis.call('HGETALL', KEYS[2])
local kept = {}
for i = 1, #dead, 2 do
  local at, id = string.match(dead[i + 1], '^(%d+):(.*)$')
  if now - tonumber(at) > tonumber(ARGV[5]) and redis.call('EXISTS', ARGV[1] .. 'wills:' .. dead[i]) == 0 then
    redis.call('HDEL', KEYS[2], dead[i])
  else
    table.insert(kept, dead[i])
    table.insert(kept, id)
  end
end
return kept`, 2)

// KEYS: members nodeKey; ARGV: nodeId incarnation
export const LEAVE = new Script(`
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('DEL', KEYS[2])
  return 1
end
return 0`, 2)


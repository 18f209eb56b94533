/*
 * shared.ts's Lua scripts: each change of the shared-subscription directory
 * is one atomic step, and PUBLISHes the group keys it changed on the notice
 * channel (in the script, so a change is never without its notice).
 *
 * A record is HSET <prefix>share:<group key> <clientId> '<node>|<qos>|<clean>'
 * with <node> the incarnation the member is connected to, or '' while a
 * persistent member is offline; <clean> is 1 or 0. Incarnations contain no
 * '|' after their last '/', but a nodeId might: the node is everything before
 * the last two '|'.
 */
import { Script } from './redis.js'

// Lua helpers: the node of a record, and removing one member from a group.
const COMMON = `
local function nodeOf (v) return string.match(v, '^(.*)|[^|]*|[^|]*$') end
local function drop (prefix, key, clientId)
  local share = prefix .. 'share:' .. key
  redis.call('HDEL', share, clientId)
  redis.call('SREM', prefix .. 'share-client:' .. clientId, key)
  if redis.call('HLEN', share) == 0 then redis.call('SREM', prefix .. 'shares', key) end
end
`

// KEYS: share shares client-index; ARGV: clientId record key channel
export const JOINED = new Script(`
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
redis.call('SADD', KEYS[3], ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[3])
return 1`, 3)

// A leave (clean: 1 ends the membership, 0 marks it offline) or an
// UNSUBSCRIBE (clean 1), by the node the member was connected to: only while
// the record still names that node (a takeover elsewhere may have rewritten it).
// KEYS: share; ARGV: clientId node clean key channel prefix
export const LEFT = new Script(COMMON + `
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v or nodeOf(v) ~= ARGV[2] then return 0 end
if ARGV[3] == '1' then drop(ARGV[6], ARGV[4], ARGV[1])
else redis.call('HSET', KEYS[1], ARGV[1], string.sub(v, #ARGV[2] + 1)) end
redis.call('PUBLISH', ARGV[5], ARGV[4])
return 1`, 1)

// The session of clientId ended, or it connected to `node` (which has bound
// the memberships its session kept already): its other records go.
// KEYS: client-index; ARGV: clientId node prefix channel
export const FORGET_CLIENT = new Script(COMMON + `
for _, key in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local v = redis.call('HGET', ARGV[3] .. 'share:' .. key, ARGV[1])
  if not v then redis.call('SREM', KEYS[1], key)
  elseif nodeOf(v) ~= ARGV[2] then
    drop(ARGV[3], key, ARGV[1])
    redis.call('PUBLISH', ARGV[4], key)
  end
end
return 1`, 1)

// Records naming a node that is no longer in the registry (declared dead,
// or left without removing them), or ARGV[3] (this node, closing): its
// persistent members are offline, its clean ones gone. Idempotent: every
// node runs it on 'nodeDead' and at each heartbeat. Returns how many changed.
// KEYS: shares members; ARGV: prefix channel closing-node
export const SWEEP = new Script(COMMON + `
local live = {}
for _, inc in ipairs(redis.call('HVALS', KEYS[2])) do live[inc] = true end
if ARGV[3] ~= '' then live[ARGV[3]] = nil end
local n = 0
for _, key in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local share = ARGV[1] .. 'share:' .. key
  local fields = redis.call('HGETALL', share)
  local changed = false
  for i = 1, #fields, 2 do
    local v = fields[i + 1]
    local node = nodeOf(v)
    if node ~= '' and not live[node] then
      changed = true
      n = n + 1
      if string.sub(v, -1) == '1' then drop(ARGV[1], key, fields[i])
      else redis.call('HSET', share, fields[i], string.sub(v, #node + 1)) end
    end
  end
  if changed then redis.call('PUBLISH', ARGV[2], key) end
end
return n`, 2)

// A member connected here whose record Redis lost (restarted without its
// data, or a write failed while it was away): recorded again, unless another
// node wrote one meanwhile. KEYS: share shares client-index; ARGV: clientId record key channel
export const REASSERT = new Script(`
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('SADD', KEYS[2], ARGV[3])
redis.call('SADD', KEYS[3], ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[3])
return 1`, 3)

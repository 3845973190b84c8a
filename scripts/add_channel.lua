#!lua
-- add_channel.lua: store a channel hash and its lease in one step, for
-- stores with a channel TTL (WithChannelTTL). The lease deadline comes from
-- the server's clock (TIME), so that servers with skewed clocks agree on
-- when a channel expires. Stores without a TTL write the hash with one
-- HSET and no lease.
--
-- KEYS[1]  {prefix}:channel:{channelId}  the channel hash
-- KEYS[2]  {prefix}:leases               sorted set: channel id -> lease deadline (ms since the Unix epoch, server time)
-- ARGV[1]  channelId
-- ARGV[2]  channelName
-- ARGV[3]  openingData (JSON text)
-- ARGV[4]  createdAt (ms since the Unix epoch, decimal text, the caller's clock as in @pikku/redis)
-- ARGV[5]  ttl: lease length in milliseconds, an integer from 1 to 1e12 (about 31 years)
--
-- Returns: the lease deadline, in ms since the Unix epoch. An existing
-- channel keeps its session, Pikku user id and state, and gets the new
-- lease. When a key holds another type (KEYS[1] not a hash, KEYS[2] not a
-- sorted set), an error naming it, "WRONGTYPE add_channel: key ... holds
-- a ..., want a ...; nothing was written", and nothing is written.
--
-- Example:
--   redis-cli --eval scripts/add_channel.lua pikku:channel:c1 pikku:leases , c1 chat '{}' 1767225600000 30000
if #KEYS ~= 2 or #ARGV ~= 5 then
  return redis.error_reply('ERR add_channel: expected 2 keys and 5 arguments, got ' .. #KEYS .. ' and ' .. #ARGV)
end
local ttl = tonumber(ARGV[5])
if ttl == nil or ttl < 1 or ttl > 1e12 or ttl ~= math.floor(ttl) then
  return redis.error_reply('ERR add_channel: ttl must be an integer number of ms from 1 to 1e12, got ' .. ARGV[5])
end
-- Redis never rolls a script back, so every key is checked before the
-- first write: the hash by a read, the lease set by the first write (ZADD
-- fails on another type before it writes).
-- typeError is the error naming a key that holds another type than want.
-- TYPE is asked only here, on the way out, and may be refused to an ACL
-- user (the README's grants no TYPE).
local function typeError(key, want)
  local got = redis.pcall('TYPE', key)
  return redis.error_reply('WRONGTYPE add_channel: key ' .. key .. ' holds a ' .. (got['ok'] or 'value of another type')
    .. ', want a ' .. want .. '; nothing was written')
end
-- try runs a command that fails on a key of another type before it
-- writes anything (a read, or the first write to its key); it returns the
-- reply, or nil and an error reply (naming the key for WRONGTYPE).
local function try(key, want, ...)
  local reply = redis.pcall(...)
  if type(reply) == 'table' and reply['err'] then
    if string.sub(reply['err'], 1, 9) == 'WRONGTYPE' then
      return nil, typeError(key, want)
    end
    return nil, reply
  end
  return reply
end
local _, bad = try(KEYS[1], 'hash', 'HEXISTS', KEYS[1], 'channelId')
if bad then
  return bad
end
local t = redis.call('TIME')
local deadline = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + ttl
_, bad = try(KEYS[2], 'zset', 'ZADD', KEYS[2], string.format('%d', deadline), ARGV[1])
if bad then
  return bad
end
redis.call('HSET', KEYS[1], 'channelId', ARGV[1], 'channelName', ARGV[2], 'openingData', ARGV[3], 'createdAt', ARGV[4])
return deadline

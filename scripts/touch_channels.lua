#!lua flags=allow-oom
-- touch_channels.lua: extend the leases of channels that still exist (the
-- heartbeat a server sends for its live sockets), to the server's time
-- (TIME) plus the ttl. A channel that exists but has no lease (added by
-- @pikku/redis, or by a store without a TTL) gets one. A channel whose hash
-- is gone (swept, or removed) is not given a lease again; its id is
-- returned so that the server can close that socket. It runs under
-- maxmemory (allow-oom): it writes at most one sorted set entry per live
-- channel, and a heartbeat refused while Redis is full would let the
-- sweeper remove channels whose sockets are still open.
--
-- KEYS[1]     {prefix}:leases               sorted set: channel id -> lease deadline (ms)
-- KEYS[1+i]   {prefix}:channel:{channelId_i}  the channel hash, for i = 1..n
-- ARGV[1]     ttl: lease length in milliseconds, an integer from 1 to 1e12 (about 31 years)
-- ARGV[1+i]   channelId_i, for i = 1..n
--
-- Returns: the ids, of the n given, whose channel hash does not exist
-- (no channelId field); an empty array when every lease was extended. When
-- a key holds another type (KEYS[1] not a sorted set, a channel hash not a
-- hash), an error naming it, "WRONGTYPE touch_channels: key ... holds a
-- ..., want a ...; nothing was written", and nothing is written.
--
-- Example:
--   redis-cli --eval scripts/touch_channels.lua pikku:leases pikku:channel:c1 , 30000 c1
local n = #ARGV - 1
if n < 0 or #KEYS ~= n + 1 then
  return redis.error_reply('ERR touch_channels: expected 1 key and one more per channel id, got ' .. #KEYS .. ' keys for ' .. math.max(n, 0) .. ' ids')
end
local ttl = tonumber(ARGV[1])
if ttl == nil or ttl < 1 or ttl > 1e12 or ttl ~= math.floor(ttl) then
  return redis.error_reply('ERR touch_channels: ttl must be an integer number of ms from 1 to 1e12, got ' .. ARGV[1])
end
local t = redis.call('TIME')
local deadline = string.format('%d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + ttl)
-- Redis never rolls a script back, so every channel hash is checked by
-- its HEXISTS (a read) before the first write, and the first ZADD fails on
-- a lease set of another type before it writes.
-- typeError is the error naming a key that holds another type than want.
-- TYPE is asked only here, on the way out, and may be refused to an ACL
-- user (the README's grants no TYPE).
local function typeError(key, want)
  local got = redis.pcall('TYPE', key)
  return redis.error_reply('WRONGTYPE touch_channels: key ' .. key .. ' holds a ' .. (got['ok'] or 'value of another type')
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
local live, gone = {}, {}
for i = 1, n do
  local exists, bad = try(KEYS[1 + i], 'hash', 'HEXISTS', KEYS[1 + i], 'channelId')
  if bad then
    return bad
  end
  if exists == 1 then
    live[#live + 1] = ARGV[1 + i]
  else
    gone[#gone + 1] = ARGV[1 + i]
  end
end
for i, id in ipairs(live) do
  if i == 1 then
    local _, bad = try(KEYS[1], 'zset', 'ZADD', KEYS[1], deadline, id)
    if bad then
      return bad
    end
  else
    redis.call('ZADD', KEYS[1], deadline, id)
  end
end
return gone

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
-- (no channelId field); an empty array when every lease was extended.
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
local gone = {}
for i = 1, n do
  if redis.call('HEXISTS', KEYS[1 + i], 'channelId') == 1 then
    redis.call('ZADD', KEYS[1], deadline, ARGV[1 + i])
  else
    gone[#gone + 1] = ARGV[1 + i]
  end
end
return gone

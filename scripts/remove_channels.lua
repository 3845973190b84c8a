#!lua flags=allow-oom
-- remove_channels.lua: remove channels and every trace of them. Per channel,
-- atomically: remove the channel id from every topic set named in its subs
-- set, delete the subs set, delete the channel hash, drop its lease.
--
-- KEYS[2i-1]  {prefix}:channel:{channelId_i}  the channel hash, for i = 1..n
-- KEYS[2i]    {prefix}:subs:{channelId_i}     the channel's topic set, for i = 1..n
-- ARGV[1]     prefix: the topic set keys named in each subs set are built
--             inside the script as ARGV[1] .. ':topic:' .. topic, and the
--             lease set (see add_channel.lua) as ARGV[1] .. ':leases'; they
--             are not declared in KEYS (on Redis Cluster the prefix must
--             then be a hash tag such as {pikku}, so that every key shares
--             one slot)
-- ARGV[2]     budget: the most topic memberships one call removes, 0 for no
--             limit; the channels are taken in order and the call stops
--             before a channel that would go over it (the first channel is
--             always removed, however many topics it has)
-- ARGV[2+i]   channelId_i, for i = 1..n
--
-- Returns: how many of the n channels were removed (1..n), always the first
-- ones; call again with the rest. Ids that do not exist count as removed.
-- The caller bounds n (100 by default) and the budget (1000 by default:
-- about 0.7 ms of Redis time) so that one call never holds Redis long.
--
-- Example:
--   redis-cli --eval scripts/remove_channels.lua pikku:channel:c1 pikku:subs:c1 , pikku 0 c1
local n = #ARGV - 2
if n < 0 or #KEYS ~= 2 * n then
  return redis.error_reply('ERR remove_channels: expected 2 keys per channel id, got ' .. #KEYS .. ' keys for ' .. math.max(n, 0) .. ' ids')
end
local budget = tonumber(ARGV[2])
if budget == nil or budget < 0 then
  return redis.error_reply('ERR remove_channels: budget must be a number >= 0, got ' .. ARGV[2])
end
local topicPrefix = ARGV[1] .. ':topic:'
-- Dropped whether or not the store has a TTL, so that an id removed by a
-- store without one cannot leave a lease behind that would later sweep a
-- new channel of the same id; looked for once, so that a prefix without
-- leases pays one call, not one per id.
local leasesKey = ARGV[1] .. ':leases'
local hasLeases = redis.call('EXISTS', leasesKey) == 1
local work = 0
for i = 1, n do
  local channelKey, subsKey, id = KEYS[2 * i - 1], KEYS[2 * i], ARGV[2 + i]
  if budget > 0 and i > 1 and work + redis.call('SCARD', subsKey) > budget then
    return i - 1
  end
  -- The lease first: a user whose ACL lacks ZREM is refused here, before
  -- anything of the channel is deleted.
  if hasLeases then
    redis.call('ZREM', leasesKey, id)
  end
  local topics = redis.call('SMEMBERS', subsKey)
  for _, topic in ipairs(topics) do
    redis.call('SREM', topicPrefix .. topic, id)
  end
  work = work + #topics
  redis.call('DEL', channelKey, subsKey)
end
return n

-- remove_channels.lua: remove channels and every trace of them. Per channel,
-- atomically: delete the channel hash, remove the channel id from every
-- topic set named in its subs set, delete the subs set.
--
-- KEYS[2i-1]  {prefix}:channel:{channelId_i}  the channel hash, for i = 1..n
-- KEYS[2i]    {prefix}:subs:{channelId_i}     the channel's topic set, for i = 1..n
-- ARGV[1]     prefix: the topic set keys named in each subs set are built
--             inside the script as ARGV[1] .. ':topic:' .. topic and are not
--             declared in KEYS (on Redis Cluster the prefix must then be a
--             hash tag such as {pikku}, so that every key shares one slot)
-- ARGV[1+i]   channelId_i, for i = 1..n
--
-- Returns: the number of channel hashes that existed and were deleted.
-- The caller bounds n (100 by default: about 0.7 ms of Redis time with 10
-- subscriptions per channel) so that one call never holds Redis long.
--
-- Example:
--   redis-cli --eval scripts/remove_channels.lua pikku:channel:c1 pikku:subs:c1 , pikku c1
if #KEYS ~= 2 * (#ARGV - 1) then
  return redis.error_reply('ERR remove_channels: expected 2 keys per channel id, got ' .. #KEYS .. ' keys for ' .. (#ARGV - 1) .. ' ids')
end
local topicPrefix = ARGV[1] .. ':topic:'
local removed = 0
for i = 2, #ARGV do
  local id = ARGV[i]
  local channelKey = KEYS[2 * i - 3]
  local subsKey = KEYS[2 * i - 2]
  local topics = redis.call('SMEMBERS', subsKey)
  for _, topic in ipairs(topics) do
    redis.call('SREM', topicPrefix .. topic, id)
  end
  removed = removed + redis.call('DEL', channelKey)
  redis.call('DEL', subsKey)
end
return removed

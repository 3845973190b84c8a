#!lua
-- subscribe.lua: subscribe a channel to a topic, writing both index
-- directions in one atomic step so that they can never disagree. Given
-- the channel hash as a third key, it subscribes only a channel that
-- exists, so that a Subscribe racing a RemoveChannels of the same channel
-- cannot leave the id in the topic set after the channel is gone.
--
-- KEYS[1]  {prefix}:topic:{topic}        set of channel ids subscribed to the topic
-- KEYS[2]  {prefix}:subs:{channelId}     set of topics the channel is subscribed to
-- KEYS[3]  {prefix}:channel:{channelId}  optional: the channel hash, which must exist (have a channelId field)
-- ARGV[1]  channelId
-- ARGV[2]  topic
--
-- Returns: 1 when subscribed (subscribing twice is a no-op that still
-- reports 1); 0, writing nothing, when KEYS[3] is given and the channel
-- does not exist.
--
-- Example:
--   redis-cli --eval scripts/subscribe.lua pikku:topic:news pikku:subs:c1 , c1 news
if KEYS[3] and redis.call('HEXISTS', KEYS[3], 'channelId') == 0 then
  return 0
end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
return 1

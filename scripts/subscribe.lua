-- subscribe.lua: subscribe a channel to a topic, writing both index
-- directions in one atomic step so that they can never disagree.
--
-- KEYS[1]  {prefix}:topic:{topic}     set of channel ids subscribed to the topic
-- KEYS[2]  {prefix}:subs:{channelId}  set of topics the channel is subscribed to
-- ARGV[1]  channelId
-- ARGV[2]  topic
--
-- Returns: 1, always; subscribing twice is a no-op that still reports 1.
--
-- Example:
--   redis-cli --eval scripts/subscribe.lua pikku:topic:news pikku:subs:c1 , c1 news
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
return 1

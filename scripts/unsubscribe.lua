#!lua flags=allow-oom
-- unsubscribe.lua: unsubscribe a channel from a topic, removing both index
-- directions in one atomic step.
--
-- KEYS[1]  {prefix}:topic:{topic}     set of channel ids subscribed to the topic
-- KEYS[2]  {prefix}:subs:{channelId}  set of topics the channel is subscribed to
-- ARGV[1]  channelId
-- ARGV[2]  topic
--
-- Returns: 1 when the channel id was a member of the topic set, else 0.
--
-- Example:
--   redis-cli --eval scripts/unsubscribe.lua pikku:topic:news pikku:subs:c1 , c1 news
local was = redis.call('SREM', KEYS[1], ARGV[1])
redis.call('SREM', KEYS[2], ARGV[2])
return was

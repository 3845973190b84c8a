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
-- does not exist; an error naming the key, "WRONGTYPE subscribe: key ...
-- holds a ..., want a ...; nothing was written", writing nothing, when a
-- key holds another type (KEYS[1] or KEYS[2] not a set, KEYS[3] not a
-- hash).
--
-- Example:
--   redis-cli --eval scripts/subscribe.lua pikku:topic:news pikku:subs:c1 , c1 news

-- Redis never rolls a script back, so every key is checked before the
-- first write: the channel hash by its HEXISTS, the subs set by SCARD (both
-- reads), and the topic set by the first SADD itself, which fails on
-- another type before it writes.
-- typeError is the error naming a key that holds another type than want.
-- TYPE is asked only here, on the way out, and may be refused to an ACL
-- user (the README's grants no TYPE).
local function typeError(key, want)
  local got = redis.pcall('TYPE', key)
  return redis.error_reply('WRONGTYPE subscribe: key ' .. key .. ' holds a ' .. (got['ok'] or 'value of another type')
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
local found, bad, _
if KEYS[3] then
  found, bad = try(KEYS[3], 'hash', 'HEXISTS', KEYS[3], 'channelId')
  if bad then
    return bad
  end
  if found == 0 then
    return 0
  end
end
_, bad = try(KEYS[2], 'set', 'SCARD', KEYS[2])
if not bad then
  _, bad = try(KEYS[1], 'set', 'SADD', KEYS[1], ARGV[1])
end
if bad then
  return bad
end
redis.call('SADD', KEYS[2], ARGV[2])
return 1

#!lua flags=allow-oom
-- unsubscribe.lua: unsubscribe a channel from a topic, removing both index
-- directions in one atomic step.
--
-- KEYS[1]  {prefix}:topic:{topic}     set of channel ids subscribed to the topic
-- KEYS[2]  {prefix}:subs:{channelId}  set of topics the channel is subscribed to
-- ARGV[1]  channelId
-- ARGV[2]  topic
--
-- Returns: 1 when the channel id was a member of the topic set, else 0; an
-- error naming the key, "WRONGTYPE unsubscribe: key ... holds a ..., want
-- a set; nothing was written", writing nothing, when KEYS[1] or KEYS[2]
-- holds another type than a set.
--
-- Example:
--   redis-cli --eval scripts/unsubscribe.lua pikku:topic:news pikku:subs:c1 , c1 news

-- Redis never rolls a script back, so the subs set is checked (SCARD, a
-- read) before the first write; the first SREM fails on a topic set of
-- another type before it writes.
-- typeError is the error naming a key that holds another type than want.
-- TYPE is asked only here, on the way out, and may be refused to an ACL
-- user (the README's grants no TYPE).
local function typeError(key, want)
  local got = redis.pcall('TYPE', key)
  return redis.error_reply('WRONGTYPE unsubscribe: key ' .. key .. ' holds a ' .. (got['ok'] or 'value of another type')
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
local _, bad = try(KEYS[2], 'set', 'SCARD', KEYS[2])
local was
if not bad then
  was, bad = try(KEYS[1], 'set', 'SREM', KEYS[1], ARGV[1])
end
if bad then
  return bad
end
redis.call('SREM', KEYS[2], ARGV[2])
return was

#!lua flags=no-writes
-- get_channel_with_session.lua: read a channel and the session of the Pikku
-- user it belongs to, in one atomic step: the channel hash, then the
-- session key its pikkuUserId field names, as @pikku/redis 0.12.18's
-- RedisSessionStore writes it ({prefix}:session:{pikkuUserId}, JSON text).
-- It writes nothing (no-writes: it also runs on a replica and at
-- maxmemory).
--
-- KEYS[1]  {prefix}:channel:{channelId}  the channel hash
-- ARGV[1]  prefix: the session key is built inside the script as ARGV[1]
--          .. ':session:' .. pikkuUserId, since it is known only once the
--          hash is read, and is not declared in KEYS (on Redis Cluster the
--          prefix must then be a hash tag such as {pikku}, so that it
--          shares the slot of KEYS[1]; a sharded layout, planned, would tag
--          a channel's keys by the channel id and a session key by the
--          user id, and so read the two from their own slots, with two
--          calls where the slots differ, instead of this script)
--
-- Returns: an array of 6, each a string or nil when absent: channelId,
--          channelName, openingData, createdAt and pikkuUserId from the
--          hash, then the session's JSON text. The channel does not exist
--          when channelId is nil or empty. The session is nil when the
--          hash has no pikkuUserId, or the user has no session (no key,
--          or the empty string, which @pikku/redis reads as none). A key
--          of another type than a hash (KEYS[1]) or a string (the session)
--          is an error naming it, "WRONGTYPE get_channel_with_session: key
--          ... holds a ..., want a ...".
--
-- Example:
--   redis-cli --eval scripts/get_channel_with_session.lua pikku:channel:c1 , pikku
if #KEYS ~= 1 or #ARGV ~= 1 then
  return redis.error_reply('ERR get_channel_with_session: expected 1 key and 1 argument, got ' .. #KEYS .. ' and ' .. #ARGV)
end
-- try runs a read; it returns the reply, or nil and an error reply that
-- names the key when it holds another type than want. TYPE is asked only
-- on the way out, and may be refused to an ACL user (the README's line
-- grants no TYPE).
local function try(key, want, ...)
  local reply = redis.pcall(...)
  if type(reply) == 'table' and reply['err'] then
    if string.sub(reply['err'], 1, 9) == 'WRONGTYPE' then
      local got = redis.pcall('TYPE', key)
      return nil, redis.error_reply('WRONGTYPE get_channel_with_session: key ' .. key .. ' holds a '
        .. (got['ok'] or 'value of another type') .. ', want a ' .. want)
    end
    return nil, reply
  end
  return reply
end
local h, bad = try(KEYS[1], 'hash', 'HMGET', KEYS[1], 'channelId', 'channelName', 'openingData', 'createdAt', 'pikkuUserId')
if bad then
  return bad
end
local session = false
local userID = h[5]
if h[1] and h[1] ~= '' and userID and userID ~= '' then
  local key = ARGV[1] .. ':session:' .. userID
  session, bad = try(key, 'string', 'GET', key)
  if bad then
    return bad
  end
  if session == '' then -- no session, as @pikku/redis reads it
    session = false
  end
end
h[6] = session
return h

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
--          shares the slot of KEYS[1]; in the sharded layout it is the
--          channel's shard prefix, {prefix}:{tag})
-- ARGV[2]  optional, given with ARGV[3] (the sharded layout, WithShards):
--          n, the number of shards, 2 to 1024. Without ARGV[2] and ARGV[3]
--          the script reads the session whatever the user (the standard
--          layout, and the form of every client before them)
-- ARGV[3]  optional, given with ARGV[2]: the channel's shard, 0 to n-1. The
--          user's shard is tonumber(string.sub(redis.sha1hex(pikkuUserId),
--          1, 8), 16) % n; only when it is this one does the session share
--          the channel's shard prefix and slot, and the script read it
--
-- Returns: an array of 6, each a string or nil when absent: channelId,
--          channelName, openingData, createdAt and pikkuUserId from the
--          hash, then the session's JSON text. The channel does not exist
--          when channelId is nil or empty. The session is nil when the
--          hash has no pikkuUserId, or the user has no session (no key,
--          or the empty string, which @pikku/redis reads as none). With
--          ARGV[2] and ARGV[3], a 7th element: 1 when the channel names a
--          user whose session lives in another shard, and was not read
--          (the session is then nil; the caller reads it from the user's
--          shard, a second step, not atomic with this one), else 0. A key
--          of another type than a hash (KEYS[1]) or a string (the session)
--          is an error naming it, "WRONGTYPE get_channel_with_session: key
--          ... holds a ..., want a ...".
--
-- Example:
--   redis-cli --eval scripts/get_channel_with_session.lua pikku:channel:c1 , pikku
if #KEYS ~= 1 or (#ARGV ~= 1 and #ARGV ~= 3) then
  return redis.error_reply('ERR get_channel_with_session: expected 1 key and 1 or 3 arguments, got ' .. #KEYS .. ' and ' .. #ARGV)
end
local shards, shard
if #ARGV == 3 then
  shards, shard = tonumber(ARGV[2]), tonumber(ARGV[3])
  if not shards or shards ~= math.floor(shards) or shards < 2 or shards > 1024 then
    return redis.error_reply('ERR get_channel_with_session: the number of shards must be a whole number from 2 to 1024, got ' .. ARGV[2])
  end
  if not shard or shard ~= math.floor(shard) or shard < 0 or shard >= shards then
    return redis.error_reply('ERR get_channel_with_session: the shard must be a whole number from 0 to ' .. (shards - 1) .. ', got ' .. ARGV[3])
  end
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
local session, elsewhere = false, 0
local userID = h[5]
if h[1] and h[1] ~= '' and userID and userID ~= '' then
  if shards and tonumber(string.sub(redis.sha1hex(userID), 1, 8), 16) % shards ~= shard then
    elsewhere = 1
  else
    local key = ARGV[1] .. ':session:' .. userID
    session, bad = try(key, 'string', 'GET', key)
    if bad then
      return bad
    end
    if session == '' then -- no session, as @pikku/redis reads it
      session = false
    end
  end
end
h[6] = session
if shards then
  h[7] = elsewhere
end
return h

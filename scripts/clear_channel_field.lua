#!lua flags=allow-oom
-- clear_channel_field.lua: clear (delete) one of the fields that change
-- while a channel is open (its user session, its Pikku user id, its
-- state), only if the channel exists: the same as set_channel_field.lua
-- with an empty value, but it only deletes, so it also runs while Redis is
-- at maxmemory (allow-oom): a user can log out of a full Redis.
--
-- KEYS[1]  {prefix}:channel:{channelId}  the channel hash
-- ARGV[1]  field: userSession, pikkuUserId or state
--
-- Returns: 1 when the channel exists (the field is cleared, or was not
--          there), 0 when it does not (nothing was written); an error,
--          writing nothing, for any other field; and when KEYS[1] holds
--          another type than a hash, an error naming it, "WRONGTYPE
--          clear_channel_field: key ... holds a ..., want a hash; nothing
--          was written", writing nothing.
--
-- Example:
--   redis-cli --eval scripts/clear_channel_field.lua pikku:channel:c1 , userSession
if #KEYS ~= 1 or #ARGV ~= 1 then
  return redis.error_reply('ERR clear_channel_field: expected 1 key and 1 argument, got ' .. #KEYS .. ' and ' .. #ARGV)
end
local field = ARGV[1]
if field ~= 'userSession' and field ~= 'pikkuUserId' and field ~= 'state' then
  return redis.error_reply('ERR clear_channel_field: field must be userSession, pikkuUserId or state, got ' .. tostring(field))
end
-- HEXISTS is a read and the only check: a KEYS[1] of another type fails
-- it before anything is written.
-- typeError is the error naming a key that holds another type than want.
-- TYPE is asked only here, on the way out, and may be refused to an ACL
-- user (the README's grants no TYPE).
local function typeError(key, want)
  local got = redis.pcall('TYPE', key)
  return redis.error_reply('WRONGTYPE clear_channel_field: key ' .. key .. ' holds a ' .. (got['ok'] or 'value of another type')
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
local exists, bad = try(KEYS[1], 'hash', 'HEXISTS', KEYS[1], 'channelId')
if bad then
  return bad
end
if exists == 0 then
  return 0
end
redis.call('HDEL', KEYS[1], field)
return 1

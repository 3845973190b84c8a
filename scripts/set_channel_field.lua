#!lua
-- set_channel_field.lua: set or clear one of the fields that change while a
-- channel is open (its user session, its Pikku user id, its state), only if
-- the channel exists: a missing channel is left untouched, so no hash
-- holding just that field is ever created. Redis refuses it at maxmemory;
-- clear_channel_field.lua clears a field then too.
--
-- KEYS[1]  {prefix}:channel:{channelId}  the channel hash
-- ARGV[1]  field: userSession (JSON text), pikkuUserId (plain text) or state (JSON text)
-- ARGV[2]  value, or the empty string to clear (delete) the field
--
-- Returns: 1 when the channel exists (the field was written or cleared),
--          0 when it does not (nothing was written); an error, writing
--          nothing, for any other field: channelId, channelName,
--          openingData and createdAt belong to AddChannel; and when
--          KEYS[1] holds another type than a hash, an error naming it,
--          "WRONGTYPE set_channel_field: key ... holds a ..., want a hash;
--          nothing was written", writing nothing.
--
-- Example:
--   redis-cli --eval scripts/set_channel_field.lua pikku:channel:c1 , userSession '{"userId":"u1"}'
if #KEYS ~= 1 or #ARGV ~= 2 then
  return redis.error_reply('ERR set_channel_field: expected 1 key and 2 arguments, got ' .. #KEYS .. ' and ' .. #ARGV)
end
local field = ARGV[1]
if field ~= 'userSession' and field ~= 'pikkuUserId' and field ~= 'state' then
  return redis.error_reply('ERR set_channel_field: field must be userSession, pikkuUserId or state, got ' .. tostring(field))
end
-- HEXISTS is a read and the only check: a KEYS[1] of another type fails
-- it before anything is written.
-- typeError is the error naming a key that holds another type than want.
-- TYPE is asked only here, on the way out, and may be refused to an ACL
-- user (the README's grants no TYPE).
local function typeError(key, want)
  local got = redis.pcall('TYPE', key)
  return redis.error_reply('WRONGTYPE set_channel_field: key ' .. key .. ' holds a ' .. (got['ok'] or 'value of another type')
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
if ARGV[2] == '' then
  redis.call('HDEL', KEYS[1], field)
else
  redis.call('HSET', KEYS[1], field, ARGV[2])
end
return 1

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
--          openingData and createdAt belong to AddChannel.
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
if redis.call('HEXISTS', KEYS[1], 'channelId') == 0 then
  return 0
end
if ARGV[2] == '' then
  redis.call('HDEL', KEYS[1], field)
else
  redis.call('HSET', KEYS[1], field, ARGV[2])
end
return 1

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
--          writing nothing, for any other field.
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
if redis.call('HEXISTS', KEYS[1], 'channelId') == 0 then
  return 0
end
redis.call('HDEL', KEYS[1], field)
return 1

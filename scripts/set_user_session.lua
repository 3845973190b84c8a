-- set_user_session.lua: set or clear the user session of a channel, only
-- if the channel exists; a missing channel is left untouched (no empty
-- hash holding just a session is ever created).
--
-- KEYS[1]  {prefix}:channel:{channelId}  the channel hash
-- ARGV[1]  the session as JSON text, or the empty string to clear it
--
-- Returns: 1 when the channel exists (the session was written or cleared),
--          0 when it does not (nothing was written).
--
-- Example:
--   redis-cli --eval scripts/set_user_session.lua pikku:channel:c1 , '{"userId":"u1"}'
if redis.call('HEXISTS', KEYS[1], 'channelId') == 0 then
  return 0
end
if ARGV[1] == '' then
  redis.call('HDEL', KEYS[1], 'userSession')
else
  redis.call('HSET', KEYS[1], 'userSession', ARGV[1])
end
return 1

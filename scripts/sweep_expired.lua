#!lua flags=allow-oom
-- sweep_expired.lua: remove channels whose lease has expired (their server
-- stopped touching them: it crashed, or lost its sockets), each with every
-- trace of it, as remove_channels.lua does: per channel, atomically, its id
-- in every topic set named in its subs set, the subs set, the channel hash
-- and its lease. "Expired" is judged by the server's clock (TIME) inside
-- the script, so a lease touched a moment ago is never removed.
--
-- KEYS[1]  {prefix}:leases  sorted set: channel id -> lease deadline (ms since the Unix epoch)
-- ARGV[1]  prefix: the channel, subs and topic keys of the expired ids are
--          built inside the script as ARGV[1] .. ':channel:' .. id,
--          ARGV[1] .. ':subs:' .. id and ARGV[1] .. ':topic:' .. topic, and
--          are not declared in KEYS (on Redis Cluster the prefix must then
--          be a hash tag such as {pikku}, so that every key shares one slot)
-- ARGV[2]  limit: the most channels one call removes, an integer from 1 to 100000
-- ARGV[3]  budget: the most topic memberships one call removes, 0 for no
--          limit; the call stops before a channel that would go over it
--          (the first channel is always removed, however many topics it has)
--
-- Returns: an array {removed, more}: how many channels with a hash were
-- removed (expired leases whose hash was already gone are dropped too, and
-- not counted), and 1 if expired leases may remain (call again), else 0.
--
-- Example:
--   redis-cli --eval scripts/sweep_expired.lua pikku:leases , pikku 100 1000
if #KEYS ~= 1 or #ARGV ~= 3 then
  return redis.error_reply('ERR sweep_expired: expected 1 key and 3 arguments, got ' .. #KEYS .. ' and ' .. #ARGV)
end
local limit, budget = tonumber(ARGV[2]), tonumber(ARGV[3])
if limit == nil or limit < 1 or limit > 100000 or limit ~= math.floor(limit)
  or budget == nil or budget < 0 or budget ~= math.floor(budget) then
  return redis.error_reply('ERR sweep_expired: limit must be an integer from 1 to 100000 and budget an integer >= 0, got ' .. ARGV[2] .. ' and ' .. ARGV[3])
end
local t = redis.call('TIME')
local now = string.format('%d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now, 'LIMIT', 0, limit)
local prefix = ARGV[1]
local removed, work = 0, 0
for i, id in ipairs(ids) do
  local subsKey = prefix .. ':subs:' .. id
  if budget > 0 and i > 1 and work + redis.call('SCARD', subsKey) > budget then
    return {removed, 1}
  end
  redis.call('ZREM', KEYS[1], id)
  local topics = redis.call('SMEMBERS', subsKey)
  for _, topic in ipairs(topics) do
    redis.call('SREM', prefix .. ':topic:' .. topic, id)
  end
  work = work + #topics
  removed = removed + redis.call('DEL', prefix .. ':channel:' .. id)
  redis.call('DEL', subsKey)
end
if #ids == limit then
  return {removed, 1}
end
return {removed, 0}

#!lua flags=allow-oom
-- repair_set.lua: remove, from one topic set or one subs set, the
-- memberships whose channel no longer exists, in both index directions.
-- Such members are left by @pikku/redis's removeChannels (it keeps removed
-- ids in topic sets) and by a Subscribe racing a RemoveChannels. Each
-- channel is checked here, inside the script, so a channel added since the
-- caller read the set is never touched. Only correct where every channel
-- is kept by a ChannelStore: a channel counts as gone when its hash has no
-- channelId field.
--
-- KEYS[1]     the set to repair: {prefix}:topic:{topic} or {prefix}:subs:{channelId}
-- ARGV[1]     prefix: the channel, subs and topic keys are built inside the
--             script from it as in the layout, and are not declared in KEYS
--             (on Redis Cluster the prefix must then be a hash tag such as
--             {pikku}, so that every key shares one slot)
-- ARGV[2]     kind: "topic" when KEYS[1] is a topic set (members are channel
--             ids), "subs" when it is a subs set (members are topics)
-- ARGV[3]     the set's own name: the topic, or the channel id
-- ARGV[4]     "1" for a dry run (find, remove nothing), else "0"
-- ARGV[4+i]   member_i of the set to check, for i = 1..n
--
-- Returns: the members, of the n given, that are orphaned: their channel
-- (the member for a topic set, ARGV[3] for a subs set) does not exist.
-- Unless a dry run, each was removed from KEYS[1] and the matching
-- member from the set of the other direction. Members no longer in the
-- set are skipped.
--
-- Example:
--   redis-cli --eval scripts/repair_set.lua pikku:topic:news , pikku topic news 0 c1 c2
if #KEYS ~= 1 or #ARGV < 4 then
  return redis.error_reply('ERR repair_set: expected 1 key and at least 4 arguments, got ' .. #KEYS .. ' and ' .. #ARGV)
end
local prefix, kind, name, dry = ARGV[1], ARGV[2], ARGV[3], ARGV[4] == '1'
if kind ~= 'topic' and kind ~= 'subs' then
  return redis.error_reply('ERR repair_set: kind must be topic or subs, got ' .. kind)
end
local orphans = {}
if kind == 'subs' and redis.call('HEXISTS', prefix .. ':channel:' .. name, 'channelId') == 1 then
  return orphans
end
for i = 1, #ARGV - 4 do
  local member = ARGV[4 + i]
  local id, topic = name, member
  if kind == 'topic' then
    id, topic = member, name
  end
  if redis.call('SISMEMBER', KEYS[1], member) == 1
    and (kind == 'subs' or redis.call('HEXISTS', prefix .. ':channel:' .. id, 'channelId') == 0) then
    orphans[#orphans + 1] = member
    if not dry then
      redis.call('SREM', prefix .. ':topic:' .. topic, id)
      redis.call('SREM', prefix .. ':subs:' .. id, topic)
    end
  end
end
return orphans

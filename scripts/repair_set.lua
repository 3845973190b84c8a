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
-- set are skipped. When a key holds another type (KEYS[1] or a set to
-- remove from not a set, a channel hash not a hash), an error naming it,
-- "WRONGTYPE repair_set: key ... holds a ..., want a ...; nothing was
-- written", and nothing is written.
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
-- Redis never rolls a script back, so the call is in two phases: it reads
-- and checks every key first (KEYS[1] and the channel hashes by the reads
-- it makes anyway, the sets it would remove from by SCARD), then writes.
-- typeError is the error naming a key that holds another type than want.
-- TYPE is asked only here, on the way out, and may be refused to an ACL
-- user (the README's grants no TYPE).
local function typeError(key, want)
  local got = redis.pcall('TYPE', key)
  return redis.error_reply('WRONGTYPE repair_set: key ' .. key .. ' holds a ' .. (got['ok'] or 'value of another type')
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
local orphans, ids, topics = {}, {}, {}
if kind == 'subs' then
  local channelKey = prefix .. ':channel:' .. name
  local exists, bad = try(channelKey, 'hash', 'HEXISTS', channelKey, 'channelId')
  if bad then
    return bad
  end
  if exists == 1 then
    return orphans
  end
end
for i = 1, #ARGV - 4 do
  local member = ARGV[4 + i]
  local id, topic = name, member
  if kind == 'topic' then
    id, topic = member, name
  end
  local isMember, bad = try(KEYS[1], 'set', 'SISMEMBER', KEYS[1], member)
  if bad then
    return bad
  end
  local orphaned = isMember == 1
  if orphaned and kind == 'topic' then
    local channelKey = prefix .. ':channel:' .. id
    local exists
    exists, bad = try(channelKey, 'hash', 'HEXISTS', channelKey, 'channelId')
    if bad then
      return bad
    end
    orphaned = exists == 0
  end
  if orphaned then
    local j = #orphans + 1
    orphans[j], ids[j], topics[j] = member, id, topic
    if not dry then
      for _, key in ipairs({prefix .. ':topic:' .. topic, prefix .. ':subs:' .. id}) do
        _, bad = try(key, 'set', 'SCARD', key)
        if bad then
          return bad
        end
      end
    end
  end
end
if not dry then
  for j = 1, #orphans do
    redis.call('SREM', prefix .. ':topic:' .. topics[j], ids[j])
    redis.call('SREM', prefix .. ':subs:' .. ids[j], topics[j])
  end
end
return orphans

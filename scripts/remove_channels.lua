#!lua flags=allow-oom
-- remove_channels.lua: remove channels and every trace of them. Per channel,
-- atomically: remove the channel id from every topic set named in its subs
-- set, delete the subs set, delete the channel hash, drop its lease.
--
-- KEYS[2i-1]  {prefix}:channel:{channelId_i}  the channel hash, for i = 1..n
-- KEYS[2i]    {prefix}:subs:{channelId_i}     the channel's topic set, for i = 1..n
-- ARGV[1]     prefix: the topic set keys named in each subs set are built
--             inside the script as ARGV[1] .. ':topic:' .. topic, the
--             lease set (see add_channel.lua) as ARGV[1] .. ':leases', and
--             the void key ARGV[1] .. ':void', only read (see below); they
--             are not declared in KEYS (on Redis Cluster the prefix must
--             then be a hash tag such as {pikku}, so that every key shares
--             one slot: one SINTERCARD names many topic keys at once)
-- ARGV[2]     budget: the most topic memberships one call removes, 0 for no
--             limit; the channels are taken in order and the call stops
--             before a channel that would go over it (the first channel is
--             always removed, however many topics it has)
-- ARGV[2+i]   channelId_i, for i = 1..n
--
-- Returns: how many of the n channels were removed (1..n), always the first
-- ones; call again with the rest. Ids that do not exist count as removed.
-- The call stops before a channel one of whose keys (its hash, its subs
-- set, a topic set named in it) holds another type; when that is the
-- first channel, or the lease set is not a sorted set, it returns an error
-- naming the key, "WRONGTYPE remove_channels: key ... holds a ..., want a
-- ...; nothing was written", and writes nothing.
-- The caller bounds n (100 by default) and the budget (1000 by default:
-- about 0.7 ms of Redis time) so that one call never holds Redis long;
-- a call reads at most one subs set more than it removes.
-- The void key ARGV[1] .. ':void' is never written and should not exist:
-- the topic sets are type-checked 1000 at a time with SINTERCARD, the void
-- key among them, which returns at once on a missing key. If it exists
-- (of any type), or SINTERCARD is refused, each is checked on its own:
-- slower, the same result.
--
-- Example:
--   redis-cli --eval scripts/remove_channels.lua pikku:channel:c1 pikku:subs:c1 , pikku 1000 c1
local n = #ARGV - 2
if n < 0 or #KEYS ~= 2 * n then
  return redis.error_reply('ERR remove_channels: expected 2 keys per channel id, got ' .. #KEYS .. ' keys for ' .. math.max(n, 0) .. ' ids')
end
local budget = tonumber(ARGV[2])
if budget == nil or budget < 0 then
  return redis.error_reply('ERR remove_channels: budget must be a number >= 0, got ' .. ARGV[2])
end
local topicPrefix = ARGV[1] .. ':topic:'
-- Redis never rolls a script back, so the call is in two phases: it first
-- decides which channels it takes and checks every key it would write
-- (per channel its hash, its subs set and every topic set named in it, by
-- reads), then writes, starting with the lease set, whose first ZREM fails
-- on another type before it writes. A key of another type stops the call
-- before its first write.
-- typeError is the error naming a key that holds another type than want.
-- TYPE is asked only here, on the way out, and may be refused to an ACL
-- user (the README's grants no TYPE).
local function typeError(key, want)
  local got = redis.pcall('TYPE', key)
  return redis.error_reply('WRONGTYPE remove_channels: key ' .. key .. ' holds a ' .. (got['ok'] or 'value of another type')
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
-- The lease is dropped whether or not the store has a TTL, so that an id
-- removed by a store without one cannot leave a lease behind that would
-- later sweep a new channel of the same id; the lease set is looked for
-- once, so that a prefix without leases pays one call, not one per id.
local leasesKey = ARGV[1] .. ':leases'
local hasLeases = redis.call('EXISTS', leasesKey) == 1
-- Phase 1: the channels taken, their topics, and every key checked. A
-- channel with a key of another type is not taken: the call stops before
-- it (as before a channel over the budget), and the next call, which
-- starts with it, fails naming the key.
local taken, bad = 0, nil
-- Phase 1a, per channel: its subs set (SMEMBERS reads it and checks its
-- type) and its hash. The budget is counted on the topics read: the call
-- stops before a channel that would go over it, having read at most one
-- subs set more than it removes. The topic keys of channel i are
-- topicKeys[lastKey[i - 1] + 1 .. lastKey[i]], built once.
local topicKeys, nk, lastKey = {}, 0, {[0] = 0}
for i = 1, n do
  local channelKey, subsKey = KEYS[2 * i - 1], KEYS[2 * i]
  local topics, _
  topics, bad = try(subsKey, 'set', 'SMEMBERS', subsKey)
  if not bad then
    if budget > 0 and i > 1 and nk + #topics > budget then
      break
    end
    _, bad = try(channelKey, 'hash', 'HEXISTS', channelKey, 'channelId')
  end
  if bad then
    break
  end
  for _, topic in ipairs(topics) do
    nk = nk + 1
    topicKeys[nk] = topicPrefix .. topic
  end
  taken, lastKey[i] = i, nk
end
-- Phase 1b: the topic sets of the channels taken, all at once. SINTERCARD
-- looks each of its keys up and fails on the first that is not a set
-- before it intersects anything, and a missing key (an empty set) among
-- them makes it return 0 at once: with the void key ARGV[1] .. ':void',
-- a name outside the layout that is never written, among them, it is a
-- type check of O(number of keys) that never scans a set. The void key
-- is looked for first (EXISTS): if another program wrote it, of any type,
-- or SINTERCARD is refused (an ACL user without +sintercard), each topic
-- set is checked on its own (SCARD) instead, as also happens to find the
-- key after a WRONGTYPE: slower, the same result.
if nk > 0 then
  -- Missing here, the void key stays missing for the whole script.
  local fast = redis.call('EXISTS', ARGV[1] .. ':void') == 0
  for first = 1, nk, 1000 do
    if not fast then
      break
    end
    local last = math.min(first + 999, nk)
    local reply = redis.pcall('SINTERCARD', last - first + 2, ARGV[1] .. ':void', unpack(topicKeys, first, last))
    fast = not (type(reply) == 'table' and reply['err'])
  end
  if not fast then
    -- The first key that fails stops the call before its channel.
    local i = 1
    for j, key in ipairs(topicKeys) do
      local _, keyBad = try(key, 'set', 'SCARD', key)
      if keyBad then
        bad = keyBad
        while lastKey[i] < j do
          i = i + 1
        end
        taken = i - 1
        break
      end
    end
  end
end
if taken == 0 and bad then
  return bad
end
-- Phase 2: the writes. Only the first ZREM can fail on a type, before it
-- writes anything.
for i = 1, taken do
  local id = ARGV[2 + i]
  if hasLeases then
    if i == 1 then
      local _, bad = try(leasesKey, 'zset', 'ZREM', leasesKey, id)
      if bad then
        return bad
      end
    else
      redis.call('ZREM', leasesKey, id)
    end
  end
  for j = lastKey[i - 1] + 1, lastKey[i] do
    redis.call('SREM', topicKeys[j], id)
  end
  redis.call('DEL', KEYS[2 * i - 1], KEYS[2 * i])
end
return taken

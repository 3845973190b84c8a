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
--          ARGV[1] .. ':subs:' .. id and ARGV[1] .. ':topic:' .. topic, the
--          void key as ARGV[1] .. ':void', only read (see below), and are
--          not declared in KEYS (on Redis Cluster the prefix must then be a
--          hash tag such as {pikku}, so that every key shares one slot: one
--          SINTERCARD names many topic keys at once)
-- ARGV[2]  limit: the most channels one call removes, an integer from 1 to 100000
-- ARGV[3]  budget: the most topic memberships one call removes, 0 for no
--          limit; the call stops before a channel that would go over it
--          (the first channel is always removed, however many topics it has)
-- ARGV[4]  optional, default 0: skip, how many expired leases (the earliest
--          deadlines) to pass over, those that earlier calls of the same
--          sweep left because of a key of another type (see Returns)
--
-- Returns: an array {removed, more} or {removed, more, skipped, error}:
-- how many channels with a hash were removed (expired leases whose hash
-- was already gone are dropped too, and not counted); 1 if expired leases
-- may remain (call again, with ARGV[4] increased by skipped), else 0; and,
-- only when some were, how many expired channels were left whole, lease
-- included, because one of their keys (the channel hash, the subs set, a
-- topic set named in it) holds another type, with the first of them as
-- text naming the key and the channel: "WRONGTYPE sweep_expired: key ...
-- holds a ..., want a ...; channel ... was left as it was, with its
-- lease". A KEYS[1] that is not a sorted set is an error naming it, and
-- nothing is written. A call reads at most one subs set more than it
-- removes. The void key ARGV[1] .. ':void' is never written and should not
-- exist: the topic sets are type-checked 1000 at a time with SINTERCARD,
-- the void key among them, which returns at once on a missing key. If it
-- exists (of any type), or SINTERCARD is refused, each is checked on its
-- own: slower, the same result.
--
-- Example:
--   redis-cli --eval scripts/sweep_expired.lua pikku:leases , pikku 100 1000
if #KEYS ~= 1 or (#ARGV ~= 3 and #ARGV ~= 4) then
  return redis.error_reply('ERR sweep_expired: expected 1 key and 3 or 4 arguments, got ' .. #KEYS .. ' and ' .. #ARGV)
end
local limit, budget, skip = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4] or '0')
if limit == nil or limit < 1 or limit > 100000 or limit ~= math.floor(limit)
  or budget == nil or budget < 0 or budget ~= math.floor(budget)
  or skip == nil or skip < 0 or skip ~= math.floor(skip) then
  return redis.error_reply('ERR sweep_expired: limit must be an integer from 1 to 100000, budget and skip integers >= 0, got ' .. ARGV[2] .. ', ' .. ARGV[3] .. ' and ' .. tostring(ARGV[4]))
end
-- Redis never rolls a script back, so the call is in two phases: it first
-- reads the expired ids, decides which channels it takes and checks every
-- key it would write for them (the channel hash, the subs set, every topic
-- set named in it, by reads), then writes. A channel with a key of another
-- type is left whole, lease included, and reported; the others are
-- removed. The next call passes over it (ARGV[4]), so that a sweep ends;
-- the next sweep tries it again.
-- typeError is the error naming a key that holds another type than want.
-- TYPE is asked only here, on the way out, and may be refused to an ACL
-- user (the README's grants no TYPE).
local function typeError(key, want)
  local got = redis.pcall('TYPE', key)
  return redis.error_reply('WRONGTYPE sweep_expired: key ' .. key .. ' holds a ' .. (got['ok'] or 'value of another type')
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
local t = redis.call('TIME')
local now = string.format('%d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
local ids, bad = try(KEYS[1], 'zset', 'ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now, 'LIMIT', skip, limit)
if bad then
  return bad
end
local prefix = ARGV[1]
-- Phase 1: the channels taken, their topics, and every key checked.
-- Phase 1a, per channel: its subs set (SMEMBERS reads it and checks its
-- type) and its hash. The budget is counted on the topics read: the call
-- stops before a channel that would go over it, having read at most one
-- subs set more than it removes. The topic keys of the channel ids[i]
-- are topicKeys[firstKey[i] .. lastKey[i]], built once.
local cand, more = {}, 0
local badMsg, topicKeys, nk, firstKey, lastKey = {}, {}, 0, {}, {}
-- leave records that the channel ids[i] is left whole because of bad, a
-- WRONGTYPE error reply; any other error fails the call, which has
-- written nothing.
local function leave(i, bad)
  if string.sub(bad['err'], 1, 9) ~= 'WRONGTYPE' then
    return bad
  end
  badMsg[i] = string.gsub(bad['err'], '; nothing was written$', '') .. '; channel ' .. ids[i] .. ' was left as it was, with its lease'
end
for i, id in ipairs(ids) do
  local subsKey, channelKey = prefix .. ':subs:' .. id, prefix .. ':channel:' .. id
  local topics, _
  topics, bad = try(subsKey, 'set', 'SMEMBERS', subsKey)
  if not bad then
    if budget > 0 and i > 1 and nk + #topics > budget then
      more = 1
      break
    end
    _, bad = try(channelKey, 'hash', 'HEXISTS', channelKey, 'channelId')
  end
  if bad then
    local err = leave(i, bad)
    if err then
      return err
    end
  else
    firstKey[i] = nk + 1
    for _, topic in ipairs(topics) do
      nk = nk + 1
      topicKeys[nk] = prefix .. ':topic:' .. topic
    end
    cand[#cand + 1], lastKey[i] = i, nk
  end
end
-- Phase 1b: the topic sets of the channels taken, all at once, as in
-- remove_channels.lua: SINTERCARD with the void key ARGV[1] .. ':void'
-- among them, never written, is a type check of O(number of keys) that
-- never scans a set (it returns at once on a missing key). If the void
-- key exists (of any type), SINTERCARD is refused (an ACL user without
-- +sintercard) or a key is not a set, each topic set of each channel is
-- checked on its own (SCARD): slower, the same result.
if nk > 0 then
  -- Missing here, the void key stays missing for the whole script.
  local fast = redis.call('EXISTS', prefix .. ':void') == 0
  for first = 1, nk, 1000 do
    if not fast then
      break
    end
    local last = math.min(first + 999, nk)
    local reply = redis.pcall('SINTERCARD', last - first + 2, prefix .. ':void', unpack(topicKeys, first, last))
    fast = not (type(reply) == 'table' and reply['err'])
  end
  if not fast then
    for _, i in ipairs(cand) do
      for j = firstKey[i], lastKey[i] do
        local _, keyBad = try(topicKeys[j], 'set', 'SCARD', topicKeys[j])
        if keyBad then
          local err = leave(i, keyBad)
          if err then
            return err
          end
          break
        end
      end
    end
  end
end
local take, skipped, firstBad = {}, 0, nil
for i = 1, #ids do
  if badMsg[i] then
    skipped = skipped + 1
    firstBad = firstBad or badMsg[i]
  elseif lastKey[i] then
    take[#take + 1] = i
  end
end
-- Phase 2: the writes, none of which can fail on a type now.
local removed = 0
for _, i in ipairs(take) do
  local id = ids[i]
  local subsKey = prefix .. ':subs:' .. id
  redis.call('ZREM', KEYS[1], id)
  for j = firstKey[i], lastKey[i] do
    redis.call('SREM', topicKeys[j], id)
  end
  removed = removed + redis.call('DEL', prefix .. ':channel:' .. id)
  redis.call('DEL', subsKey)
end
if #ids == limit then
  more = 1
end
if skipped > 0 then
  return {removed, more, skipped, firstBad}
end
return {removed, more}

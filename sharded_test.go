package pikkuredis_test

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/mna/redisc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pikkujs/pikkuredis"
)

// The sharded layout (WithShards): where its keys go, and the calls that
// read or write more than one shard. The suites that run on both layouts
// (forLayouts) check the rest.

var sharded = layoutCase{"sharded", testShards}

// shardedSessions is a SessionStore on prefix in the sharded layout.
func shardedSessions(t testing.TB, prefix string, opts ...pikkuredis.Option) *pikkuredis.SessionStore {
	t.Helper()
	return openSessions(t, redisURL, sharded.opts(append(opts, pikkuredis.WithKeyPrefix(prefix))...)...)
}

// Every key a channel has (its hash, subs set, lease, its memberships in
// topic sets) is in one slot, the slot of its shard; a session is in its
// user's shard; no key is outside the n shard prefixes; and the channels
// spread over all of them.
func TestShardedKeysOfAChannelShareOneSlot(t *testing.T) {
	cs, hs, l := sharded.stores(t, pikkuredis.WithChannelTTL(time.Hour))
	ss := shardedSessions(t, l.prefix)
	ctx := ctxT(t)
	c := dialRaw(t)
	defer c.Close()
	const channels, topics = 200, 7
	for i := 0; i < channels; i++ {
		id, user := fmt.Sprintf("c%d", i), fmt.Sprintf("u%d", i)
		require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: id, ChannelName: "chat"}))
		for j := 0; j < 3; j++ {
			_, err := hs.Subscribe(ctx, fmt.Sprintf("t%d", (i+j)%topics), id)
			require.NoError(t, err)
		}
		require.NoError(t, cs.SetUserSession(ctx, id, map[string]string{"userId": user}))
		require.NoError(t, cs.SetPikkuUserID(ctx, id, user))
		require.NoError(t, cs.SetState(ctx, id, i))
		require.NoError(t, ss.Set(ctx, user, map[string]string{"userId": user}))
	}

	shardPrefixes := l.shardPrefixes()
	slotOf := map[string]int{}
	for _, p := range shardPrefixes {
		slotOf[p] = redisc.Slot(p + ":x")
	}
	used := map[string]int{}
	keys := scanKeys(t, c, l.prefix)
	for _, key := range keys {
		p, _ := splitKey(l.prefix, key)
		require.Contains(t, shardPrefixes, p, "key %q is under a shard prefix of the layout", key)
		require.Equal(t, slotOf[p], redisc.Slot(key), "key %q is in its shard's slot", key)
		used[p]++
	}
	assert.Len(t, used, testShards, "the keys spread over every shard")
	t.Logf("%d keys over %d shards: %v", len(keys), len(used), used)

	for i := 0; i < channels; i++ {
		id, user := fmt.Sprintf("c%d", i), fmt.Sprintf("u%d", i)
		slot := redisc.Slot(l.channel(id))
		for _, key := range []string{l.channel(id), l.subs(id), l.session(user)} { // a session may be in another slot: one EXISTS each
			exists, err := redis.Int(c.Do("EXISTS", key))
			require.NoError(t, err)
			require.Equal(t, 1, exists, "channel %s: hash, subs set and its user's session where the layout says: no %s", id, key)
		}
		lease, err := redis.Int64(c.Do("ZSCORE", l.leases(id), id))
		require.NoError(t, err, "channel %s's lease in its shard's lease set", id)
		assert.Greater(t, lease, time.Now().UnixMilli())
		for j := 0; j < 3; j++ {
			key := l.topic(fmt.Sprintf("t%d", (i+j)%topics), id)
			member, err := redis.Bool(c.Do("SISMEMBER", key, id))
			require.NoError(t, err)
			require.True(t, member, "channel %s in %s", id, key)
			require.Equal(t, slot, redisc.Slot(key), "channel %s: membership %s in the channel's slot", id, key)
		}
		for _, key := range []string{l.subs(id), l.leases(id)} {
			require.Equal(t, slot, redisc.Slot(key), "channel %s: %s in the channel's slot", id, key)
		}
	}
	// The store reads back what it wrote, shard by shard.
	for i := 0; i < channels; i += 37 {
		got, err := cs.GetChannelWithSession(ctx, fmt.Sprintf("c%d", i))
		require.NoError(t, err)
		assert.Equal(t, fmt.Sprintf(`{"userId":"u%d"}`, i), string(got.Session))
		state, ok, err := cs.GetState(ctx, fmt.Sprintf("c%d", i))
		require.NoError(t, err)
		assert.True(t, ok)
		assert.Equal(t, fmt.Sprint(i), string(state))
	}
}

// A topic read unions the topic's set in every shard: with channels in
// all 16 shards, a read that missed one would miss its ids. An error in
// one shard ends the read and names that shard's real key.
func TestShardedTopicReadsEveryShard(t *testing.T) {
	cs, hs, l := sharded.stores(t)
	ctx := ctxT(t)
	c := dialRaw(t)
	defer c.Close()
	var want []string
	for i := 0; i < 300; i++ {
		id := fmt.Sprintf("c%d", i)
		want = append(want, id)
		require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: id}))
		_, err := hs.Subscribe(ctx, "news", id)
		require.NoError(t, err)
	}
	slices.Sort(want)
	nonEmpty := 0
	for _, key := range l.topicKeys("news") {
		n, err := redis.Int(c.Do("SCARD", key))
		require.NoError(t, err)
		if n > 0 {
			nonEmpty++
		}
	}
	require.Equal(t, testShards, nonEmpty, "the topic has members in every shard")
	assert.Equal(t, want, l.members(t, c, "news"))

	got, err := hs.GetChannelIDsForTopic(ctx, "news")
	require.NoError(t, err)
	slices.Sort(got)
	assert.Equal(t, want, got, "GetChannelIDsForTopic")
	var scanned []string
	for id, err := range hs.ScanChannelIDsForTopic(ctx, "news") {
		require.NoError(t, err)
		scanned = append(scanned, id)
	}
	slices.Sort(scanned)
	assert.Equal(t, want, scanned, "ScanChannelIDsForTopic, each id once")
	seen := 0
	for _, err := range hs.ScanChannelIDsForTopic(ctx, "news") {
		require.NoError(t, err)
		if seen++; seen == 20 {
			break
		}
	}
	assert.Equal(t, 20, seen, "stopping early")

	empty, err := hs.GetChannelIDsForTopic(ctx, "nobody")
	require.NoError(t, err)
	assert.NotNil(t, empty)
	assert.Empty(t, empty)

	bad := l.topicKeys("news")[testShards/2]
	_, err = c.Do("RENAME", bad, bad+"-moved")
	require.NoError(t, err)
	_, err = c.Do("SET", bad, "a string, not a set")
	require.NoError(t, err)
	_, err = hs.GetChannelIDsForTopic(ctx, "news")
	assert.ErrorIs(t, err, pikkuredis.ErrWrongType)
	assert.ErrorContains(t, err, "pikkuredis: get channel ids for topic: WRONGTYPE key "+bad+":")
	var scanErr error
	for _, err := range hs.ScanChannelIDsForTopic(ctx, "news") {
		scanErr = err
	}
	assert.ErrorIs(t, scanErr, pikkuredis.ErrWrongType)
	assert.ErrorContains(t, scanErr, "WRONGTYPE key "+bad+":")
	// A cancelled read is the context's error, whichever shard saw it.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = hs.GetChannelIDsForTopic(cctx, "news")
	assert.ErrorIs(t, err, context.Canceled)
}

// RemoveChannels and TouchChannels group the ids by shard: every
// membership of a removed channel goes, in whichever shard; the lease of
// each goes from its shard's lease set; on an error the count says how
// many went, shard by shard, and the key named is the real one.
func TestShardedRemoveAndTouchAcrossShards(t *testing.T) {
	cs, hs, l := sharded.stores(t, pikkuredis.WithChannelTTL(time.Hour), pikkuredis.WithRemoveChunkSize(3))
	ctx := ctxT(t)
	c := dialRaw(t)
	defer c.Close()
	ids := populate(t, cs, hs, 120, 3, 10)
	shards := map[int]bool{}
	for _, id := range ids {
		shards[l.shardOf(id)] = true
	}
	require.Len(t, shards, testShards, "the channels span every shard")

	gone, err := cs.TouchChannels(ctx, append([]string{"gone-1"}, append(ids, "gone-2")...)...)
	require.NoError(t, err)
	assert.Equal(t, []string{"gone-1", "gone-2"}, gone, "the gone ids, in the order given")
	assert.Len(t, l.leaseScores(t, c), len(ids))

	var even, odd []string
	for i, id := range ids {
		if i%2 == 0 {
			even = append(even, id)
		} else {
			odd = append(odd, id)
		}
	}
	require.NoError(t, cs.RemoveChannels(ctx, even))
	for i := 0; i < 10; i++ {
		for _, id := range l.members(t, c, fmt.Sprintf("t%d", i)) {
			require.NotContains(t, even, id, "a removed channel is still in topic t%d", i)
		}
	}
	leases := l.leaseScores(t, c)
	assert.Len(t, leases, len(odd))
	for _, id := range even {
		assert.NotContains(t, leases, id)
	}
	assertIndexesAgree(t, l.prefix)

	// A topic set of another type in one shard: the other shards' ids
	// go, that shard's chunk does not, and the error names the real key.
	victim := odd[0]
	bad := l.topic("bad", victim)
	mustDo(t, c, "SADD", l.subs(victim), "bad")
	mustDo(t, c, "SET", bad, "a string")
	err = cs.RemoveChannels(ctx, odd)
	require.ErrorIs(t, err, pikkuredis.ErrWrongType)
	assert.ErrorContains(t, err, "shard by shard, ")
	assert.ErrorContains(t, err, fmt.Sprintf(" of %d ids were removed, the rest were not", len(odd)))
	assert.ErrorContains(t, err, "key "+bad+" holds a string, want a set; nothing was written")
	_, err = cs.GetChannel(ctx, victim)
	require.NoError(t, err, "the channel of the bad key is whole")
	mustDo(t, c, "DEL", bad)
	require.NoError(t, cs.RemoveChannels(ctx, odd), "again, once the key is gone")
	assert.Empty(t, scanKeys(t, c, l.prefix))
}

// GetChannelWithSession reads the channel and a session of the same shard
// in one script, and a session of another shard with a second call; both
// give the same answers, and errors name the real keys.
func TestShardedGetChannelWithSession(t *testing.T) {
	cs, _, l := sharded.stores(t)
	ss := shardedSessions(t, l.prefix)
	ctx := ctxT(t)
	c := dialRaw(t)
	defer c.Close()
	require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "c1", ChannelName: "chat"}))
	same, other := usersOfShard(l, l.shardOf("c1"), 1), usersNotOfShard(l, l.shardOf("c1"), 1)
	src := readScript(t, "get_channel_with_session")
	for name, user := range map[string]string{"same shard": same[0], "another shard": other[0]} {
		t.Run(name, func(t *testing.T) {
			require.NoError(t, cs.SetPikkuUserID(ctx, "c1", user))
			got, err := cs.GetChannelWithSession(ctx, "c1")
			require.NoError(t, err)
			assert.Equal(t, user, got.PikkuUserID)
			assert.False(t, got.HasSession)

			require.NoError(t, ss.Set(ctx, user, map[string]string{"userId": user}))
			stored, ok := rawGet(t, c, l.session(user))
			require.True(t, ok, "the session is in its user's shard, %s", l.session(user))
			got, err = cs.GetChannelWithSession(ctx, "c1")
			require.NoError(t, err)
			assert.True(t, got.HasSession)
			assert.Equal(t, stored, string(got.Session))
			assert.Equal(t, "chat", got.ChannelName)

			// What the script says: the session, or that it is elsewhere.
			reply, err := redis.Values(c.Do("EVAL", src, 1, l.channel("c1"), l.prefixOf("c1"), testShards, l.shardOf("c1")))
			require.NoError(t, err)
			require.Len(t, reply, 7)
			if user == same[0] {
				assert.Equal(t, int64(0), reply[6])
				assert.Equal(t, []byte(stored), reply[5], "read in the script")
			} else {
				assert.Equal(t, int64(1), reply[6], "the session lives elsewhere")
				assert.Nil(t, reply[5], "not read in the script")
			}

			mustDo(t, c, "DEL", l.session(user))
			mustDo(t, c, "HSET", l.session(user), "f", "v")
			_, err = cs.GetChannelWithSession(ctx, "c1")
			assert.ErrorIs(t, err, pikkuredis.ErrWrongType)
			assert.Regexp(t, regexp.QuoteMeta("key "+l.session(user))+"[: ]", err.Error(), "the error names the real key")
			mustDo(t, c, "SET", l.session(user), "{oops")
			_, err = cs.GetChannelWithSession(ctx, "c1")
			assert.ErrorContains(t, err, "pikku user "+user+": stored session is not JSON")
			require.NoError(t, ss.Clear(ctx, user))
			got, err = cs.GetChannelWithSession(ctx, "c1")
			require.NoError(t, err)
			assert.False(t, got.HasSession)
		})
	}
}

// usersOfShard returns n user ids whose shard is shard; usersNotOfShard n
// whose shard is not.
func usersOfShard(l keyLayout, shard, n int) []string {
	return pickIDs("user-", n, func(id string) bool { return l.shardOf(id) == shard })
}

func usersNotOfShard(l keyLayout, shard, n int) []string {
	return pickIDs("user-", n, func(id string) bool { return l.shardOf(id) != shard })
}

func pickIDs(prefix string, n int, ok func(string) bool) []string {
	var out []string
	for i := 0; len(out) < n; i++ {
		if id := fmt.Sprint(prefix, i); ok(id) {
			out = append(out, id)
		}
	}
	return out
}

// The script's sharded form computes the user's shard as Go does
// (SHA-1 in Lua), and refuses shard arguments out of range; its 1-ARGV
// form is the standard layout's (TestScriptsFromOtherClients and
// TestGetChannelWithSession keep it as it was).
func TestGetChannelWithSessionScriptShardedForm(t *testing.T) {
	prefix := newPrefix(t)
	c := dialRaw(t)
	defer c.Close()
	src := readScript(t, "get_channel_with_session")
	key := prefix + ":channel:c1"
	for i := 0; i < 100; i++ {
		user := fmt.Sprintf("u%d-%s", i, strings.Repeat("é", i%5))
		mustDo(t, c, "HSET", key, "channelId", "c1", "pikkuUserId", user)
		for _, n := range []int{2, 3, testShards, 1024} {
			l := keyLayout{prefix: prefix, shards: n}
			var here []int
			for shard := 0; shard < min(n, 20); shard++ {
				reply, err := redis.Values(c.Do("EVAL", src, 1, key, prefix, n, shard))
				require.NoError(t, err)
				if reply[6] == int64(0) {
					here = append(here, shard)
				}
			}
			want := []int(nil)
			if s := l.shardOf(user); s < 20 {
				want = []int{s}
			}
			require.Equal(t, want, here, "user %q among %d shards", user, n)
		}
	}
	for _, args := range [][]any{{prefix, 1, 0}, {prefix, 1025, 0}, {prefix, "x", 0}, {prefix, 2.5, 0}, {prefix, 16, 16}, {prefix, 16, -1}, {prefix, 16, "a"}} {
		_, err := c.Do("EVAL", append([]any{src, 1, key}, args...)...)
		assert.ErrorContains(t, err, "ERR get_channel_with_session: the ", "args %v", args)
	}
	_, err := c.Do("EVAL", src, 1, key, prefix, 16)
	assert.ErrorContains(t, err, "expected 1 key and 1 or 3 arguments, got 1 and 2")
	// No user, or no channel: nothing elsewhere.
	mustDo(t, c, "HDEL", key, "pikkuUserId")
	reply, err := redis.Values(c.Do("EVAL", src, 1, key, prefix, 16, 0))
	require.NoError(t, err)
	assert.Equal(t, int64(0), reply[6])
	reply, err = redis.Values(c.Do("EVAL", src, 1, prefix+":channel:none", prefix, 16, 0))
	require.NoError(t, err)
	assert.Equal(t, []any{nil, nil, nil, nil, nil, nil, int64(0)}, reply)
}

// Repair examines the topic and subs sets of every shard, each with its
// shard's keys, over several calls; a set of another shard count's
// layout is not its own.
func TestShardedRepairFindsOrphansInEveryShard(t *testing.T) {
	cs, hs, l := sharded.stores(t)
	ctx := ctxT(t)
	c := dialRaw(t)
	defer c.Close()
	ids := populateWith(t, cs, hs, 200, 2) // c0..c199 in t0..t4
	var orphans []string
	var want []pikkuredis.Subscription
	perShard := map[int]int{}
	orphaned := map[string]bool{}
	for i, id := range ids {
		// The first three channels of each shard.
		if perShard[l.shardOf(id)]++; perShard[l.shardOf(id)] > 3 {
			continue
		}
		orphans = append(orphans, id)
		orphaned[id] = true
		for j := 0; j < 2; j++ {
			want = append(want, pikkuredis.Subscription{Topic: fmt.Sprintf("t%d", (i+j)%5), ChannelID: id})
		}
		// As @pikku/redis's removeChannels leaves them: the hash gone, and
		// for half of them the subs set too.
		mustDo(t, c, "DEL", l.channel(id))
		if len(orphans)%2 == 0 {
			mustDo(t, c, "DEL", l.subs(id))
		}
	}
	require.Len(t, orphans, 3*testShards, "orphans in every shard")
	// The same topic in a layout of another shard count: not this store's.
	stranger := keyLayout{prefix: l.prefix, shards: 7}
	mustDo(t, c, "SADD", stranger.topic("t0", "x"), "x")

	dry, _ := repairAll(t, hs, pikkuredis.RepairOptions{ChannelsKeptByChannelStore: true, DryRun: true, MaxSets: 10})
	assert.Zero(t, dry.Removed)
	total, calls := repairAll(t, hs, pikkuredis.RepairOptions{ChannelsKeptByChannelStore: true, MaxSets: 10})
	assert.Greater(t, calls, 3, "several calls, resumed by the cursor")
	assert.Equal(t, len(want), total.Found)
	assert.Equal(t, sortSubs(want), sortSubs(total.Orphans))
	for _, id := range orphans {
		for j := 0; j < 5; j++ {
			assert.NotContains(t, l.members(t, c, fmt.Sprintf("t%d", j)), id)
		}
	}
	for _, id := range ids {
		if !orphaned[id] {
			_, err := cs.GetChannel(ctx, id)
			require.NoError(t, err, "live channel %s", id)
			subs, err := redis.Strings(c.Do("SMEMBERS", l.subs(id)))
			require.NoError(t, err)
			assert.Len(t, subs, 2, "live channel %s keeps its subscriptions", id)
		}
	}
	n, err := redis.Int(c.Do("SCARD", stranger.topic("t0", "x")))
	require.NoError(t, err)
	assert.Equal(t, 1, n, "another layout's set is left alone")
	mustDo(t, c, "DEL", stranger.topic("t0", "x"))
	assertIndexesAgree(t, l.prefix)

	r, err := hs.Repair(ctx, pikkuredis.RepairOptions{ChannelsKeptByChannelStore: true, MaxSets: 1})
	require.NoError(t, err)
	if !onCluster() {
		assert.NotContains(t, r.Cursor, ":", "on one server the cursor is SCAN's own")
	}
}

// A bad shard count, or a prefix with braces in the sharded layout, is
// refused by Init and every call, which write nothing; 0 and 1 are the
// standard layout.
func TestWithShardsRefusesBadLayouts(t *testing.T) {
	ctx := ctxT(t)
	c := dialRaw(t)
	defer c.Close()
	for name, tc := range map[string]struct {
		shards int
		brace  bool
		want   string
	}{
		"negative":         {-1, false, "WithShards(-1): the number of shards must be 2 to 1024"},
		"too many":         {1025, false, "WithShards(1025)"},
		"prefix in braces": {16, true, "holds a brace, so it cannot be sharded"},
	} {
		t.Run(name, func(t *testing.T) {
			prefix := newPrefix(t)
			if tc.brace {
				prefix = "{" + prefix + "}"
			}
			opts := []pikkuredis.Option{pikkuredis.WithKeyPrefix(prefix), pikkuredis.WithShards(tc.shards), pikkuredis.WithChannelTTL(time.Hour)}
			pool := newPool(t)
			cs, err := pikkuredis.OpenChannelStore(redisURL, opts...)
			require.NoError(t, err, "the constructors keep their signatures: the error comes with each call")
			defer cs.Close()
			hs := pikkuredis.NewEventHubStore(pool, opts...)
			ss := pikkuredis.NewSessionStore(pool, opts...)
			calls := everyKeyedCall(ctx, cs, hs, "c1", "t")
			for name, call := range everySessionCall(ctx, ss, ss, "u1") {
				calls[name] = call
			}
			calls["ChannelStore.Init"] = func() error { return cs.Init(ctx) }
			calls["EventHubStore.Init"] = func() error { return hs.Init(ctx) }
			calls["SessionStore.Init"] = func() error { return ss.Init(ctx) }
			calls["TouchChannels"] = func() error { _, err := cs.TouchChannels(ctx, "c1"); return err }
			calls["SweepExpired"] = func() error { _, err := cs.SweepExpired(ctx); return err }
			calls["RemoveChannels(none)"] = func() error { return cs.RemoveChannels(ctx, nil) }
			calls["Repair"] = func() error {
				_, err := hs.Repair(ctx, pikkuredis.RepairOptions{ChannelsKeptByChannelStore: true})
				return err
			}
			for name, call := range calls {
				err := call()
				assert.ErrorIs(t, err, pikkuredis.ErrInvalidArgument, name)
				assert.ErrorContains(t, err, tc.want, name)
				assert.True(t, strings.HasPrefix(err.Error(), "pikkuredis: "), "%s: %v", name, err)
			}
			assert.Empty(t, scanKeys(t, c, prefix), "nothing written")
		})
	}
	for _, n := range []int{0, 1} {
		cs, _, prefix := stores(t, pikkuredis.WithShards(n))
		require.NoError(t, cs.Init(ctx))
		require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "c1"}))
		assert.Equal(t, []string{prefix + ":channel:c1"}, scanKeys(t, c, prefix), "WithShards(%d) is the standard layout", n)
	}
}

// The same n finds the same keys from another store; another n (here
// 0, 8 and 17, none of whose shard slots is one of 16's) finds none.
func TestShardedKeysDependOnNAlone(t *testing.T) {
	cs, hs, l := sharded.stores(t)
	ctx := ctxT(t)
	ids := populate(t, cs, hs, 20, 1, 1)
	again, err := pikkuredis.OpenEventHubStore(redisURL, sharded.opts(pikkuredis.WithKeyPrefix(l.prefix))...)
	require.NoError(t, err)
	defer again.Close()
	got, err := again.GetChannelIDsForTopic(ctx, "t0")
	require.NoError(t, err)
	assert.ElementsMatch(t, ids, got)
	for _, n := range []int{0, 8, 17} {
		other, err := pikkuredis.OpenEventHubStore(redisURL, pikkuredis.WithKeyPrefix(l.prefix), pikkuredis.WithShards(n))
		require.NoError(t, err)
		got, err := other.GetChannelIDsForTopic(ctx, "t0")
		other.Close()
		require.NoError(t, err)
		assert.Empty(t, got, "WithShards(%d) reads none of WithShards(%d)'s keys", n, testShards)
	}
}

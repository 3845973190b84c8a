package pikkuredis_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pikkujs/pikkuredis"
)

// Redis never rolls a script back: a call that meets a key of another type
// (another program wrote a string where a topic set belongs) must fail
// before its first write, name the key, and leave every key as it was.

// wrongTypeTopics are the topics of the channel c1 in wrongTypeState.
var wrongTypeTopics = []string{"a", "b", "c", "d", "e", "f", "g", "h"}

// wrongTypeState is a realistic prefix: channels c1..c3 with leases (an
// hour) and sessions, c1 subscribed to a..h, c2 to a and b, c3 to c; and
// the orphan "ghost" (no hash) in topic a, as @pikku/redis leaves it.
func wrongTypeState(t *testing.T, cs *pikkuredis.ChannelStore, hs *pikkuredis.EventHubStore, c redis.Conn, prefix string) {
	t.Helper()
	wrongTypeStateIn(t, cs, hs, c, keyLayout{prefix: prefix})
}

// wrongTypeStateIn is wrongTypeState in either layout.
func wrongTypeStateIn(t *testing.T, cs *pikkuredis.ChannelStore, hs *pikkuredis.EventHubStore, c redis.Conn, k keyLayout) {
	t.Helper()
	ctx := ctxT(t)
	subs := map[string][]string{"c1": wrongTypeTopics, "c2": {"a", "b"}, "c3": {"c"}}
	for _, id := range []string{"c1", "c2", "c3"} {
		require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: id, ChannelName: "chat", OpeningData: map[string]string{"room": id}}))
		require.NoError(t, cs.SetUserSession(ctx, id, map[string]string{"userId": "u-" + id}))
		for _, topic := range subs[id] {
			_, err := hs.Subscribe(ctx, topic, id)
			require.NoError(t, err)
		}
	}
	_, err := c.Do("SADD", k.topic("a", "ghost"), "ghost")
	require.NoError(t, err)
	_, err = c.Do("SADD", k.subs("ghost"), "a")
	require.NoError(t, err)
}

// plant replaces key with a value of type kind: "string", or a type a
// lenient command (DEL, TYPE) would take where another belongs.
func plant(t *testing.T, c redis.Conn, key, kind string) {
	t.Helper()
	_, err := c.Do("DEL", key)
	require.NoError(t, err)
	switch kind {
	case "string":
		_, err = c.Do("SET", key, "x")
	case "hash":
		_, err = c.Do("HSET", key, "channelId", "planted")
	case "set":
		_, err = c.Do("SADD", key, "planted")
	default:
		t.Fatalf("plant %s", kind)
	}
	require.NoError(t, err)
}

// dumps is every key under prefix with its DUMP bytes.
func dumps(t *testing.T, c redis.Conn, prefix string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, k := range scanKeys(t, c, prefix) {
		b, err := redis.Bytes(c.Do("DUMP", k))
		require.NoError(t, err)
		out[k] = string(b)
	}
	return out
}

// settle rewrites every key under prefix from its own DUMP, so that no
// set is left half-way through growing its hash table: a read of such a
// set (SISMEMBER) moves it on a step, which changes its DUMP, not its
// contents. After this, only a write changes a DUMP.
func settle(t *testing.T, c redis.Conn, prefix string) {
	t.Helper()
	for k, d := range dumps(t, c, prefix) {
		_, err := c.Do("RESTORE", k, 0, d, "REPLACE")
		require.NoError(t, err)
	}
}

// wrongTypeCase is one call with one key of another type.
type wrongTypeCase struct {
	name string
	key  string // after the prefix (of the shard of the id it names)
	// owner is the channel whose shard holds key when it names no id
	// (":topic:..", ":leases", ":void"): "" for c1.
	owner string
	want  string // the layout's type of key
	ttl   bool   // the stores have WithChannelTTL
	// ids are the channels of a call that takes several and may touch
	// a shard before the bad key's: in the sharded layout, one call per
	// shard, each all or nothing (TestShardedRemoveAndTouchAcrossShards).
	ids   []string
	setup func(t *testing.T, c redis.Conn, k keyLayout)
	call  func(ctx context.Context, cs *pikkuredis.ChannelStore, hs, hsRequire *pikkuredis.EventHubStore) error
	// callSessions, where call is nil, is a call of a SessionStore on
	// the same prefix and backend.
	callSessions func(ctx context.Context, ss *pikkuredis.SessionStore) error
}

func wrongTypeCases() []wrongTypeCase {
	addChannel := func(ctx context.Context, cs *pikkuredis.ChannelStore, _, _ *pikkuredis.EventHubStore) error {
		return cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "c1", ChannelName: "again"})
	}
	subscribe := func(ctx context.Context, _ *pikkuredis.ChannelStore, hs, _ *pikkuredis.EventHubStore) error {
		_, err := hs.Subscribe(ctx, "z", "c1")
		return err
	}
	subscribeRequire := func(ctx context.Context, _ *pikkuredis.ChannelStore, _, hs *pikkuredis.EventHubStore) error {
		_, err := hs.Subscribe(ctx, "z", "c1")
		return err
	}
	unsubscribe := func(ctx context.Context, _ *pikkuredis.ChannelStore, hs, _ *pikkuredis.EventHubStore) error {
		_, err := hs.Unsubscribe(ctx, "e", "c1")
		return err
	}
	remove := func(ctx context.Context, cs *pikkuredis.ChannelStore, _, _ *pikkuredis.EventHubStore) error {
		return cs.RemoveChannels(ctx, []string{"c1", "c2"})
	}
	touch := func(ctx context.Context, cs *pikkuredis.ChannelStore, _, _ *pikkuredis.EventHubStore) error {
		_, err := cs.TouchChannels(ctx, "c2", "c1")
		return err
	}
	expireC1 := func(t *testing.T, c redis.Conn, k keyLayout) {
		_, err := c.Do("ZADD", k.leases("c1"), "XX", 1, "c1")
		require.NoError(t, err)
	}
	sweep := func(ctx context.Context, cs *pikkuredis.ChannelStore, _, _ *pikkuredis.EventHubStore) error {
		n, err := cs.SweepExpired(ctx)
		if n != 0 {
			return fmt.Errorf("SweepExpired removed %d channels", n)
		}
		return err
	}
	repair := func(ctx context.Context, _ *pikkuredis.ChannelStore, hs, _ *pikkuredis.EventHubStore) error {
		_, err := hs.Repair(ctx, pikkuredis.RepairOptions{ChannelsKeptByChannelStore: true})
		return err
	}
	// The channels name their Pikku users; u-c2 has a session.
	pikkuUsers := func(t *testing.T, c redis.Conn, k keyLayout) {
		for _, id := range []string{"c1", "c2"} {
			_, err := c.Do("HSET", k.channel(id), "pikkuUserId", "u-"+id)
			require.NoError(t, err)
		}
		_, err := c.Do("SET", k.session("u-c2"), `{"userId":"u-c2"}`)
		require.NoError(t, err)
	}
	withSession := func(ctx context.Context, cs *pikkuredis.ChannelStore, _, _ *pikkuredis.EventHubStore) error {
		_, err := cs.GetChannelWithSession(ctx, "c1")
		return err
	}
	field := func(name string, f func(context.Context, *pikkuredis.ChannelStore) error) wrongTypeCase {
		return wrongTypeCase{name: name, key: ":channel:c1", want: "hash",
			call: func(ctx context.Context, cs *pikkuredis.ChannelStore, _, _ *pikkuredis.EventHubStore) error {
				return f(ctx, cs)
			}}
	}
	cases := []wrongTypeCase{
		{name: "add_channel", key: ":channel:c1", want: "hash", ttl: true, call: addChannel},
		{name: "add_channel", key: ":leases", want: "zset", ttl: true, call: addChannel},
		{name: "HSET without TTL", key: ":channel:c1", want: "hash", call: addChannel},
		field("set_channel_field", func(ctx context.Context, cs *pikkuredis.ChannelStore) error {
			return cs.SetUserSession(ctx, "c1", map[string]string{"userId": "u2"})
		}),
		field("set_channel_field state", func(ctx context.Context, cs *pikkuredis.ChannelStore) error { return cs.SetState(ctx, "c1", 1) }),
		field("clear_channel_field", func(ctx context.Context, cs *pikkuredis.ChannelStore) error { return cs.SetUserSession(ctx, "c1", nil) }),
		field("clear_channel_field state", func(ctx context.Context, cs *pikkuredis.ChannelStore) error { return cs.ClearState(ctx, "c1") }),
		field("HMGET", func(ctx context.Context, cs *pikkuredis.ChannelStore) error {
			_, err := cs.GetChannelAndSession(ctx, "c1")
			return err
		}),
		field("HGET", func(ctx context.Context, cs *pikkuredis.ChannelStore) error {
			_, _, err := cs.GetState(ctx, "c1")
			return err
		}),
		{name: "get_channel_with_session", key: ":channel:c1", want: "hash", setup: pikkuUsers, call: withSession},
		// Built inside the script from the hash's pikkuUserId.
		{name: "get_channel_with_session", key: ":session:u-c1", want: "string", setup: pikkuUsers, call: withSession},
		// SessionStore.Get. Set (SET) replaces a key of any type and Clear
		// (DEL) deletes one, as @pikku/redis does: see
		// TestWrongTypeSessionKeyIsReplacedOrDeleted.
		{name: "GET", key: ":session:u-c1", want: "string", setup: pikkuUsers, callSessions: func(ctx context.Context, ss *pikkuredis.SessionStore) error {
			_, _, err := ss.Get(ctx, "u-c1")
			return err
		}},
		{name: "subscribe", key: ":topic:z", want: "set", call: subscribe},
		{name: "subscribe", key: ":subs:c1", want: "set", call: subscribe},
		{name: "subscribe required", key: ":topic:z", want: "set", call: subscribeRequire},
		{name: "subscribe required", key: ":subs:c1", want: "set", call: subscribeRequire},
		{name: "subscribe required", key: ":channel:c1", want: "hash", call: subscribeRequire},
		{name: "unsubscribe", key: ":topic:e", want: "set", call: unsubscribe},
		{name: "unsubscribe", key: ":subs:c1", want: "set", call: unsubscribe},
		{name: "SMEMBERS", key: ":topic:e", want: "set", call: func(ctx context.Context, _ *pikkuredis.ChannelStore, hs, _ *pikkuredis.EventHubStore) error {
			_, err := hs.GetChannelIDsForTopic(ctx, "e")
			return err
		}},
		{name: "SSCAN", key: ":topic:e", want: "set", call: func(ctx context.Context, _ *pikkuredis.ChannelStore, hs, _ *pikkuredis.EventHubStore) error {
			for _, err := range hs.ScanChannelIDsForTopic(ctx, "e") {
				if err != nil {
					return err
				}
			}
			return nil
		}},
		{name: "remove_channels", key: ":channel:c1", want: "hash", ttl: true, call: remove},
		{name: "remove_channels", key: ":subs:c1", want: "set", ttl: true, call: remove},
		{name: "remove_channels", key: ":leases", want: "zset", ttl: true, call: remove},
		{name: "touch_channels", key: ":leases", want: "zset", ttl: true, call: touch, ids: []string{"c2", "c1"}},
		{name: "touch_channels", key: ":channel:c1", want: "hash", ttl: true, call: touch, ids: []string{"c2", "c1"}},
		{name: "touch_channels", key: ":channel:c2", want: "hash", ttl: true, call: touch, ids: []string{"c2", "c1"}},
		{name: "sweep_expired", key: ":leases", want: "zset", ttl: true, call: sweep},
		{name: "sweep_expired", key: ":channel:c1", want: "hash", ttl: true, setup: expireC1, call: sweep},
		{name: "sweep_expired", key: ":subs:c1", want: "set", ttl: true, setup: expireC1, call: sweep},
		{name: "repair_set", key: ":subs:ghost", want: "set", call: repair},
		{name: "repair_set", key: ":channel:ghost", want: "hash", call: repair},
	}
	for _, topic := range wrongTypeTopics {
		// Built inside the scripts from the subs set of c1.
		cases = append(cases,
			wrongTypeCase{name: "remove_channels", key: ":topic:" + topic, want: "set", ttl: true, call: remove},
			wrongTypeCase{name: "sweep_expired", key: ":topic:" + topic, want: "set", ttl: true, setup: expireC1, call: sweep})
	}
	// The same with the void key planted (a set holding the ids): the
	// scripts check each topic set on their own, and still name the key.
	plantVoid := func(setup func(*testing.T, redis.Conn, keyLayout)) func(*testing.T, redis.Conn, keyLayout) {
		return func(t *testing.T, c redis.Conn, k keyLayout) {
			_, err := c.Do("SADD", k.prefixOf("c1")+":void", "c1", "c2", "c3")
			require.NoError(t, err)
			if setup != nil {
				setup(t, c, k)
			}
		}
	}
	cases = append(cases,
		wrongTypeCase{name: "remove_channels void planted", key: ":topic:e", want: "set", ttl: true, setup: plantVoid(nil), call: remove},
		wrongTypeCase{name: "sweep_expired void planted", key: ":topic:e", want: "set", ttl: true, setup: plantVoid(expireC1), call: sweep})
	// The topic set of an orphan, found from its subs set.
	cases = append(cases, wrongTypeCase{name: "repair_set", key: ":topic:a", owner: "ghost", want: "set", call: repair})
	return cases
}

// keyIn is the case's key in layout k: after the prefix of the shard of
// the id the key names, or of its owner.
func (tc wrongTypeCase) keyIn(k keyLayout) string {
	id := tc.owner
	if id == "" {
		id = "c1"
	}
	for _, kind := range []string{":channel:", ":subs:", ":session:"} {
		if rest, ok := strings.CutPrefix(tc.key, kind); ok {
			id = rest
		}
	}
	return k.prefixOf(id) + tc.key
}

// otherType is a type that is not want but that lenient commands take.
func otherType(want string) string {
	if want == "set" {
		return "hash"
	}
	return "set"
}

// wrongKinds are the types planted where want belongs: a string and
// otherType, or where a string belongs, a hash and a set.
func wrongKinds(want string) []string {
	if want == "string" {
		return []string{"hash", "set"}
	}
	return []string{"string", otherType(want)}
}

// Every script, and every plain command, at each key position it reads
// or writes, declared or built from the prefix, with a key of another
// type there: the call fails with ErrWrongType naming the key, and every
// key under the prefix is byte for byte (DUMP) as it was.
func TestWrongTypeKeyWritesNothing(t *testing.T) {
	// Both layouts on one backend, the standard one on another too.
	for _, run := range []struct {
		backend string
		lc      layoutCase
	}{{"auto-pipelined", layoutCases[0]}, {"caller's pool", layoutCases[0]}, {"auto-pipelined", sharded}} {
		backend, lc := run.backend, run.lc
		for _, tc := range wrongTypeCases() {
			for _, kind := range wrongKinds(tc.want) {
				t.Run(fmt.Sprintf("%s/%s/%s/%s%s=%s", backend, lc.name, tc.name, "{prefix}", tc.key, kind), func(t *testing.T) {
					t.Parallel()
					var opts []pikkuredis.Option
					if tc.ttl {
						opts = append(opts, pikkuredis.WithChannelTTL(time.Hour))
					}
					cs, hs, k := lc.on(backends[backend])(t, opts...)
					prefix := k.prefix
					if k.shards > 0 && len(tc.ids) > 1 && k.shardOf(tc.ids[0]) != k.shardOf(tc.ids[len(tc.ids)-1]) {
						t.Skipf("the call's ids %v are in several shards: one script call per shard, not one for all", tc.ids)
					}
					hsRequire, err := pikkuredis.OpenEventHubStore(redisURL, lc.opts(pikkuredis.WithKeyPrefix(prefix), pikkuredis.WithRequireChannel())...)
					require.NoError(t, err)
					defer hsRequire.Close()
					c := dialRaw(t)
					defer c.Close()
					wrongTypeStateIn(t, cs, hs, c, k)
					if tc.setup != nil {
						tc.setup(t, c, k)
					}
					key := tc.keyIn(k)
					plant(t, c, key, kind)
					settle(t, c, prefix)
					before, beforeContents := dumps(t, c, prefix), contents(t, c, prefix)

					if tc.call != nil {
						err = tc.call(ctxT(t), cs, hs, hsRequire)
					} else {
						err = tc.callSessions(ctxT(t), sessionStore(t, backend, prefix, lc.opts()...))
					}
					require.Error(t, err)
					assert.ErrorIs(t, err, pikkuredis.ErrWrongType)
					assert.Contains(t, err.Error(), "key "+key, "the error names the key")
					assert.Contains(t, err.Error(), "WRONGTYPE")

					assert.Equal(t, beforeContents, contents(t, c, prefix), "contents under the prefix")
					assert.Equal(t, before, dumps(t, c, prefix), "DUMP of every key under the prefix")
				})
			}
		}
	}
}

// sessionStore is a SessionStore on prefix by the way backend reaches
// Redis (auto-pipelined, or a caller's pool).
func sessionStore(t *testing.T, backend, prefix string, opts ...pikkuredis.Option) *pikkuredis.SessionStore {
	t.Helper()
	opts = append([]pikkuredis.Option{pikkuredis.WithKeyPrefix(prefix)}, opts...)
	var ss *pikkuredis.SessionStore
	switch backend {
	case "auto-pipelined":
		var err error
		ss, err = pikkuredis.OpenSessionStore(redisURL, opts...)
		require.NoError(t, err)
	case "caller's pool":
		ss = pikkuredis.NewSessionStore(newPool(t), opts...)
	default:
		t.Fatalf("backend %s", backend)
	}
	t.Cleanup(func() { ss.Close() })
	return ss
}

// Every script has its cases in wrongTypeCases, named by the script (a
// plain command's case is named by the command).
func TestWrongTypeCasesCoverEveryScript(t *testing.T) {
	names := map[string]bool{}
	for _, tc := range wrongTypeCases() {
		name, _, _ := strings.Cut(tc.name, " ")
		names[name] = true
	}
	files, err := filepath.Glob("scripts/*.lua")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".lua")
		assert.True(t, names[name], "%s has no case in wrongTypeCases", f)
	}
}

// The SessionStore's writes are SET and DEL, which take a key of any
// type: Set replaces a hash or set planted at a session key with the
// session, and Clear deletes it, as @pikku/redis's set (SET) and clear
// (DEL) do. Get then reads the session, or none. No other key changes.
func TestWrongTypeSessionKeyIsReplacedOrDeleted(t *testing.T) {
	for _, backend := range []string{"auto-pipelined", "caller's pool"} {
		for _, kind := range wrongKinds("string") {
			t.Run(backend+"/"+kind, func(t *testing.T) {
				t.Parallel()
				prefix := newPrefix(t)
				ss := sessionStore(t, backend, prefix)
				c := dialRaw(t)
				defer c.Close()
				ctx := ctxT(t)
				require.NoError(t, ss.Set(ctx, "other", map[string]string{"userId": "other"}))
				key := prefix + ":session:u1"
				plant(t, c, key, kind)

				require.NoError(t, ss.Set(ctx, "u1", map[string]string{"userId": "u1"}))
				assert.Equal(t, map[string][]string{
					key:                       {"string", `{"userId":"u1"}`},
					prefix + ":session:other": {"string", `{"userId":"other"}`},
				}, contents(t, c, prefix), "the planted %s replaced by the session", kind)
				got, ok, err := ss.Get(ctx, "u1")
				require.NoError(t, err)
				assert.True(t, ok)
				assert.JSONEq(t, `{"userId":"u1"}`, string(got))

				plant(t, c, key, kind)
				require.NoError(t, ss.Clear(ctx, "u1"))
				assert.Equal(t, map[string][]string{
					prefix + ":session:other": {"string", `{"userId":"other"}`},
				}, contents(t, c, prefix), "the planted %s deleted", kind)
				_, ok, err = ss.Get(ctx, "u1")
				require.NoError(t, err)
				assert.False(t, ok)
			})
		}
	}
}

// RemoveChannels removes the channels before one with a key of another
// type, each whole, stops there, and says so; the channel with the bad key
// and those after it keep everything.
func TestRemoveChannelsStopsBeforeAWrongTypeKey(t *testing.T) {
	cs, hs, prefix := stores(t, pikkuredis.WithChannelTTL(time.Hour))
	c := dialRaw(t)
	defer c.Close()
	wrongTypeState(t, cs, hs, c, prefix)
	plant(t, c, prefix+":topic:e", "string")
	kept := contents(t, c, prefix)
	for k := range kept {
		if k == prefix+":channel:c2" || k == prefix+":subs:c2" {
			delete(kept, k)
		}
	}
	kept[prefix+":topic:a"] = []string{"set", "c1", "ghost"}
	kept[prefix+":topic:b"] = []string{"set", "c1"}
	scores, err := redis.Strings(c.Do("ZRANGE", prefix+":leases", 0, -1, "WITHSCORES"))
	require.NoError(t, err)
	kept[prefix+":leases"] = []string{"zset"}
	for i := 0; i < len(scores); i += 2 {
		if scores[i] != "c2" {
			kept[prefix+":leases"] = append(kept[prefix+":leases"], scores[i], scores[i+1])
		}
	}

	err = cs.RemoveChannels(ctxT(t), []string{"c2", "c1", "c3"})
	require.ErrorIs(t, err, pikkuredis.ErrWrongType)
	assert.ErrorContains(t, err, "the first 1 of 3 ids were removed")
	assert.ErrorContains(t, err, "key "+prefix+":topic:e holds a string, want a set; nothing was written")
	assert.Equal(t, kept, contents(t, c, prefix))
}

// A sweep leaves an expired channel with a key of another type whole,
// lease included, removes the other expired channels, ends (the leases it
// leaves are passed over, not read again), and says which key; the next
// sweep after the key is gone removes that channel too.
func TestSweepExpiredLeavesAWrongTypeChannelForTheNextSweep(t *testing.T) {
	for _, backend := range []string{"auto-pipelined", "caller's pool"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			// Two ids per call, and the two bad channels next to each
			// other in deadline order: one call finds nothing but them.
			cs, hs, prefix := backends[backend](t, pikkuredis.WithChannelTTL(time.Hour), pikkuredis.WithRemoveChunkSize(2))
			c := dialRaw(t)
			defer c.Close()
			ctx := ctxT(t)
			var ids []string
			for i := 1; i <= 7; i++ {
				id := fmt.Sprintf("c%d", i)
				ids = append(ids, id)
				require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: id}))
				for _, topic := range []string{"all", "t-" + id} {
					_, err := hs.Subscribe(ctx, topic, id)
					require.NoError(t, err)
				}
			}
			// c1..c6 expired, in that order; c7 live.
			for i, id := range ids[:6] {
				_, err := c.Do("ZADD", prefix+":leases", "XX", i+1, id)
				require.NoError(t, err)
			}
			plant(t, c, prefix+":topic:t-c3", "string")
			plant(t, c, prefix+":subs:c4", "hash")
			keptBefore := contents(t, c, prefix)

			sweepCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			n, err := cs.SweepExpired(sweepCtx)
			require.NoError(t, sweepCtx.Err(), "the sweep ends")
			require.ErrorIs(t, err, pikkuredis.ErrWrongType)
			assert.Equal(t, 4, n, "c1, c2, c5, c6")
			assert.ErrorContains(t, err, "left 2 expired channel(s)")
			assert.ErrorContains(t, err, "key "+prefix+":topic:t-c3 holds a string, want a set; channel c3 was left as it was, with its lease")

			after := contents(t, c, prefix)
			for _, k := range []string{":channel:c3", ":subs:c3", ":topic:t-c3", ":channel:c4", ":subs:c4", ":topic:t-c4", ":channel:c7", ":subs:c7", ":topic:t-c7"} {
				assert.Equal(t, keptBefore[prefix+k], after[prefix+k], k)
			}
			for _, id := range []string{"c1", "c2", "c5", "c6"} {
				assert.NotContains(t, after, prefix+":channel:"+id)
				assert.NotContains(t, after, prefix+":subs:"+id)
				assert.NotContains(t, after, prefix+":topic:t-"+id)
			}
			assert.Equal(t, []string{"set", "c3", "c4", "c7"}, after[prefix+":topic:all"])
			leases := leaseScores(t, c, prefix)
			assert.Equal(t, map[string]int64{"c3": 3, "c4": 4, "c7": leases["c7"]}, leases, "c3 and c4 keep their leases")

			// Sweeping again while the keys are bad changes nothing.
			n, err = cs.SweepExpired(ctx)
			assert.ErrorIs(t, err, pikkuredis.ErrWrongType)
			assert.Equal(t, 0, n)
			assert.Equal(t, after, contents(t, c, prefix))

			// Once the bad keys are gone (or hold the right type again),
			// the next sweep removes those channels, whole.
			_, err = c.Do("DEL", prefix+":topic:t-c3", prefix+":subs:c4")
			require.NoError(t, err)
			_, err = c.Do("SADD", prefix+":subs:c4", "all", "t-c4")
			require.NoError(t, err)
			n, err = cs.SweepExpired(ctx)
			require.NoError(t, err)
			assert.Equal(t, 2, n)
			after = contents(t, c, prefix)
			assert.Equal(t, []string{"set", "c7"}, after[prefix+":topic:all"])
			assert.Equal(t, []string{"zset", "c7", fmt.Sprint(leases["c7"])}, after[prefix+":leases"])
			assert.Len(t, after, 5, "c7's hash, subs set, two topics, the lease set")
		})
	}
}

// RemoveChannels stops at the channel whose topic set is of another type
// when the topic sets of the whole call are checked at once: channels
// without topics before and after it do not shift the count.
func TestRemoveChannelsStopsAtTheChannelOfTheWrongTypeTopic(t *testing.T) {
	cs, hs, prefix := stores(t)
	c := dialRaw(t)
	defer c.Close()
	ctx := ctxT(t)
	topics := map[string][]string{"n1": nil, "s1": {"x", "y"}, "n2": nil, "s2": {"y", "bad", "z"}, "n3": nil}
	ids := []string{"n1", "s1", "n2", "s2", "n3"}
	for _, id := range ids {
		require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: id}))
		for _, topic := range topics[id] {
			_, err := hs.Subscribe(ctx, topic, id)
			require.NoError(t, err)
		}
	}
	plant(t, c, prefix+":topic:bad", "string")

	err := cs.RemoveChannels(ctx, ids)
	require.ErrorIs(t, err, pikkuredis.ErrWrongType)
	assert.ErrorContains(t, err, "the first 3 of 5 ids were removed")
	assert.ErrorContains(t, err, "key "+prefix+":topic:bad holds a string, want a set; nothing was written")
	after := contents(t, c, prefix)
	assert.Equal(t, map[string][]string{
		prefix + ":channel:s2": after[prefix+":channel:s2"],
		prefix + ":channel:n3": after[prefix+":channel:n3"],
		prefix + ":subs:s2":    {"set", "bad", "y", "z"},
		prefix + ":topic:y":    {"set", "s2"},
		prefix + ":topic:z":    {"set", "s2"},
		prefix + ":topic:bad":  {"string", "x"},
	}, after)
	assert.NotNil(t, after[prefix+":channel:s2"])
	assert.NotNil(t, after[prefix+":channel:n3"])
}

// The void key {prefix}:void, which the scripts put among the topic sets
// they type-check in one SINTERCARD, is only read: planted by another
// program, of any type, it leaves RemoveChannels and SweepExpired doing
// what they do without it (each topic set checked on its own), and is
// left byte for byte as it was.
func TestVoidKeyIsOnlyRead(t *testing.T) {
	for _, kind := range []string{"none", "string", "set", "hash"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			cs, hs, prefix := stores(t, pikkuredis.WithChannelTTL(time.Hour))
			c := dialRaw(t)
			defer c.Close()
			ctx := ctxT(t)
			wrongTypeState(t, cs, hs, c, prefix)
			void := prefix + ":void"
			switch kind {
			case "none":
			case "set":
				_, err := c.Do("SADD", void, "c1", "c2", "c3", "ghost")
				require.NoError(t, err)
			default:
				plant(t, c, void, kind)
			}
			before := dumps(t, c, prefix)[void]

			require.NoError(t, cs.RemoveChannels(ctx, []string{"c1", "c2"}))
			_, err := c.Do("ZADD", prefix+":leases", "XX", 1, "c3")
			require.NoError(t, err)
			n, err := cs.SweepExpired(ctx)
			require.NoError(t, err)
			assert.Equal(t, 1, n)

			want := map[string][]string{
				prefix + ":topic:a":    {"set", "ghost"},
				prefix + ":subs:ghost": {"set", "a"},
			}
			after := contents(t, c, prefix)
			if kind != "none" {
				assert.Equal(t, before, dumps(t, c, prefix)[void], "the void key's DUMP")
				delete(after, void)
			}
			assert.Equal(t, want, after)
		})
	}
}

// An ACL user of docs/connections.md's line without +sintercard (a line written
// before the scripts used it) gets the same results: each topic set is
// checked on its own, a key of another type is still named and nothing
// written.
func TestTopicTypeChecksWithoutSintercard(t *testing.T) {
	const pw = "no-sintercard-pw"
	prefix := randomPrefix(t)
	srv := ownRedis(t)
	admin := dialURL(t, srv.URL)
	defer admin.Close()
	args := readmeACLLine(t, "old", pw, prefix)
	require.Contains(t, args, "+sintercard")
	args = slices.DeleteFunc(args, func(a string) bool { return a == "+sintercard" })
	_, err := admin.Do(args[0], toAny(args[1:])...)
	require.NoError(t, err)
	cs, hs := openBoth(t, userURL(srv, "old", pw), pikkuredis.WithKeyPrefix(prefix), pikkuredis.WithChannelTTL(time.Hour))
	ctx := ctxT(t)
	wrongTypeState(t, cs, hs, admin, prefix)
	plant(t, admin, prefix+":topic:e", "string")
	settle(t, admin, prefix)
	before := dumps(t, admin, prefix)

	err = cs.RemoveChannels(ctx, []string{"c1", "c2"})
	require.ErrorIs(t, err, pikkuredis.ErrWrongType)
	assert.ErrorContains(t, err, "key "+prefix+":topic:e holds a ") // the user has no TYPE
	assert.Equal(t, before, dumps(t, admin, prefix))
	_, err = admin.Do("ZADD", prefix+":leases", "XX", 1, "c1")
	require.NoError(t, err)
	n, err := cs.SweepExpired(ctx)
	require.ErrorIs(t, err, pikkuredis.ErrWrongType)
	assert.Equal(t, 0, n)
	assert.ErrorContains(t, err, "key "+prefix+":topic:e holds a ") // the user has no TYPE

	_, err = admin.Do("DEL", prefix+":topic:e")
	require.NoError(t, err)
	n, err = cs.SweepExpired(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	require.NoError(t, cs.RemoveChannels(ctx, []string{"c2", "c3"}))
	assert.Equal(t, map[string][]string{
		prefix + ":topic:a":    {"set", "ghost"},
		prefix + ":subs:ghost": {"set", "a"},
	}, contents(t, admin, prefix))
}

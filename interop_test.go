package pikkuredis_test

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pikkujs/pikkuredis"
)

// Go and the real @pikku/redis (0.12.3 and 0.12.18) on one Redis: what one
// writes, the other reads, with the default prefix and a custom one. Each
// case is a cell of the compatibility matrix (docs/layout.md)
// (TestReadmeCompatibilityMatrix keeps the two in step).

const (
	goToTS = "Go→TS" // Go writes (or removes), @pikku/redis reads
	tsToGo = "TS→Go" // @pikku/redis writes (or removes), Go reads
)

var tsVersions = []string{"0.12.3", "0.12.18"}

// interopEnv is one Redis and prefix shared by a Go store pair and the
// TypeScript stores of both versions.
type interopEnv struct {
	url    string
	prefix string // "" is the default prefix, given to neither side
	cs     *pikkuredis.ChannelStore
	hs     *pikkuredis.EventHubStore
	ss     *pikkuredis.SessionStore // no TTL
	// ssTTL are session stores WithSessionTTL of each of sessionTTLs.
	ssTTL map[int]*pikkuredis.SessionStore
	node  *nodeDriver
}

// sessionTTLs are the TTLs, in seconds, of the session stores of both
// sides: a short one to see keys expire, and a long one to check what the
// other side reads and PTTL before they do.
var sessionTTLs = []int{1, 60}

func (e *interopEnv) ts(version, kind string) tsStore {
	return tsStore{d: e.node, url: e.url, prefix: e.prefix, version: version, kind: kind}
}

// tsSessions is @pikku/redis's RedisSessionStore, constructed with
// ttlSeconds when it is not 0.
func (e *interopEnv) tsSessions(version string, ttlSeconds int) tsStore {
	s := e.ts(version, "session")
	s.ttlSeconds = ttlSeconds
	return s
}

// key is the full key of a channel, topic, subs set or session, for raw
// checks.
func (e *interopEnv) key(kind, name string) string {
	p := e.prefix
	if p == "" {
		p = pikkuredis.DefaultKeyPrefix
	}
	return p + ":" + kind + ":" + name
}

func (e *interopEnv) raw(t testing.TB) redis.Conn {
	t.Helper()
	c := dialURL(t, e.url)
	t.Cleanup(func() { c.Close() })
	return c
}

// uid returns a fresh id, so that the cases of one environment never share
// a channel or a topic.
func uid(kind string) string {
	b := make([]byte, 5)
	rand.Read(b)
	return kind + "-" + hex.EncodeToString(b)
}

type interopCase struct {
	op      string // the matrix row: the @pikku/redis method in backticks
	version string
	dir     string
	run     func(t *testing.T, e *interopEnv, version string)
}

// interopCases lists every cell of the compatibility matrix.
func interopCases() []interopCase {
	var cases []interopCase
	both := func(op, dir string, run func(*testing.T, *interopEnv, string)) {
		for _, v := range tsVersions {
			cases = append(cases, interopCase{op, v, dir, run})
		}
	}
	only := func(op, version, dir string, run func(*testing.T, *interopEnv, string)) {
		cases = append(cases, interopCase{op, version, dir, run})
	}
	both("addChannel", goToTS, goAddsTSReads)
	both("addChannel", tsToGo, tsAddsGoReads)
	only("setUserSession", "0.12.3", goToTS, goSessionTSReads)
	only("setUserSession", "0.12.3", tsToGo, tsSessionGoReads)
	only("setPikkuUserId", "0.12.18", goToTS, goUserIDTSReads)
	only("setPikkuUserId", "0.12.18", tsToGo, tsUserIDGoReads)
	only("setState", "0.12.18", goToTS, goStateTSReads)
	only("setState", "0.12.18", tsToGo, tsStateGoReads)
	both("subscribe", goToTS, goSubscribesTSReads)
	both("subscribe", tsToGo, tsSubscribesGoReads)
	both("unsubscribe", goToTS, goSubscribedTSUnsubscribes)
	both("unsubscribe", tsToGo, tsSubscribedGoUnsubscribes)
	both("removeChannels", goToTS, goRemovesTSChannel)
	both("removeChannels", tsToGo, tsRemovesGoChannel)
	only("RedisSessionStore.set", "0.12.18", goToTS, goSetsSessionTSGets)
	only("RedisSessionStore.set", "0.12.18", tsToGo, tsSetsSessionGoGets)
	only("RedisSessionStore.clear", "0.12.18", goToTS, goClearsSessionTSGets)
	only("RedisSessionStore.clear", "0.12.18", tsToGo, tsClearsSessionGoGets)
	only("ttlSeconds", "0.12.18", goToTS, goSessionTTLTSGets)
	only("ttlSeconds", "0.12.18", tsToGo, tsSessionTTLGoGets)
	only("getChannel", "0.12.18", goToTS, goChannelWithSessionTSReads)
	only("getChannel", "0.12.18", tsToGo, tsChannelWithSessionGoReads)
	return cases
}

func TestInteropWithPikkuRedis(t *testing.T) {
	node := startNode(t)
	versions, _, err := node.do(t, map[string]any{"op": "versions"})
	require.NoError(t, err)
	t.Logf("node side: %s", versions)
	var v map[string]string
	require.NoError(t, json.Unmarshal(versions, &v))
	require.Equal(t, "0.12.3", v["@pikku/redis"], "interop/package-lock.json pins @pikku/redis 0.12.3")
	require.Equal(t, "0.12.18", v["pikku-redis-0.12.18"], "and 0.12.18 under an alias")
	// The session rows' "not in 0.12.3".
	_, _, err = tsStore{d: node, url: redisURL, version: "0.12.3", kind: "session"}.try(t, "get", "u1")
	require.EqualError(t, err, "node: @pikku/redis 0.12.3 has no RedisSessionStore")

	// The default prefix writes outside any test prefix, so it gets a
	// redis-server of its own; the custom prefix shares the test Redis.
	own := ownRedis(t)
	envs := map[string]*interopEnv{
		"default prefix": {url: own.URL, node: node},
		"custom prefix":  {url: redisURL, prefix: newPrefix(t), node: node},
	}
	for name, e := range envs {
		pool := poolFor(t, e.url)
		var opts []pikkuredis.Option
		if e.prefix != "" {
			opts = append(opts, pikkuredis.WithKeyPrefix(e.prefix))
		}
		e.cs, e.hs = pikkuredis.NewChannelStore(pool, opts...), pikkuredis.NewEventHubStore(pool, opts...)
		e.ss = pikkuredis.NewSessionStore(pool, opts...)
		e.ssTTL = map[int]*pikkuredis.SessionStore{}
		for _, ttl := range sessionTTLs {
			withTTL := append(append([]pikkuredis.Option(nil), opts...), pikkuredis.WithSessionTTL(time.Duration(ttl)*time.Second))
			e.ssTTL[ttl] = pikkuredis.NewSessionStore(pool, withTTL...)
		}
		for _, c := range interopCases() {
			t.Run(name+"/"+c.op+"/"+c.version+"/"+c.dir, func(t *testing.T) { c.run(t, e, c.version) })
		}
	}
}

// openingDataCases are values both sides store and read back; want is
// what either side reads after the other wrote (falsy values become {}).
var openingDataCases = []struct {
	name string
	goV  any             // what Go stores
	js   json.RawMessage // what JavaScript stores; nil is undefined (omitted)
	want string
}{
	{"absent", nil, nil, `{}`},
	{"null", json.RawMessage(`null`), json.RawMessage(`null`), `{}`},
	{"false", false, json.RawMessage(`false`), `{}`},
	{"zero", 0, json.RawMessage(`0`), `{}`},
	{"empty string", "", json.RawMessage(`""`), `{}`},
	{"object", map[string]any{"room": "lobby", "n": 1.5, "tags": []any{"a", "<b>&"}},
		json.RawMessage(`{"room":"lobby","n":1.5,"tags":["a","<b>&"]}`), `{"room":"lobby","n":1.5,"tags":["a","<b>&"]}`},
	{"string", "héllo 🌍 \u2028 \"q\"", json.RawMessage(`"héllo 🌍 \u2028 \"q\""`), `"héllo 🌍 \u2028 \"q\""`},
	{"number", 42, json.RawMessage(`42`), `42`},
	{"array", []any{1, "two", nil, true}, json.RawMessage(`[1,"two",null,true]`), `[1,"two",null,true]`},
	{"empty object", map[string]any{}, json.RawMessage(`{}`), `{}`},
}

func channelArg(id, name string, data json.RawMessage) map[string]any {
	ch := map[string]any{"channelId": id, "channelName": name}
	if data != nil {
		ch["openingData"] = data
	}
	return ch
}

// readBack is what the TypeScript store's getter of this version returns
// for a channel: getChannelAndSession in 0.12.3, getChannel in 0.12.18.
func readBack(t *testing.T, e *interopEnv, version, id string) json.RawMessage {
	if version == "0.12.3" {
		return e.ts(version, "channel").call(t, "getChannelAndSession", id)
	}
	return e.ts(version, "channel").call(t, "getChannel", id)
}

func goAddsTSReads(t *testing.T, e *interopEnv, version string) {
	ctx := ctxT(t)
	for _, c := range openingDataCases {
		id := uid("c")
		require.NoError(t, e.cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: id, ChannelName: "chat " + c.name, OpeningData: c.goV}))
		got := readBack(t, e, version, id)
		want := map[string]any{"channelId": id, "channelName": "chat " + c.name, "openingData": json.RawMessage(c.want)}
		if version == "0.12.3" {
			want["session"] = json.RawMessage(`{}`) // absent reads as {}
		}
		assertJSON(t, want, got, c.name)
	}
}

func tsAddsGoReads(t *testing.T, e *interopEnv, version string) {
	ctx := ctxT(t)
	for _, c := range openingDataCases {
		id := uid("c")
		before := time.Now().Truncate(time.Millisecond)
		e.ts(version, "channel").call(t, "addChannel", channelArg(id, "chat "+c.name, c.js))
		after := time.Now()
		if version == "0.12.3" {
			got, err := e.cs.GetChannelAndSession(ctx, id)
			require.NoError(t, err, c.name)
			assert.Equal(t, id, got.ChannelID)
			assert.Equal(t, "chat "+c.name, got.ChannelName)
			assert.JSONEq(t, c.want, string(got.OpeningData), c.name)
			assert.Equal(t, "{}", string(got.Session), c.name)
			assertBetween(t, got.CreatedAt, before, after)
		} else {
			got, err := e.cs.GetChannel(ctx, id)
			require.NoError(t, err, c.name)
			assert.Equal(t, id, got.ChannelID)
			assert.Equal(t, "chat "+c.name, got.ChannelName)
			assert.JSONEq(t, c.want, string(got.OpeningData), c.name)
			assert.Equal(t, "", got.PikkuUserID, c.name)
			assertBetween(t, got.CreatedAt, before, after)
		}
	}
}

// sessionCases: a session Go or JavaScript sets, and what the other reads.
var sessionCases = []struct {
	name string
	goV  any
	js   json.RawMessage
	want string
}{
	{"object", map[string]any{"userId": "u1", "roles": []any{"admin"}}, json.RawMessage(`{"userId":"u1","roles":["admin"]}`), `{"userId":"u1","roles":["admin"]}`},
	{"replaced", map[string]any{"userId": "u2"}, json.RawMessage(`{"userId":"u2"}`), `{"userId":"u2"}`},
	{"string", "u3", json.RawMessage(`"u3"`), `"u3"`},
	{"cleared by null", nil, json.RawMessage(`null`), `{}`},
	{"set again", map[string]any{"userId": "u4"}, json.RawMessage(`{"userId":"u4"}`), `{"userId":"u4"}`},
	{"cleared by false", false, json.RawMessage(`false`), `{}`},
}

func goSessionTSReads(t *testing.T, e *interopEnv, version string) {
	ctx := ctxT(t)
	id := uid("c")
	require.NoError(t, e.cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: id, ChannelName: "chat", OpeningData: map[string]int{"v": 1}}))
	for _, c := range sessionCases {
		require.NoError(t, e.cs.SetUserSession(ctx, id, c.goV), c.name)
		got := e.ts(version, "channel").call(t, "getChannelAndSession", id)
		assertJSON(t, map[string]any{"channelId": id, "channelName": "chat", "openingData": json.RawMessage(`{"v":1}`), "session": json.RawMessage(c.want)}, got, c.name)
	}
}

func tsSessionGoReads(t *testing.T, e *interopEnv, version string) {
	ctx := ctxT(t)
	id := uid("c")
	ts := e.ts(version, "channel")
	ts.call(t, "addChannel", channelArg(id, "chat", json.RawMessage(`{"v":1}`)))
	for _, c := range sessionCases {
		ts.call(t, "setUserSession", id, c.js)
		got, err := e.cs.GetChannelAndSession(ctx, id)
		require.NoError(t, err, c.name)
		assert.JSONEq(t, c.want, string(got.Session), c.name)
		assert.JSONEq(t, `{"v":1}`, string(got.OpeningData), c.name)
	}
}

func goUserIDTSReads(t *testing.T, e *interopEnv, version string) {
	ctx := ctxT(t)
	id := uid("c")
	require.NoError(t, e.cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: id, ChannelName: "chat"}))
	base := map[string]any{"channelId": id, "channelName": "chat", "openingData": json.RawMessage(`{}`)}
	assertJSON(t, base, e.ts(version, "channel").call(t, "getChannel", id), "no user id: pikkuUserId is undefined")
	for _, user := range []string{"user-1", "ünï 🎉", "user-2"} {
		require.NoError(t, e.cs.SetPikkuUserID(ctx, id, user))
		want := map[string]any{"pikkuUserId": user}
		for k, v := range base {
			want[k] = v
		}
		assertJSON(t, want, e.ts(version, "channel").call(t, "getChannel", id), user)
	}
	require.NoError(t, e.cs.SetPikkuUserID(ctx, id, ""))
	assertJSON(t, base, e.ts(version, "channel").call(t, "getChannel", id), "cleared")
}

func tsUserIDGoReads(t *testing.T, e *interopEnv, version string) {
	ctx := ctxT(t)
	id := uid("c")
	ts := e.ts(version, "channel")
	ts.call(t, "addChannel", channelArg(id, "chat", nil))
	for _, user := range []string{"user-1", "ünï 🎉", "user-2", ""} {
		ts.call(t, "setPikkuUserId", id, user)
		got, err := e.cs.GetChannel(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, user, got.PikkuUserID)
	}
	n, err := redis.Int(e.raw(t).Do("HEXISTS", e.key("channel", id), "pikkuUserId"))
	require.NoError(t, err)
	assert.Equal(t, 0, n, "cleared by both sides the same way: the field is deleted")
}

// stateCases: a state one side sets and what the other reads; undefined
// (ok false in Go) for null.
var stateCases = []struct {
	name string
	goV  any
	js   json.RawMessage
	want string // "" is no state: undefined in JavaScript, ok false in Go
}{
	{"object", map[string]any{"step": 2, "html": "<i>"}, json.RawMessage(`{"step":2,"html":"<i>"}`), `{"step":2,"html":"<i>"}`},
	{"false is a state", false, json.RawMessage(`false`), `false`},
	{"zero is a state", 0, json.RawMessage(`0`), `0`},
	{"empty string is a state", "", json.RawMessage(`""`), `""`},
	{"array", []any{1, "two"}, json.RawMessage(`[1,"two"]`), `[1,"two"]`},
	{"null is none", nil, json.RawMessage(`null`), ``},
}

func goStateTSReads(t *testing.T, e *interopEnv, version string) {
	ctx := ctxT(t)
	id := uid("c")
	ts := e.ts(version, "channel")
	require.NoError(t, e.cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: id}))
	_, undef, err := ts.try(t, "getState", id)
	require.NoError(t, err)
	assert.True(t, undef, "no state yet")
	for _, c := range stateCases {
		require.NoError(t, e.cs.SetState(ctx, id, c.goV), c.name)
		got, undef, err := ts.try(t, "getState", id)
		require.NoError(t, err, c.name)
		if c.want == "" {
			assert.True(t, undef, "%s: getState returns undefined, got %s", c.name, got)
		} else {
			assert.False(t, undef, c.name)
			assert.JSONEq(t, c.want, string(got), c.name)
		}
	}
	require.NoError(t, e.cs.SetState(ctx, id, map[string]int{"n": 1}))
	require.NoError(t, e.cs.ClearState(ctx, id))
	_, undef, err = ts.try(t, "getState", id)
	require.NoError(t, err)
	assert.True(t, undef, "cleared")
}

func tsStateGoReads(t *testing.T, e *interopEnv, version string) {
	ctx := ctxT(t)
	id := uid("c")
	ts := e.ts(version, "channel")
	ts.call(t, "addChannel", channelArg(id, "chat", nil))
	for _, c := range stateCases {
		ts.call(t, "setState", id, c.js)
		got, ok, err := e.cs.GetState(ctx, id)
		require.NoError(t, err, c.name)
		if c.want == "" {
			assert.False(t, ok, c.name)
		} else {
			assert.True(t, ok, c.name)
			assert.JSONEq(t, c.want, string(got), c.name)
		}
	}
	ts.call(t, "setState", id, json.RawMessage(`{"n":1}`))
	ts.call(t, "clearState", id)
	_, ok, err := e.cs.GetState(ctx, id)
	require.NoError(t, err)
	assert.False(t, ok, "cleared")
}

func goSubscribesTSReads(t *testing.T, e *interopEnv, version string) {
	ctx := ctxT(t)
	topic, a, b := uid("t"), uid("c"), uid("c")
	for _, id := range []string{a, b, a} {
		ok, err := e.hs.Subscribe(ctx, topic, id)
		require.NoError(t, err)
		require.True(t, ok)
	}
	var got []string
	require.NoError(t, json.Unmarshal(e.ts(version, "eventhub").call(t, "getChannelIdsForTopic", topic), &got))
	assert.ElementsMatch(t, []string{a, b}, got)
	assertSubscribed(t, e, topic, a, b)
}

func tsSubscribesGoReads(t *testing.T, e *interopEnv, version string) {
	ctx := ctxT(t)
	topic, a, b := uid("t"), uid("c"), uid("c")
	ts := e.ts(version, "eventhub")
	for _, id := range []string{a, b, a} {
		assert.Equal(t, "true", string(ts.call(t, "subscribe", topic, id)))
	}
	got, err := e.hs.GetChannelIDsForTopic(ctx, topic)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{a, b}, got)
	assertSubscribed(t, e, topic, a, b)
}

// assertSubscribed checks both index directions for the channels.
func assertSubscribed(t *testing.T, e *interopEnv, topic string, ids ...string) {
	t.Helper()
	c := e.raw(t)
	members, err := redis.Strings(c.Do("SMEMBERS", e.key("topic", topic)))
	require.NoError(t, err)
	assert.ElementsMatch(t, ids, members)
	for _, id := range ids {
		subs, err := redis.Strings(c.Do("SMEMBERS", e.key("subs", id)))
		require.NoError(t, err)
		assert.Equal(t, []string{topic}, subs, "subs set of %s", id)
	}
}

func goSubscribedTSUnsubscribes(t *testing.T, e *interopEnv, version string) {
	ctx := ctxT(t)
	topic, id := uid("t"), uid("c")
	_, err := e.hs.Subscribe(ctx, topic, id)
	require.NoError(t, err)
	ts := e.ts(version, "eventhub")
	assert.Equal(t, "true", string(ts.call(t, "unsubscribe", topic, id)))
	assert.Equal(t, "false", string(ts.call(t, "unsubscribe", topic, id)))
	got, err := e.hs.GetChannelIDsForTopic(ctx, topic)
	require.NoError(t, err)
	assert.Empty(t, got)
	assertNoTrace(t, e, id, topic)
}

func tsSubscribedGoUnsubscribes(t *testing.T, e *interopEnv, version string) {
	ctx := ctxT(t)
	topic, id := uid("t"), uid("c")
	ts := e.ts(version, "eventhub")
	ts.call(t, "subscribe", topic, id)
	ok, err := e.hs.Unsubscribe(ctx, topic, id)
	require.NoError(t, err)
	assert.True(t, ok)
	ok, err = e.hs.Unsubscribe(ctx, topic, id)
	require.NoError(t, err)
	assert.False(t, ok)
	assert.Equal(t, "[]", string(ts.call(t, "getChannelIdsForTopic", topic)))
	assertNoTrace(t, e, id, topic)
}

// goRemovesTSChannel: a channel @pikku/redis added and subscribed is gone
// without a trace after a Go RemoveChannels, topic sets included.
func goRemovesTSChannel(t *testing.T, e *interopEnv, version string) {
	ctx := ctxT(t)
	id, keep, t1, t2 := uid("c"), uid("c"), uid("t"), uid("t")
	tsc, tsh := e.ts(version, "channel"), e.ts(version, "eventhub")
	for _, ch := range []string{id, keep} {
		tsc.call(t, "addChannel", channelArg(ch, "chat", json.RawMessage(`{"v":1}`)))
		tsh.call(t, "subscribe", t1, ch)
	}
	tsh.call(t, "subscribe", t2, id)
	if version == "0.12.3" {
		tsc.call(t, "setUserSession", id, json.RawMessage(`{"userId":"u1"}`))
	} else {
		tsc.call(t, "setPikkuUserId", id, "u1")
		tsc.call(t, "setState", id, json.RawMessage(`{"n":1}`))
	}

	require.NoError(t, e.cs.RemoveChannels(ctx, []string{id}))

	getter := map[string]string{"0.12.3": "getChannelAndSession", "0.12.18": "getChannel"}[version]
	_, _, err := tsc.try(t, getter, id)
	assert.True(t, isNotFound(err, id), "@pikku/redis reads the channel as gone, got %v", err)
	var ids []string
	require.NoError(t, json.Unmarshal(tsh.call(t, "getChannelIdsForTopic", t1), &ids))
	assert.Equal(t, []string{keep}, ids, "the other channel stays")
	assert.Equal(t, "[]", string(tsh.call(t, "getChannelIdsForTopic", t2)))
	assertNoTrace(t, e, id, t1, t2)
	readBack(t, e, version, keep)
}

// tsRemovesGoChannel: @pikku/redis removes a channel Go added and
// subscribed. Go reads it as gone, but the TypeScript removal leaves the
// id in its topic sets and deletes the subs set that named them, so Go's
// RemoveChannels of that id cannot find them: GetChannelIDsForTopic keeps
// returning the id until something that knows the topic (Unsubscribe, as a
// server does when a delivery finds the channel gone) removes it.
func tsRemovesGoChannel(t *testing.T, e *interopEnv, version string) {
	ctx := ctxT(t)
	id, topic := uid("c"), uid("t")
	require.NoError(t, e.cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: id, ChannelName: "chat"}))
	_, err := e.hs.Subscribe(ctx, topic, id)
	require.NoError(t, err)

	e.ts(version, "channel").call(t, "removeChannels", []string{id})

	_, err = e.cs.GetChannelAndSession(ctx, id)
	assert.ErrorIs(t, err, pikkuredis.ErrChannelNotFound)
	_, err = e.cs.GetChannel(ctx, id)
	assert.ErrorIs(t, err, pikkuredis.ErrChannelNotFound)

	// The orphan: returned like any member, as @pikku/redis itself does.
	got, err := e.hs.GetChannelIDsForTopic(ctx, topic)
	require.NoError(t, err)
	assert.Equal(t, []string{id}, got, "the id @pikku/redis left behind")
	require.NoError(t, e.cs.RemoveChannels(ctx, []string{id}), "removing it again is harmless")
	got, err = e.hs.GetChannelIDsForTopic(ctx, topic)
	require.NoError(t, err)
	assert.Equal(t, []string{id}, got, "without the subs set no removal by id can find the topic")

	ok, err := e.hs.Unsubscribe(ctx, topic, id)
	require.NoError(t, err)
	assert.True(t, ok, "Unsubscribe removes the orphan")
	assertNoTrace(t, e, id, topic)
}

// sessionValues are sessions one side sets and the other gets back, with
// the JSON text both store for them: JSON.stringify's bytes and Go's agree
// for these (object keys are written in the order Go writes them, sorted,
// which JSON.parse and JSON.stringify keep).
var sessionValues = []struct {
	name   string
	goV    any    // what Go sets
	stored string // what either side stores, and what JavaScript sets
}{
	{"object", map[string]any{"html": "<b>a && b</b>", "name": "Zoë 🎉 \u2028 \u2029", "roles": []any{"admin"}, "userId": "u1"},
		`{"html":"<b>a && b</b>","name":"Zoë 🎉 ` + "\u2028 \u2029" + `","roles":["admin"],"userId":"u1"}`},
	{"nested", map[string]any{"a": map[string]any{"b": []any{map[string]any{"c": nil}, []any{}, map[string]any{}}}, "n": 1.5},
		`{"a":{"b":[{"c":null},[],{}]},"n":1.5}`},
	{"array", []any{1, "two", nil, true, false, 0}, `[1,"two",null,true,false,0]`},
	{"integer", 42, `42`},
	{"negative fraction", -7.25, `-7.25`},
	{"string", "héllo \"q\" <&> \\", `"héllo \"q\" <&> \\"`},
	{"empty string", "", `""`},
	{"false", false, `false`},
	{"zero", 0, `0`},
	{"empty object", map[string]any{}, `{}`},
	{"null", nil, `null`}, // JavaScript gets null, Go ("null", true): a session, not none
}

// assertStored checks the bytes a session key holds.
func assertStored(t *testing.T, c redis.Conn, key, want, msg string) {
	t.Helper()
	got, err := redis.String(c.Do("GET", key))
	require.NoError(t, err, msg)
	assert.Equal(t, want, got, "%s: stored bytes", msg)
}

// assertPTTL checks that a key has a TTL within (0, ttl seconds].
func assertPTTL(t *testing.T, c redis.Conn, key string, ttl int) {
	t.Helper()
	p := pttl(t, c, key)
	assert.True(t, p > 0 && p <= int64(ttl)*1000, "PTTL of %s is %d, want within (0, %d]", key, p, ttl*1000)
}

// awaitExpiry checks that a key set at start with a TTL of ttl seconds has
// that TTL, then waits for Redis to expire it (PTTL -2), a bounded wait.
func awaitExpiry(t *testing.T, c redis.Conn, key string, ttl int, start time.Time) {
	t.Helper()
	full := time.Duration(ttl) * time.Second
	if p := pttl(t, c, key); p == -2 {
		// Gone already: only if this test was held up for the whole TTL.
		require.GreaterOrEqual(t, time.Since(start), full, "%s expired before its TTL", key)
	} else {
		require.True(t, p > 0 && p <= int64(ttl)*1000, "PTTL of %s is %d, want within (0, %d]", key, p, ttl*1000)
	}
	deadline := time.Now().Add(full + 10*time.Second)
	for pttl(t, c, key) != -2 {
		require.True(t, time.Now().Before(deadline), "%s has not expired %v after its TTL", key, full+10*time.Second)
		time.Sleep(20 * time.Millisecond)
	}
}

// goSetsSessionTSGets: sessions Go sets, RedisSessionStore.get reads.
func goSetsSessionTSGets(t *testing.T, e *interopEnv, version string) {
	ctx := ctxT(t)
	c := e.raw(t)
	ts := e.tsSessions(version, 0)
	for _, v := range sessionValues {
		user := uid("u")
		require.NoError(t, e.ss.Set(ctx, user, v.goV), v.name)
		assertStored(t, c, e.key("session", user), v.stored, v.name)
		got, undef, err := ts.try(t, "get", user)
		require.NoError(t, err, v.name)
		require.False(t, undef, "%s: get returned undefined", v.name)
		assert.JSONEq(t, v.stored, string(got), v.name)
	}

	// A Go Set replaces a session either side set.
	user := uid("u")
	ts.call(t, "set", user, json.RawMessage(`{"userId":"ts"}`))
	require.NoError(t, e.ss.Set(ctx, user, map[string]string{"userId": "go 1"}))
	assert.JSONEq(t, `{"userId":"go 1"}`, string(ts.call(t, "get", user)), "Go replaced TypeScript's session")
	require.NoError(t, e.ss.Set(ctx, user, map[string]string{"userId": "go 2"}))
	assert.JSONEq(t, `{"userId":"go 2"}`, string(ts.call(t, "get", user)), "Go replaced its own session")

	// None: a user without a key, and a key holding the empty string
	// (neither side writes one), are undefined there and !ok here.
	user = uid("u")
	_, undef, err := ts.try(t, "get", user)
	require.NoError(t, err)
	assert.True(t, undef, "no session: undefined")
	_, err = c.Do("SET", e.key("session", user), "")
	require.NoError(t, err)
	_, undef, err = ts.try(t, "get", user)
	require.NoError(t, err)
	assert.True(t, undef, "empty string: undefined")
	got, ok, err := e.ss.Get(ctx, user)
	require.NoError(t, err)
	assert.False(t, ok, "empty string: no session")
	assert.Nil(t, got)
}

// tsSetsSessionGoGets: sessions RedisSessionStore.set writes, Go reads.
func tsSetsSessionGoGets(t *testing.T, e *interopEnv, version string) {
	ctx := ctxT(t)
	c := e.raw(t)
	ts := e.tsSessions(version, 0)
	for _, v := range sessionValues {
		user := uid("u")
		ts.call(t, "set", user, json.RawMessage(v.stored))
		assertStored(t, c, e.key("session", user), v.stored, v.name)
		got, ok, err := e.ss.Get(ctx, user)
		require.NoError(t, err, v.name)
		require.True(t, ok, "%s: Get found no session", v.name)
		assert.Equal(t, v.stored, string(got), "%s: Get returns the stored bytes", v.name)
	}

	// A TypeScript set replaces a session either side set.
	user := uid("u")
	require.NoError(t, e.ss.Set(ctx, user, map[string]string{"userId": "go"}))
	ts.call(t, "set", user, json.RawMessage(`{"userId":"ts 1"}`))
	got, ok, err := e.ss.Get(ctx, user)
	require.NoError(t, err)
	assert.True(t, ok)
	assert.JSONEq(t, `{"userId":"ts 1"}`, string(got), "TypeScript replaced Go's session")
	ts.call(t, "set", user, json.RawMessage(`{"userId":"ts 2"}`))
	got, ok, err = e.ss.Get(ctx, user)
	require.NoError(t, err)
	assert.True(t, ok)
	assert.JSONEq(t, `{"userId":"ts 2"}`, string(got), "TypeScript replaced its own session")

	got, ok, err = e.ss.Get(ctx, uid("u"))
	require.NoError(t, err)
	assert.False(t, ok, "no session")
	assert.Nil(t, got)
}

// goClearsSessionTSGets: a session RedisSessionStore.set wrote, cleared by
// Go, is gone for @pikku/redis.
func goClearsSessionTSGets(t *testing.T, e *interopEnv, version string) {
	ctx := ctxT(t)
	ts := e.tsSessions(version, 0)
	user, other := uid("u"), uid("u")
	for _, u := range []string{user, other} {
		ts.call(t, "set", u, json.RawMessage(`{"userId":"`+u+`"}`))
	}
	require.NoError(t, e.ss.Clear(ctx, user))
	_, undef, err := ts.try(t, "get", user)
	require.NoError(t, err)
	assert.True(t, undef, "cleared: undefined")
	n, err := redis.Int(e.raw(t).Do("EXISTS", e.key("session", user)))
	require.NoError(t, err)
	assert.Equal(t, 0, n, "the key is deleted")
	assert.JSONEq(t, `{"userId":"`+other+`"}`, string(ts.call(t, "get", other)), "another user's session stays")
	require.NoError(t, e.ss.Clear(ctx, user), "clearing again is harmless")
}

// tsClearsSessionGoGets: a session Go set, cleared by
// RedisSessionStore.clear, is gone for Go.
func tsClearsSessionGoGets(t *testing.T, e *interopEnv, version string) {
	ctx := ctxT(t)
	ts := e.tsSessions(version, 0)
	user, other := uid("u"), uid("u")
	for _, u := range []string{user, other} {
		require.NoError(t, e.ss.Set(ctx, u, map[string]string{"userId": u}))
	}
	_, undef, err := ts.try(t, "clear", user)
	require.NoError(t, err)
	assert.True(t, undef, "clear returns nothing")
	got, ok, err := e.ss.Get(ctx, user)
	require.NoError(t, err)
	assert.False(t, ok, "cleared: no session")
	assert.Nil(t, got)
	n, err := redis.Int(e.raw(t).Do("EXISTS", e.key("session", user)))
	require.NoError(t, err)
	assert.Equal(t, 0, n, "the key is deleted")
	got, ok, err = e.ss.Get(ctx, other)
	require.NoError(t, err)
	assert.True(t, ok, "another user's session stays")
	assert.JSONEq(t, `{"userId":"`+other+`"}`, string(got))
	ts.call(t, "clear", user) // again: harmless
}

// goSessionTTLTSGets: Go's WithSessionTTL, seen by @pikku/redis until the
// key expires; and a Go Set without one drops the TTL RedisSessionStore
// set.
func goSessionTTLTSGets(t *testing.T, e *interopEnv, version string) {
	ctx := ctxT(t)
	c := e.raw(t)
	ts := e.tsSessions(version, 0)

	user := uid("u")
	require.NoError(t, e.ss.Set(ctx, user, nil)) // the TTL store replaces a key without one
	require.NoError(t, e.ssTTL[60].Set(ctx, user, map[string]string{"userId": "long"}))
	assertPTTL(t, c, e.key("session", user), 60)
	assert.JSONEq(t, `{"userId":"long"}`, string(ts.call(t, "get", user)))

	user = uid("u")
	start := time.Now()
	require.NoError(t, e.ssTTL[1].Set(ctx, user, map[string]string{"userId": "short"}))
	awaitExpiry(t, c, e.key("session", user), 1, start)
	_, undef, err := ts.try(t, "get", user)
	require.NoError(t, err)
	assert.True(t, undef, "expired: undefined")

	user = uid("u")
	e.tsSessions(version, 60).call(t, "set", user, json.RawMessage(`{"userId":"ts with a TTL"}`))
	assertPTTL(t, c, e.key("session", user), 60)
	require.NoError(t, e.ss.Set(ctx, user, map[string]string{"userId": "go without"}))
	assert.Equal(t, int64(-1), pttl(t, c, e.key("session", user)), "Go's Set without a TTL drops @pikku/redis's")
	assert.JSONEq(t, `{"userId":"go without"}`, string(ts.call(t, "get", user)))
}

// tsSessionTTLGoGets: RedisSessionStore's ttlSeconds, seen by Go until the
// key expires; and a TypeScript set without one drops the TTL Go set.
func tsSessionTTLGoGets(t *testing.T, e *interopEnv, version string) {
	ctx := ctxT(t)
	c := e.raw(t)

	user := uid("u")
	e.tsSessions(version, 0).call(t, "set", user, json.RawMessage(`null`))
	e.tsSessions(version, 60).call(t, "set", user, json.RawMessage(`{"userId":"long"}`))
	assertPTTL(t, c, e.key("session", user), 60)
	got, ok, err := e.ss.Get(ctx, user)
	require.NoError(t, err)
	assert.True(t, ok)
	assert.JSONEq(t, `{"userId":"long"}`, string(got))

	user = uid("u")
	start := time.Now()
	e.tsSessions(version, 1).call(t, "set", user, json.RawMessage(`{"userId":"short"}`))
	awaitExpiry(t, c, e.key("session", user), 1, start)
	got, ok, err = e.ss.Get(ctx, user)
	require.NoError(t, err)
	assert.False(t, ok, "expired: no session")
	assert.Nil(t, got)

	user = uid("u")
	require.NoError(t, e.ssTTL[60].Set(ctx, user, map[string]string{"userId": "go with a TTL"}))
	assertPTTL(t, c, e.key("session", user), 60)
	e.tsSessions(version, 0).call(t, "set", user, json.RawMessage(`{"userId":"ts without"}`))
	assert.Equal(t, int64(-1), pttl(t, c, e.key("session", user)), "@pikku/redis's set without a TTL drops Go's")
	got, ok, err = e.ss.Get(ctx, user)
	require.NoError(t, err)
	assert.True(t, ok)
	assert.JSONEq(t, `{"userId":"ts without"}`, string(got))
}

// goChannelWithSessionTSReads: a channel, its Pikku user and the user's
// session, all written by Go, read by today's Pikku as it does: getChannel,
// then the session store's get(pikkuUserId).
func goChannelWithSessionTSReads(t *testing.T, e *interopEnv, version string) {
	ctx := ctxT(t)
	id, user := uid("c"), uid("ünï 🎉 u")
	session := map[string]any{"userId": user, "name": "Zoë <3", "roles": []any{"admin"}}
	require.NoError(t, e.cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: id, ChannelName: "chat", OpeningData: map[string]string{"room": "<lobby>"}}))
	require.NoError(t, e.cs.SetPikkuUserID(ctx, id, user))
	require.NoError(t, e.ss.Set(ctx, user, session))

	ch := e.ts(version, "channel").call(t, "getChannel", id)
	assertJSON(t, map[string]any{"channelId": id, "channelName": "chat", "openingData": map[string]string{"room": "<lobby>"}, "pikkuUserId": user}, ch, "getChannel")
	var named struct {
		PikkuUserID string `json:"pikkuUserId"`
	}
	require.NoError(t, json.Unmarshal(ch, &named))
	assertJSON(t, session, e.tsSessions(version, 0).call(t, "get", named.PikkuUserID), "get(pikkuUserId)")

	// Go's one-step read agrees.
	got, err := e.cs.GetChannelWithSession(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, user, got.PikkuUserID)
	assert.True(t, got.HasSession)
	assertJSON(t, session, got.Session, "GetChannelWithSession")
}

// tsChannelWithSessionGoReads: a channel, its Pikku user and the user's
// session, all written by @pikku/redis 0.12.18, read by Go in one call.
func tsChannelWithSessionGoReads(t *testing.T, e *interopEnv, version string) {
	ctx := ctxT(t)
	id, user := uid("c"), uid("u")
	tsc, tss := e.ts(version, "channel"), e.tsSessions(version, 0)
	before := time.Now().Truncate(time.Millisecond)
	tsc.call(t, "addChannel", channelArg(id, "chat", json.RawMessage(`{"room":"<lobby>"}`)))
	after := time.Now()
	check := func(msg, wantUser, wantSession string) {
		t.Helper()
		got, err := e.cs.GetChannelWithSession(ctx, id)
		require.NoError(t, err, msg)
		assert.Equal(t, id, got.ChannelID, msg)
		assert.Equal(t, "chat", got.ChannelName, msg)
		assert.JSONEq(t, `{"room":"<lobby>"}`, string(got.OpeningData), msg)
		assertBetween(t, got.CreatedAt, before, after)
		assert.Equal(t, wantUser, got.PikkuUserID, msg)
		if wantSession == "" {
			assert.False(t, got.HasSession, msg)
			assert.Nil(t, got.Session, msg)
		} else {
			assert.True(t, got.HasSession, msg)
			assert.Equal(t, wantSession, string(got.Session), msg)
		}
	}
	check("no Pikku user", "", "")
	tsc.call(t, "setPikkuUserId", id, user)
	check("a user without a session", user, "")
	tss.call(t, "set", user, json.RawMessage(`{"name":"Zoë <3","roles":["admin"],"userId":"`+user+`"}`))
	check("the user's session", user, `{"name":"Zoë <3","roles":["admin"],"userId":"`+user+`"}`)
	tss.call(t, "set", user, json.RawMessage(`{"userId":"replaced"}`))
	check("replaced", user, `{"userId":"replaced"}`)
	other := uid("ünï 🎉 u") // the session key is built inside Lua: same bytes as there
	tss.call(t, "set", other, json.RawMessage(`{"userId":"other"}`))
	tsc.call(t, "setPikkuUserId", id, other)
	check("another user", other, `{"userId":"other"}`)
	tss.call(t, "clear", other)
	check("cleared", other, "")
	_, err := e.cs.GetChannelWithSession(ctx, uid("c"))
	assert.ErrorIs(t, err, pikkuredis.ErrChannelNotFound)
}

// assertNoTrace checks that no key of the channel is left and that none of
// the topics lists it.
func assertNoTrace(t *testing.T, e *interopEnv, id string, topics ...string) {
	t.Helper()
	c := e.raw(t)
	n, err := redis.Int(c.Do("EXISTS", e.key("channel", id), e.key("subs", id)))
	require.NoError(t, err)
	assert.Equal(t, 0, n, "channel %s keeps a hash or subs set", id)
	for _, topic := range topics {
		in, err := redis.Bool(c.Do("SISMEMBER", e.key("topic", topic), id))
		require.NoError(t, err)
		assert.False(t, in, "topic %s still lists %s", topic, id)
	}
}

// assertJSON compares a value built in Go with a JSON result from Node.js
// as JSON (deep equality): key order and spacing do not count, and a key
// that is undefined in JavaScript is absent.
func assertJSON(t *testing.T, want any, got json.RawMessage, msg string) {
	t.Helper()
	w, err := json.Marshal(want)
	require.NoError(t, err)
	assert.JSONEq(t, string(w), string(got), msg)
}

func assertBetween(t *testing.T, got, before, after time.Time) {
	t.Helper()
	assert.False(t, got.Before(before), "createdAt %v before %v", got, before)
	assert.False(t, got.After(after), "createdAt %v after %v", got, after)
}

// byteCases are values whose JSON text must be the same bytes whichever
// side wrote them: our encoder against JSON.stringify.
var byteCases = []struct {
	name string
	v    any
}{
	{"html characters", map[string]any{"html": "<script>a && b > c</script>"}},
	{"line and paragraph separators", "a\u2028b\u2029c"},
	{"control characters", "tab\tnl\ncr\r\x01\x1f\x7f"},
	{"quotes and backslash", `say "hi" \ bye /`},
	{"unicode", map[string]any{"ключ": "中文 🎉 é e\u0301"}},
	{"numbers", []any{0.1, 1e21, 1e20, 1e-7, 1e-6, -1.5, 5e-324, 1.7976931348623157e308, 100, 123456789012, 9007199254740993.0}},
	{"nesting", map[string]any{"a": []any{[]any{}, map[string]any{}, []any{map[string]any{"b": nil}}}, "c": true}},
	{"sorted keys", map[string]any{"alpha": 1, "beta": map[string]any{"x": "y"}, "gamma": []any{}}},
}

// knownByteDifferences are documented in the README: same meaning,
// different bytes.
var knownByteDifferences = []struct {
	name  string
	v     any
	falsy bool // {} as opening data and no session on both sides: differs only as a state
}{
	{"integer-like keys (JavaScript puts them first, in numeric order)", map[string]any{"10": 1, "2": 2, "a": 3}, false},
	{"nested -0 (JavaScript writes 0)", []any{math.Copysign(0, -1)}, false},
	{"-0 (JavaScript writes 0)", math.Copysign(0, -1), true},
}

// Go and @pikku/redis store the same bytes for the same values: the same
// channel id written by each side under its own prefix gives equal hashes,
// createdAt aside.
func TestInteropSameBytes(t *testing.T) {
	node := startNode(t)
	c := dialRaw(t)
	defer c.Close()
	goPrefix, tsPrefix := newPrefix(t), newPrefix(t)
	pool := newPool(t)
	cs := pikkuredis.NewChannelStore(pool, pikkuredis.WithKeyPrefix(goPrefix))
	ctx := ctxT(t)
	hash := func(prefix, id string) map[string]string {
		h, err := redis.StringMap(c.Do("HGETALL", prefix+":channel:"+id))
		require.NoError(t, err)
		require.Contains(t, h, "createdAt")
		delete(h, "createdAt")
		return h
	}
	write := func(t *testing.T, version, id string, v any) {
		ts := tsStore{d: node, url: redisURL, prefix: tsPrefix, version: version, kind: "channel"}
		js, err := json.Marshal(v) // decoded by JSON.parse on the Node.js side
		require.NoError(t, err)
		require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: id, ChannelName: "n", OpeningData: v}))
		ts.call(t, "addChannel", channelArg(id, "n", js))
		if version == "0.12.3" {
			require.NoError(t, cs.SetUserSession(ctx, id, v))
			ts.call(t, "setUserSession", id, json.RawMessage(js))
		} else {
			require.NoError(t, cs.SetState(ctx, id, v))
			ts.call(t, "setState", id, json.RawMessage(js))
			require.NoError(t, cs.SetPikkuUserID(ctx, id, "user ✓"))
			ts.call(t, "setPikkuUserId", id, "user ✓")
		}
	}
	for _, version := range tsVersions {
		for i, bc := range byteCases {
			t.Run(version+"/"+bc.name, func(t *testing.T) {
				id := version + "-same-" + strconv.Itoa(i)
				write(t, version, id, bc.v)
				goHash, tsHash := hash(goPrefix, id), hash(tsPrefix, id)
				assert.Equal(t, tsHash, goHash)
				assert.Len(t, goHash, map[string]int{"0.12.3": 4, "0.12.18": 5}[version])
			})
		}
		for i, kd := range knownByteDifferences {
			t.Run(version+"/known difference/"+kd.name, func(t *testing.T) {
				id := version + "-known-" + strconv.Itoa(i)
				write(t, version, id, kd.v)
				goHash, tsHash := hash(goPrefix, id), hash(tsPrefix, id)
				differ := 0
				for field, g := range goHash {
					if g != tsHash[field] {
						differ++
						assert.JSONEq(t, tsHash[field], g, "%s: same meaning", field)
					}
				}
				if kd.falsy && version == "0.12.3" {
					assert.Zero(t, differ, "0.12.3 has no field where a falsy value is stored as itself")
					return
				}
				assert.NotZero(t, differ, "fixed? then update the README and move the case to byteCases")
			})
		}
	}
}

// What docs/layout.md's "What differs" table says of @pikku/redis, checked on
// the real packages, next to what Go does with the same data.
func TestTypeScriptStoreBehavesAsDocumented(t *testing.T) {
	node := startNode(t)
	prefix := newPrefix(t)
	c := dialRaw(t)
	defer c.Close()
	cs := pikkuredis.NewChannelStore(newPool(t), pikkuredis.WithKeyPrefix(prefix))
	ctx := ctxT(t)
	ts := func(version string) tsStore {
		return tsStore{d: node, url: redisURL, prefix: prefix, version: version, kind: "channel"}
	}
	hash := func(id string) map[string]string {
		h, err := redis.StringMap(c.Do("HGETALL", prefix+":channel:"+id))
		require.NoError(t, err)
		return h
	}

	// Writes to a missing channel create a hash holding just that field,
	// which both sides then read as no channel.
	ts("0.12.3").call(t, "setUserSession", "ghost-session", json.RawMessage(`{"userId":"u1"}`))
	assert.Equal(t, map[string]string{"userSession": `{"userId":"u1"}`}, hash("ghost-session"))
	_, _, err := ts("0.12.3").try(t, "getChannelAndSession", "ghost-session")
	assert.True(t, isNotFound(err, "ghost-session"), "got %v", err)
	_, err = cs.GetChannelAndSession(ctx, "ghost-session")
	assert.ErrorIs(t, err, pikkuredis.ErrChannelNotFound)

	ts("0.12.18").call(t, "setPikkuUserId", "ghost-user", "u1")
	assert.Equal(t, map[string]string{"pikkuUserId": "u1"}, hash("ghost-user"))
	_, _, err = ts("0.12.18").try(t, "getChannel", "ghost-user")
	assert.True(t, isNotFound(err, "ghost-user"), "got %v", err)
	_, err = cs.GetChannel(ctx, "ghost-user")
	assert.ErrorIs(t, err, pikkuredis.ErrChannelNotFound)

	// getState reads the field alone, on a stray hash too; so does Go.
	ts("0.12.18").call(t, "setState", "ghost-state", json.RawMessage(`{"n":1}`))
	assert.Equal(t, map[string]string{"state": `{"n":1}`}, hash("ghost-state"))
	assert.JSONEq(t, `{"n":1}`, string(ts("0.12.18").call(t, "getState", "ghost-state")))
	st, ok, err := cs.GetState(ctx, "ghost-state")
	require.NoError(t, err)
	assert.True(t, ok)
	assert.JSONEq(t, `{"n":1}`, string(st))

	// clearState of a missing channel: nothing, silently; Go says so.
	_, undef, err := ts("0.12.18").try(t, "clearState", "nobody")
	require.NoError(t, err)
	assert.True(t, undef)
	assert.ErrorIs(t, cs.ClearState(ctx, "nobody"), pikkuredis.ErrChannelNotFound)

	// getState of a missing channel is undefined; Go: no state, no error.
	_, undef, err = ts("0.12.18").try(t, "getState", "nobody")
	require.NoError(t, err)
	assert.True(t, undef)
	_, ok, err = cs.GetState(ctx, "nobody")
	require.NoError(t, err)
	assert.False(t, ok)

	// Stored state that is not JSON: undefined there, an error here.
	_, err = c.Do("HSET", prefix+":channel:corrupt", "channelId", "corrupt", "state", "{not json")
	require.NoError(t, err)
	_, undef, err = ts("0.12.18").try(t, "getState", "corrupt")
	require.NoError(t, err)
	assert.True(t, undef)
	_, _, err = cs.GetState(ctx, "corrupt")
	assert.ErrorContains(t, err, "stored state is not JSON")

	// Empty ids are accepted there, refused here.
	ts("0.12.18").call(t, "addChannel", channelArg("", "n", nil))
	assert.Contains(t, hash(""), "channelId")
	assert.ErrorIs(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: ""}), pikkuredis.ErrInvalidArgument)
}

package pikkuredis_test

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pikkujs/pikkuredis"
)

// Sessions as today's Pikku keeps them (@pikku/redis 0.12.18's
// RedisSessionStore): one string key per user, {prefix}:session:{id}.

// sessionBackends are the ways a SessionStore reaches Redis: each returns
// a store on a fresh prefix, and the prefix.
var sessionBackends = map[string]func(testing.TB, ...pikkuredis.Option) (*pikkuredis.SessionStore, string){
	"auto-pipelined": func(t testing.TB, o ...pikkuredis.Option) (*pikkuredis.SessionStore, string) {
		return freshSessions(t, o...)
	},
	"owned pool": func(t testing.TB, o ...pikkuredis.Option) (*pikkuredis.SessionStore, string) {
		return freshSessions(t, append(o, pikkuredis.WithoutAutoPipelining())...)
	},
	"caller's pool": func(t testing.TB, o ...pikkuredis.Option) (*pikkuredis.SessionStore, string) {
		prefix := newPrefix(t)
		ss := pikkuredis.NewSessionStore(callersPool(t), withPrefix(prefix, o...)...)
		t.Cleanup(func() { ss.Close() })
		return ss, prefix
	},
}

// freshSessions is a SessionStore from the test Redis's URL on a fresh
// prefix, and the prefix.
func freshSessions(t testing.TB, opts ...pikkuredis.Option) (*pikkuredis.SessionStore, string) {
	t.Helper()
	prefix := newPrefix(t)
	return openSessions(t, redisURL, withPrefix(prefix, opts...)...), prefix
}

// rawGet is the stored text of key, and whether it exists.
func rawGet(t testing.TB, c redis.Conn, key string) (string, bool) {
	t.Helper()
	v, err := redis.String(c.Do("GET", key))
	if err == redis.ErrNil {
		return "", false
	}
	require.NoError(t, err)
	return v, true
}

func pttl(t testing.TB, c redis.Conn, key string) int64 {
	t.Helper()
	ms, err := redis.Int64(c.Do("PTTL", key))
	require.NoError(t, err)
	return ms
}

func TestSessionStoreSetGetClear(t *testing.T) {
	for name, open := range layoutSessionBackends() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ss, k := open(t)
			prefix := k.prefix
			ctx := ctxT(t)
			c := dialRaw(t)
			defer c.Close()
			key := k.session("u-42")

			_, ok, err := ss.Get(ctx, "u-42")
			require.NoError(t, err)
			assert.False(t, ok, "no session yet")

			type session struct {
				UserID string   `json:"userId"`
				Roles  []string `json:"roles"`
			}
			require.NoError(t, ss.Set(ctx, "u-42", session{UserID: "u-42", Roles: []string{"<admin>&"}}))
			stored, ok := rawGet(t, c, key)
			require.True(t, ok, "the key is %s", key)
			assert.Equal(t, `{"userId":"u-42","roles":["<admin>&"]}`, stored, "JSON.stringify's bytes")
			assert.Equal(t, int64(-1), pttl(t, c, key), "no TTL without WithSessionTTL")
			got, ok, err := ss.Get(ctx, "u-42")
			require.NoError(t, err)
			assert.True(t, ok)
			assert.Equal(t, stored, string(got), "the stored bytes, unchanged")

			require.NoError(t, ss.Set(ctx, "u-42", map[string]string{"userId": "u-42", "v": "2"}))
			got, _, err = ss.Get(ctx, "u-42")
			require.NoError(t, err)
			assert.Equal(t, `{"userId":"u-42","v":"2"}`, string(got), "Set replaces")

			require.NoError(t, ss.Clear(ctx, "u-42"))
			_, ok = rawGet(t, c, key)
			assert.False(t, ok, "Clear deletes the key")
			got, ok, err = ss.Get(ctx, "u-42")
			require.NoError(t, err)
			assert.False(t, ok)
			assert.Nil(t, got)
			require.NoError(t, ss.Clear(ctx, "u-42"), "clearing no session is fine")
			assert.Empty(t, scanKeys(t, c, prefix))
		})
	}
}

// Every value is stored as JSON.stringify stores it; falsy values are
// sessions too (unlike a channel's userSession, which they clear), and a
// stored null reads back as null, found, as @pikku/redis returns null.
func TestSessionStoreStoresEveryValueAsItEncodes(t *testing.T) {
	ss, prefix := freshSessions(t)
	ctx := ctxT(t)
	c := dialRaw(t)
	defer c.Close()
	for _, tc := range []struct {
		v    any
		want string
	}{
		{nil, `null`},
		{json.RawMessage(`null`), `null`},
		{false, `false`},
		{0, `0`},
		{"", `""`},
		{"héllo \u2028 <b>", "\"héllo \u2028 <b>\""},
		{[]any{1, "two", nil}, `[1,"two",null]`},
		{json.RawMessage(` { "a" : 1 } `), `{"a":1}`},
	} {
		require.NoError(t, ss.Set(ctx, "u", tc.v), "%#v", tc.v)
		stored, _ := rawGet(t, c, prefix+":session:u")
		assert.Equal(t, tc.want, stored, "%#v", tc.v)
		got, ok, err := ss.Get(ctx, "u")
		require.NoError(t, err)
		assert.True(t, ok, "%#v is a session", tc.v)
		assert.Equal(t, tc.want, string(got))
	}
}

// What @pikku/redis reads as no session (`if (!data) return undefined`),
// and what it cannot read at all.
func TestSessionStoreReadsWhatOthersWrote(t *testing.T) {
	ss, prefix := freshSessions(t)
	ctx := ctxT(t)
	c := dialRaw(t)
	defer c.Close()
	_, err := c.Do("SET", prefix+":session:empty", "")
	require.NoError(t, err)
	got, ok, err := ss.Get(ctx, "empty")
	require.NoError(t, err)
	assert.False(t, ok, "the empty string is no session")
	assert.Nil(t, got)

	_, err = c.Do("SET", prefix+":session:bad", "{not json")
	require.NoError(t, err)
	_, ok, err = ss.Get(ctx, "bad")
	require.Error(t, err)
	assert.False(t, ok)
	assert.Contains(t, err.Error(), "pikkuredis: get session: pikku user bad: stored session is not JSON")

	_, err = c.Do("HSET", prefix+":session:hash", "a", "b")
	require.NoError(t, err)
	_, _, err = ss.Get(ctx, "hash")
	assert.ErrorIs(t, err, pikkuredis.ErrWrongType)
	assert.ErrorContains(t, err, "key "+prefix+":session:hash")
}

// Bad input is refused before anything is sent.
func TestSessionStoreBadInputWritesNothing(t *testing.T) {
	ss, prefix := freshSessions(t)
	ctx := ctxT(t)
	c := dialRaw(t)
	defer c.Close()
	require.NoError(t, ss.Set(ctx, "u", "before"))

	for name, err := range map[string]error{
		"Set empty id":   ss.Set(ctx, "", "x"),
		"Clear empty id": ss.Clear(ctx, ""),
		"Set NaN":        ss.Set(ctx, "u", math.NaN()),
		"Set channel":    ss.Set(ctx, "u", make(chan int)),
		"Set func":       ss.Set(ctx, "u", map[string]any{"f": func() {}}),
		"Get empty id": func() error {
			_, _, err := ss.Get(ctx, "")
			return err
		}(),
	} {
		assert.ErrorIs(t, err, pikkuredis.ErrInvalidArgument, name)
	}
	_, _, err := ss.Get(ctx, "")
	assert.EqualError(t, err, "pikkuredis: get session: invalid argument: empty pikku user id")
	assert.ErrorContains(t, ss.Set(ctx, "u", math.Inf(1)), "pikkuredis: set session: invalid argument: session cannot be encoded as JSON")

	assert.Equal(t, []string{prefix + ":session:u"}, scanKeys(t, c, prefix))
	stored, _ := rawGet(t, c, prefix+":session:u")
	assert.Equal(t, `"before"`, stored)
}

// WithSessionTTL writes SET ... EX with the duration rounded up to whole
// seconds; a Set without it drops the TTL, as SET does.
func TestSessionStoreTTL(t *testing.T) {
	ctx := ctxT(t)
	c := dialRaw(t)
	defer c.Close()
	prefix := newPrefix(t)
	open := func(opts ...pikkuredis.Option) *pikkuredis.SessionStore {
		return openSessions(t, redisURL, append(opts, pikkuredis.WithKeyPrefix(prefix))...)
	}
	key := prefix + ":session:u"
	for _, tc := range []struct {
		ttl      time.Duration
		min, max int64 // PTTL just after the Set, in ms
	}{
		{90 * time.Second, 88_000, 90_000},
		{1500 * time.Millisecond, 1_000, 2_000}, // 2 s
		{time.Millisecond, 1, 1_000},            // 1 s
		{time.Hour + time.Nanosecond, 3_600_000, 3_601_000},
	} {
		require.NoError(t, open(pikkuredis.WithSessionTTL(tc.ttl)).Set(ctx, "u", "s"))
		ms := pttl(t, c, key)
		assert.True(t, ms > tc.min && ms <= tc.max, "WithSessionTTL(%v): PTTL %d ms, want in (%d, %d]", tc.ttl, ms, tc.min, tc.max)
	}
	require.NoError(t, open().Set(ctx, "u", "s"))
	assert.Equal(t, int64(-1), pttl(t, c, key), "a Set without TTL drops it")
	require.NoError(t, open(pikkuredis.WithSessionTTL(0), pikkuredis.WithSessionTTL(-time.Second)).Set(ctx, "u", "s"))
	assert.Equal(t, int64(-1), pttl(t, c, key), "values below 1 keep the default, no TTL")

	// And the session goes when it runs out.
	short := open(pikkuredis.WithSessionTTL(time.Millisecond))
	require.NoError(t, short.Set(ctx, "u", "s"))
	require.Eventually(t, func() bool {
		_, ok, err := short.Get(ctx, "u")
		return err == nil && !ok
	}, 5*time.Second, 50*time.Millisecond, "the session expires after its TTL (1 s)")
}

func TestSessionStoreLifecycle(t *testing.T) {
	ctx := ctxT(t)
	ss, _ := freshSessions(t)
	require.NoError(t, ss.Init(ctx))
	require.NoError(t, ss.Close())
	require.NoError(t, ss.Close(), "twice is harmless")
	_, _, err := ss.Get(ctx, "u")
	assert.ErrorIs(t, err, pikkuredis.ErrClosed)
	assert.ErrorIs(t, ss.Set(ctx, "u", 1), pikkuredis.ErrClosed)
	assert.ErrorIs(t, ss.Clear(ctx, "u"), pikkuredis.ErrClosed)

	// A caller's pool stays open after Close.
	pool := newPool(t)
	shared := pikkuredis.NewSessionStore(pool)
	require.NoError(t, shared.Close())
	c := pool.Get()
	defer c.Close()
	_, err = c.Do("PING")
	assert.NoError(t, err, "the caller's pool is not closed")

	// Bad URLs fail at Open.
	_, err = pikkuredis.OpenSessionStore("http://localhost:6379")
	assert.Error(t, err)

	var zero pikkuredis.SessionStore
	_, _, err = zero.Get(ctx, "u")
	assert.ErrorContains(t, err, "no pool")
	assert.ErrorContains(t, pikkuredis.NewSessionStore(nil).Set(ctx, "u", 1), "no pool")
}

// The SessionStore's Init refuses an allkeys-* policy, which would evict
// sessions, saying so.
func TestSessionStoreInitChecksEvictionPolicy(t *testing.T) {
	srv := ownRedis(t, "--maxmemory-policy", "allkeys-lru")
	ss, err := pikkuredis.OpenSessionStore(srv.URL)
	require.NoError(t, err)
	defer ss.Close()
	err = ss.Init(ctxT(t))
	assert.ErrorIs(t, err, pikkuredis.ErrEvictionPolicy)
	assert.ErrorContains(t, err, "allkeys-lru")
	assert.ErrorContains(t, err, "evicts sessions")
}

func TestGetChannelWithSession(t *testing.T) {
	for name, open := range layoutBackends() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cs, _, k := open(t)
			ss := pikkuredis.NewSessionStore(callersPool(t), pikkuredis.WithKeyPrefix(k.prefix), pikkuredis.WithShards(k.shards))
			ctx := ctxT(t)
			before := time.Now().Truncate(time.Millisecond)
			require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "c1", ChannelName: "chat", OpeningData: map[string]string{"room": "lobby"}}))
			after := time.Now()

			got, err := cs.GetChannelWithSession(ctx, "c1")
			require.NoError(t, err)
			assert.Equal(t, "c1", got.ChannelID)
			assert.Equal(t, "chat", got.ChannelName)
			assert.JSONEq(t, `{"room":"lobby"}`, string(got.OpeningData))
			assert.False(t, got.CreatedAt.Before(before) || got.CreatedAt.After(after), "createdAt %v", got.CreatedAt)
			assert.Equal(t, "", got.PikkuUserID)
			assert.False(t, got.HasSession, "no user, no session")
			assert.Nil(t, got.Session)

			require.NoError(t, cs.SetPikkuUserID(ctx, "c1", "u-42"))
			got, err = cs.GetChannelWithSession(ctx, "c1")
			require.NoError(t, err)
			assert.Equal(t, "u-42", got.PikkuUserID)
			assert.False(t, got.HasSession, "a user without a session")

			require.NoError(t, ss.Set(ctx, "u-42", map[string]string{"userId": "u-42"}))
			got, err = cs.GetChannelWithSession(ctx, "c1")
			require.NoError(t, err)
			assert.True(t, got.HasSession)
			assert.Equal(t, `{"userId":"u-42"}`, string(got.Session))
			info, err := cs.GetChannel(ctx, "c1")
			require.NoError(t, err)
			assert.Equal(t, info, got.ChannelInfo, "the channel as GetChannel reads it")

			require.NoError(t, ss.Set(ctx, "u-42", nil))
			got, err = cs.GetChannelWithSession(ctx, "c1")
			require.NoError(t, err)
			assert.True(t, got.HasSession, "a stored null is a session, as SessionStore.Get says")
			assert.Equal(t, "null", string(got.Session))

			require.NoError(t, ss.Clear(ctx, "u-42"))
			got, err = cs.GetChannelWithSession(ctx, "c1")
			require.NoError(t, err)
			assert.False(t, got.HasSession)

			_, err = cs.GetChannelWithSession(ctx, "nope")
			assert.ErrorIs(t, err, pikkuredis.ErrChannelNotFound)
			assert.EqualError(t, err, "pikkuredis: channel not found: nope")
			_, err = cs.GetChannelWithSession(ctx, "")
			assert.ErrorIs(t, err, pikkuredis.ErrInvalidArgument)
		})
	}
}

// The session is read under the channel store's prefix only, and a
// session that is not JSON, or a hash holding only a stray pikkuUserId,
// reads as @pikku/redis would refuse to parse it.
func TestGetChannelWithSessionReadsItsOwnPrefix(t *testing.T) {
	cs, _, prefix := stores(t)
	ctx := ctxT(t)
	c := dialRaw(t)
	defer c.Close()
	other := newPrefix(t)
	require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "c1"}))
	require.NoError(t, cs.SetPikkuUserID(ctx, "c1", "u"))
	_, err := c.Do("SET", other+":session:u", `{"other":true}`)
	require.NoError(t, err)
	got, err := cs.GetChannelWithSession(ctx, "c1")
	require.NoError(t, err)
	assert.False(t, got.HasSession, "another prefix's session is not read")

	_, err = c.Do("SET", prefix+":session:u", `{oops`)
	require.NoError(t, err)
	got, err = cs.GetChannelWithSession(ctx, "c1")
	assert.ErrorContains(t, err, "pikkuredis: get channel with session: pikku user u: stored session is not JSON")
	assert.Zero(t, got, "nothing but the error")

	_, err = c.Do("SET", prefix+":session:u", "")
	require.NoError(t, err)
	got, err = cs.GetChannelWithSession(ctx, "c1")
	require.NoError(t, err)
	assert.False(t, got.HasSession, "the empty string is no session")

	// A hash holding only pikkuUserId (what @pikku/redis's setPikkuUserId
	// leaves on a missing channel) is not a channel.
	_, err = c.Do("HSET", prefix+":channel:stray", "pikkuUserId", "u")
	require.NoError(t, err)
	_, err = cs.GetChannelWithSession(ctx, "stray")
	assert.ErrorIs(t, err, pikkuredis.ErrChannelNotFound)
}

// One atomic step. Another client moves the channel from user to user,
// each move one MULTI: the new user id, the new user's session, and the
// old user's session deleted. Every read must name a user and return that
// user's session. (Read as two calls, GetChannel then Get, a read that
// falls between them finds the named user's session already deleted.)
// In the sharded layout the users are of the channel's shard, where the
// read is one script.
func TestGetChannelWithSessionIsAtomic(t *testing.T) {
	forLayouts(t, testGetChannelWithSessionIsAtomic)
}

func testGetChannelWithSessionIsAtomic(t *testing.T, lc layoutCase) {
	cs, _, k := lc.stores(t)
	ctx := ctxT(t)
	require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "c1"}))
	w := dialRaw(t)
	defer w.Close()
	// user(n) is "u<n>" in the standard layout; in the sharded one the
	// nth "u<m>" of the channel's shard.
	var users []string
	next := 0
	user := func(n int) string {
		if n < 0 {
			return "u-none"
		}
		for len(users) <= n {
			u := fmt.Sprint("u", next)
			next++
			if k.shards == 0 || k.shardOf(u) == k.shardOf("c1") {
				users = append(users, u)
			}
		}
		return users[n]
	}
	move := func(from, to int) error {
		w.Send("MULTI")
		w.Send("HSET", k.channel("c1"), "pikkuUserId", user(to))
		w.Send("SET", k.session(user(to)), fmt.Sprintf(`{"userId":%q}`, user(to)))
		w.Send("DEL", k.session(user(from)))
		_, err := w.Do("EXEC")
		return err
	}
	require.NoError(t, move(-1, 0))

	stop := make(chan struct{})
	moves := make(chan int, 1)
	go func() {
		n := 0
		defer func() { moves <- n }()
		for ; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := move(n, n+1); err != nil {
				t.Errorf("move %d: %v", n, err)
				return
			}
		}
	}()
	stopped := func() int { close(stop); return <-moves }
	for i := 0; i < 2000; i++ {
		got, err := cs.GetChannelWithSession(ctx, "c1")
		if err == nil && (!got.HasSession || fmt.Sprintf(`{"userId":%q}`, got.PikkuUserID) != string(got.Session)) {
			err = fmt.Errorf("user %q with session %q (has session: %v)", got.PikkuUserID, got.Session, got.HasSession)
		}
		if err != nil {
			stopped()
			t.Fatalf("read %d: %v", i, err)
		}
	}
	n := stopped()
	require.Greater(t, n, 10, "the user moved while the reads ran")
	t.Logf("%d moves during 2000 reads", n)
}

func TestTypedSessionStore(t *testing.T) {
	type Session struct {
		UserID string `json:"userId"`
		Admin  bool   `json:"admin,omitempty"`
	}
	ss, prefix := freshSessions(t)
	ctx := ctxT(t)
	sessions := pikkuredis.NewTypedSessionStore[Session](ss)

	_, ok, err := sessions.Get(ctx, "u-42")
	require.NoError(t, err)
	assert.False(t, ok)
	require.NoError(t, sessions.Set(ctx, "u-42", Session{UserID: "u-42", Admin: true}))
	got, ok, err := sessions.Get(ctx, "u-42")
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, Session{UserID: "u-42", Admin: true}, got)
	raw, _, err := ss.Get(ctx, "u-42")
	require.NoError(t, err)
	assert.Equal(t, `{"userId":"u-42","admin":true}`, string(raw))

	// JSON that does not fit the type is an error, not a zero value.
	c := dialRaw(t)
	defer c.Close()
	_, err = c.Do("SET", prefix+":session:odd", `{"userId":42}`)
	require.NoError(t, err)
	got, ok, err = sessions.Get(ctx, "odd")
	assert.ErrorContains(t, err, "pikkuredis: get session: pikku user odd: decode session as pikkuredis_test.Session")
	assert.False(t, ok)
	assert.Zero(t, got)

	require.NoError(t, sessions.Clear(ctx, "u-42"))
	_, ok, err = sessions.Get(ctx, "u-42")
	require.NoError(t, err)
	assert.False(t, ok)

	var zero pikkuredis.TypedSessionStore[Session]
	_, _, err = zero.Get(ctx, "u")
	assert.ErrorContains(t, err, "NewTypedSessionStore")
	assert.ErrorContains(t, zero.Set(ctx, "u", Session{}), "NewTypedSessionStore")
	assert.ErrorContains(t, zero.Clear(ctx, "u"), "NewTypedSessionStore")
}

func TestTypedGetChannelWithSession(t *testing.T) {
	type Opening struct {
		Room string `json:"room"`
	}
	type Session struct {
		UserID string `json:"userId"`
	}
	cs, _, prefix := stores(t)
	ctx := ctxT(t)
	chats := pikkuredis.NewTyped[Opening, Session](cs)
	sessions := pikkuredis.NewTypedSessionStore[Session](pikkuredis.NewSessionStore(callersPool(t), pikkuredis.WithKeyPrefix(prefix)))

	require.NoError(t, chats.AddChannel(ctx, "c1", "chat", Opening{Room: "lobby"}))
	got, err := chats.GetChannelWithSession(ctx, "c1")
	require.NoError(t, err)
	assert.Equal(t, Opening{Room: "lobby"}, got.OpeningData)
	assert.False(t, got.HasSession)
	assert.Zero(t, got.Session)

	require.NoError(t, cs.SetPikkuUserID(ctx, "c1", "u-42"))
	require.NoError(t, sessions.Set(ctx, "u-42", Session{UserID: "u-42"}))
	got, err = chats.GetChannelWithSession(ctx, "c1")
	require.NoError(t, err)
	assert.Equal(t, "c1", got.ChannelID)
	assert.Equal(t, "chat", got.ChannelName)
	assert.Equal(t, "u-42", got.PikkuUserID)
	assert.True(t, got.HasSession)
	assert.Equal(t, Session{UserID: "u-42"}, got.Session)
	assert.False(t, got.CreatedAt.IsZero())

	c := dialRaw(t)
	defer c.Close()
	_, err = c.Do("SET", prefix+":session:u-42", `["not","a","session"]`)
	require.NoError(t, err)
	_, err = chats.GetChannelWithSession(ctx, "c1")
	assert.ErrorContains(t, err, "pikkuredis: get channel with session: channel c1: decode the session of pikku user u-42 as pikkuredis_test.Session")
	_, err = chats.GetChannelWithSession(ctx, "gone")
	assert.ErrorIs(t, err, pikkuredis.ErrChannelNotFound)

	var zero pikkuredis.Typed[Opening, Session]
	_, err = zero.GetChannelWithSession(ctx, "c1")
	assert.ErrorContains(t, err, "NewTyped")
}

// The script, called as another client would: a session key holding the
// empty string is no session, nil, as @pikku/redis reads it, not "".
func TestGetChannelWithSessionScriptReadsEmptyAsNone(t *testing.T) {
	src, err := os.ReadFile("scripts/get_channel_with_session.lua")
	require.NoError(t, err)
	prefix := newPrefix(t)
	c := dialRaw(t)
	defer c.Close()
	_, err = c.Do("HSET", prefix+":channel:c1", "channelId", "c1", "pikkuUserId", "u1")
	require.NoError(t, err)
	_, err = c.Do("SET", prefix+":session:u1", "")
	require.NoError(t, err)
	reply, err := redis.Values(c.Do("EVAL", string(src), 1, prefix+":channel:c1", prefix))
	require.NoError(t, err)
	require.Len(t, reply, 6)
	assert.Equal(t, []byte("u1"), reply[4])
	assert.Nil(t, reply[5], "the empty string is no session")
}

// Calls after Close return ErrClosed itself, the script calls too (a
// caller may compare with ==, as the other calls allow).
func TestEveryCallAfterCloseIsPlainErrClosed(t *testing.T) {
	ctx := ctxT(t)
	for name, open := range backends {
		cs, _, _ := open(t)
		require.NoError(t, cs.Close())
		_, err := cs.GetChannelWithSession(ctx, "c1")
		assert.Equal(t, pikkuredis.ErrClosed, err, "%s: GetChannelWithSession", name)
		assert.Equal(t, pikkuredis.ErrClosed, cs.SetState(ctx, "c1", 1), "%s: SetState", name)
		_, err = cs.GetChannel(ctx, "c1")
		assert.Equal(t, pikkuredis.ErrClosed, err, "%s: GetChannel", name)
	}
	ss, _ := freshSessions(t)
	require.NoError(t, ss.Close())
	_, _, err := ss.Get(ctx, "u")
	assert.Equal(t, pikkuredis.ErrClosed, err)
	assert.Equal(t, pikkuredis.ErrClosed, ss.Set(ctx, "u", 1))
	assert.Equal(t, pikkuredis.ErrClosed, ss.Clear(ctx, "u"))
}

package pikkuredis_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/gomodule/redigo/redis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pikkujs/pikkuredis"
)

// Fuzz targets (go test -fuzz) against the real Redis of TestMain. Each
// target opens its stores once, writes a fixed neighbour (another channel,
// topic or prefix) once, and then, per input: runs the calls, compares
// every key under the test's prefix with a model of what those calls must
// have written (keyspace_test.go: SCAN, then HGETALL, SMEMBERS or GET of
// each key), and removes what the input wrote, so that the keyspace is back to
// the neighbour alone. A long run does not grow Redis. Each fuzzing worker
// is a process of its own, with its own TestMain and so its own Redis
// unless REDIS_URL is set.
//
//	go test -run '^$' -fuzz '^FuzzChannelID$' -fuzztime 60s -fuzzminimizetime 5s .
//
// (Fuzzing pauses while an input that found new coverage is minimized, for
// up to -fuzzminimizetime, 60s by default: long at these targets' few
// hundred runs a second.)
//
// Properties, for every input:
//   - what goes in comes back exactly: ids, names, topics and Pikku user
//     ids byte for byte; JSON as JSON.stringify would write it (jsStringify
//     in jsonref_test.go, with the differences the README documents);
//   - the keys under the prefix are exactly the model's, with exactly its
//     contents: nothing lands in another channel's, topic's, user's or
//     prefix's keys;
//   - input the store refuses (an empty id, topic or Pikku user id, a value
//     encoding/json cannot encode) is an error wrapping ErrInvalidArgument
//     and writes nothing.

// The channel every target writes next to the fuzzed input (in its own
// keys, or under its own prefix), before fuzzing: what no input may touch.
const (
	neighbourID    = "fuzz-neighbour"
	neighbourTopic = "fuzz-neighbour-topic"
)

// writeChannel writes a channel with everything a channel can have (opening
// data, a session, a Pikku user id, a state, two subscriptions) through the
// stores, and its Pikku user's session (a SessionStore's), and the same
// into the model.
func writeChannel(t testing.TB, ctx context.Context, cs *pikkuredis.ChannelStore, hs *pikkuredis.EventHubStore, ss *pikkuredis.SessionStore, m layout, id string) {
	t.Helper()
	opening, session, state := map[string]any{"opened": id}, map[string]any{"user": "u-" + id}, []any{1.5, "<&>"}
	require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: id, ChannelName: "name of " + id, OpeningData: opening}))
	m.addChannel(id, "name of "+id, mustJS(t, opening))
	require.NoError(t, cs.SetUserSession(ctx, id, session))
	m.setField(id, "userSession", mustJS(t, session))
	require.NoError(t, cs.SetPikkuUserID(ctx, id, pikkuUserOf(id)))
	m.setField(id, "pikkuUserId", pikkuUserOf(id))
	userSession := map[string]any{"of": pikkuUserOf(id)}
	require.NoError(t, ss.Set(ctx, pikkuUserOf(id), userSession))
	m.setSession(pikkuUserOf(id), mustJS(t, userSession))
	require.NoError(t, cs.SetState(ctx, id, state))
	m.setField(id, "state", mustJS(t, state))
	for _, topic := range []string{neighbourTopic, "fuzz-other-topic"} {
		ok, err := hs.Subscribe(ctx, topic, id)
		require.NoError(t, err)
		require.True(t, ok)
		m.subscribe(topic, id)
	}
}

// pikkuUserOf is the Pikku user of a channel writeChannel writes.
func pikkuUserOf(id string) string { return "pikku user " + id }

// fuzzSetup opens the three stores on a fresh prefix, auto-pipelined (the
// path of Open*Store), writes the neighbour, and returns a raw connection
// and the layout that each input must leave behind.
func fuzzSetup(f *testing.F) (*pikkuredis.ChannelStore, *pikkuredis.EventHubStore, *pikkuredis.SessionStore, redis.Conn, layout) {
	cs, hs, prefix := stores(f)
	ss := keyspaceSessions(f, prefix)
	c := dialRaw(f)
	f.Cleanup(func() { c.Close() })
	base := layout{prefix: prefix, ks: keyspace{}}
	writeChannel(f, ctxT(f), cs, hs, ss, base, neighbourID)
	requireKeyspace(f, c, prefix+":*", base.ks, "the neighbour")
	return cs, hs, ss, c, base
}

// FuzzChannelID: any bytes as a channel id (and as a channel name and a
// Pikku user id) go through every call that takes an id and come back
// exactly; its keys are exactly prefix:channel:{id} and prefix:subs:{id}
// (and the topics it joined), and its user's prefix:session:{user}, which
// SessionStore Set, Get and Clear reach, and GetChannelWithSession's
// script reads (building the key in Lua); nothing else changes.
func FuzzChannelID(f *testing.F) {
	for _, s := range oddStrings() {
		f.Add(s, s)
	}
	f.Add("c1", "chat")
	f.Add("", "an empty id is refused")
	f.Add("x", "") // an empty name; SetPikkuUserID("") clears
	f.Add(":", ":channel:")
	f.Add("\x00", "\xff\xfe")
	f.Add(neighbourID+":x", "next to the neighbour's keys")
	f.Add(neighbourTopic, "the neighbour's topic as an id")
	f.Add("c2", "") // no Pikku user: the empty user id is refused
	f.Add("c3", "c3")
	f.Add("c4", ":session:")
	f.Add("c5", pikkuUserOf(neighbourID)+"\x00")
	f.Add("", "")

	cs, hs, ss, c, base := fuzzSetup(f)
	prefix, pattern := base.prefix, base.prefix+":*"
	f.Fuzz(func(t *testing.T, id, name string) {
		if id == neighbourID {
			t.Skip("the neighbour's own id")
		}
		if name == pikkuUserOf(neighbourID) {
			t.Skip("the neighbour's Pikku user")
		}
		ctx := ctxT(t)
		restoreOnFailure(t, c, pattern, base.ks)
		m := layout{prefix: prefix, ks: base.ks.clone()}
		if id == "" {
			requireRefused(t, ctx, cs, hs, id, "t")
			requireSessionRefused(t, ctx, ss, name)
			requireKeyspace(t, c, pattern, m.ks, "refused calls write nothing")
			return
		}

		opening := map[string]any{"id": id}
		require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: id, ChannelName: name, OpeningData: opening}))
		m.addChannel(id, name, mustJS(t, opening))
		got, err := cs.GetChannelAndSession(ctx, id)
		require.NoError(t, err)
		require.Equal(t, id, got.ChannelID)
		require.Equal(t, name, got.ChannelName)
		require.Equal(t, mustJS(t, opening), string(got.OpeningData))
		require.Equal(t, "{}", string(got.Session))
		withSession, err := cs.GetChannelWithSession(ctx, id)
		require.NoError(t, err)
		require.Equal(t, id, withSession.ChannelID)
		require.Equal(t, name, withSession.ChannelName)
		require.Equal(t, mustJS(t, opening), string(withSession.OpeningData))
		require.Empty(t, withSession.PikkuUserID)
		require.False(t, withSession.HasSession, "no Pikku user, no session")

		session := map[string]any{"name": name}
		require.NoError(t, cs.SetUserSession(ctx, id, session))
		m.setField(id, "userSession", mustJS(t, session))
		require.NoError(t, cs.SetPikkuUserID(ctx, id, name)) // "" clears it
		m.setField(id, "pikkuUserId", name)
		userSession := map[string]any{"user": name, "channel": id}
		if name == "" {
			requireSessionRefused(t, ctx, ss, name)
		} else {
			_, ok, err := ss.Get(ctx, name)
			require.NoError(t, err)
			require.False(t, ok, "no session before Set")
			require.NoError(t, ss.Set(ctx, name, userSession))
			m.setSession(name, mustJS(t, userSession))
		}
		require.NoError(t, cs.SetState(ctx, id, name))
		m.setField(id, "state", mustJS(t, name))
		for _, topic := range []string{"t", id, neighbourTopic} {
			ok, err := hs.Subscribe(ctx, topic, id)
			require.NoError(t, err)
			require.True(t, ok, "Subscribe(%q)", topic)
			m.subscribe(topic, id)
		}
		for _, want := range []bool{true, false} {
			ok, err := hs.Unsubscribe(ctx, "t", id)
			require.NoError(t, err)
			require.Equal(t, want, ok, "Unsubscribe: true only while subscribed")
		}
		m.unsubscribe("t", id)
		requireKeyspace(t, c, pattern, m.ks, "after the writes")

		got, err = cs.GetChannelAndSession(ctx, id)
		require.NoError(t, err)
		require.Equal(t, mustJS(t, session), string(got.Session))
		info, err := cs.GetChannel(ctx, id)
		require.NoError(t, err)
		require.Equal(t, id, info.ChannelID)
		require.Equal(t, name, info.PikkuUserID)
		withSession, err = cs.GetChannelWithSession(ctx, id)
		require.NoError(t, err)
		require.Equal(t, info, withSession.ChannelInfo)
		if name != "" {
			require.True(t, withSession.HasSession)
			require.Equal(t, mustJS(t, userSession), string(withSession.Session))
			stored, ok, err := ss.Get(ctx, name)
			require.NoError(t, err)
			require.True(t, ok)
			require.Equal(t, mustJS(t, userSession), string(stored))
		} else {
			require.False(t, withSession.HasSession)
			require.Nil(t, withSession.Session)
		}
		state, ok, err := cs.GetState(ctx, id)
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, mustJS(t, name), string(state))
		for _, topic := range []string{id, neighbourTopic} {
			ids, err := hs.GetChannelIDsForTopic(ctx, topic)
			require.NoError(t, err)
			require.ElementsMatch(t, m.members(topic), ids, "topic %q", topic)
		}

		require.NoError(t, cs.RemoveChannels(ctx, []string{id, id}))
		m.remove(id)
		_, err = cs.GetChannelAndSession(ctx, id)
		require.ErrorIs(t, err, pikkuredis.ErrChannelNotFound)
		require.True(t, strings.HasSuffix(err.Error(), ": "+id), "the error names the id: %q", err)
		_, err = cs.GetChannelWithSession(ctx, id)
		require.ErrorIs(t, err, pikkuredis.ErrChannelNotFound)
		require.True(t, strings.HasSuffix(err.Error(), ": "+id), "the error names the id: %q", err)
		require.ErrorIs(t, cs.SetUserSession(ctx, id, session), pikkuredis.ErrChannelNotFound)
		require.ErrorIs(t, cs.SetState(ctx, id, 1), pikkuredis.ErrChannelNotFound)
		requireKeyspace(t, c, pattern, m.ks, "RemoveChannels, then writes to the missing channel: the user's session stays")
		if name != "" {
			require.NoError(t, ss.Clear(ctx, name))
			m.clearSession(name)
		}
		requireKeyspace(t, c, pattern, base.ks, "only the neighbour is left")
	})
}

// FuzzTopic: any bytes as two topics. Subscribe, Unsubscribe, both reads
// and RemoveChannels (whose script builds each topic's key in Lua, from the
// prefix and the topic it finds in the channel's subs set) reach exactly
// prefix:topic:{topic}.
func FuzzTopic(f *testing.F) {
	for _, s := range oddStrings() {
		f.Add(s, s+"2")
	}
	f.Add("news", "sport")
	f.Add("same", "same")
	f.Add("", "an empty topic is refused")
	f.Add("x", "")
	f.Add(neighbourTopic, "shared with the neighbour")
	f.Add("a:topic:b", "a")
	f.Add("..", "%s")

	cs, hs, _, c, base := fuzzSetup(f)
	prefix, pattern := base.prefix, base.prefix+":*"
	const c1, c2, c3 = "fuzz-c1", "fuzz-c2", "fuzz-c3"
	f.Fuzz(func(t *testing.T, topic, topic2 string) {
		ctx := ctxT(t)
		restoreOnFailure(t, c, pattern, base.ks)
		m := layout{prefix: prefix, ks: base.ks.clone()}
		if topic == "" || topic2 == "" {
			requireRefused(t, ctx, cs, hs, c1, "")
			requireKeyspace(t, c, pattern, m.ks, "refused calls write nothing")
			return
		}

		for _, sub := range [][2]string{{topic, c1}, {topic2, c1}, {topic, c2}, {topic, c1}, {topic2, c3}} {
			ok, err := hs.Subscribe(ctx, sub[0], sub[1])
			require.NoError(t, err)
			require.True(t, ok, "Subscribe returns true, also the second time")
			m.subscribe(sub[0], sub[1])
		}
		for _, want := range []bool{true, false} {
			ok, err := hs.Unsubscribe(ctx, topic2, c3)
			require.NoError(t, err)
			require.Equal(t, want, ok, "Unsubscribe: true only while subscribed")
		}
		m.unsubscribe(topic2, c3)
		requireKeyspace(t, c, pattern, m.ks, "after Subscribe and Unsubscribe")
		requireTopicsRead := func(msg string, topics ...string) {
			for _, tp := range topics {
				ids, err := hs.GetChannelIDsForTopic(ctx, tp)
				require.NoError(t, err)
				require.NotNil(t, ids)
				require.ElementsMatch(t, m.members(tp), ids, "%s: GetChannelIDsForTopic(%q)", msg, tp)
				var scanned []string
				for id, err := range hs.ScanChannelIDsForTopic(ctx, tp) {
					require.NoError(t, err)
					scanned = append(scanned, id)
				}
				require.ElementsMatch(t, m.members(tp), scanned, "%s: ScanChannelIDsForTopic(%q)", msg, tp)
			}
		}
		requireTopicsRead("after Subscribe", topic, topic2, neighbourTopic)

		require.NoError(t, cs.RemoveChannels(ctx, []string{c1, c2, c3}))
		m.remove(c1)
		m.remove(c2)
		m.remove(c3)
		requireKeyspace(t, c, pattern, base.ks, "RemoveChannels reaches every topic key it builds in Lua")
		requireTopicsRead("after RemoveChannels", topic)
	})
}

// layoutsOverlap says whether a key of a store with prefix a can be a key
// of a store with prefix b. Keys are {prefix}:{kind}:{id, topic or user},
// kind being channel, topic, subs or session, with a non-empty tail, so
// two stores can share a key exactly when one's "{prefix}:{kind}:" starts
// with the other's, as with "app" and "app:channel" (whose key
// app:channel:topic:x is also app's channel "topic:x"). The layout of
// @pikku/redis cannot keep such prefixes apart.
func layoutsOverlap(a, b string) bool {
	kinds := []string{"channel", "topic", "subs", "session"}
	for _, ka := range kinds {
		for _, kb := range kinds {
			ha, hb := a+":"+ka+":", b+":"+kb+":"
			if strings.HasPrefix(ha, hb) || strings.HasPrefix(hb, ha) {
				return true
			}
		}
	}
	return false
}

func TestLayoutsOverlap(t *testing.T) {
	for _, p := range [][2]string{{"app", "app"}, {"app", "app:channel"}, {"app", "app:subs:x"}, {"a:topic", "a"}, {"", ":channel"}, {"app", "app:session"}, {"a:session:u", "a"}} {
		assert.True(t, layoutsOverlap(p[0], p[1]), "%q %q", p[0], p[1])
		assert.True(t, layoutsOverlap(p[1], p[0]), "%q %q", p[1], p[0])
	}
	for _, p := range [][2]string{{"app", "app2"}, {"app", "app:x"}, {"app", "app:chan"}, {"", "pikku"}, {"{pikku}", "pikku"}, {"app", "app:sessions"}} {
		assert.False(t, layoutsOverlap(p[0], p[1]), "%q %q", p[0], p[1])
		assert.False(t, layoutsOverlap(p[1], p[0]), "%q %q", p[1], p[0])
	}
}

// FuzzKeyPrefix: a store WithKeyPrefix(any bytes) writes only keys that
// start with its prefix and ":", and a store under a neighbour prefix
// holding the same channel, with the same id, topics, Pikku user and
// session, is untouched. GetChannelWithSession, whose script builds the
// session key in Lua from the prefix, reads this prefix's session.
// The prefixes are the test's random one followed by the fuzzed bytes, so
// that a shared Redis never sees keys outside the test's; prefixes that
// layoutsOverlap with the neighbour's are skipped.
func FuzzKeyPrefix(f *testing.F) {
	for _, s := range oddStrings() {
		f.Add(s)
	}
	for _, s := range []string{"", ":", "::", "{pikku}", "-neighbour", "-neighbour:channel", "-neighbour:x", ":channel", "*", "\x00", "\xff", "-neighbou", "-neighbour:session", ":session"} {
		f.Add(s)
	}

	root := newPrefix(f)
	pattern := root + "*" // root is hex: no glob characters
	c := dialRaw(f)
	f.Cleanup(func() {
		for _, k := range scanMatch(f, c, pattern) {
			c.Do("DEL", k)
		}
		c.Close()
	})
	pool := newPool(f)
	nb := layout{prefix: root + "-neighbour", ks: keyspace{}}
	ncs := pikkuredis.NewChannelStore(pool, pikkuredis.WithKeyPrefix(nb.prefix))
	nhs := pikkuredis.NewEventHubStore(pool, pikkuredis.WithKeyPrefix(nb.prefix))
	nss := pikkuredis.NewSessionStore(pool, pikkuredis.WithKeyPrefix(nb.prefix))
	writeChannel(f, ctxT(f), ncs, nhs, nss, nb, neighbourID)
	requireKeyspace(f, c, pattern, nb.ks, "the neighbour")

	f.Fuzz(func(t *testing.T, p string) {
		prefix := root + p
		if layoutsOverlap(prefix, nb.prefix) {
			t.Skip("the layout cannot keep these prefixes apart")
		}
		ctx := ctxT(t)
		restoreOnFailure(t, c, pattern, nb.ks)
		cs := pikkuredis.NewChannelStore(pool, pikkuredis.WithKeyPrefix(prefix))
		hs := pikkuredis.NewEventHubStore(pool, pikkuredis.WithKeyPrefix(prefix))
		ss := pikkuredis.NewSessionStore(pool, pikkuredis.WithKeyPrefix(prefix))
		defer cs.Close()
		defer hs.Close()
		defer ss.Close()
		m := layout{prefix: prefix, ks: nb.ks.clone()}

		writeChannel(t, ctx, cs, hs, ss, m, neighbourID) // the neighbour's id, topics and user, under this prefix
		got := dump(t, c, pattern)
		for k := range got {
			if _, ok := nb.ks[k]; !ok {
				require.True(t, strings.HasPrefix(k, prefix+":"), "key %q is not under %q", k, prefix+":")
			}
		}
		require.Equal(t, m.ks, got, "exactly the neighbour's keys and this store's")

		ch, err := cs.GetChannelAndSession(ctx, neighbourID)
		require.NoError(t, err)
		wantSession, _ := m.field(neighbourID, "userSession")
		require.Equal(t, wantSession, string(ch.Session))
		wantState, _ := m.field(neighbourID, "state")
		state, ok, err := cs.GetState(ctx, neighbourID)
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, wantState, string(state))
		ids, err := hs.GetChannelIDsForTopic(ctx, neighbourTopic)
		require.NoError(t, err)
		require.Equal(t, []string{neighbourID}, ids)
		// This prefix's session of the user, not the neighbour prefix's:
		// the two differ once this one is replaced.
		user := pikkuUserOf(neighbourID)
		mine := map[string]any{"prefix": prefix}
		require.NoError(t, ss.Set(ctx, user, mine))
		m.setSession(user, mustJS(t, mine))
		withSession, err := cs.GetChannelWithSession(ctx, neighbourID)
		require.NoError(t, err)
		require.Equal(t, user, withSession.PikkuUserID)
		require.True(t, withSession.HasSession)
		require.Equal(t, mustJS(t, mine), string(withSession.Session))
		stored, ok, err := ss.Get(ctx, user)
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, mustJS(t, mine), string(stored))
		requireKeyspace(t, c, pattern, m.ks, "Set under one prefix leaves the other's session of the same user")

		require.NoError(t, cs.RemoveChannels(ctx, []string{neighbourID}))
		require.NoError(t, ss.Clear(ctx, user))
		requireKeyspace(t, c, pattern, nb.ks, "RemoveChannels and Clear under one prefix leave the other's same channel and session")
	})
}

// fuzzValue builds one value of the kind the JSON fuzz target picks, from
// its other inputs.
func fuzzValue(kind uint8, s string, raw []byte, num float64, n int64, depth uint16) any {
	switch kind % 14 {
	case 0:
		return s
	case 1:
		return json.RawMessage(raw)
	case 2:
		return num
	case 3:
		return n
	case 4:
		return uint64(n)
	case 5: // nested depth levels deep, arrays and objects in turn
		v := any(map[string]any{"s": s, "n": num, "i": n})
		for i := 0; i < int(depth); i++ {
			if i%2 == 0 {
				v = []any{v}
			} else {
				v = map[string]any{s: v}
			}
		}
		return v
	case 6:
		return map[string]any{s: s, "n": num}
	case 7:
		return n%2 != 0
	case 8:
		return nil
	case 9:
		return []byte(s)
	case 10:
		return json.Number(s)
	case 11:
		return fuzzStruct{S: s, N: num, Q: n, R: raw, Hidden: s, Plain: n%2 == 0}
	case 12:
		if len(raw) == 0 {
			raw = nil // the corpus format has no nil []byte: null rather than refused
		}
		return []any{s, num, n, json.RawMessage(raw), nil, true, map[string]any{}}
	default: // what has no JSON form
		switch n % 3 {
		case 0:
			return make(chan int)
		case 1:
			return func() {}
		}
		return complex(num, 1)
	}
}

// FuzzJSON: any value as opening data, as a session, as a (0.12.18)
// state and as a SessionStore session is stored as JSON.stringify writes
// it (jsStringify), with the rules of @pikku/redis for values JavaScript
// reads as false ({} as opening data, no session; a state and a
// SessionStore session as themselves), and reads back exactly, also
// through GetChannelWithSession; a value with no JSON form is refused and
// writes nothing.
func FuzzJSON(f *testing.F) {
	for _, s := range oddStrings() {
		f.Add(uint8(0), s, []byte(`"`+s+`"`), 1.5, int64(1), uint16(3))
		f.Add(uint8(6), s, []byte(nil), 0.0, int64(0), uint16(0))
	}
	for kind := range uint8(14) {
		f.Add(kind, "<a href='x'>&amp;</a>\u2028\u2029", []byte(`{"a":[1,2,{"b":null}]}`), 0.1, int64(1)<<53+1, uint16(8))
		f.Add(kind, "", []byte(nil), 0.0, int64(0), uint16(0))
	}
	f.Add(uint8(1), "", []byte(" { \"a\" : \"\\u2028\" } "), 0.0, int64(0), uint16(0))
	f.Add(uint8(1), "", []byte("{bad"), 0.0, int64(0), uint16(0))
	f.Add(uint8(1), "", []byte(""), 0.0, int64(0), uint16(0))
	f.Add(uint8(2), "", []byte(nil), math.NaN(), int64(0), uint16(0))
	f.Add(uint8(2), "", []byte(nil), math.Inf(-1), int64(0), uint16(0))
	f.Add(uint8(2), "", []byte(nil), math.Copysign(0, -1), int64(0), uint16(0))
	f.Add(uint8(2), "", []byte(nil), 1e21, int64(0), uint16(0))
	f.Add(uint8(2), "", []byte(nil), 5e-324, int64(0), uint16(0))
	f.Add(uint8(3), "", []byte(nil), 0.0, int64(math.MinInt64), uint16(0))
	f.Add(uint8(5), "k", []byte(nil), 2.0, int64(2), uint16(maxJSONDepth-1))
	f.Add(uint8(5), "k", []byte(nil), 2.0, int64(2), uint16(maxJSONDepth))
	f.Add(uint8(10), "-0.0e-0", []byte(nil), 0.0, int64(0), uint16(0))
	f.Add(uint8(10), "01", []byte(nil), 0.0, int64(0), uint16(0))

	cs, _, ss, c, base := fuzzSetup(f)
	prefix, pattern := base.prefix, base.prefix+":*"
	const id, user = "fuzz-json", "fuzz-json-user"
	f.Fuzz(func(t *testing.T, kind uint8, s string, raw []byte, num float64, n int64, depth uint16) {
		ctx := ctxT(t)
		restoreOnFailure(t, c, pattern, base.ks)
		m := layout{prefix: prefix, ks: base.ks.clone()}
		v := fuzzValue(kind, s, raw, num, n, depth)
		want, wantErr := jsStringify(v)

		err := cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: id, ChannelName: "json", OpeningData: v})
		if wantErr != nil {
			requireInvalid(t, err, fmt.Sprintf("AddChannel (%v)", wantErr))
			requireKeyspace(t, c, pattern, m.ks, "a refused AddChannel writes nothing")
			require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: id, ChannelName: "json"}))
			m.addChannel(id, "json", "{}")
		} else {
			require.NoError(t, err)
			if jsFalsy(want) {
				m.addChannel(id, "json", "{}")
			} else {
				m.addChannel(id, "json", string(want))
			}
		}
		// A session, a state and a user's session for v to replace, clear
		// or leave alone.
		require.NoError(t, cs.SetUserSession(ctx, id, map[string]string{"before": "session"}))
		m.setField(id, "userSession", `{"before":"session"}`)
		require.NoError(t, cs.SetState(ctx, id, map[string]string{"before": "state"}))
		m.setField(id, "state", `{"before":"state"}`)
		require.NoError(t, cs.SetPikkuUserID(ctx, id, user))
		m.setField(id, "pikkuUserId", user)
		require.NoError(t, ss.Set(ctx, user, map[string]string{"before": "user session"}))
		m.setSession(user, `{"before":"user session"}`)

		errSession, errState, errUserSession := cs.SetUserSession(ctx, id, v), cs.SetState(ctx, id, v), ss.Set(ctx, user, v)
		if wantErr != nil {
			requireInvalid(t, errSession, "SetUserSession")
			requireInvalid(t, errState, "SetState")
			requireInvalid(t, errUserSession, "SessionStore.Set")
		} else {
			require.NoError(t, errSession)
			require.NoError(t, errState)
			require.NoError(t, errUserSession)
			if jsFalsy(want) {
				m.setField(id, "userSession", "")
			} else {
				m.setField(id, "userSession", string(want))
			}
			m.setField(id, "state", string(want))
			m.setSession(user, string(want))
		}
		requireKeyspace(t, c, pattern, m.ks, "the stored bytes")

		got, err := cs.GetChannelAndSession(ctx, id)
		require.NoError(t, err)
		wantOpening, _ := m.field(id, "openingData")
		require.Equal(t, wantOpening, string(got.OpeningData))
		wantSession, ok := m.field(id, "userSession")
		if !ok {
			wantSession = "{}"
		}
		require.Equal(t, wantSession, string(got.Session))
		state, ok, err := cs.GetState(ctx, id)
		require.NoError(t, err)
		if wantState, _ := m.field(id, "state"); wantState == "null" {
			require.False(t, ok, "a null state is no state")
			require.Nil(t, state)
		} else {
			require.True(t, ok)
			require.Equal(t, wantState, string(state))
		}
		// A user's session reads back as stored, null included.
		wantUserSession := *m.ks[m.sessionKey(user)].String
		userSession, ok, err := ss.Get(ctx, user)
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, wantUserSession, string(userSession))
		withSession, err := cs.GetChannelWithSession(ctx, id)
		require.NoError(t, err)
		require.Equal(t, wantOpening, string(withSession.OpeningData))
		require.Equal(t, user, withSession.PikkuUserID)
		require.True(t, withSession.HasSession)
		require.Equal(t, wantUserSession, string(withSession.Session))

		require.NoError(t, cs.RemoveChannels(ctx, []string{id}))
		require.NoError(t, ss.Clear(ctx, user))
		requireKeyspace(t, c, pattern, base.ks, "RemoveChannels and Clear leave only the neighbour")
	})
}

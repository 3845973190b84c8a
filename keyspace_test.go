package pikkuredis_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pikkujs/pikkuredis"
)

// What the fuzz targets and the limits tests check the keyspace with: a
// model of the keys the stores must have written, the real keys read back
// in a few round trips, and the checks of refused input. At the end, the
// keyspace tests of Pikku user ids (TestKeyspace*).

// entry is one Redis key as the model holds it: a hash, a set, or a
// string (a SessionStore session; Hash and Set are nil then).
type entry struct {
	Hash   map[string]string
	Set    map[string]bool
	String *string
}

// keyspace maps each key to its content. Redis deletes a hash or set
// when its last field or member goes; so does the model.
type keyspace map[string]entry

func (ks keyspace) clone() keyspace {
	out := make(keyspace, len(ks))
	for k, e := range ks {
		var c entry
		if e.Hash != nil {
			c.Hash = make(map[string]string, len(e.Hash))
			for f, v := range e.Hash {
				c.Hash[f] = v
			}
		}
		if e.Set != nil {
			c.Set = make(map[string]bool, len(e.Set))
			for m := range e.Set {
				c.Set[m] = true
			}
		}
		c.String = e.String // never written through: replaced whole
		out[k] = c
	}
	return out
}

// createdAtMark stands for any plausible createdAt in the model; dumps
// replace a plausible stored one by it.
const createdAtMark = "<createdAt: milliseconds since the epoch>"

// layout is the model of one store's keys: prefix:channel:id and so on, as
// keys in store.go builds them.
type layout struct {
	prefix string
	ks     keyspace
}

func (l layout) channelKey(id string) string  { return l.prefix + ":channel:" + id }
func (l layout) topicKey(topic string) string { return l.prefix + ":topic:" + topic }
func (l layout) subsKey(id string) string     { return l.prefix + ":subs:" + id }

// sessionKey is a SessionStore's key, {prefix}:session:{pikkuUserId}.
func (l layout) sessionKey(userID string) string { return l.prefix + ":session:" + userID }

// setSession is SessionStore.Set (SET): the key holds the JSON text.
func (l layout) setSession(userID, json string) {
	l.ks[l.sessionKey(userID)] = entry{String: &json}
}

// clearSession is SessionStore.Clear (DEL).
func (l layout) clearSession(userID string) { delete(l.ks, l.sessionKey(userID)) }

func (l layout) addChannel(id, name, openingData string) {
	k := l.channelKey(id)
	h := l.ks[k].Hash
	if h == nil {
		h = map[string]string{}
		l.ks[k] = entry{Hash: h}
	}
	h["channelId"], h["channelName"], h["openingData"], h["createdAt"] = id, name, openingData, createdAtMark
}

// setField is set_channel_field.lua: only on an existing channel; the
// empty value deletes the field. It says whether the channel exists.
func (l layout) setField(id, field, value string) bool {
	h := l.ks[l.channelKey(id)].Hash
	if _, ok := h["channelId"]; !ok {
		return false
	}
	if value == "" {
		delete(h, field)
	} else {
		h[field] = value
	}
	return true
}

func (l layout) field(id, field string) (string, bool) {
	v, ok := l.ks[l.channelKey(id)].Hash[field]
	return v, ok
}

func (l layout) sadd(key, member string) {
	s := l.ks[key].Set
	if s == nil {
		s = map[string]bool{}
		l.ks[key] = entry{Set: s}
	}
	s[member] = true
}

func (l layout) srem(key, member string) bool {
	s := l.ks[key].Set
	was := s[member]
	delete(s, member)
	if s != nil && len(s) == 0 {
		delete(l.ks, key)
	}
	return was
}

func (l layout) subscribe(topic, id string) {
	l.sadd(l.topicKey(topic), id)
	l.sadd(l.subsKey(id), topic)
}

func (l layout) unsubscribe(topic, id string) bool {
	was := l.srem(l.topicKey(topic), id)
	l.srem(l.subsKey(id), topic)
	return was
}

// remove is remove_channels.lua for one id.
func (l layout) remove(id string) {
	for topic := range l.ks[l.subsKey(id)].Set {
		l.srem(l.topicKey(topic), id)
	}
	delete(l.ks, l.subsKey(id))
	delete(l.ks, l.channelKey(id))
}

func (l layout) members(topic string) []string {
	var out []string
	for id := range l.ks[l.topicKey(topic)].Set {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// --- Reading the real keyspace ---

// scanMatch lists every key matching pattern (SCAN, all pages).
func scanMatch(t testing.TB, c redis.Conn, pattern string) []string {
	t.Helper()
	var out []string
	cursor := "0"
	for {
		reply, err := redis.Values(c.Do("SCAN", cursor, "MATCH", pattern, "COUNT", 1000))
		require.NoError(t, err, "SCAN")
		cursor, _ = redis.String(reply[0], nil)
		keys, _ := redis.Strings(reply[1], nil)
		out = append(out, keys...)
		if cursor == "0" {
			return out
		}
	}
}

// dump reads every key matching pattern with its content, in three round
// trips however many keys there are (SCAN aside). A plausible createdAt
// reads as createdAtMark. A key of another type than hash, set or string
// is an error.
func dump(t testing.TB, c redis.Conn, pattern string) keyspace {
	t.Helper()
	keys := scanMatch(t, c, pattern)
	for _, k := range keys {
		c.Send("TYPE", k)
	}
	require.NoError(t, c.Flush())
	types := make([]string, len(keys))
	var errs []error
	for i := range keys {
		var err error
		types[i], err = redis.String(c.Receive())
		errs = append(errs, err)
	}
	require.NoError(t, errors.Join(errs...), "TYPE")
	for i, k := range keys {
		switch types[i] {
		case "hash":
			c.Send("HGETALL", k)
		case "set":
			c.Send("SMEMBERS", k)
		case "string":
			c.Send("GET", k)
		default:
			c.Send("TYPE", k)
		}
	}
	require.NoError(t, c.Flush())
	ks := keyspace{}
	now := time.Now().UnixMilli()
	for i, k := range keys {
		switch types[i] {
		case "hash":
			h, err := redis.StringMap(c.Receive())
			errs = append(errs, err)
			if ms, err := strconv.ParseInt(h["createdAt"], 10, 64); err == nil && ms > now-3600_000 && ms <= now+60_000 {
				h["createdAt"] = createdAtMark
			}
			ks[k] = entry{Hash: h}
		case "set":
			m, err := redis.Strings(c.Receive())
			errs = append(errs, err)
			s := map[string]bool{}
			for _, x := range m {
				s[x] = true
			}
			ks[k] = entry{Set: s}
		case "string":
			v, err := redis.String(c.Receive())
			errs = append(errs, err)
			ks[k] = entry{String: &v}
		default:
			c.Receive()
			errs = append(errs, fmt.Errorf("key %q is a %s: the stores write only hashes, sets and strings", k, types[i]))
		}
	}
	require.NoError(t, errors.Join(errs...), "reading the keys")
	return ks
}

// requireKeyspace checks that the keys matching pattern are exactly want's,
// with exactly its contents.
func requireKeyspace(t testing.TB, c redis.Conn, pattern string, want keyspace, msg string) {
	t.Helper()
	got := dump(t, c, pattern)
	if !assert.Equal(t, want, got, msg) {
		t.FailNow()
	}
}

// restoreOnFailure puts the keys matching pattern back to want when the
// input failed, so that the next one (the next seed, in a plain go test)
// starts from the neighbour alone; an input that passed has already shown
// that they are.
func restoreOnFailure(t *testing.T, c redis.Conn, pattern string, want keyspace) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		got := dump(t, c, pattern)
		for k, e := range got {
			if w, ok := want[k]; !ok || !assert.ObjectsAreEqual(w, e) {
				c.Do("DEL", k)
			}
		}
		now := strconv.FormatInt(time.Now().UnixMilli(), 10)
		for k, w := range want {
			if e, ok := got[k]; ok && assert.ObjectsAreEqual(w, e) {
				continue
			}
			for f, v := range w.Hash {
				if v == createdAtMark {
					v = now
				}
				c.Do("HSET", k, f, v)
			}
			for m := range w.Set {
				c.Do("SADD", k, m)
			}
			if w.String != nil {
				c.Do("SET", k, *w.String)
			}
		}
	})
}

// requireInvalid checks that err is the store's refusal of bad input.
func requireInvalid(t testing.TB, err error, what string) {
	t.Helper()
	require.Error(t, err, what)
	require.ErrorIs(t, err, pikkuredis.ErrInvalidArgument, what)
	require.True(t, strings.HasPrefix(err.Error(), "pikkuredis: "), "%s: %v", what, err)
}

// requireRefused makes every call that takes a channel id or a topic,
// with the given id and topic, and checks that those given an empty one
// refuse it with ErrInvalidArgument (the caller checks that nothing was
// written). Calls given neither empty are not made.
func requireRefused(t *testing.T, ctx context.Context, cs *pikkuredis.ChannelStore, hs *pikkuredis.EventHubStore, id, topic string) {
	t.Helper()
	byID := map[string]func() error{
		"AddChannel":         func() error { return cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: id, ChannelName: "n"}) },
		"SetUserSession":     func() error { return cs.SetUserSession(ctx, id, map[string]int{"a": 1}) },
		"SetUserSession nil": func() error { return cs.SetUserSession(ctx, id, nil) },
		"GetChannelAndSession": func() error {
			_, err := cs.GetChannelAndSession(ctx, id)
			return err
		},
		"SetPikkuUserID": func() error { return cs.SetPikkuUserID(ctx, id, "u") },
		"GetChannel": func() error {
			_, err := cs.GetChannel(ctx, id)
			return err
		},
		"GetChannelWithSession": func() error {
			_, err := cs.GetChannelWithSession(ctx, id)
			return err
		},
		"SetState":   func() error { return cs.SetState(ctx, id, 1) },
		"ClearState": func() error { return cs.ClearState(ctx, id) },
		"GetState": func() error {
			_, _, err := cs.GetState(ctx, id)
			return err
		},
		// The valid id first: nothing is removed before the list is checked.
		"RemoveChannels": func() error { return cs.RemoveChannels(ctx, []string{"fuzz-refused-ok", id}) },
	}
	byTopic := map[string]func() error{
		"GetChannelIDsForTopic": func() error {
			_, err := hs.GetChannelIDsForTopic(ctx, topic)
			return err
		},
		"ScanChannelIDsForTopic": func() error {
			n := 0
			var last error
			for _, err := range hs.ScanChannelIDsForTopic(ctx, topic) {
				n++
				last = err
			}
			if n != 1 {
				return fmt.Errorf("yielded %d times, want once", n)
			}
			return last
		},
	}
	both := map[string]func() error{
		"Subscribe": func() error {
			_, err := hs.Subscribe(ctx, topic, id)
			return err
		},
		"Unsubscribe": func() error {
			_, err := hs.Unsubscribe(ctx, topic, id)
			return err
		},
	}
	run := func(calls map[string]func() error) {
		for name, call := range calls {
			requireInvalid(t, call(), fmt.Sprintf("%s(id %q, topic %q)", name, id, topic))
		}
	}
	if id == "" {
		run(byID)
	}
	if topic == "" {
		run(byTopic)
	}
	if id == "" || topic == "" {
		run(both)
	}
}

// requireSessionRefused makes every SessionStore call with the Pikku user
// id userID, when it is empty, and checks that each refuses it with
// ErrInvalidArgument (the caller checks that nothing was written).
func requireSessionRefused(t *testing.T, ctx context.Context, ss *pikkuredis.SessionStore, userID string) {
	t.Helper()
	if userID != "" {
		return
	}
	calls := map[string]func() error{
		"Set":     func() error { return ss.Set(ctx, userID, map[string]int{"a": 1}) },
		"Set nil": func() error { return ss.Set(ctx, userID, nil) },
		"Get": func() error {
			session, ok, err := ss.Get(ctx, userID)
			if err != nil && (session != nil || ok) {
				return fmt.Errorf("returned %q, %v beside its error %v", session, ok, err) // not ErrInvalidArgument
			}
			return err
		},
		"Clear": func() error { return ss.Clear(ctx, userID) },
	}
	for name, call := range calls {
		requireInvalid(t, call(), fmt.Sprintf("SessionStore.%s(user %q)", name, userID))
	}
}

// keyspaceSessions opens a SessionStore on the Redis of TestMain under
// prefix, auto-pipelined (the path of OpenSessionStore), closed when the
// test ends.
func keyspaceSessions(t testing.TB, prefix string, opts ...pikkuredis.Option) *pikkuredis.SessionStore {
	t.Helper()
	ss, err := pikkuredis.OpenSessionStore(redisURL, append([]pikkuredis.Option{pikkuredis.WithKeyPrefix(prefix)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { ss.Close() })
	return ss
}

// TestKeyspaceOddPikkuUserIDs: every odd string (oddStrings: NUL bytes,
// globs, quotes, Lua's "%d ..'", unicode, 4 KB...) as a Pikku user id
// goes through SessionStore Set (with and without a TTL), Get and Clear,
// and as a channel's pikkuUserId through GetChannelWithSession, whose
// script builds the session key in Lua from it. Each reaches exactly
// {prefix}:session:{id}, byte for byte (checked with a raw connection:
// what SET wrote there, and what the script reads from there), and
// nothing else under the prefix changes: not the neighbour's channel, nor
// its user's session.
func TestKeyspaceOddPikkuUserIDs(t *testing.T) {
	cs, hs, prefix := stores(t)
	ss := keyspaceSessions(t, prefix)
	const ttl = time.Minute
	ssTTL := keyspaceSessions(t, prefix, pikkuredis.WithSessionTTL(ttl))
	ctx := ctxT(t)
	c := dialRaw(t)
	defer c.Close()
	pattern := prefix + ":*"
	base := layout{prefix: prefix, ks: keyspace{}}
	writeChannel(t, ctx, cs, hs, ss, base, neighbourID)
	requireKeyspace(t, c, pattern, base.ks, "the neighbour")
	leftMS := func(key string) int64 {
		ms, err := redis.Int64(c.Do("PTTL", key))
		require.NoError(t, err)
		return ms
	}

	for name, user := range oddStrings() {
		t.Run(name, func(t *testing.T) {
			restoreOnFailure(t, c, pattern, base.ks)
			m := layout{prefix: prefix, ks: base.ks.clone()}
			key := prefix + ":session:" + user

			session, ok, err := ss.Get(ctx, user)
			require.NoError(t, err)
			require.False(t, ok)
			require.Nil(t, session)

			value := map[string]any{"user": user}
			require.NoError(t, ss.Set(ctx, user, value))
			m.setSession(user, mustJS(t, value))
			requireKeyspace(t, c, pattern, m.ks, "Set writes {prefix}:session:{id}")
			require.Equal(t, int64(-1), leftMS(key), "a store without WithSessionTTL writes no TTL")
			session, ok, err = ss.Get(ctx, user)
			require.NoError(t, err)
			require.True(t, ok)
			require.Equal(t, mustJS(t, value), string(session))

			// The same odd string as a channel id, whose pikkuUserId it is.
			require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: user, ChannelName: name}))
			m.addChannel(user, name, "{}")
			got, err := cs.GetChannelWithSession(ctx, user)
			require.NoError(t, err)
			require.Equal(t, user, got.ChannelID)
			require.Empty(t, got.PikkuUserID)
			require.False(t, got.HasSession, "a channel without a Pikku user has no session")
			require.Nil(t, got.Session)
			require.NoError(t, cs.SetPikkuUserID(ctx, user, user))
			m.setField(user, "pikkuUserId", user)
			got, err = cs.GetChannelWithSession(ctx, user)
			require.NoError(t, err)
			require.Equal(t, user, got.ChannelID)
			require.Equal(t, user, got.PikkuUserID)
			require.True(t, got.HasSession)
			require.Equal(t, mustJS(t, value), string(got.Session))

			// The script reads exactly that key: what a raw SET puts
			// there is what it returns.
			planted := `{"planted":` + strconv.Quote(name) + `}`
			_, err = c.Do("SET", key, planted)
			require.NoError(t, err)
			m.setSession(user, planted)
			got, err = cs.GetChannelWithSession(ctx, user)
			require.NoError(t, err)
			require.True(t, got.HasSession)
			require.Equal(t, planted, string(got.Session))
			session, ok, err = ss.Get(ctx, user)
			require.NoError(t, err)
			require.True(t, ok)
			require.Equal(t, planted, string(session))

			// With a TTL: the same key, now with it.
			require.NoError(t, ssTTL.Set(ctx, user, value))
			m.setSession(user, mustJS(t, value))
			requireKeyspace(t, c, pattern, m.ks, "Set WithSessionTTL writes {prefix}:session:{id}")
			left := leftMS(key)
			require.True(t, left > 0 && left <= ttl.Milliseconds(), "PTTL %d, want (0, %d]", left, ttl.Milliseconds())

			for range 2 { // clearing what is gone does nothing
				require.NoError(t, ss.Clear(ctx, user))
				m.clearSession(user)
				requireKeyspace(t, c, pattern, m.ks, "Clear deletes {prefix}:session:{id} alone")
			}
			session, ok, err = ss.Get(ctx, user)
			require.NoError(t, err)
			require.False(t, ok)
			require.Nil(t, session)
			got, err = cs.GetChannelWithSession(ctx, user)
			require.NoError(t, err)
			require.Equal(t, user, got.PikkuUserID)
			require.False(t, got.HasSession, "the session was cleared")
			require.Nil(t, got.Session)

			require.NoError(t, cs.RemoveChannels(ctx, []string{user}))
			requireKeyspace(t, c, pattern, base.ks, "only the neighbour is left")
		})
	}
}

// TestKeyspaceRefusesEmptyPikkuUserID: the empty Pikku user id is refused
// by SessionStore Set, Get and Clear, and the empty channel id by
// GetChannelWithSession (with every other call that takes one), each
// with ErrInvalidArgument, writing nothing. A channel whose pikkuUserId
// field is empty has no user, so no session: the script does not read
// {prefix}:session: (which no store writes, planted here).
func TestKeyspaceRefusesEmptyPikkuUserID(t *testing.T) {
	cs, hs, prefix := stores(t)
	ss := keyspaceSessions(t, prefix)
	ctx := ctxT(t)
	c := dialRaw(t)
	defer c.Close()
	pattern := prefix + ":*"
	m := layout{prefix: prefix, ks: keyspace{}}
	writeChannel(t, ctx, cs, hs, ss, m, neighbourID)
	requireKeyspace(t, c, pattern, m.ks, "the neighbour")

	requireSessionRefused(t, ctx, ss, "")
	requireRefused(t, ctx, cs, hs, "", "t")
	requireKeyspace(t, c, pattern, m.ks, "refused calls write nothing")

	_, err := c.Do("SET", m.sessionKey(""), `{"planted":"for no user"}`)
	require.NoError(t, err)
	_, err = c.Do("HSET", m.channelKey(neighbourID), "pikkuUserId", "")
	require.NoError(t, err)
	got, err := cs.GetChannelWithSession(ctx, neighbourID)
	require.NoError(t, err)
	assert.Equal(t, neighbourID, got.ChannelID)
	assert.Empty(t, got.PikkuUserID)
	assert.False(t, got.HasSession)
	assert.Nil(t, got.Session)
}

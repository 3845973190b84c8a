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
// in a few round trips, and the checks of refused input.

// entry is one Redis key as the model holds it: a hash or a set.
type entry struct {
	Hash map[string]string
	Set  map[string]bool
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
// reads as createdAtMark.
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
		default:
			c.Receive()
			errs = append(errs, fmt.Errorf("key %q is a %s: the stores write only hashes and sets", k, types[i]))
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

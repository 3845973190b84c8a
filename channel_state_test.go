package pikkuredis_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pikkujs/pikkuredis"
)

// The @pikku/redis 0.12.18 API: pikkuUserId and state on the channel hash.

func TestPikkuUserIDSetGetClear(t *testing.T) {
	cs, _, prefix := stores(t)
	ctx := ctxT(t)
	c := dialRaw(t)
	defer c.Close()
	before := time.Now().Truncate(time.Millisecond)
	require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "c1", ChannelName: "chat", OpeningData: map[string]string{"room": "lobby"}}))

	got, err := cs.GetChannel(ctx, "c1")
	require.NoError(t, err)
	assert.Equal(t, "c1", got.ChannelID)
	assert.Equal(t, "chat", got.ChannelName)
	assert.Equal(t, `{"room":"lobby"}`, string(got.OpeningData))
	assert.Equal(t, "", got.PikkuUserID, "no user id until one is set")
	assert.False(t, got.CreatedAt.Before(before))

	require.NoError(t, cs.SetPikkuUserID(ctx, "c1", "user-1"))
	raw, err := redis.String(c.Do("HGET", prefix+":channel:c1", "pikkuUserId"))
	require.NoError(t, err)
	assert.Equal(t, "user-1", raw, "plain text, not JSON")
	got, err = cs.GetChannel(ctx, "c1")
	require.NoError(t, err)
	assert.Equal(t, "user-1", got.PikkuUserID)

	require.NoError(t, cs.SetPikkuUserID(ctx, "c1", "user-2"))
	got, err = cs.GetChannel(ctx, "c1")
	require.NoError(t, err)
	assert.Equal(t, "user-2", got.PikkuUserID)

	require.NoError(t, cs.SetPikkuUserID(ctx, "c1", ""))
	n, err := redis.Int(c.Do("HEXISTS", prefix+":channel:c1", "pikkuUserId"))
	require.NoError(t, err)
	assert.Equal(t, 0, n, "the empty string deletes the field")
	got, err = cs.GetChannel(ctx, "c1")
	require.NoError(t, err)
	assert.Equal(t, "", got.PikkuUserID)
}

func TestGetChannelAbsentOpeningDataIsEmptyObject(t *testing.T) {
	cs, _, prefix := stores(t)
	c := dialRaw(t)
	defer c.Close()
	// A hash written by another client without openingData or createdAt.
	_, err := c.Do("HSET", prefix+":channel:bare", "channelId", "bare", "channelName", "n")
	require.NoError(t, err)
	got, err := cs.GetChannel(ctxT(t), "bare")
	require.NoError(t, err)
	assert.Equal(t, "{}", string(got.OpeningData))
	assert.True(t, got.CreatedAt.IsZero())
}

func TestStateSetGetClear(t *testing.T) {
	cs, _, prefix := stores(t)
	ctx := ctxT(t)
	c := dialRaw(t)
	defer c.Close()
	require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "c1"}))
	stored := func() (string, bool) {
		v, err := redis.String(c.Do("HGET", prefix+":channel:c1", "state"))
		if err == redis.ErrNil {
			return "", false
		}
		require.NoError(t, err)
		return v, true
	}

	_, ok, err := cs.GetState(ctx, "c1")
	require.NoError(t, err)
	assert.False(t, ok, "no state until one is set")

	require.NoError(t, cs.SetState(ctx, "c1", map[string]any{"step": 2, "html": "<i>"}))
	raw, _ := stored()
	assert.Equal(t, `{"html":"<i>","step":2}`, raw)
	st, ok, err := cs.GetState(ctx, "c1")
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, raw, string(st))

	// As JSON.stringify(state ?? null): falsy values are states like any
	// other, and nil is stored as null, which reads as no state.
	for _, v := range []struct {
		in   any
		want string
		ok   bool
	}{{false, "false", true}, {0, "0", true}, {"", `""`, true}, {nil, "null", false}} {
		require.NoError(t, cs.SetState(ctx, "c1", v.in))
		raw, present := stored()
		assert.True(t, present)
		assert.Equal(t, v.want, raw, "state %#v", v.in)
		st, ok, err := cs.GetState(ctx, "c1")
		require.NoError(t, err)
		assert.Equal(t, v.ok, ok, "state %#v", v.in)
		if v.ok {
			assert.Equal(t, v.want, string(st))
		} else {
			assert.Nil(t, st)
		}
	}

	require.NoError(t, cs.SetState(ctx, "c1", []int{1}))
	require.NoError(t, cs.ClearState(ctx, "c1"))
	_, present := stored()
	assert.False(t, present, "ClearState deletes the field")
	_, ok, err = cs.GetState(ctx, "c1")
	require.NoError(t, err)
	assert.False(t, ok)
}

// Both APIs write the same hash without disturbing each other, and
// RemoveChannels takes every field with it.
func TestBothAPIsShareTheHash(t *testing.T) {
	cs, _, prefix := stores(t)
	ctx := ctxT(t)
	c := dialRaw(t)
	defer c.Close()
	require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "c1", ChannelName: "chat"}))
	require.NoError(t, cs.SetUserSession(ctx, "c1", map[string]string{"userId": "u1"}))
	require.NoError(t, cs.SetPikkuUserID(ctx, "c1", "u1"))
	require.NoError(t, cs.SetState(ctx, "c1", map[string]int{"n": 1}))

	h, err := redis.StringMap(c.Do("HGETALL", prefix+":channel:c1"))
	require.NoError(t, err)
	_, err = strconv.ParseInt(h["createdAt"], 10, 64)
	require.NoError(t, err)
	delete(h, "createdAt")
	assert.Equal(t, map[string]string{
		"channelId": "c1", "channelName": "chat", "openingData": "{}",
		"userSession": `{"userId":"u1"}`, "pikkuUserId": "u1", "state": `{"n":1}`,
	}, h)

	got, err := cs.GetChannelAndSession(ctx, "c1")
	require.NoError(t, err)
	assert.Equal(t, `{"userId":"u1"}`, string(got.Session))
	require.NoError(t, cs.SetUserSession(ctx, "c1", nil))
	info, err := cs.GetChannel(ctx, "c1")
	require.NoError(t, err)
	assert.Equal(t, "u1", info.PikkuUserID, "clearing the session keeps the user id")
	st, ok, err := cs.GetState(ctx, "c1")
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, `{"n":1}`, string(st))

	require.NoError(t, cs.RemoveChannels(ctx, []string{"c1"}))
	assert.Empty(t, scanKeys(t, c, prefix))
}

func TestChannelStateOnMissingChannelWritesNothing(t *testing.T) {
	cs, _, prefix := stores(t)
	ctx := ctxT(t)
	c := dialRaw(t)
	defer c.Close()
	writes := map[string]func() error{
		"set user id":   func() error { return cs.SetPikkuUserID(ctx, "ghost", "u1") },
		"clear user id": func() error { return cs.SetPikkuUserID(ctx, "ghost", "") },
		"set state":     func() error { return cs.SetState(ctx, "ghost", map[string]int{"n": 1}) },
		"clear state":   func() error { return cs.ClearState(ctx, "ghost") },
		"get channel":   func() error { _, err := cs.GetChannel(ctx, "ghost"); return err },
	}
	for name, call := range writes {
		err := call()
		require.ErrorIs(t, err, pikkuredis.ErrChannelNotFound, name)
		assert.Equal(t, "pikkuredis: channel not found: ghost", err.Error(), name)
	}
	// GetState reads as @pikku/redis does: no channel is no state.
	st, ok, err := cs.GetState(ctx, "ghost")
	require.NoError(t, err)
	assert.False(t, ok)
	assert.Nil(t, st)
	assert.Empty(t, scanKeys(t, c, prefix))

	// A hash holding only a stray field (as @pikku/redis's setState on a
	// missing channel leaves) is still not a channel, and is not written.
	_, err = c.Do("HSET", prefix+":channel:half", "state", `{"n":1}`)
	require.NoError(t, err)
	require.ErrorIs(t, cs.SetPikkuUserID(ctx, "half", "u1"), pikkuredis.ErrChannelNotFound)
	require.ErrorIs(t, cs.ClearState(ctx, "half"), pikkuredis.ErrChannelNotFound)
	_, err = cs.GetChannel(ctx, "half")
	require.ErrorIs(t, err, pikkuredis.ErrChannelNotFound)
	st, ok, err = cs.GetState(ctx, "half")
	require.NoError(t, err)
	assert.True(t, ok, "the state field is read as it is, as @pikku/redis reads it")
	assert.Equal(t, `{"n":1}`, string(st))
	n, err := redis.Int(c.Do("HLEN", prefix+":channel:half"))
	require.NoError(t, err)
	assert.Equal(t, 1, n)
}

func TestChannelStateBadInputWritesNothing(t *testing.T) {
	cs, _, prefix := stores(t)
	ctx := ctxT(t)
	c := dialRaw(t)
	defer c.Close()
	require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "c1"}))
	require.NoError(t, cs.SetState(ctx, "c1", "kept"))
	cases := map[string]func() error{
		"user id empty id":  func() error { return cs.SetPikkuUserID(ctx, "", "u1") },
		"state empty id":    func() error { return cs.SetState(ctx, "", 1) },
		"clear empty id":    func() error { return cs.ClearState(ctx, "") },
		"get empty id":      func() error { _, err := cs.GetChannel(ctx, ""); return err },
		"get state empty":   func() error { _, _, err := cs.GetState(ctx, ""); return err },
		"state unencodable": func() error { return cs.SetState(ctx, "c1", make(chan int)) },
	}
	for name, call := range cases {
		err := call()
		require.ErrorIs(t, err, pikkuredis.ErrInvalidArgument, name)
		assert.Regexp(t, `^pikkuredis: [a-z ]+: invalid argument: `, err.Error(), name)
	}
	st, ok, err := cs.GetState(ctx, "c1")
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, `"kept"`, string(st), "a refused state leaves the stored one")
	assert.Equal(t, []string{prefix + ":channel:c1"}, scanKeys(t, c, prefix))
}

func TestCorruptStoredStateIsAnError(t *testing.T) {
	cs, _, prefix := stores(t)
	c := dialRaw(t)
	defer c.Close()
	_, err := c.Do("HSET", prefix+":channel:c1", "channelId", "c1", "state", "{not json")
	require.NoError(t, err)
	_, _, err = cs.GetState(ctxT(t), "c1")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "pikkuredis: get state: channel c1: stored state is not JSON")
}

// set_channel_field.lua refuses to touch the fields AddChannel owns, so a
// client of another language cannot rename or corrupt a channel with it.
func TestSetChannelFieldScriptRefusesOtherFields(t *testing.T) {
	prefix := newPrefix(t)
	c := dialRaw(t)
	defer c.Close()
	src := readScript(t, "set_channel_field")
	key := prefix + ":channel:c1"
	_, err := c.Do("HSET", key, "channelId", "c1", "channelName", "chat")
	require.NoError(t, err)
	for _, field := range []string{"channelId", "channelName", "openingData", "createdAt", "other"} {
		_, err := c.Do("EVAL", src, 1, key, field, "x")
		require.Error(t, err, field)
		assert.Contains(t, err.Error(), "field must be userSession, pikkuUserId or state", field)
	}
	_, err = c.Do("EVAL", src, 1, key, "state")
	assert.ErrorContains(t, err, "expected 1 key and 2 arguments")
	h, err := redis.StringMap(c.Do("HGETALL", key))
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"channelId": "c1", "channelName": "chat"}, h)
}

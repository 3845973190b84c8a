package pikkuredis_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pikkujs/pikkuredis"
)

// The typed view covers today's Pikku API: GetChannel with its user id,
// SetPikkuUserID, and the channel state as a Go type.
func TestTypedGetChannelAndState(t *testing.T) {
	type Opening struct {
		Room string `json:"room"`
	}
	type State struct {
		Typing bool `json:"typing"`
		Unread int  `json:"unread"`
	}
	cs, _, prefix := stores(t)
	ctx := ctxT(t)
	chats := pikkuredis.NewTyped[Opening, struct{}](cs)
	states := pikkuredis.NewTypedState[State](cs)

	require.NoError(t, chats.AddChannel(ctx, "c1", "chat", Opening{Room: "lobby"}))
	require.NoError(t, chats.SetPikkuUserID(ctx, "c1", "u-42"))
	got, err := chats.GetChannel(ctx, "c1")
	require.NoError(t, err)
	assert.Equal(t, "c1", got.ChannelID)
	assert.Equal(t, "chat", got.ChannelName)
	assert.Equal(t, Opening{Room: "lobby"}, got.OpeningData)
	assert.Equal(t, "u-42", got.PikkuUserID)
	assert.False(t, got.CreatedAt.IsZero())
	_, err = chats.GetChannel(ctx, "gone")
	assert.ErrorIs(t, err, pikkuredis.ErrChannelNotFound)

	st, ok, err := states.Get(ctx, "c1")
	require.NoError(t, err)
	assert.False(t, ok, "no state yet")
	assert.Zero(t, st)
	require.NoError(t, states.Set(ctx, "c1", State{Typing: true, Unread: 3}))
	st, ok, err = states.Get(ctx, "c1")
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, State{Typing: true, Unread: 3}, st)
	raw, ok, err := cs.GetState(ctx, "c1")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, `{"typing":true,"unread":3}`, string(raw), "stored as JSON.stringify writes it")
	require.NoError(t, states.Clear(ctx, "c1"))
	_, ok, err = states.Get(ctx, "c1")
	require.NoError(t, err)
	assert.False(t, ok)
	assert.ErrorIs(t, states.Set(ctx, "gone", State{}), pikkuredis.ErrChannelNotFound)

	c := dialRaw(t)
	defer c.Close()
	_, err = c.Do("HSET", prefix+":channel:c1", "state", `["not","a","state"]`, "openingData", `[1]`)
	require.NoError(t, err)
	_, _, err = states.Get(ctx, "c1")
	assert.ErrorContains(t, err, "pikkuredis: get state: channel c1: decode state as pikkuredis_test.State")
	_, err = chats.GetChannel(ctx, "c1")
	assert.ErrorContains(t, err, "pikkuredis: get channel: channel c1: decode opening data as pikkuredis_test.Opening")

	var zero pikkuredis.TypedState[State]
	_, _, err = zero.Get(ctx, "c1")
	assert.ErrorContains(t, err, "NewTypedState")
	assert.ErrorContains(t, zero.Set(ctx, "c1", State{}), "NewTypedState")
	assert.ErrorContains(t, zero.Clear(ctx, "c1"), "NewTypedState")
	var zeroTyped pikkuredis.Typed[Opening, struct{}]
	_, err = zeroTyped.GetChannel(ctx, "c1")
	assert.ErrorContains(t, err, "NewTyped")
	assert.ErrorContains(t, zeroTyped.SetPikkuUserID(ctx, "c1", "u"), "NewTyped")
}

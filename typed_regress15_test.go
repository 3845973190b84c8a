package pikkuredis_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pikkujs/pikkuredis"
)

// Breaker probes for issue 15's typed view of today's API: TypedState
// and Typed.GetChannel on the sharded layout, with a stored null, an
// absent state, a missing channel and JSON of the wrong shape.
func TestRegress15TypedStateSharded(t *testing.T) {
	needRedis(t)
	type state struct{ Step int }
	type open struct{ Room string }
	prefix := randomPrefix(t)
	cs, err := pikkuredis.OpenChannelStore(redisURL, pikkuredis.WithKeyPrefix(prefix), pikkuredis.WithShards(8))
	require.NoError(t, err)
	defer cs.Close()
	ctx := ctxT(t)
	require.NoError(t, cs.Init(ctx))
	ts := pikkuredis.NewTypedState[state](cs)
	tv := pikkuredis.NewTyped[open, map[string]any](cs)
	for _, id := range []string{"a", "b", "c", "d", "e", "f"} {
		require.NoError(t, tv.AddChannel(ctx, id, "chat", open{Room: id}))
		_, ok, err := ts.Get(ctx, id)
		require.NoError(t, err)
		assert.False(t, ok, "no state yet")
		require.NoError(t, ts.Set(ctx, id, state{Step: 3}))
		got, ok, err := ts.Get(ctx, id)
		require.NoError(t, err)
		assert.True(t, ok)
		assert.Equal(t, 3, got.Step)
		info, err := tv.GetChannel(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, id, info.OpeningData.Room)
		require.NoError(t, cs.SetState(ctx, id, nil))
		_, ok, err = ts.Get(ctx, id)
		require.NoError(t, err)
		assert.False(t, ok, "a stored null is no state")
		require.NoError(t, ts.Clear(ctx, id))
	}
	_, ok, err := ts.Get(ctx, "missing")
	require.NoError(t, err)
	assert.False(t, ok)
	_, err = tv.GetChannel(ctx, "missing")
	assert.ErrorIs(t, err, pikkuredis.ErrChannelNotFound)
	assert.ErrorIs(t, ts.Set(ctx, "missing", state{}), pikkuredis.ErrChannelNotFound)
	require.NoError(t, cs.SetState(ctx, "a", "a string"))
	_, ok, err = ts.Get(ctx, "a")
	require.Error(t, err, "a string is no state struct")
	assert.False(t, ok)
	t.Log(err)
}

package pikkuredis_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pikkujs/pikkuredis"
)

// Breaker probes for issue 15's error model.

// A caller's pool whose own DialContext honours ctx (redigo's
// redis.DialContext: its AUTH is DoContext(ctx)) and is cut short by the
// call's deadline: the dial failed, so the error should match
// ErrConnection and read "connect to redis: ..." (doc.go: "A context
// that ended while the call waited for a dial is ErrConnection too"), as
// with the store's own pools (TestDialCutShortIsBothErrors).
func TestRegress15CallersPoolDialCutShortIsErrConnection(t *testing.T) {
	addr, _ := silentListener(t)
	pool := &redis.Pool{DialContext: func(ctx context.Context) (redis.Conn, error) {
		return redis.DialContext(ctx, "tcp", addr, redis.DialPassword("secret"))
	}}
	defer pool.Close()
	hs := pikkuredis.NewEventHubStore(pool)
	// A cancel, not a deadline: redigo then has no read deadline to
	// hit first, and the dial ends with ctx.Err() itself.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	time.AfterFunc(300*time.Millisecond, cancel)
	_, err := hs.GetChannelIDsForTopic(ctx, "news")
	require.Error(t, err)
	t.Log(err)
	assert.ErrorIs(t, err, context.Canceled)
	assert.ErrorIs(t, err, pikkuredis.ErrConnection, "the dial failed")
	assert.Contains(t, err.Error(), "connect to redis: ")
}

// A caller's pool that the caller closed, or that is exhausted
// (MaxActive, Wait false), is no connection fault: nothing was dialled
// and calling again (ErrConnection's remedy) never helps with a closed
// pool.
func TestRegress15CallersClosedPoolIsNotErrConnection(t *testing.T) {
	srv := ownRedis(t)
	t.Run("closed", func(t *testing.T) {
		pool := &redis.Pool{Dial: func() (redis.Conn, error) { return redis.DialURL(srv.URL) }}
		require.NoError(t, pool.Close())
		hs := pikkuredis.NewEventHubStore(pool)
		_, err := hs.GetChannelIDsForTopic(ctxT(t), "news")
		require.Error(t, err)
		t.Log(err)
		assert.NotErrorIs(t, err, pikkuredis.ErrConnection, "a closed pool stays closed: calling again cannot recover")
	})
	t.Run("exhausted", func(t *testing.T) {
		pool := &redis.Pool{MaxActive: 1, Dial: func() (redis.Conn, error) { return redis.DialURL(srv.URL) }}
		defer pool.Close()
		held := pool.Get()
		defer held.Close()
		_, err := held.Do("PING")
		require.NoError(t, err)
		hs := pikkuredis.NewEventHubStore(pool)
		_, err = hs.GetChannelIDsForTopic(ctxT(t), "news")
		require.Error(t, err)
		t.Log(err)
		assert.True(t, errors.Is(err, redis.ErrPoolExhausted))
		assert.NotContains(t, err.Error(), "connect to redis", "nothing was dialled")
	})
}

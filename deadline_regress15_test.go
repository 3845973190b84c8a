package pikkuredis_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pikkujs/pikkuredis"
)

// Breaker probe for issue 15: a call whose own deadline passes while it
// waits for Redis's reply, on a connection it already had, is the
// context's error and not ErrConnection (errors.go: "the caller's context
// ending"). redigo's read deadline, taken from ctx, can fire a moment
// before ctx's timer marks ctx done: ctxErr then says DeadlineExceeded,
// but connFault looks at ctx.Err() alone, finds nil, and adds
// ErrConnection.
func TestRegress15DeadlineOnAWarmConnectionIsNotErrConnection(t *testing.T) {
	srv := ownRedis(t, "--enable-debug-command", "yes")
	admin := dialURL(t, srv.URL)
	defer admin.Close()
	const n = 60
	opens := map[string]func(t *testing.T) *pikkuredis.EventHubStore{
		"caller's pool": func(t *testing.T) *pikkuredis.EventHubStore {
			pool := &redis.Pool{MaxIdle: n, Dial: func() (redis.Conn, error) { return redis.DialURL(srv.URL) }}
			t.Cleanup(func() { pool.Close() })
			return pikkuredis.NewEventHubStore(pool, pikkuredis.WithKeyPrefix(randomPrefix(t)))
		},
	}
	// Auto-pipelined lanes are left out: there the first caller who
	// leaves closes the lane's connection, and the others then wait for
	// a redial, which is ErrConnection by design (doc.go).
	for mode, opts := range map[string][]pikkuredis.Option{"owned pool": {pikkuredis.WithoutAutoPipelining()}} {
		opens[mode] = func(t *testing.T) *pikkuredis.EventHubStore {
			hs, err := pikkuredis.OpenEventHubStore(srv.URL, append(opts, pikkuredis.WithKeyPrefix(randomPrefix(t)), pikkuredis.WithPoolSize(n))...)
			require.NoError(t, err)
			return hs
		}
	}
	for mode, open := range opens {
		t.Run(mode, func(t *testing.T) {
			hs := open(t)
			defer hs.Close()
			// Warm the pool: n calls at once while Redis sleeps, so that
			// each dials a connection of its own, and then n idle ones.
			warm := make(chan error, 1)
			go func() { _, err := redis.DoWithTimeout(admin, 10*time.Second, "DEBUG", "SLEEP", "0.3"); warm <- err }()
			time.Sleep(50 * time.Millisecond)
			var wg sync.WaitGroup
			for i := 0; i < n; i++ {
				wg.Add(1)
				go func() { defer wg.Done(); hs.GetChannelIDsForTopic(ctxT(t), "news") }() //nolint:errcheck
			}
			wg.Wait()
			require.NoError(t, <-warm)
			sleeping := make(chan error, 1)
			go func() { _, err := redis.DoWithTimeout(admin, 10*time.Second, "DEBUG", "SLEEP", "1"); sleeping <- err }()
			time.Sleep(50 * time.Millisecond)
			errs := make([]error, n)
			for i := 0; i < n; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ctx, cancel := context.WithTimeout(context.Background(), time.Duration(100+i)*time.Millisecond)
					defer cancel()
					_, errs[i] = hs.GetChannelIDsForTopic(ctx, "news")
				}()
			}
			wg.Wait()
			require.NoError(t, <-sleeping)
			bad := 0
			for _, err := range errs {
				require.Error(t, err)
				if errors.Is(err, pikkuredis.ErrConnection) {
					if bad == 0 {
						t.Log(err)
					}
					bad++
				}
				assert.ErrorIs(t, err, context.DeadlineExceeded)
			}
			assert.Zero(t, bad, "%d of %d calls that ran out of their own time match ErrConnection", bad, n)
		})
	}
}

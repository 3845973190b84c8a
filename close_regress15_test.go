package pikkuredis_test

import (
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pikkujs/pikkuredis"
)

// Breaker probe for issue 15: Close fails the calls still under way with
// ErrClosed (conn.close), never ErrConnection: the store, not the
// connection, ended them, and calling again cannot recover.
func TestRegress15CloseUnderWayIsErrClosed(t *testing.T) {
	srv := ownRedis(t, "--enable-debug-command", "yes")
	admin := dialURL(t, srv.URL)
	defer admin.Close()
	for mode, opts := range dialModes {
		t.Run(mode, func(t *testing.T) {
			hs, err := pikkuredis.OpenEventHubStore(srv.URL, append(opts, pikkuredis.WithKeyPrefix(randomPrefix(t)))...)
			require.NoError(t, err)
			_, err = hs.Subscribe(ctxT(t), "news", "c1")
			require.NoError(t, err)
			sleeping := make(chan error, 1)
			go func() { _, err := redis.DoWithTimeout(admin, 10*time.Second, "DEBUG", "SLEEP", "0.5"); sleeping <- err }()
			time.Sleep(50 * time.Millisecond)
			const n = 8
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := 0; i < n; i++ {
				wg.Add(1)
				go func() { defer wg.Done(); _, errs[i] = hs.GetChannelIDsForTopic(ctxT(t), "news") }()
			}
			time.Sleep(100 * time.Millisecond)
			require.NoError(t, hs.Close())
			wg.Wait()
			require.NoError(t, <-sleeping)
			for _, err := range errs {
				if err == nil {
					continue
				}
				t.Log(err)
				assert.ErrorIs(t, err, pikkuredis.ErrClosed)
				assert.NotErrorIs(t, err, pikkuredis.ErrConnection)
			}
		})
	}
}

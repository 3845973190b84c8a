package pikkuredis_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pikkujs/pikkuredis"
)

// TestMaxClientsRetiresTheConnection: Redis at maxclients accepts a
// connection only to send "ERR max number of clients reached" and close
// it. A store that dials then must fail the call with an error that says
// so as a connection fault (not as its script's error), and must not keep
// that connection: once Redis has room again, the very next call
// succeeds, on every path.
func TestMaxClientsRetiresTheConnection(t *testing.T) {
	for name, open := range failoverPaths {
		t.Run(name, func(t *testing.T) {
			srv := ownRedis(t)
			admin := dialURL(t, srv.URL)
			defer admin.Close()
			prefix := newPrefix(t)
			hs := open(t, srv.URL, prefix)
			defer hs.Close()
			ctx := ctxT(t)

			// Full: no connection beyond the admin's.
			clients := strings.Count(clientList(t, admin), "\n")
			_, err := admin.Do("CONFIG", "SET", "maxclients", clients)
			require.NoError(t, err)

			_, err = hs.Subscribe(ctx, "t", "c1")
			require.Error(t, err)
			// Said by the dial's PING (connect to redis: ...) or, where
			// the dial sends nothing (a caller's pool of redigo's own
			// dial), by the call's reply (redis connection retired: ...).
			assert.ErrorIs(t, err, pikkuredis.ErrConnection)
			assert.Regexp(t, `(connect to redis|redis connection retired): ERR max number of clients reached`, err.Error())
			assert.NotContains(t, err.Error(), "script subscribe", "a full server is not the script's fault")
			var reply redis.Error
			assert.True(t, errors.As(err, &reply), "the reply itself is there for errors.As: %v", err)

			_, err = admin.Do("CONFIG", "SET", "maxclients", 10000)
			require.NoError(t, err)
			for i := 0; i < 3; i++ {
				ok, err := hs.Subscribe(ctx, "t", "c1")
				require.NoError(t, err, "call %d once Redis has room", i)
				assert.True(t, ok)
			}
		})
	}
}

func clientList(t *testing.T, c redis.Conn) string {
	t.Helper()
	s, err := redis.String(c.Do("CLIENT", "LIST"))
	require.NoError(t, err)
	return s
}

// TestReadonlyOnACallersPoolDropsTheConnection: a caller's *redis.Pool
// whose connection got READONLY must not get it back: after the address
// leads to the master, the pool has no connection to the replica left,
// and its idle count does not grow with dead connections.
func TestReadonlyOnACallersPoolDropsTheConnection(t *testing.T) {
	p := newFailoverPair(t)
	p.proxy.SetTarget(p.b.Addr) // the replica
	prefix := newPrefix(t)
	pool := poolFor(t, p.proxy.URL)
	hs := pikkuredis.NewEventHubStore(pool, pikkuredis.WithKeyPrefix(prefix))
	defer hs.Close()
	ctx := ctxT(t)

	_, err := hs.Subscribe(ctx, "t", "c1")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "redis connection retired: READONLY")
	assert.Equal(t, 0, pool.Stats().IdleCount, "the connections to the replica went back to the pool")
	assert.Equal(t, 0, pool.Stats().ActiveCount)

	p.proxy.SetTarget(p.a.Addr)
	ok, err := hs.Subscribe(ctx, "t", "c1")
	require.NoError(t, err)
	assert.True(t, ok)
}

// TestLoadingIsWaitedOutWithinTheCall: a server reading its dataset
// (after a restart; here DEBUG RELOAD with a delay per key) refuses every
// command with LOADING, before running it. A call whose deadline outlasts
// the loading succeeds once it is done; one whose deadline does not
// fails with its context's error, saying LOADING; and the connection is
// kept (it leads to the right server), on every path.
func TestLoadingIsWaitedOutWithinTheCall(t *testing.T) {
	for name, open := range failoverPaths {
		t.Run(name, func(t *testing.T) {
			srv := ownRedis(t, "--enable-debug-command", "local")
			admin := dialURL(t, srv.URL)
			defer admin.Close()
			prefix := newPrefix(t)
			hs := open(t, srv.URL, prefix)
			defer hs.Close()
			ctx := ctxT(t)
			_, err := hs.Subscribe(ctx, "t", "c0")
			require.NoError(t, err)

			// About a second of loading: 10 µs per key (which the
			// kernel's sleep granularity stretches).
			_, err = admin.Do("DEBUG", "POPULATE", 10000, prefix+":filler")
			require.NoError(t, err)
			// Clients are served while loading only every so many
			// bytes read (2 MB by default, more than these keys).
			_, err = admin.Do("CONFIG", "SET", "key-load-delay", 10, "loading-process-events-interval-bytes", 1024)
			require.NoError(t, err)
			reloaded := make(chan error, 1)
			go func() {
				reloader := dialURL(t, srv.URL)
				defer reloader.Close()
				_, err := redis.DoWithTimeout(reloader, time.Minute, "DEBUG", "RELOAD")
				reloaded <- err
			}()
			probe := dialURL(t, srv.URL)
			defer probe.Close()
			require.Eventually(t, func() bool {
				info, err := redis.String(probe.Do("INFO", "persistence"))
				return err == nil && strings.Contains(info, "loading:1")
			}, 5*time.Second, 5*time.Millisecond, "the server never started loading")

			short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
			_, err = hs.Subscribe(short, "t", "c1")
			cancel()
			require.Error(t, err)
			assert.ErrorIs(t, err, context.DeadlineExceeded)
			assert.Contains(t, err.Error(), "LOADING")

			ok, err := hs.Subscribe(ctx, "t", "c2")
			require.NoError(t, err, "a call whose deadline outlasts the loading")
			assert.True(t, ok)
			require.NoError(t, <-reloaded)
			ids, err := hs.GetChannelIDsForTopic(ctx, "t")
			require.NoError(t, err)
			assert.ElementsMatch(t, []string{"c0", "c2"}, ids)
		})
	}
}

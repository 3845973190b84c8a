package pikkuredis_test

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pikkujs/pikkuredis"
	"github.com/pikkujs/pikkuredis/internal/redisserver"
	"github.com/pikkujs/pikkuredis/internal/tcpproxy"
)

// failoverPair is a master A, its replica B, and a proxy that stands in
// for the DNS name both are reached by, leading to A.
type failoverPair struct {
	a, b  *redisserver.Server
	proxy *tcpproxy.Proxy
}

func newFailoverPair(t *testing.T) failoverPair {
	t.Helper()
	// No wait for more replicas before the first full sync (5 s by default).
	a := ownRedis(t, "--repl-diskless-sync-delay", "0")
	host, port, err := net.SplitHostPort(a.Addr)
	require.NoError(t, err)
	b := ownRedis(t, "--replicaof", host, port)
	waitFor(t, 10*time.Second, "B's link to A is up", func() bool {
		return strings.Contains(info(t, b, "replication"), "master_link_status:up")
	})
	proxy, err := tcpproxy.Start(a.Addr)
	require.NoError(t, err)
	t.Cleanup(proxy.Close)
	return failoverPair{a: a, b: b, proxy: proxy}
}

// failover runs FAILOVER on A, which pauses writes on A until B has
// caught up, then makes B the master and A its replica, and returns once
// both say so.
func (p failoverPair) failover(t *testing.T) {
	t.Helper()
	c := dialURL(t, p.a.URL)
	defer c.Close()
	_, err := c.Do("FAILOVER")
	require.NoError(t, err)
	waitFor(t, 10*time.Second, "A is a replica and B the master", func() bool {
		return role(t, p.a) == "slave" && role(t, p.b) == "master"
	})
}

func role(t *testing.T, s *redisserver.Server) string {
	t.Helper()
	c := dialURL(t, s.URL)
	defer c.Close()
	r, err := redis.Values(c.Do("ROLE"))
	require.NoError(t, err)
	name, _ := redis.String(r[0], nil)
	return name
}

func info(t *testing.T, s *redisserver.Server, section string) string {
	t.Helper()
	c := dialURL(t, s.URL)
	defer c.Close()
	out, err := redis.String(c.Do("INFO", section))
	require.NoError(t, err)
	return out
}

func waitFor(t *testing.T, limit time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for: %s", limit, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// failoverPaths are the three ways a store reaches Redis, each given the
// URL that stands for "the master".
var failoverPaths = map[string]func(t *testing.T, url, prefix string) *pikkuredis.EventHubStore{
	"auto-pipelined": func(t *testing.T, url, prefix string) *pikkuredis.EventHubStore {
		hs, err := pikkuredis.OpenEventHubStore(url, pikkuredis.WithKeyPrefix(prefix))
		require.NoError(t, err)
		return hs
	},
	"WithoutAutoPipelining": func(t *testing.T, url, prefix string) *pikkuredis.EventHubStore {
		hs, err := pikkuredis.OpenEventHubStore(url, pikkuredis.WithKeyPrefix(prefix), pikkuredis.WithoutAutoPipelining())
		require.NoError(t, err)
		return hs
	},
	"caller's pool": func(t *testing.T, url, prefix string) *pikkuredis.EventHubStore {
		return pikkuredis.NewEventHubStore(poolFor(t, url), pikkuredis.WithKeyPrefix(prefix))
	},
}

// TestFailoverBehindOneAddressFollowsTheMaster: a store reaches Redis by
// one address (the proxy), which leads to A; A fails over to B, then the
// address leads to B. The connections the store holds still lead to A,
// now a replica, which answers every write with READONLY. The store must
// retire them: writes succeed again within 1 s of the switch, on every
// path; and every write acknowledged at any time, by concurrent writers
// running throughout, is on B afterwards, in both index directions.
func TestFailoverBehindOneAddressFollowsTheMaster(t *testing.T) {
	for name, open := range failoverPaths {
		t.Run(name, func(t *testing.T) {
			p := newFailoverPair(t)
			prefix := newPrefix(t)
			hs := open(t, p.proxy.URL, prefix)
			defer hs.Close()
			ctx := ctxT(t)
			_, err := hs.Subscribe(ctx, "t", "first")
			require.NoError(t, err)

			// Writers run throughout, each with its own ids, and record
			// the writes Redis acknowledged and when.
			const writers = 4
			var mu sync.Mutex
			var acked []string
			var lastErr error
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for w := 0; w < writers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						id := fmt.Sprintf("w%d-%d", w, i)
						cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
						_, err := hs.Subscribe(cctx, "t", id)
						cancel()
						mu.Lock()
						if err == nil {
							acked = append(acked, id)
						} else {
							lastErr = err
						}
						mu.Unlock()
						time.Sleep(time.Millisecond)
					}
				}()
			}
			time.Sleep(50 * time.Millisecond)

			p.failover(t)
			p.proxy.SetTarget(p.b.Addr)
			switched := time.Now()

			// The first write that succeeds after the switch, written
			// alone by this goroutine, as a caller would.
			var took time.Duration
			for i := 0; ; i++ {
				_, err := hs.Subscribe(ctx, "t", fmt.Sprintf("probe-%d", i))
				if err == nil {
					took = time.Since(switched)
					mu.Lock()
					acked = append(acked, fmt.Sprintf("probe-%d", i))
					mu.Unlock()
					break
				}
				require.Contains(t, err.Error(), "READONLY", "the only expected failure is the old master's refusal")
				require.Less(t, time.Since(switched), time.Second, "writes still fail 1 s after the switch: %v", err)
				time.Sleep(time.Millisecond)
			}
			t.Logf("%s: first write succeeded %v after the switch", name, took)

			// From then on, every write succeeds: no connection to A is
			// left to fail one.
			time.Sleep(100 * time.Millisecond)
			mu.Lock()
			from := len(acked)
			lastErr = nil
			mu.Unlock()
			for i := 0; i < 20; i++ {
				id := fmt.Sprintf("after-%d", i)
				_, err := hs.Subscribe(ctx, "t", id)
				require.NoError(t, err, "a write well after the switch")
				mu.Lock()
				acked = append(acked, id)
				mu.Unlock()
			}
			time.Sleep(50 * time.Millisecond)
			close(stop)
			wg.Wait()
			assert.NoError(t, lastErr, "a concurrent write failed well after the switch")
			assert.Greater(t, len(acked), from+20, "the concurrent writers wrote nothing after the switch")

			// Nothing acknowledged is lost: FAILOVER waited for B to
			// catch up, and later writes went to B.
			c := dialURL(t, p.b.URL)
			defer c.Close()
			members, err := redis.Strings(c.Do("SMEMBERS", prefix+":topic:t"))
			require.NoError(t, err)
			onB := map[string]bool{}
			for _, m := range members {
				onB[m] = true
			}
			var missing []string
			for _, id := range append([]string{"first"}, acked...) {
				if !onB[id] {
					missing = append(missing, id)
				}
			}
			sort.Strings(missing)
			assert.Empty(t, missing, "acknowledged writes missing on the new master (of %d)", len(acked)+1)
			assertIndexesAgreeOn(t, c, prefix)
		})
	}
}

// TestPipelinedCallsBehindAReadonlyReplyAreSentAgain: the auto-pipelined
// connection leads to a replica; a burst of concurrent writes goes out on
// it at once. The first reply, READONLY, retires the connection; the
// calls written behind it were refused too (or not read), and must be
// sent again on the next connection, which leads to the master: every
// call of the burst succeeds.
func TestPipelinedCallsBehindAReadonlyReplyAreSentAgain(t *testing.T) {
	p := newFailoverPair(t)
	prefix := newPrefix(t)
	p.proxy.SetTarget(p.b.Addr) // the replica, as after a failover not yet followed
	hs, err := pikkuredis.OpenEventHubStore(p.proxy.URL, pikkuredis.WithKeyPrefix(prefix))
	require.NoError(t, err)
	defer hs.Close()
	ctx := ctxT(t)
	// A read works on the replica, and leaves the store a connection to it.
	ids, err := hs.GetChannelIDsForTopic(ctx, "t")
	require.NoError(t, err)
	require.Empty(t, ids)
	p.proxy.SetTarget(p.a.Addr)

	const n = 64
	start := make(chan struct{})
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			// No deadline: a call that goes out alone does not hold the
			// others back (see pipeline.go), so they are written behind it.
			_, errs[i] = hs.Subscribe(context.Background(), "t", fmt.Sprintf("c%d", i))
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		assert.NoError(t, err, "call %d", i)
	}
	c := dialURL(t, p.a.URL)
	defer c.Close()
	members, err := redis.Strings(c.Do("SMEMBERS", prefix+":topic:t"))
	require.NoError(t, err)
	assert.Len(t, members, n)
}

// TestFailoverCallersPoolWithManyIdleConnections: a caller's pool holds
// 64 idle connections to the master when it is demoted (docs/connections.md's
// example pool keeps that many). Every one leads to the replica now, and
// the pool hands them all out before it dials: the first write after the
// switch must still succeed, retiring them on the way.
func TestFailoverCallersPoolWithManyIdleConnections(t *testing.T) {
	p := newFailoverPair(t)
	prefix := newPrefix(t)
	pool := poolFor(t, p.proxy.URL)
	hs := pikkuredis.NewEventHubStore(pool, pikkuredis.WithKeyPrefix(prefix))
	ctx := ctxT(t)
	var conns []redis.Conn
	for range 64 {
		c := pool.Get()
		_, err := c.Do("PING")
		require.NoError(t, err)
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.Close()
	}
	require.Equal(t, 64, pool.Stats().IdleCount)
	p.failover(t)
	p.proxy.SetTarget(p.b.Addr)
	for i := range 10 {
		ok, err := hs.Subscribe(ctx, "t", fmt.Sprintf("c%d", i))
		require.NoError(t, err, "write %d after the switch (idle now %d)", i, pool.Stats().IdleCount)
		assert.True(t, ok)
	}
}

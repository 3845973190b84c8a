package pikkuredis_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pikkujs/pikkuredis"
)

// leaseScores returns the lease set: channel id -> deadline (ms).
func leaseScores(t *testing.T, c redis.Conn, prefix string) map[string]int64 {
	t.Helper()
	m, err := redis.Int64Map(c.Do("ZRANGE", prefix+":leases", 0, -1, "WITHSCORES"))
	require.NoError(t, err)
	return m
}

// A crashed server's channels go, with their topic memberships, within one
// TTL plus one sweep interval, while a live server's touched channels
// survive: two servers on one prefix, one stops touching (it "crashes"),
// the other touches its channels and runs the sweeper.
func TestLeasesCrashedServersChannelsAreSwept(t *testing.T) {
	const (
		ttl      = 4 * time.Second
		interval = 500 * time.Millisecond
		touch    = ttl / 10
		// Scheduling slack on a loaded 2-core machine: a bound on
		// correctness, not a measure of speed.
		slack = 1500 * time.Millisecond
	)
	for name, open := range layoutBackends() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			live, liveHub, k := open(t, pikkuredis.WithChannelTTL(ttl))
			prefix := k.prefix
			crashed, err := pikkuredis.OpenChannelStore(redisURL, pikkuredis.WithKeyPrefix(prefix), pikkuredis.WithChannelTTL(ttl), pikkuredis.WithShards(k.shards))
			require.NoError(t, err)
			crashedHub, err := pikkuredis.OpenEventHubStore(redisURL, pikkuredis.WithKeyPrefix(prefix), pikkuredis.WithShards(k.shards))
			require.NoError(t, err)
			ctx := ctxT(t)

			var liveIDs, crashedIDs []string
			for i := 0; i < 40; i++ {
				liveIDs = append(liveIDs, fmt.Sprintf("live-%d", i))
				crashedIDs = append(crashedIDs, fmt.Sprintf("crashed-%d", i))
			}
			add := func(cs *pikkuredis.ChannelStore, hs *pikkuredis.EventHubStore, ids []string) {
				for i, id := range ids {
					require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: id, ChannelName: "chat"}))
					for _, topic := range []string{"all", fmt.Sprintf("t%d", i%4)} {
						_, err := hs.Subscribe(ctx, topic, id)
						require.NoError(t, err)
					}
				}
			}
			add(live, liveHub, liveIDs)
			add(crashed, crashedHub, crashedIDs)
			// The crash: no RemoveChannels, no more touches.
			crashedAt := time.Now()
			crashed.Close()
			crashedHub.Close()
			gone, err := live.TouchChannels(ctx, liveIDs...)
			require.NoError(t, err)
			require.Empty(t, gone)

			sweepCtx, stopSweeping := context.WithCancel(ctx)
			var wg sync.WaitGroup
			var sweepErrs []error
			var swept int
			var mu sync.Mutex
			wg.Add(2)
			go func() {
				defer wg.Done()
				err := live.SweepExpiredEvery(sweepCtx, interval, func(n int, err error) {
					mu.Lock()
					defer mu.Unlock()
					swept += n
					if err != nil {
						sweepErrs = append(sweepErrs, err)
					}
				})
				assert.ErrorIs(t, err, context.Canceled)
			}()
			go func() { // the live server's heartbeat
				defer wg.Done()
				tick := time.NewTicker(touch)
				defer tick.Stop()
				// A machine that stalls this process for longer than the
				// TTL makes the live server look dead, rightly: the gap is
				// reported to tell that from a bug.
				var maxGap time.Duration
				last := time.Now()
				for {
					select {
					case <-sweepCtx.Done():
						return
					case <-tick.C:
					}
					maxGap = max(maxGap, time.Since(last))
					last = time.Now()
					gone, err := live.TouchChannels(sweepCtx, liveIDs...)
					if sweepCtx.Err() == nil {
						assert.NoError(t, err)
						assert.Empty(t, gone, "a live channel was swept; the longest gap between touches was %v (TTL %v)", maxGap, ttl)
					}
				}
			}()

			time.Sleep(time.Until(crashedAt.Add(ttl + interval + slack)))
			c := dialRaw(t)
			defer c.Close()
			ids, err := liveHub.GetChannelIDsForTopic(ctx, "all")
			require.NoError(t, err)
			assert.ElementsMatch(t, liveIDs, ids, "only the live channels are left in the topic")
			for _, id := range crashedIDs {
				_, err := live.GetChannelAndSession(ctx, id)
				assert.ErrorIs(t, err, pikkuredis.ErrChannelNotFound, id)
				n, err := redis.Int(c.Do("EXISTS", k.subs(id)))
				require.NoError(t, err)
				assert.Zero(t, n, "subs set of %s", id)
			}
			for _, id := range liveIDs {
				_, err := live.GetChannelAndSession(ctx, id)
				assert.NoError(t, err, id)
			}
			stopSweeping()
			wg.Wait()
			assert.Empty(t, sweepErrs)
			assert.Equal(t, len(crashedIDs), swept, "the sweeper reports what it removed")
			leases := k.leaseScores(t, c)
			assert.Len(t, leases, len(liveIDs), "only the live channels have leases")
			assertIndexesAgree(t, prefix)

			require.NoError(t, live.RemoveChannels(ctx, liveIDs))
			assert.Empty(t, scanKeys(t, c, prefix), "RemoveChannels drops the leases too")
		})
	}
}

func TestTouchChannels(t *testing.T) { forLayouts(t, testTouchChannels) }

func testTouchChannels(t *testing.T, lc layoutCase) {
	cs, hs, k := lc.stores(t, pikkuredis.WithChannelTTL(time.Hour), pikkuredis.WithRemoveChunkSize(3))
	ctx := ctxT(t)
	c := dialRaw(t)
	defer c.Close()
	var ids []string
	for i := 0; i < 10; i++ {
		id := fmt.Sprintf("c%d", i)
		ids = append(ids, id)
		require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: id}))
	}
	before := k.leaseScores(t, c)
	require.Len(t, before, 10)
	for _, d := range before {
		assert.InDelta(t, time.Now().Add(time.Hour).UnixMilli(), d, 10_000, "AddChannel gives a lease of the TTL")
	}
	require.NoError(t, cs.RemoveChannels(ctx, ids[:2]))
	_, err := hs.Subscribe(ctx, "news", "never-added")
	require.NoError(t, err)

	time.Sleep(5 * time.Millisecond)
	gone, err := cs.TouchChannels(ctx, append(ids, "never-added")...)
	require.NoError(t, err)
	assert.Equal(t, []string{"c0", "c1", "never-added"}, gone, "the ids whose channel is gone, in order, over several chunks")
	after := k.leaseScores(t, c)
	assert.Len(t, after, 8, "no lease is made for a gone channel")
	for id, d := range after {
		assert.Greater(t, d, before[id], "lease of %s extended", id)
	}

	gone, err = cs.TouchChannels(ctx)
	assert.NoError(t, err)
	assert.Empty(t, gone)
	_, err = cs.TouchChannels(ctx, "c3", "")
	assert.ErrorIs(t, err, pikkuredis.ErrInvalidArgument)
	assert.ErrorContains(t, err, "index 1")
	assert.Equal(t, after, k.leaseScores(t, c), "bad input writes nothing")

	plain, _, _ := lc.stores(t)
	_, err = plain.TouchChannels(ctx, "c3")
	assert.ErrorIs(t, err, pikkuredis.ErrInvalidArgument)
	assert.ErrorContains(t, err, "WithChannelTTL")
}

// Without WithChannelTTL nothing but the @pikku/redis layout is written,
// and SweepExpired finds nothing to do.
func TestWithoutTTLNoLeaseIsWritten(t *testing.T) { forLayouts(t, testWithoutTTLNoLeaseIsWritten) }

func testWithoutTTLNoLeaseIsWritten(t *testing.T, lc layoutCase) {
	cs, hs, k := lc.stores(t)
	ctx := ctxT(t)
	require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "c1"}))
	_, err := hs.Subscribe(ctx, "news", "c1")
	require.NoError(t, err)
	n, err := cs.SweepExpired(ctx)
	require.NoError(t, err)
	assert.Zero(t, n)
	c := dialRaw(t)
	defer c.Close()
	assert.ElementsMatch(t, []string{k.channel("c1"), k.subs("c1"), k.topic("news", "c1")}, scanKeys(t, c, k.prefix))
}

// SweepExpired removes expired channels in bounded chunks, all of them,
// with every subscription; a channel touched before its deadline stays.
func TestSweepExpiredRemovesEveryExpiredChannel(t *testing.T) {
	for name, open := range layoutBackends() {
		t.Run(name, func(t *testing.T) {
			cs, hs, k := open(t, pikkuredis.WithChannelTTL(time.Hour), pikkuredis.WithRemoveChunkSize(7))
			prefix := k.prefix
			ctx := ctxT(t)
			c := dialRaw(t)
			defer c.Close()
			ids := populateWith(t, cs, hs, 45, 3)
			require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "kept"}))
			_, err := hs.Subscribe(ctx, "t0", "kept")
			require.NoError(t, err)

			n, err := cs.SweepExpired(ctx)
			require.NoError(t, err)
			assert.Zero(t, n, "nothing has expired yet")

			// Their server stopped touching them an hour ago: deadlines in
			// the past, set by hand rather than by waiting.
			past := time.Now().Add(-time.Minute).UnixMilli()
			for _, id := range ids {
				mustDo(t, c, "ZADD", k.leases(id), "XX", past, id)
			}
			gone, err := cs.TouchChannels(ctx, "kept")
			require.NoError(t, err)
			require.Empty(t, gone)
			n, err = cs.SweepExpired(ctx)
			require.NoError(t, err)
			assert.Equal(t, len(ids), n, "every expired channel, over several script calls of 7")
			n, err = cs.SweepExpired(ctx)
			require.NoError(t, err)
			assert.Zero(t, n, "a second sweep finds nothing")

			members, err := hs.GetChannelIDsForTopic(ctx, "t0")
			require.NoError(t, err)
			assert.Equal(t, []string{"kept"}, members)
			assert.ElementsMatch(t, []string{k.channel("kept"), k.subs("kept"), k.topic("t0", "kept"), k.leases("kept")}, scanKeys(t, c, prefix))
			assertIndexesAgree(t, prefix)
		})
	}
}

// populateWith adds n channels, each subscribed to subs topics of t0..t4.
func populateWith(t *testing.T, cs *pikkuredis.ChannelStore, hs *pikkuredis.EventHubStore, n, subs int) []string {
	t.Helper()
	ctx := ctxT(t)
	var ids []string
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("c%d", i)
		ids = append(ids, id)
		require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: id}))
		for j := 0; j < subs; j++ {
			_, err := hs.Subscribe(ctx, fmt.Sprintf("t%d", (i+j)%5), id)
			require.NoError(t, err)
		}
	}
	return ids
}

func TestSweepExpiredEveryStops(t *testing.T) {
	cs, _, _ := stores(t, pikkuredis.WithChannelTTL(time.Second))
	err := cs.SweepExpiredEvery(context.Background(), 0, nil)
	assert.ErrorIs(t, err, pikkuredis.ErrInvalidArgument)

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	sweeps := 0
	err = cs.SweepExpiredEvery(ctx, 20*time.Millisecond, func(n int, err error) {
		assert.NoError(t, err)
		sweeps++
	})
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Greater(t, sweeps, 1, "it swept at once and then on each tick")

	// Close while it waits for the next tick: it returns then, not an
	// interval later. A closed store, and one without a pool, stop it too.
	done := make(chan error, 1)
	reports := make(chan error, 100)
	go func() {
		done <- cs.SweepExpiredEvery(context.Background(), time.Hour, func(n int, err error) { reports <- err })
	}()
	require.NoError(t, <-reports, "the first sweep")
	require.NoError(t, cs.Close())
	for _, s := range []*pikkuredis.ChannelStore{cs, cs, pikkuredis.NewChannelStore(nil), {}} {
		select {
		case err := <-done:
			assert.True(t, errors.Is(err, pikkuredis.ErrClosed) || strings.Contains(err.Error(), "no pool"), "got %v", err)
		case <-time.After(10 * time.Second):
			t.Fatal("SweepExpiredEvery kept running")
		}
		go func() { done <- s.SweepExpiredEvery(context.Background(), time.Hour, nil) }()
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("SweepExpiredEvery kept running")
	}
}

// At maxmemory with noeviction, adding a channel with a lease is refused
// before anything is written, while the lease heartbeat, clearing a
// session or state, the sweep and Repair (which only move deadlines or
// delete) still run.
func TestLeasesAndRepairUnderOOM(t *testing.T) {
	srv := ownRedis(t)
	ctx := ctxT(t)
	admin := dialURL(t, srv.URL)
	defer admin.Close()
	opts := []pikkuredis.Option{pikkuredis.WithKeyPrefix("oom"), pikkuredis.WithChannelTTL(time.Hour)}
	cs, err := pikkuredis.OpenChannelStore(srv.URL, opts...)
	require.NoError(t, err)
	defer cs.Close()
	hs, err := pikkuredis.OpenEventHubStore(srv.URL, opts...)
	require.NoError(t, err)
	defer hs.Close()
	for _, id := range []string{"expiring", "live"} {
		require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: id}))
		_, err := hs.Subscribe(ctx, "news", id)
		require.NoError(t, err)
	}
	_, err = hs.Subscribe(ctx, "news", "orphan")
	require.NoError(t, err)
	require.NoError(t, cs.SetUserSession(ctx, "live", map[string]string{"userId": "u1"}))
	require.NoError(t, cs.SetState(ctx, "live", map[string]int{"step": 1}))
	mustDo(t, admin, "ZADD", "oom:leases", "XX", 1, "expiring") // its server is gone

	// Fill Redis past a maxmemory just above what it uses now.
	info, err := redis.String(admin.Do("INFO", "memory"))
	require.NoError(t, err)
	var usedBytes int64
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			usedBytes, err = strconv.ParseInt(v, 10, 64)
			require.NoError(t, err)
		}
	}
	require.NotZero(t, usedBytes)
	mustDo(t, admin, "CONFIG", "SET", "maxmemory-policy", "noeviction")
	mustDo(t, admin, "CONFIG", "SET", "maxmemory", usedBytes+512*1024)
	filler := strings.Repeat("x", 16*1024)
	for i := 0; ; i++ {
		_, err := admin.Do("SET", fmt.Sprintf("filler:%d", i), filler)
		if err != nil {
			require.ErrorContains(t, err, "OOM")
			break
		}
		require.Less(t, i, 1000, "maxmemory never reached")
	}
	t.Cleanup(func() { admin.Do("CONFIG", "SET", "maxmemory", 0) })

	before := contents(t, admin, "oom")
	err = cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "new"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "OOM")
	_, err = hs.Subscribe(ctx, "news", "new")
	assert.ErrorContains(t, err, "OOM")
	assert.Equal(t, before, contents(t, admin, "oom"), "refused writes wrote nothing")

	gone, err := cs.TouchChannels(ctx, "live")
	require.NoError(t, err, "the heartbeat runs at maxmemory")
	assert.Empty(t, gone)
	require.NoError(t, cs.SetUserSession(ctx, "live", nil), "a user logs out at maxmemory")
	require.NoError(t, cs.ClearState(ctx, "live"))
	require.NoError(t, cs.SetPikkuUserID(ctx, "live", ""))
	got, err := cs.GetChannelAndSession(ctx, "live")
	require.NoError(t, err)
	assert.Equal(t, "{}", string(got.Session))
	_, hasState, err := cs.GetState(ctx, "live")
	require.NoError(t, err)
	assert.False(t, hasState)
	assert.ErrorContains(t, cs.SetUserSession(ctx, "live", "x"), "OOM", "setting one is a write that adds data")
	n, err := cs.SweepExpired(ctx)
	require.NoError(t, err, "the sweep runs at maxmemory")
	assert.Equal(t, 1, n)
	r, err := hs.Repair(ctx, pikkuredis.RepairOptions{ChannelsKeptByChannelStore: true})
	require.NoError(t, err, "Repair runs at maxmemory")
	assert.Equal(t, []pikkuredis.Subscription{{Topic: "news", ChannelID: "orphan"}}, r.Orphans)
	ids, err := hs.GetChannelIDsForTopic(ctx, "news")
	require.NoError(t, err)
	assert.Equal(t, []string{"live"}, ids)
}

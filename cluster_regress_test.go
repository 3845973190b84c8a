package pikkuredis_test

// Faults a review found in the cluster support, kept as tests: a pooled
// call waiting for a connection, Init and Repair on a hung master or after
// a failover elsewhere, a store that knew only its seed nodes.

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/mna/redisc"
	"github.com/stretchr/testify/require"

	"github.com/pikkujs/pikkuredis"
	"github.com/pikkujs/pikkuredis/internal/redisserver"
)

var clusterModes = []string{"auto-pipelined", "pooled", "caller's cluster"}

// modeStores opens both stores over cl in mode.
func modeStores(t *testing.T, cl *redisserver.Cluster, url, mode string, opts ...pikkuredis.Option) (*pikkuredis.ChannelStore, *pikkuredis.EventHubStore) {
	t.Helper()
	if url == "" {
		url = cl.URL()
	}
	switch mode {
	case "pooled":
		return openBoth(t, url, append(opts, pikkuredis.WithoutAutoPipelining())...)
	case "caller's cluster":
		rc := callersCluster(t, url)
		cs, hs := pikkuredis.NewChannelStore(rc, opts...), pikkuredis.NewEventHubStore(rc, opts...)
		t.Cleanup(func() { cs.Close(); hs.Close() })
		return cs, hs
	}
	return openBoth(t, url, opts...)
}

func TestClusterCancelWithoutDeadlineOnHungMaster(t *testing.T) {
	needRedis(t) // starts a cluster
	cl := ownCluster(t)
	for _, mode := range clusterModes {
		t.Run(mode, func(t *testing.T) {
			prefix := "{cx}"
			cs, hs := modeStores(t, cl, "", mode, pikkuredis.WithKeyPrefix(prefix))
			ctx := ctxT(t)
			require.NoError(t, cs.Init(ctx))
			require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "a", ChannelName: "x"}))
			m, err := cl.MasterOf(redisc.Slot(prefix))
			require.NoError(t, err)
			require.NoError(t, cl.Pause(m))
			defer cl.Resume(m)
			calls := map[string]func(ctx context.Context) error{
				"Subscribe": func(ctx context.Context) error { _, err := hs.Subscribe(ctx, "t", "a"); return err },
				"Init":      func(ctx context.Context) error { return cs.Init(ctx) },
				"Repair": func(ctx context.Context) error {
					_, err := hs.Repair(ctx, pikkuredis.RepairOptions{ChannelsKeptByChannelStore: true})
					return err
				},
			}
			names := []string{"Subscribe", "Init", "Repair"}
			for _, name := range names {
				ctx, cancel := context.WithCancel(context.Background())
				time.AfterFunc(300*time.Millisecond, cancel)
				start := time.Now()
				err := calls[name](ctx)
				took := time.Since(start)
				t.Logf("%s %s, cancelled at 300ms: returned after %v: %v", mode, name, took.Round(time.Millisecond), err)
				if took > time.Second {
					t.Errorf("%s %s outlived its cancelled context by %v", mode, name, (took - 300*time.Millisecond).Round(time.Millisecond))
				}
			}
			require.NoError(t, cl.Resume(m))
			time.Sleep(200 * time.Millisecond)
		})
	}
}

func TestClusterFreshStoreFindsEveryMaster(t *testing.T) {
	needRedis(t) // starts a cluster
	cl := ownCluster(t)
	ms, err := cl.Masters()
	require.NoError(t, err)
	prefix := "brk"
	// Orphans (subs sets and topic memberships of channels without a hash)
	// in every shard, written with an auto-pipelined store.
	cs, hs := openBoth(t, cl.URL(), pikkuredis.WithKeyPrefix(prefix), pikkuredis.WithShards(16))
	ctx := ctxT(t)
	require.NoError(t, cs.Init(ctx))
	var ids []string
	for i := 0; i < 64; i++ {
		id := fmt.Sprintf("orphan%d", i)
		ids = append(ids, id)
		require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: id, ChannelName: "x"}))
		_, err := hs.Subscribe(ctx, "t", id)
		require.NoError(t, err)
	}
	// Delete the hashes only: each channel's subs and membership become orphans.
	for _, m := range ms {
		c := dialURL(t, m.URL)
		for _, k := range scanKeys(t, c, prefix) {
			if strings.Contains(k, ":channel:") {
				_, err := c.Do("DEL", k)
				require.NoError(t, err)
			}
		}
		c.Close()
	}
	for _, mode := range []string{"pooled (URL, one seed)", "caller's cluster without Refresh"} {
		t.Run(mode, func(t *testing.T) {
			seed := ms[0].Addr
			var hs2 *pikkuredis.EventHubStore
			var cs2 *pikkuredis.ChannelStore
			if strings.HasPrefix(mode, "pooled") {
				cs2, hs2 = openBoth(t, "redis+cluster://"+seed, pikkuredis.WithKeyPrefix(prefix), pikkuredis.WithShards(16), pikkuredis.WithoutAutoPipelining())
			} else {
				rc := &redisc.Cluster{
					StartupNodes: []string{seed},
					DialOptions:  []redis.DialOption{redis.DialConnectTimeout(2 * time.Second), redis.DialReadTimeout(5 * time.Second)},
					CreatePool: func(addr string, opts ...redis.DialOption) (*redis.Pool, error) {
						return &redis.Pool{MaxIdle: 16, MaxActive: 64, Wait: true,
							Dial: func() (redis.Conn, error) { return redis.Dial("tcp", addr, opts...) }}, nil
					},
				}
				t.Cleanup(func() { rc.Close() })
				cs2, hs2 = pikkuredis.NewChannelStore(rc, pikkuredis.WithKeyPrefix(prefix), pikkuredis.WithShards(16)), pikkuredis.NewEventHubStore(rc, pikkuredis.WithKeyPrefix(prefix), pikkuredis.WithShards(16))
			}
			// Flush the script caches, to see where Init loads them.
			for _, m := range ms {
				c := dialURL(t, m.URL)
				_, err := c.Do("SCRIPT", "FLUSH")
				require.NoError(t, err)
				c.Close()
			}
			require.NoError(t, cs2.Init(ctx))
			for _, m := range ms {
				c := dialURL(t, m.URL)
				have, err := redis.Ints(c.Do("SCRIPT", "EXISTS", pikkuredis.ScriptSHAs()["subscribe"]))
				require.NoError(t, err)
				c.Close()
				t.Logf("after Init: master %s has the subscribe script: %v", m.Addr, have[0] == 1)
				if have[0] != 1 {
					t.Errorf("Init left master %s without the scripts", m.Addr)
				}
			}
			rep, err := hs2.Repair(ctx, pikkuredis.RepairOptions{ChannelsKeptByChannelStore: true, MaxSets: 100000})
			require.NoError(t, err)
			t.Logf("Repair: done %v, examined %d sets, found %d, removed %d, cursor %q", rep.Done, rep.SetsExamined, rep.Found, rep.Removed, rep.Cursor)
			left, err := hs2.GetChannelIDsForTopic(ctx, "t")
			require.NoError(t, err)
			if len(left) > 0 {
				t.Errorf("Repair said Done=%v but %d of %d orphaned memberships are left in topic t", rep.Done, len(left), len(ids))
			}
		})
	}
}

func TestClusterPooledWaitEndsWithTheCall(t *testing.T) {
	needRedis(t) // starts a cluster
	cl := ownCluster(t)
	prefix := "{sp}"
	cs, hs := openBoth(t, cl.URL(), pikkuredis.WithKeyPrefix(prefix), pikkuredis.WithoutAutoPipelining(), pikkuredis.WithPoolSize(4))
	ctx := ctxT(t)
	require.NoError(t, cs.Init(ctx))
	require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "a", ChannelName: "x"}))
	m, err := cl.MasterOf(redisc.Slot(prefix))
	require.NoError(t, err)
	require.NoError(t, cl.Pause(m))
	defer cl.Resume(m)
	var wg sync.WaitGroup
	var worst atomic.Int64
	var sample atomic.Value
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, err := hs.Subscribe(ctx, "t", "a")
			took := time.Since(start)
			if int64(took) > worst.Load() {
				worst.Store(int64(took))
				if err != nil {
					sample.Store(err.Error())
				}
			}
		}()
	}
	wg.Wait()
	// Four calls with a 3 s deadline hold the pool's four connections;
	// then calls with a 200 ms deadline, and one cancelled at 200 ms.
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			hs.Subscribe(ctx, "t", "a")
		}()
	}
	time.Sleep(100 * time.Millisecond)
	for _, how := range []string{"deadline 200ms", "cancel at 200ms"} {
		var ctx context.Context
		var cancel context.CancelFunc
		if how == "deadline 200ms" {
			ctx, cancel = context.WithTimeout(context.Background(), 200*time.Millisecond)
		} else {
			ctx, cancel = context.WithCancel(context.Background())
			time.AfterFunc(200*time.Millisecond, cancel)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cancel()
			start := time.Now()
			_, err := hs.Subscribe(ctx, "t", "a")
			took := time.Since(start)
			t.Logf("pool held by 4 calls with a 3 s deadline: a Subscribe with %s returned after %v: %v", how, took.Round(time.Millisecond), err)
			if took > 500*time.Millisecond {
				t.Errorf("Subscribe with %s outlived its context by %v", how, (took - 200*time.Millisecond).Round(time.Millisecond))
			}
		}()
	}
	time.Sleep(150 * time.Millisecond)
	buf := make([]byte, 1<<20)
	nb := runtime.Stack(buf, true)
	for _, g := range strings.Split(string(buf[:nb]), "\n\n") {
		if strings.Contains(g, "viaPool") && strings.Contains(g, "Bind") {
			t.Logf("a caller past its context, waiting in BindConn:\n%s", g)
			break
		}
	}
	wg.Wait()
	t.Logf("32 Subscribes with a 500ms deadline, pool of 4, master paused: the slowest returned after %v (%v)", time.Duration(worst.Load()).Round(time.Millisecond), sample.Load())
	if time.Duration(worst.Load()) > time.Second {
		t.Errorf("a call outlived its 500ms deadline: %v", time.Duration(worst.Load()).Round(time.Millisecond))
	}
}

func TestClusterPerMasterCallsAfterFailover(t *testing.T) {
	needRedis(t) // starts a cluster
	for _, mode := range clusterModes {
		t.Run(mode, func(t *testing.T) {
			cl := ownCluster(t)
			prefix := "{pm}"
			cs, hs := modeStores(t, cl, "", mode, pikkuredis.WithKeyPrefix(prefix))
			ctx := ctxT(t)
			require.NoError(t, cs.Init(ctx))
			ms, err := cl.Masters()
			require.NoError(t, err)
			old := ms[0]
			old.Kill()
			_, err = cl.WaitFailover(old, 30*time.Second)
			require.NoError(t, err)
			promotedAt := time.Now()
			var lastErr error
			for i := 0; i < 15; i++ {
				cctx, cancel := context.WithTimeout(context.Background(), time.Second)
				err := cs.Init(cctx)
				if err == nil {
					_, err = hs.Repair(cctx, pikkuredis.RepairOptions{ChannelsKeptByChannelStore: true})
				}
				cancel()
				if err == nil {
					t.Logf("%s: Init and Repair succeed %v after the promotion (try %d)", mode, time.Since(promotedAt).Round(time.Millisecond), i)
					return
				}
				lastErr = err
				time.Sleep(time.Second)
			}
			t.Errorf("%s: Init/Repair still fail %v after the promotion, with no key call meanwhile: %v", mode, time.Since(promotedAt).Round(time.Second), lastErr)
			// One key call, then again.
			_, err = hs.Subscribe(ctx, "t", "a")
			t.Logf("a Subscribe: %v", err)
			time.Sleep(300 * time.Millisecond)
			cctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			t.Logf("Init after one key call: %v", cs.Init(cctx))
		})
	}
}

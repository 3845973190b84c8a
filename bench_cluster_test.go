package pikkuredis_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/pikkujs/pikkuredis"
	"github.com/pikkujs/pikkuredis/internal/redisserver"
)

// BenchmarkClusterMix runs one realistic mix of store calls side by side
// on a single redis-server and on a Redis Cluster (3 masters, 3 replicas,
// started once per test binary on loopback, see sharedCluster), with 1 and
// 64 concurrent callers: the goal of running on a cluster is at least 0.8x
// the single server's ops/s at 64 callers, and the 1-caller ns/op within
// 10% of it.
//
//	go test -run '^$' -bench ClusterMix -count 1
//
// -count repeats each leaf benchmark back to back; for figures that are
// compared, run the binary several times instead, so that the targets
// interleave.
//
// Targets (target=...):
//   - single: the stores opened from the tests' Redis URL (TestMain: a
//     redis-server from PATH on loopback, unless REDIS_URL or Docker say
//     otherwise; compare only against such a server);
//   - single-replica: a redis-server of its own with one replica, as each
//     master of the cluster has: on a machine whose cores the replicas
//     share, it tells what the cluster costs from what replication costs;
//   - cluster: the stores opened from the cluster's redis+cluster:// URL
//     in the sharded layout, WithShards(16): the channels spread over the
//     3 masters, and a topic read is 16 SMEMBERS, one per shard. This is
//     the configuration the goal is about;
//   - cluster-hashtag: the same cluster with a hash-tag prefix instead:
//     every key in one slot, so one master serves the whole mix (and its
//     replica follows it).
//
// Each op is one call of the mix (mixSteps); ns/op is wall time per call
// of all callers together, ops/s its inverse.
func BenchmarkClusterMix(b *testing.B) {
	env := &mixEnv{}
	defer env.close()
	for _, tg := range mixTargets {
		b.Run("target="+tg.name, func(b *testing.B) {
			for _, callers := range []int{1, 64} {
				b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
					cs, hs := tg.open(b, env)
					runMix(b, callers, cs, hs)
				})
			}
		})
	}
}

// mixTarget is a kind of Redis the mix runs on, and how the stores reach
// it.
type mixTarget struct {
	name string
	// open returns Init'ed stores on a fresh key prefix, closed when b
	// ends.
	open func(b *testing.B, env *mixEnv) (*pikkuredis.ChannelStore, *pikkuredis.EventHubStore)
}

var mixTargets = []mixTarget{
	{"single", func(b *testing.B, _ *mixEnv) (*pikkuredis.ChannelStore, *pikkuredis.EventHubStore) {
		cs, hs, _ := openStores(b)
		return cs, hs
	}},
	{"single-replica", func(b *testing.B, env *mixEnv) (*pikkuredis.ChannelStore, *pikkuredis.EventHubStore) {
		// The server is thrown away at the end, with the keys a round
		// leaves (at most a cycle per caller).
		return openURLStores(b, env.replicated(b), pikkuredis.WithKeyPrefix("pikkuredis-bench-"+randomHex(b)))
	}},
	{"cluster", func(b *testing.B, _ *mixEnv) (*pikkuredis.ChannelStore, *pikkuredis.EventHubStore) {
		return openURLStores(b, sharedCluster(b).URL(), pikkuredis.WithKeyPrefix("pikkuredis-bench-"+randomHex(b)), pikkuredis.WithShards(16))
	}},
	{"cluster-hashtag", func(b *testing.B, _ *mixEnv) (*pikkuredis.ChannelStore, *pikkuredis.EventHubStore) {
		// One fixed tag: the same master serves every run. The keys a
		// round leaves go with the cluster.
		return openURLStores(b, sharedCluster(b).URL(), pikkuredis.WithKeyPrefix("{pikkuredis-bench}-"+randomHex(b)))
	}},
}

// mixEnv is what the targets start on first use, stopped when the
// benchmark ends (the cluster is the tests' shared one).
type mixEnv struct {
	master, replica *redisserver.Server
}

// replicated returns the URL of a redis-server with one replica in sync,
// started on first use.
func (e *mixEnv) replicated(b *testing.B) string {
	b.Helper()
	needRedis(b)
	if e.master != nil {
		return e.master.URL
	}
	m, err := redisserver.Start()
	if err != nil {
		failStart(b, err)
	}
	e.master = m
	_, port, _ := net.SplitHostPort(m.Addr)
	if e.replica, err = redisserver.Start("--replicaof", "127.0.0.1", port); err != nil {
		b.Fatalf("start a replica: %v", err)
	}
	c := dialURL(b, m.URL)
	defer c.Close()
	for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		info, err := redis.String(c.Do("INFO", "replication"))
		if err != nil {
			b.Fatal(err)
		}
		if strings.Contains(info, "connected_slaves:1") && strings.Contains(info, "state=online") {
			return m.URL
		}
		if time.Since(start) > 10*time.Second {
			b.Fatalf("the replica is not in sync after 10s:\n%s", info)
		}
	}
}

func (e *mixEnv) close() {
	for _, s := range []*redisserver.Server{e.replica, e.master} {
		if s != nil {
			s.Stop()
		}
	}
}

// openURLStores opens, with default options but opts, the two stores on
// url and runs their Init; they are closed when b ends.
func openURLStores(b *testing.B, url string, opts ...pikkuredis.Option) (*pikkuredis.ChannelStore, *pikkuredis.EventHubStore) {
	b.Helper()
	cs, err := pikkuredis.OpenChannelStore(url, opts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cs.Close() })
	hs, err := pikkuredis.OpenEventHubStore(url, opts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { hs.Close() })
	ctx := context.Background()
	if err := cs.Init(ctx); err != nil {
		b.Fatal(err)
	}
	if err := hs.Init(ctx); err != nil {
		b.Fatal(err)
	}
	return cs, hs
}

func randomHex(b *testing.B) string {
	p := make([]byte, 6)
	if _, err := rand.Read(p); err != nil {
		b.Fatal(err)
	}
	return hex.EncodeToString(p)
}

// mixTopics is how many topics the callers' channels subscribe to: each
// channel holds two subscriptions at most, so with 64 callers a topic has
// about 8 members or fewer, as a chat room's topic does.
const mixTopics = 16

// mixSteps is the life of one channel, one call per step: opened, given
// a session, subscribed to two topics, read back, one topic's members
// read (as a publish does), one unsubscribe, then removed (which takes
// it out of the other topic too). Every reply is checked, so a layout
// that loses writes fails the benchmark instead of speeding it up.
const mixSteps = 8

// mixCaller is one caller's place in the mix: its own channel ids, one
// per cycle of mixSteps calls.
type mixCaller struct {
	cs      *pikkuredis.ChannelStore
	hs      *pikkuredis.EventHubStore
	id      int // the caller's number
	n       int // calls made
	channel string
	topicA  string
	topicB  string
}

var (
	mixData    = map[string]string{"room": "lobby"}
	mixSession = map[string]string{"userId": "u1"}
)

// step makes the caller's next call.
func (m *mixCaller) step(ctx context.Context) error {
	cycle, step := m.n/mixSteps, m.n%mixSteps
	m.n++
	if step == 0 {
		m.channel = "m" + strconv.Itoa(m.id) + "-" + strconv.Itoa(cycle)
		m.topicA = "t" + strconv.Itoa((m.id+cycle)%mixTopics)
		m.topicB = "t" + strconv.Itoa((m.id+cycle+1)%mixTopics)
	}
	var err error
	var ok bool
	switch step {
	case 0:
		err = m.cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: m.channel, ChannelName: "chat", OpeningData: mixData})
	case 1:
		err = m.cs.SetUserSession(ctx, m.channel, mixSession)
	case 2:
		ok, err = m.hs.Subscribe(ctx, m.topicA, m.channel)
	case 3:
		ok, err = m.hs.Subscribe(ctx, m.topicB, m.channel)
	case 4:
		var got pikkuredis.ChannelAndSession
		got, err = m.cs.GetChannelAndSession(ctx, m.channel)
		ok = got.ChannelID == m.channel && len(got.Session) > 2
	case 5:
		var ids []string
		ids, err = m.hs.GetChannelIDsForTopic(ctx, m.topicA)
		ok = slices.Contains(ids, m.channel)
	case 6:
		ok, err = m.hs.Unsubscribe(ctx, m.topicB, m.channel)
	case 7:
		err = m.cs.RemoveChannels(ctx, []string{m.channel})
	}
	if err != nil {
		return fmt.Errorf("mix step %d on %s: %w", step, m.channel, err)
	}
	if step >= 2 && step <= 6 && !ok {
		return fmt.Errorf("mix step %d on %s: the store does not hold what the caller wrote", step, m.channel)
	}
	return nil
}

// runMix runs b.N calls of the mix from callers goroutines at once, each a
// mixCaller of its own (b.RunParallel with GOMAXPROCS*parallelism
// goroutines, as runCallers), and reports ops/s.
func runMix(b *testing.B, callers int, cs *pikkuredis.ChannelStore, hs *pikkuredis.EventHubStore) {
	// A context that can end, as a server's request contexts can (see
	// runCallers).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.ReportAllocs()
	b.ResetTimer()
	if callers == 1 {
		m := &mixCaller{cs: cs, hs: hs}
		for i := 0; i < b.N; i++ {
			if err := m.step(ctx); err != nil {
				b.Fatal(err)
			}
		}
	} else {
		procs := runtime.GOMAXPROCS(0)
		b.SetParallelism((callers + procs - 1) / procs)
		var ids atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			m := &mixCaller{cs: cs, hs: hs, id: int(ids.Add(1) - 1)}
			for pb.Next() {
				if err := m.step(ctx); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

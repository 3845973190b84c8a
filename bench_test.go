package pikkuredis_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/pikkujs/pikkuredis"
)

// Benchmarks run against the same real Redis as the tests:
//
//	go test -bench . -run '^$'
//
// Every operation is measured with 1, 16 and 64 concurrent callers
// (callers=N), on stores opened from a URL with default options: what a
// user who calls Open*Store(url) gets. Each operation is one round trip to
// Redis (a command or a script) but RemoveChannels, which is one per chunk.

// benchCallers is the concurrency every operation is measured at.
var benchCallers = []int{1, 16, 64}

// openStores returns stores that own their connections, as
// OpenChannelStore(url) makes them, on a fresh key prefix.
func openStores(b *testing.B, opts ...pikkuredis.Option) (*pikkuredis.ChannelStore, *pikkuredis.EventHubStore, string) {
	b.Helper()
	prefix := newPrefix(b)
	opts = append([]pikkuredis.Option{pikkuredis.WithKeyPrefix(prefix)}, opts...)
	cs, err := pikkuredis.OpenChannelStore(redisURL, opts...)
	if err != nil {
		b.Fatal(err)
	}
	hs, err := pikkuredis.OpenEventHubStore(redisURL, opts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cs.Close(); hs.Close() })
	ctx := context.Background()
	if err := cs.Init(ctx); err != nil {
		b.Fatal(err)
	}
	if err := hs.Init(ctx); err != nil {
		b.Fatal(err)
	}
	return cs, hs, prefix
}

// runCallers runs op b.N times in all, from callers goroutines at once
// (b.RunParallel with GOMAXPROCS*parallelism goroutines), each call with a
// distinct i in [0, b.N).
func runCallers(b *testing.B, callers int, op func(ctx context.Context, i int) error) {
	// A context that can end, as a server's request contexts can: the
	// store treats those differently (see pipeline.go).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.ReportAllocs()
	b.ResetTimer()
	if callers == 1 {
		for i := 0; i < b.N; i++ {
			if err := op(ctx, i); err != nil {
				b.Fatal(err)
			}
		}
		return
	}
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism((callers + procs - 1) / procs)
	var next atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := op(ctx, int(next.Add(1)-1)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// eachCallers runs one sub-benchmark per entry of benchCallers; setup
// prepares the data (outside the timer) and returns the operation.
func eachCallers(b *testing.B, setup func(b *testing.B) func(ctx context.Context, i int) error) {
	for _, n := range benchCallers {
		b.Run(fmt.Sprintf("callers=%d", n), func(b *testing.B) {
			runCallers(b, n, setup(b))
		})
	}
}

func BenchmarkAddChannel(b *testing.B) {
	eachCallers(b, func(b *testing.B) func(context.Context, int) error {
		cs, _, _ := openStores(b)
		data := map[string]string{"room": "lobby"}
		return func(ctx context.Context, i int) error {
			return cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "c" + strconv.Itoa(i%1000), ChannelName: "chat", OpeningData: data})
		}
	})
}

func BenchmarkSetUserSession(b *testing.B) {
	eachCallers(b, func(b *testing.B) func(context.Context, int) error {
		cs, _, prefix := openStores(b)
		c := dialRaw(b)
		defer c.Close()
		seedChannels(b, c, prefix, "c", 1000, 0, 1)
		session := map[string]string{"userId": "u1"}
		return func(ctx context.Context, i int) error {
			return cs.SetUserSession(ctx, "c"+strconv.Itoa(i%1000), session)
		}
	})
}

func BenchmarkGetChannelAndSession(b *testing.B) {
	eachCallers(b, func(b *testing.B) func(context.Context, int) error {
		cs, _, _ := openStores(b)
		ctx := context.Background()
		if err := cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "c1", ChannelName: "chat", OpeningData: map[string]string{"room": "lobby"}}); err != nil {
			b.Fatal(err)
		}
		if err := cs.SetUserSession(ctx, "c1", map[string]string{"userId": "u1"}); err != nil {
			b.Fatal(err)
		}
		return func(ctx context.Context, i int) error {
			_, err := cs.GetChannelAndSession(ctx, "c1")
			return err
		}
	})
}

// openSessionStore is a SessionStore on prefix, opened from the URL.
func openSessionStore(b *testing.B, prefix string, opts ...pikkuredis.Option) *pikkuredis.SessionStore {
	b.Helper()
	ss, err := pikkuredis.OpenSessionStore(redisURL, append([]pikkuredis.Option{pikkuredis.WithKeyPrefix(prefix)}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ss.Close() })
	return ss
}

func BenchmarkSessionSet(b *testing.B) {
	eachCallers(b, func(b *testing.B) func(context.Context, int) error {
		ss := openSessionStore(b, newPrefix(b), pikkuredis.WithSessionTTL(time.Hour))
		session := map[string]string{"userId": "u1"}
		return func(ctx context.Context, i int) error {
			return ss.Set(ctx, "u"+strconv.Itoa(i%1000), session)
		}
	})
}

func BenchmarkSessionGet(b *testing.B) {
	eachCallers(b, func(b *testing.B) func(context.Context, int) error {
		ss := openSessionStore(b, newPrefix(b))
		if err := ss.Set(context.Background(), "u1", map[string]string{"userId": "u1"}); err != nil {
			b.Fatal(err)
		}
		return func(ctx context.Context, i int) error {
			_, _, err := ss.Get(ctx, "u1")
			return err
		}
	})
}

// channelWithSession adds the channel c1 of the user u1, who has a
// session, for the reads below.
func channelWithSession(b *testing.B) (*pikkuredis.ChannelStore, *pikkuredis.SessionStore) {
	cs, _, prefix := openStores(b)
	ss := openSessionStore(b, prefix)
	ctx := context.Background()
	err := cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "c1", ChannelName: "chat", OpeningData: map[string]string{"room": "lobby"}})
	if err == nil {
		err = cs.SetPikkuUserID(ctx, "c1", "u1")
	}
	if err == nil {
		err = ss.Set(ctx, "u1", map[string]string{"userId": "u1"})
	}
	if err != nil {
		b.Fatal(err)
	}
	return cs, ss
}

func BenchmarkGetChannelWithSession(b *testing.B) {
	eachCallers(b, func(b *testing.B) func(context.Context, int) error {
		cs, _ := channelWithSession(b)
		return func(ctx context.Context, i int) error {
			_, err := cs.GetChannelWithSession(ctx, "c1")
			return err
		}
	})
}

// BenchmarkGetChannelThenSession is the same read made as today's Pikku
// makes it, GetChannel and then SessionStore.Get: two round trips, and
// not atomic. For comparison with BenchmarkGetChannelWithSession.
func BenchmarkGetChannelThenSession(b *testing.B) {
	eachCallers(b, func(b *testing.B) func(context.Context, int) error {
		cs, ss := channelWithSession(b)
		return func(ctx context.Context, i int) error {
			info, err := cs.GetChannel(ctx, "c1")
			if err == nil {
				_, _, err = ss.Get(ctx, info.PikkuUserID)
			}
			return err
		}
	})
}

func BenchmarkSubscribe(b *testing.B) {
	eachCallers(b, func(b *testing.B) func(context.Context, int) error {
		_, hs, _ := openStores(b)
		return func(ctx context.Context, i int) error {
			_, err := hs.Subscribe(ctx, "news", "c"+strconv.Itoa(i%1000))
			return err
		}
	})
}

func BenchmarkUnsubscribe(b *testing.B) {
	eachCallers(b, func(b *testing.B) func(context.Context, int) error {
		_, hs, _ := openStores(b)
		return func(ctx context.Context, i int) error {
			_, err := hs.Unsubscribe(ctx, "news", "c"+strconv.Itoa(i%1000))
			return err
		}
	})
}

func BenchmarkGetChannelIDsForTopic(b *testing.B) {
	for _, members := range []int{400, 100_000} {
		b.Run(fmt.Sprintf("members=%d", members), func(b *testing.B) {
			eachCallers(b, func(b *testing.B) func(context.Context, int) error {
				_, hs, prefix := openStores(b)
				c := dialRaw(b)
				defer c.Close()
				fillSet(b, c, prefix+":topic:big", members)
				return func(ctx context.Context, i int) error {
					ids, err := hs.GetChannelIDsForTopic(ctx, "big")
					if err == nil && len(ids) != members {
						err = fmt.Errorf("got %d ids, want %d", len(ids), members)
					}
					return err
				}
			})
		})
	}
}

// BenchmarkShardedSubscribe is BenchmarkSubscribe in the sharded layout
// (WithShards(16)): the same one script call, on the channel's shard.
func BenchmarkShardedSubscribe(b *testing.B) {
	eachCallers(b, func(b *testing.B) func(context.Context, int) error {
		_, hs, _ := openStores(b, pikkuredis.WithShards(testShards))
		return func(ctx context.Context, i int) error {
			_, err := hs.Subscribe(ctx, "news", "c"+strconv.Itoa(i%1000))
			return err
		}
	})
}

// BenchmarkShardedGetChannelIDsForTopic is BenchmarkGetChannelIDsForTopic
// in the sharded layout (WithShards(16)): the topic's ids spread over 16
// sets, one SMEMBERS each, sent at once.
func BenchmarkShardedGetChannelIDsForTopic(b *testing.B) {
	for _, members := range []int{100, 100_000} {
		b.Run(fmt.Sprintf("members=%d", members), func(b *testing.B) {
			eachCallers(b, func(b *testing.B) func(context.Context, int) error {
				_, hs, prefix := openStores(b, pikkuredis.WithShards(testShards))
				k := keyLayout{prefix: prefix, shards: testShards}
				c := dialRaw(b)
				defer c.Close()
				for i := 0; i < members; i++ {
					id := "c" + strconv.Itoa(i)
					c.Send("SADD", k.topic("big", id), id)
				}
				if _, err := c.Do(""); err != nil {
					b.Fatal(err)
				}
				return func(ctx context.Context, i int) error {
					ids, err := hs.GetChannelIDsForTopic(ctx, "big")
					if err == nil && len(ids) != members {
						err = fmt.Errorf("got %d ids, want %d", len(ids), members)
					}
					return err
				}
			})
		})
	}
}

// BenchmarkPipelineConns measures Subscribe at 64 callers over 1, 2 and 4
// pipelined connections, and over the pool WithoutAutoPipelining gives:
// what DefaultPipelineConns is chosen from.
func BenchmarkPipelineConns(b *testing.B) {
	for _, conns := range []int{1, 2, 4, 0} {
		name := fmt.Sprintf("conns=%d", conns)
		opt := pikkuredis.WithPipelineConns(conns)
		if conns == 0 {
			name, opt = "pool", pikkuredis.WithoutAutoPipelining()
		}
		b.Run(name, func(b *testing.B) {
			_, hs, _ := openStores(b, opt)
			runCallers(b, 64, func(ctx context.Context, i int) error {
				_, err := hs.Subscribe(ctx, "news", "c"+strconv.Itoa(i%1000))
				return err
			})
		})
	}
}

// BenchmarkBareSMEMBERS is the floor for GetChannelIDsForTopic: the same
// SMEMBERS through a plain redigo connection, one caller.
func BenchmarkBareSMEMBERS(b *testing.B) {
	for _, members := range []int{100, 100_000} {
		b.Run(fmt.Sprintf("members=%d", members), func(b *testing.B) {
			prefix := newPrefix(b)
			c := dialRaw(b)
			defer c.Close()
			fillSet(b, c, prefix+":topic:big", members)
			runCallers(b, 1, func(ctx context.Context, i int) error {
				ids, err := redis.Strings(c.Do("SMEMBERS", prefix+":topic:big"))
				if err == nil && len(ids) != members {
					err = fmt.Errorf("got %d ids, want %d", len(ids), members)
				}
				return err
			})
		})
	}
}

// BenchmarkBareEVALSHA is the floor for Subscribe at one caller: the same
// EVALSHA through a plain redigo connection with no context, so that the
// difference is what the store adds to a round trip.
func BenchmarkBareEVALSHA(b *testing.B) {
	prefix := newPrefix(b)
	c := dialRaw(b)
	defer c.Close()
	sha := pikkuredis.ScriptSHAs()["subscribe"]
	if _, err := c.Do("SCRIPT", "LOAD", readScript(b, "subscribe")); err != nil {
		b.Fatal(err)
	}
	runCallers(b, 1, func(ctx context.Context, i int) error {
		id := "c" + strconv.Itoa(i%1000)
		_, err := c.Do("EVALSHA", sha, 2, prefix+":topic:news", prefix+":subs:"+id, id, "news")
		return err
	})
}

// BenchmarkScanChannelIDsForTopic walks a topic with the iterator, one
// caller. live-MB is the most memory the walk keeps live at once (sampled
// after a GC every 1,000 ids, outside the timed loop); get-live-MB is the
// same for GetChannelIDsForTopic, which holds every id: the first stays
// flat as the topic grows, the second grows with it.
func BenchmarkScanChannelIDsForTopic(b *testing.B) {
	for _, members := range []int{100, 100_000} {
		b.Run(fmt.Sprintf("members=%d", members), func(b *testing.B) {
			_, hs, prefix := openStores(b)
			c := dialRaw(b)
			defer c.Close()
			fillSet(b, c, prefix+":topic:big", members)
			ctx := context.Background()
			walk := func(sample func()) error {
				n := 0
				for _, err := range hs.ScanChannelIDsForTopic(ctx, "big") {
					if err != nil {
						return err
					}
					if n++; sample != nil && n%1000 == 0 {
						sample()
					}
				}
				if n < members {
					return fmt.Errorf("got %d ids, want %d", n, members)
				}
				return nil
			}
			scanLive := peakLive(b, walk)
			getLive := peakLive(b, func(sample func()) error {
				ids, err := hs.GetChannelIDsForTopic(ctx, "big")
				sample()
				runtime.KeepAlive(ids)
				return err
			})
			runCallers(b, 1, func(ctx context.Context, i int) error { return walk(nil) })
			b.ReportMetric(scanLive, "live-MB")
			b.ReportMetric(getLive, "get-live-MB")
		})
	}
}

// peakLive runs f and returns the most heap (MB) live at any of the points
// where f calls sample, above what was live before.
func peakLive(b *testing.B, f func(sample func()) error) float64 {
	var ms runtime.MemStats
	live := func() uint64 {
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	base := live()
	peak := base
	if err := f(func() { peak = max(peak, live()) }); err != nil {
		b.Fatal(err)
	}
	return float64(peak-base) / (1 << 20)
}

// BenchmarkRemoveChannels removes n channels of 10 subscriptions each per
// op, in chunks of the default size. The channels are written before the
// timer starts (b.N*n of them, so mind -benchtime for n=1000).
func BenchmarkRemoveChannels(b *testing.B) {
	for _, n := range []int{1, 1000} {
		b.Run(fmt.Sprintf("channels=%d/subs=10", n), func(b *testing.B) {
			eachCallers(b, func(b *testing.B) func(context.Context, int) error {
				cs, _, prefix := openStores(b)
				c := dialRaw(b)
				defer c.Close()
				batches := make([][]string, b.N)
				for i := range batches {
					batches[i] = seedChannels(b, c, prefix, fmt.Sprintf("i%d-", i), n, 10, 100)
				}
				b.Cleanup(func() {
					b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "channels/s")
				})
				return func(ctx context.Context, i int) error {
					return cs.RemoveChannels(ctx, batches[i])
				}
			})
		})
	}
}

// BenchmarkRemoveChannelsPing removes 10,000 channels of 10 subscriptions
// each per op while another connection PINGs Redis in a loop, and reports
// the PING latency seen meanwhile: no script may hold Redis for long.
func BenchmarkRemoveChannelsPing(b *testing.B) {
	const n = 10_000
	cs, _, prefix := openStores(b)
	c := dialRaw(b)
	defer c.Close()
	ping := dialRaw(b)
	defer ping.Close()
	ctx := context.Background()
	var lat []time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		ids := seedChannels(b, c, prefix, fmt.Sprintf("i%d-", i), n, 10, 1000)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				if _, err := ping.Do("PING"); err != nil {
					b.Error(err)
					return
				}
				lat = append(lat, time.Since(start))
			}
		}()
		b.StartTimer()
		if err := cs.RemoveChannels(ctx, ids); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		close(stop)
		wg.Wait()
		b.StartTimer()
	}
	b.StopTimer()
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "ping-p99-ms")
		b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "ping-max-ms")
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "channels/s")
}

// fillSet writes n members into a set with pipelined SADDs.
func fillSet(b testing.TB, c redis.Conn, key string, n int) {
	b.Helper()
	for start := 0; start < n; start += 1000 {
		args := redis.Args{key}
		for i := start; i < min(start+1000, n); i++ {
			args = append(args, "c"+strconv.Itoa(i))
		}
		if _, err := c.Do("SADD", args...); err != nil {
			b.Fatal(err)
		}
	}
}

// seedChannels writes, pipelined, n channels with idPrefix, each subscribed
// to subs of the given number of topics, in the store's layout.
func seedChannels(b testing.TB, c redis.Conn, prefix, idPrefix string, n, subs, topics int) []string {
	b.Helper()
	ids := make([]string, n)
	now := strconv.FormatInt(time.Now().UnixMilli(), 10)
	for i := range ids {
		id := idPrefix + strconv.Itoa(i)
		ids[i] = id
		c.Send("HSET", prefix+":channel:"+id, "channelId", id, "channelName", "bench", "openingData", "{}", "createdAt", now)
		for j := 0; j < subs; j++ {
			topic := "t" + strconv.Itoa((i+j)%topics)
			c.Send("SADD", prefix+":topic:"+topic, id)
			c.Send("SADD", prefix+":subs:"+id, topic)
		}
		if i%1000 == 999 { // keep the pipeline's replies bounded
			if _, err := c.Do(""); err != nil {
				b.Fatal(err)
			}
		}
	}
	if _, err := c.Do(""); err != nil {
		b.Fatal(err)
	}
	return slices.Clip(ids)
}

// BenchmarkTopicHeadOfLine: a small call made while a 1,000,000-id topic
// read is under way on the same connection waits for the large reply to
// pass through the connection's reader. It reports how long the small
// call behind it waited (behind-ms) and how long a PING sent at the same
// time on a connection of its own waited (redis-ms): what Redis alone
// makes a call wait. Their difference is the wait the client adds; a
// reader that decodes the large reply before reading the next adds its
// decoding (resp.go).
func BenchmarkTopicHeadOfLine(b *testing.B) {
	_, hs, prefix := openStores(b) // DefaultPipelineConns: one connection
	c := dialRaw(b)
	defer c.Close()
	const members = 1_000_000
	fillSet(b, c, prefix+":topic:big", members)
	fillSet(b, c, prefix+":topic:small", 1)
	ctx := context.Background()
	var behind, alone time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		done := make(chan error, 2)
		go func() {
			ids, err := hs.GetChannelIDsForTopic(ctx, "big")
			if err == nil && len(ids) != members {
				err = fmt.Errorf("got %d ids, want %d", len(ids), members)
			}
			done <- err
		}()
		time.Sleep(5 * time.Millisecond) // the large read goes out first
		go func() {
			t0 := time.Now()
			_, err := c.Do("PING")
			alone += time.Since(t0)
			done <- err
		}()
		t0 := time.Now()
		if _, err := hs.GetChannelIDsForTopic(ctx, "small"); err != nil {
			b.Fatal(err)
		}
		behind += time.Since(t0)
		for range 2 {
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(behind.Milliseconds())/float64(b.N), "behind-ms")
	b.ReportMetric(float64(alone.Milliseconds())/float64(b.N), "redis-ms")
	b.ReportMetric(float64((behind-alone).Milliseconds())/float64(b.N), "added-ms")
}

package pikkuredis_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/pikkujs/pikkuredis"
)

// Benchmarks run against the same real Redis as the tests:
//
//	go test -bench . -run '^$'
//
// Each operation is one round trip to Redis (a command or a script).

func BenchmarkAddChannel(b *testing.B) {
	cs, _, _ := stores(b)
	ctx := context.Background()
	ch := pikkuredis.Channel{ChannelID: "c1", ChannelName: "chat", OpeningData: map[string]string{"room": "lobby"}}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		ch.ChannelID = "c" + strconv.Itoa(i%1000)
		if err := cs.AddChannel(ctx, ch); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSetUserSession(b *testing.B) {
	cs, _, _ := stores(b)
	ctx := context.Background()
	if err := cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "c1"}); err != nil {
		b.Fatal(err)
	}
	session := map[string]string{"userId": "u1"}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := cs.SetUserSession(ctx, "c1", session); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetChannelAndSession(b *testing.B) {
	cs, _, _ := stores(b)
	ctx := context.Background()
	if err := cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "c1", OpeningData: map[string]string{"room": "lobby"}}); err != nil {
		b.Fatal(err)
	}
	if err := cs.SetUserSession(ctx, "c1", map[string]string{"userId": "u1"}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := cs.GetChannelAndSession(ctx, "c1"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSubscribe(b *testing.B) {
	_, hs, _ := stores(b)
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := hs.Subscribe(ctx, "news", "c"+strconv.Itoa(i%1000)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnsubscribe(b *testing.B) {
	_, hs, _ := stores(b)
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := hs.Unsubscribe(ctx, "news", "c"+strconv.Itoa(i%1000)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetChannelIDsForTopic(b *testing.B) {
	for _, members := range []int{100, 100_000} {
		b.Run(fmt.Sprintf("members=%d", members), func(b *testing.B) {
			_, hs, prefix := stores(b)
			ctx := context.Background()
			c := dialRaw(b)
			defer c.Close()
			fillSet(b, c, prefix+":topic:big", members)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				ids, err := hs.GetChannelIDsForTopic(ctx, "big")
				if err != nil || len(ids) != members {
					b.Fatal(len(ids), err)
				}
			}
		})
	}
}

// BenchmarkRemoveChannels removes n channels of 10 subscriptions each per
// op, in chunks of the default size (n=100 is one chunk: its ns/op is about
// the time one remove_channels call holds Redis). max-ms is the slowest
// RemoveChannels call seen, as the client measures it.
func BenchmarkRemoveChannels(b *testing.B) {
	for _, n := range []int{1, 100, 500, 1000} {
		b.Run(fmt.Sprintf("channels=%d/subs=10", n), func(b *testing.B) {
			cs, _, prefix := stores(b)
			ctx := context.Background()
			c := dialRaw(b)
			defer c.Close()
			var slowest time.Duration
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				ids := seedChannels(b, c, prefix, fmt.Sprintf("i%d-", i), n, 10, 100)
				b.StartTimer()
				start := time.Now()
				if err := cs.RemoveChannels(ctx, ids); err != nil {
					b.Fatal(err)
				}
				slowest = max(slowest, time.Since(start))
			}
			b.ReportMetric(float64(slowest.Microseconds())/1000, "max-ms")
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "channels/s")
		})
	}
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
	}
	if _, err := c.Do(""); err != nil {
		b.Fatal(err)
	}
	return slices.Clip(ids)
}

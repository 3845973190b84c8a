package pikkuredis_test

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/pikkujs/pikkuredis"
)

// BenchmarkScriptRedisTime measures what the Redis-bound operations cost
// Redis itself, not the client: each operation runs b.N times, one caller,
// as the store sends it, on a redis-server of the benchmark's own (CONFIG
// RESETSTAT must not touch a shared one), and INFO commandstats then gives
//
//   - redis-us/call: Redis's usec_per_call of EVALSHA, the whole script
//     with the commands it calls;
//   - cmds/call: the commands the script called (redis.call, redis.pcall),
//     per EVALSHA;
//   - redis-p50-us/call: the median of those times (INFO latencystats).
//     usec_per_call is a mean of wall times: on a machine whose cores
//     other processes share, Redis is now and then preempted within a
//     call, and those calls move the mean from run to run far more than
//     they move the median.
//
// Compare builds of the test binary run interleaved, several times each:
//
//	go test -c -o head.test && ./head.test -test.run '^$' -test.bench ScriptRedisTime -test.benchtime 20000x
//
// The data: channels of 10 subscriptions each, on topics of about 100
// members, as a server that keeps chat rooms would hold them.
func BenchmarkScriptRedisTime(b *testing.B) {
	srv := ownRedis(b)
	admin := dialURL(b, srv.URL)
	defer admin.Close()
	// Each case seeds what its b.N calls need and returns the call.
	cases := []struct {
		name  string
		opts  []pikkuredis.Option
		setup func(b *testing.B, cs *pikkuredis.ChannelStore, hs *pikkuredis.EventHubStore, prefix string) func(ctx context.Context, i int) error
	}{
		{name: "op=RemoveChannels/channels=1/subs=10", setup: removeCase(admin, 1, false)},
		{name: "op=RemoveChannels/channels=1/subs=10/leases", opts: []pikkuredis.Option{pikkuredis.WithChannelTTL(time.Hour)}, setup: removeCase(admin, 1, true)},
		{name: "op=RemoveChannels/channels=100/subs=10", setup: removeCase(admin, 100, false)},
		{name: "op=RemoveChannels/channels=100/subs=10/leases", opts: []pikkuredis.Option{pikkuredis.WithChannelTTL(time.Hour)}, setup: removeCase(admin, 100, true)},
		{name: "op=Unsubscribe/members=100", setup: func(b *testing.B, _ *pikkuredis.ChannelStore, hs *pikkuredis.EventHubStore, prefix string) func(context.Context, int) error {
			// Channel i is subscribed to topic i%topics (seedChannels'
			// first topic of it): every call unsubscribes a subscription.
			topics := max(1, b.N*10/100)
			ids := seedChannels(b, admin, prefix, "c", b.N, 10, topics)
			return func(ctx context.Context, i int) error {
				ok, err := hs.Unsubscribe(ctx, "t"+strconv.Itoa(i%topics), ids[i])
				if err == nil && !ok {
					err = fmt.Errorf("channel %s was not subscribed to t%d", ids[i], i%topics)
				}
				return err
			}
		}},
		{name: "op=Unsubscribe/members=100/not-subscribed", setup: func(b *testing.B, _ *pikkuredis.ChannelStore, hs *pikkuredis.EventHubStore, prefix string) func(context.Context, int) error {
			seedChannels(b, admin, prefix, "c", 1000, 10, 100)
			return func(ctx context.Context, i int) error {
				_, err := hs.Unsubscribe(ctx, "t"+strconv.Itoa(i%100), "gone"+strconv.Itoa(i))
				return err
			}
		}},
		{name: "op=SetUserSession/set", setup: func(b *testing.B, cs *pikkuredis.ChannelStore, _ *pikkuredis.EventHubStore, prefix string) func(context.Context, int) error {
			ids := seedChannels(b, admin, prefix, "c", 1000, 10, 100)
			session := map[string]string{"userId": "u1"}
			return func(ctx context.Context, i int) error {
				return cs.SetUserSession(ctx, ids[i%len(ids)], session)
			}
		}},
		{name: "op=SetUserSession/clear", setup: func(b *testing.B, cs *pikkuredis.ChannelStore, _ *pikkuredis.EventHubStore, prefix string) func(context.Context, int) error {
			ids := seedChannels(b, admin, prefix, "c", 1000, 10, 100)
			return func(ctx context.Context, i int) error {
				return cs.SetUserSession(ctx, ids[i%len(ids)], nil)
			}
		}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			prefix := randomPrefix(b)
			opts := append([]pikkuredis.Option{pikkuredis.WithKeyPrefix(prefix)}, tc.opts...)
			cs, hs := openBoth(b, srv.URL, opts...)
			ctx := context.Background()
			if err := cs.Init(ctx); err != nil {
				b.Fatal(err)
			}
			if err := hs.Init(ctx); err != nil {
				b.Fatal(err)
			}
			op := tc.setup(b, cs, hs, prefix)
			if _, err := admin.Do("CONFIG", "RESETSTAT"); err != nil {
				b.Fatal(err)
			}
			runCallers(b, 1, op)
			b.StopTimer()
			info, err := redis.String(admin.Do("INFO", "commandstats"))
			if err != nil {
				b.Fatal(err)
			}
			usec, cmds, err := scriptStats(info)
			if err != nil {
				b.Fatal(err)
			}
			if testing.Verbose() {
				b.Logf("N=%d\n%s", b.N, cmdstatRE.FindAllString(info, -1))
			}
			b.ReportMetric(usec, "redis-us/call")
			b.ReportMetric(cmds, "cmds/call")
			b.ReportMetric(evalshaP50(b, admin), "redis-p50-us/call")
			// Drop the keys left (none for the removals) so that the
			// next case's server is as empty as this one's was.
			if _, err := admin.Do("FLUSHDB"); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// removeCase is the setup of RemoveChannels of n channels a call (one
// script call: n is at most the default chunk size), each of 10
// subscriptions, with a lease each when leases is set.
func removeCase(admin redis.Conn, n int, leases bool) func(b *testing.B, cs *pikkuredis.ChannelStore, _ *pikkuredis.EventHubStore, prefix string) func(context.Context, int) error {
	return func(b *testing.B, cs *pikkuredis.ChannelStore, _ *pikkuredis.EventHubStore, prefix string) func(context.Context, int) error {
		ids := seedChannels(b, admin, prefix, "c", b.N*n, 10, max(1, b.N*n*10/100))
		if leases {
			deadline := time.Now().Add(time.Hour).UnixMilli()
			for start := 0; start < len(ids); start += 1000 {
				args := redis.Args{prefix + ":leases"}
				for _, id := range ids[start:min(start+1000, len(ids))] {
					args = append(args, deadline, id)
				}
				if _, err := admin.Do("ZADD", args...); err != nil {
					b.Fatal(err)
				}
			}
		}
		return func(ctx context.Context, i int) error {
			return cs.RemoveChannels(ctx, ids[i*n:(i+1)*n])
		}
	}
}

var cmdstatRE = regexp.MustCompile(`(?m)^cmdstat_([a-z|]+):calls=(\d+),usec=\d+,usec_per_call=([0-9.]+)`)

// scriptStats reads, from INFO commandstats, EVALSHA's usec_per_call and
// how many other commands ran per EVALSHA call: after CONFIG RESETSTAT,
// with only scripts sent, those are the scripts' own calls.
func scriptStats(info string) (usecPerCall, cmdsPerCall float64, err error) {
	var evalsha, others float64
	found := false
	for _, m := range cmdstatRE.FindAllStringSubmatch(info, -1) {
		calls, _ := strconv.ParseFloat(m[2], 64)
		switch {
		case m[1] == "evalsha":
			found = true
			evalsha = calls
			usecPerCall, _ = strconv.ParseFloat(m[3], 64)
		case m[1] == "config|resetstat", m[1] == "info": // the benchmark's own
		default:
			others += calls
		}
	}
	if !found || evalsha == 0 {
		return 0, 0, fmt.Errorf("no EVALSHA in INFO commandstats:\n%s", info)
	}
	return usecPerCall, others / evalsha, nil
}

var evalshaP50RE = regexp.MustCompile(`(?m)^latency_percentiles_usec_evalsha:p50=([0-9.]+)`)

// evalshaP50 returns the median time of an EVALSHA in Redis, in µs, from
// INFO latencystats (Redis 7's latency-tracking, on by default).
func evalshaP50(b *testing.B, c redis.Conn) float64 {
	info, err := redis.String(c.Do("INFO", "latencystats"))
	if err != nil {
		b.Fatal(err)
	}
	m := evalshaP50RE.FindStringSubmatch(info)
	if m == nil {
		b.Fatalf("no EVALSHA p50 in INFO latencystats:\n%s", info)
	}
	p50, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		b.Fatal(err)
	}
	return p50
}

package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/gomodule/redigo/redis"

	"github.com/pikkujs/pikkuredis"
)

// shape is a command redis-benchmark sends, shaped like what one operation
// sends, unpipelined (-P 1) from -c callers connections: what Redis can
// serve to a client that waits for each reply before it sends the next
// command on a connection. (redis-benchmark gives each __rand_int__ its
// own value, so it cannot send the matched keys of the real calls; the
// limit of pipelined calls is redis-cli --pipe's, in pipe.go.)
type shape struct {
	name   string  // as shown in the table
	random int     // -r: __rand_int__ takes this many values (0: no -r)
	guess  float64 // requests/s to size the first run when no implementation's rate is known
	// args are the command and its arguments, keys under base.
	args func(l *limits) []string
	// seed prepares the data (or the script) the command needs.
	seed func(ctx context.Context, l *limits) error
}

var (
	// shapeHSET is AddChannel: the same four fields, values of similar size
	// (redis-benchmark writes __rand_int__ as 12 digits).
	shapeHSET = &shape{
		name: "HSET 4 fields", random: wl.AddChannelIDs, guess: 20_000,
		args: func(l *limits) []string {
			return []string{"HSET", l.base + ":rb:channel:a__rand_int__",
				"channelId", "a__rand_int__", "channelName", "chat",
				"openingData", `{"room":"lobby"}`, "createdAt", nowMillis()}
		},
	}
	// shapeEVALSHA is the subscribe script called as pikkuredis calls it:
	// the limit for every small script (Subscribe, Unsubscribe,
	// SetUserSession).
	shapeEVALSHA = &shape{
		name: "EVALSHA subscribe.lua", random: wl.Pairs, guess: 20_000,
		args: func(l *limits) []string {
			return []string{"EVALSHA", pikkuredis.ScriptSHAs()["subscribe"], "2",
				l.base + ":rb:topic:t__rand_int__", l.base + ":rb:subs:c__rand_int__",
				"c__rand_int__", "t__rand_int__"}
		},
		seed: func(ctx context.Context, l *limits) error { return l.loadScript(ctx, "subscribe") },
	}
	// shapeHMGET is GetChannelAndSession as pikkuredis reads it (one HMGET
	// of five fields; @pikku/redis sends HGETALL).
	shapeHMGET = &shape{
		name: "HMGET 5 fields", guess: 20_000,
		args: func(l *limits) []string {
			return []string{"HMGET", l.base + ":rb:channel:g", "channelId", "channelName", "openingData", "createdAt", "userSession"}
		},
		seed: func(ctx context.Context, l *limits) error {
			_, err := l.srv.do(ctx, "HSET", l.base+":rb:channel:g", "channelId", "g", "channelName", "chat",
				"openingData", `{"room":"lobby"}`, "createdAt", nowMillis(), "userSession", `{"userId":"u-1"}`)
			return err
		},
	}
)

// shapeSMEMBERS is GetChannelIDsForTopic on a topic of the same size.
func shapeSMEMBERS(topic string, members int) *shape {
	return &shape{
		name: "SMEMBERS " + strconv.Itoa(members), guess: 2e7 / float64(members),
		args: func(l *limits) []string {
			return []string{"SMEMBERS", l.base + ":rb:topic:" + topic}
		},
		seed: func(ctx context.Context, l *limits) error {
			return seeder{l.srv, standardLayout(l.base + ":rb")}.seedTopic(ctx, topic, members)
		},
	}
}

// limits runs redis-benchmark against the server.
type limits struct {
	srv      *server
	conn     []string // redis-benchmark flags that reach srv
	base     string   // key prefix of the whole invocation
	scripts  string   // the repository's scripts/ directory
	tm       timing
	estimate map[string]float64 // requests/s seen last time, by limitKey
}

func newLimits(srv *server, base, scripts string, tm timing) (*limits, error) {
	if _, err := exec.LookPath("redis-benchmark"); err != nil {
		return nil, fmt.Errorf("redis-benchmark is not on PATH (it comes with redis-server; Debian/Ubuntu: apt-get install redis-tools): %w", err)
	}
	conn, err := srv.toolArgs(false)
	if err != nil {
		return nil, err
	}
	return &limits{srv: srv, conn: conn, base: base, scripts: scripts, tm: tm, estimate: map[string]float64{}}, nil
}

func limitKey(sh *shape, callers int) string {
	return fmt.Sprintf("%s/c=%d", sh.name, callers)
}

// loadScript sends SCRIPT LOAD for a file of scripts/ and checks that the
// server's sha is the one pikkuredis calls, so that redis-benchmark's
// EVALSHA runs the library's script and not a NOSCRIPT error.
func (l *limits) loadScript(ctx context.Context, name string) error {
	src, err := os.ReadFile(filepath.Join(l.scripts, name+".lua"))
	if err != nil {
		return fmt.Errorf("read script: %w", err)
	}
	sha, err := redis.String(l.srv.do(ctx, "SCRIPT", "LOAD", src))
	if err != nil {
		return err
	}
	if want := pikkuredis.ScriptSHAs()[name]; sha != want {
		return fmt.Errorf("SCRIPT LOAD %s.lua returned sha %s, pikkuredis calls %s", name, sha, want)
	}
	return nil
}

// measure runs one shape, unpipelined, for about the -duration: the
// number of requests is taken from the rate seen last time or, the first
// time, from hint (the slowest implementation's rate in the same cell),
// or a guess.
func (l *limits) measure(ctx context.Context, sh *shape, callers int, hint float64) (result, error) {
	const pipeline = 1
	if sh.seed != nil {
		if err := sh.seed(ctx, l); err != nil {
			return result{}, fmt.Errorf("redis-benchmark %s: prepare: %w", sh.name, err)
		}
	}
	key := limitKey(sh, callers)
	rps, ok := l.estimate[key]
	if !ok {
		rps = hint
	}
	if rps <= 0 {
		rps = sh.guess
	}
	// At least two requests per connection, or -c callers would not all
	// be busy; no more, so that a 100,000-id SMEMBERS at 13 requests/s
	// does not run for minutes.
	res, err := l.run(ctx, sh, callers, pipeline, max(2*callers, int(rps*l.tm.duration.Seconds())))
	if err != nil {
		return result{}, err
	}
	l.estimate[key] = res.OpsPerSec
	return res, nil
}

// run starts redis-benchmark for n requests and parses its --csv output,
// whose header in Redis 7 is
// "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms".
func (l *limits) run(ctx context.Context, sh *shape, callers, pipeline, n int) (result, error) {
	args := slices.Clone(l.conn)
	args = append(args, "-c", strconv.Itoa(callers), "-P", strconv.Itoa(pipeline), "-n", strconv.Itoa(n), "--csv")
	if sh.random > 0 {
		args = append(args, "-r", strconv.Itoa(sh.random))
	}
	args = append(args, sh.args(l)...)
	cmd := exec.CommandContext(ctx, "redis-benchmark", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	what := fmt.Sprintf("redis-benchmark %s -c %d -P %d", sh.name, callers, pipeline)
	if err := cmd.Run(); err != nil {
		return result{}, fmt.Errorf("%s: %w: %s", what, err, strings.TrimSpace(stderr.String()))
	}
	// The first column repeats the command unescaped (our JSON values
	// carry quotes), so the data row is read from the right.
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) < 2 {
		return result{}, fmt.Errorf("%s: unexpected output %q", what, stdout.String())
	}
	header, err := csv.NewReader(strings.NewReader(lines[0])).Read()
	if err != nil || len(header) < 2 || header[0] != "test" {
		return result{}, fmt.Errorf("%s: unexpected csv header %q (%v)", what, lines[0], err)
	}
	values := strings.Split(strings.Trim(strings.TrimSpace(lines[len(lines)-1]), `"`), `","`)
	if len(values) < len(header) {
		return result{}, fmt.Errorf("%s: unexpected csv row %q", what, lines[len(lines)-1])
	}
	values = values[len(values)-len(header)+1:] // every column but "test"
	field := func(name string) (float64, error) {
		for i, h := range header[1:] {
			if h == name {
				v, err := strconv.ParseFloat(values[i], 64)
				if err != nil {
					return 0, fmt.Errorf("%s: column %s: %w", what, name, err)
				}
				return v, nil
			}
		}
		return 0, fmt.Errorf("%s: no column %q in %q", what, name, header)
	}
	var res result
	if res.OpsPerSec, err = field("rps"); err != nil {
		return result{}, err
	}
	p50, err := field("p50_latency_ms")
	if err != nil {
		return result{}, err
	}
	p99, err := field("p99_latency_ms")
	if err != nil {
		return result{}, err
	}
	res.Ops, res.P50us, res.P99us = n, p50*1000, p99*1000
	if res.OpsPerSec > 0 {
		res.Seconds = float64(n) / res.OpsPerSec
	}
	return res, nil
}

// benchmarkVersion is the first line of `redis-benchmark --version`.
func benchmarkVersion() string {
	out, err := exec.Command("redis-benchmark", "--version").Output()
	if err != nil {
		return "unknown"
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}

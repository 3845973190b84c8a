// Command compare measures pikkuredis side by side with the same
// operations written on the Go clients rueidis and go-redis, with the
// TypeScript @pikku/redis 0.12.3 it is compatible with, and with what
// Redis itself can serve (redis-cli --pipe, redis-benchmark), on one Redis
// in one run, and pikkuredis on a Redis Cluster of 3 masters beside it.
// It is a module of its own, so that the peers' dependencies stay out of
// the library's go.mod; from the repository root:
//
//	go -C compare run .
//
// For each operation and each number of concurrent callers it times the Go
// stores (default options, one goroutine per caller), the same calls on
// rueidis and on go-redis (each client's defaults, the same keys, commands
// and Lua files), @pikku/redis on Node.js (one async loop per caller on
// one ioredis client, run by interop/bench.mjs), the Go stores again on a
// cluster the runner starts on this machine, and redis-benchmark sending
// the same command shape unpipelined; then, once per operation, redis-cli
// --pipe sending the exact commands of the calls. The whole set is
// repeated -runs times, the implementations interleaved within each run,
// and every figure and ratio reported is the median across runs. See
// compare/README.md.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pikkujs/pikkuredis"
	"github.com/pikkujs/pikkuredis/internal/redisurl"
)

type config struct {
	redisURL string
	runs     int
	tm       timing
	callers  []int
	ops      []*operation
	bulk     bool
	cluster  bool
	shards   int // WithShards of the cluster's stores; 0 or 1: a hash-tag prefix
	svgPath  string
	mdPath   string
}

func main() {
	cfg, err := parseFlags()
	if err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("interrupted (%w)", err)
		}
		fmt.Fprintln(os.Stderr, "compare:", err)
		stop()
		os.Exit(1)
	}
}

func parseFlags() (config, error) {
	var cfg config
	var callers, ops string
	flag.StringVar(&cfg.redisURL, "redis", "", "use this Redis (redis://...) instead of starting a private redis-server; only keys under a random prefix are touched, nothing is flushed")
	flag.IntVar(&cfg.runs, "runs", 5, "repeat the whole set this many times and report medians")
	flag.DurationVar(&cfg.tm.duration, "duration", time.Second, "measured time of each cell")
	flag.DurationVar(&cfg.tm.warmup, "warmup", 250*time.Millisecond, "unrecorded warm-up before each Go and TypeScript cell")
	flag.StringVar(&callers, "callers", "1,16,64", "comma-separated numbers of concurrent callers")
	flag.StringVar(&ops, "ops", "all", "comma-separated subset of: AddChannel, SetUserSession, GetChannelAndSession, Subscribe, Unsubscribe, GetChannelIDsForTopic (both topic sizes, or \"GetChannelIDsForTopic 400\", \"GetChannelIDsForTopic 100k\"), RemoveChannels, "+bulkRemoveName)
	flag.BoolVar(&cfg.cluster, "cluster", true, "also measure the Go stores on a Redis Cluster of 3 masters and 3 replicas that the runner starts on this machine (needs redis-cli)")
	flag.IntVar(&cfg.shards, "cluster-shards", 16, "WithShards of the stores on the cluster, which spreads the channels over its masters; 0 for a hash-tag prefix instead, every key on one master")
	// No files by default: a trial run must not overwrite the committed
	// chart with this machine's figures.
	flag.StringVar(&cfg.svgPath, "svg", "", "also write the chart to this file (default: no chart); a relative path is taken from the repository root. "+
		"To update the committed ones: -svg compare/results.svg -md compare/results.md")
	flag.StringVar(&cfg.mdPath, "md", "", "also write the results as markdown to this file (default: none); a relative path is taken from the repository root")
	flag.Parse()
	if flag.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	if cfg.runs < 1 {
		return cfg, errors.New("-runs must be at least 1")
	}
	if cfg.tm.duration <= 0 || cfg.tm.warmup < 0 {
		return cfg, errors.New("-duration must be positive and -warmup not negative")
	}
	for _, f := range strings.Split(callers, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return cfg, fmt.Errorf("-callers: %q is not a positive number", f)
		}
		cfg.callers = append(cfg.callers, n)
	}
	var err error
	cfg.ops, cfg.bulk, err = selectOps(ops)
	return cfg, err
}

// cell names one row of the table.
type cell struct {
	op      string
	callers int
}

// runResults is what one run of the whole set measured.
type runResults struct {
	res     [numImpls]map[cell]result
	perRead [numImpls]map[cell]float64 // calls per socket read, as Redis saw them
	limits  map[string]result          // redis-benchmark, by limitKey
	pipe    map[string]result          // redis-cli --pipe, by operation
	bulk    *bulkResult
}

// impl is one of the implementations measured side by side.
type impl int

const (
	implGo      impl = iota // pikkuredis on the single server: "store"
	implRueidis             // the same calls on rueidis
	implGoRedis             // the same calls on go-redis
	implTS                  // @pikku/redis on the single server
	implCluster             // pikkuredis on the cluster
	numImpls
)

func (i impl) String() string { return [...]string{"store", "rueidis", "go-redis", "TS", "Cluster"}[i] }

func run(ctx context.Context, cfg config) error {
	interop, err := findInterop()
	if err != nil {
		return err
	}
	if err := ensureNodeModules(interop); err != nil {
		return err
	}
	// go -C compare run . starts us in compare/: relative output paths
	// are taken from the repository root, where the README's command is
	// typed, and the Lua files are read from its scripts/.
	root := filepath.Dir(interop)
	for _, p := range []*string{&cfg.svgPath, &cfg.mdPath} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(root, *p)
		}
	}
	scripts, err := readScripts(filepath.Join(root, "scripts"))
	if err != nil {
		return err
	}

	srv, err := openServer(ctx, cfg.redisURL)
	if err != nil {
		return err
	}
	defer srv.close()
	base, err := randomPrefix()
	if err != nil {
		return err
	}
	prefixes := [numImpls]string{implGo: base + ":go", implRueidis: base + ":rueidis", implGoRedis: base + ":goredis", implTS: base + ":ts"}
	if srv.started == nil {
		// On a server we did not start, take our keys away even after a
		// failure or Ctrl-C, with a context of its own.
		defer func() {
			cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := srv.deleteKeys(cctx, base); err != nil {
				fmt.Fprintln(os.Stderr, "compare:", err)
			}
		}()
	}

	g, err := openGoStores(ctx, srv.url, prefixes[implGo])
	if err != nil {
		return err
	}
	defer g.close()
	ru, err := openRueidis(ctx, srv.url, prefixes[implRueidis], scripts)
	if err != nil {
		return err
	}
	defer ru.close()
	gr, err := openGoRedis(ctx, srv.url, prefixes[implGoRedis], scripts)
	if err != nil {
		return err
	}
	defer gr.close()
	for _, ping := range []func(context.Context, int) error{ru.ping, gr.ping} {
		if err := prime(ctx, slices.Max(cfg.callers), ping); err != nil {
			return err
		}
	}

	node, versions, err := startNode(interop, srv.url, prefixes[implTS])
	if err != nil {
		return err
	}
	defer node.close()

	lim, err := newLimits(srv, base, filepath.Join(root, "scripts"), cfg.tm)
	if err != nil {
		return err
	}
	pl, err := newPipeLimits(srv, base, scripts, cfg.tm)
	if err != nil {
		return err
	}
	defer pl.close()
	m, err := describeMachine(ctx, srv, versions, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "compare: %s; Redis at %s, keys under %s:*\n", m.oneLine(), redisurl.Redact(srv.url), base)

	r := &runner{cfg: cfg, srv: srv, g: g, node: node, lim: lim, pipe: pl, prefixes: prefixes, removeRate: map[string]float64{}, unsubRate: map[string]float64{}}
	r.stores[implGo], r.stores[implRueidis], r.stores[implGoRedis] = g, ru, gr
	r.impls = []impl{implGo, implRueidis, implGoRedis, implTS}
	if cfg.cluster {
		logf("compare: starting a Redis Cluster (3 masters, 3 replicas)")
		cl, err := startCluster(ctx, base, cfg.shards)
		if err != nil {
			return err
		}
		defer cl.close()
		r.cluster = cl
		r.stores[implCluster] = cl.g
		r.impls = append(r.impls, implCluster)
		m.cluster = fmt.Sprintf("Redis Cluster of %d masters + %d replicas (redis-server on this machine), ", len(cl.masters), len(cl.cl.Nodes)-len(cl.masters))
		if cfg.shards >= 2 {
			m.cluster += fmt.Sprintf("WithShards(%d): a topic read is %d SMEMBERS", cfg.shards, cfg.shards)
		} else {
			m.cluster += "hash-tag prefix: every key on one master"
		}
	}
	var runs []*runResults
	for i := 0; i < cfg.runs; i++ {
		t0 := time.Now()
		rr, err := r.runOnce(ctx, i)
		if err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		logf("run %d/%d took %s", i+1, cfg.runs, time.Since(t0).Round(time.Second))
		runs = append(runs, rr)
		// Each run starts from an empty key space: @pikku/redis leaves
		// removed ids in topic sets, which would otherwise keep growing.
		if err := srv.deleteKeys(ctx, base); err != nil {
			return err
		}
		if r.cluster != nil {
			if err := r.cluster.deleteKeys(ctx); err != nil {
				return err
			}
		}
	}

	rep := summarize(cfg, r.impls, runs)
	rep.machine = m
	rep.warnings = r.warnings
	if err := rep.writeText(os.Stdout); err != nil {
		return err
	}
	if cfg.mdPath != "" {
		if err := writeFile(cfg.mdPath, rep.writeMarkdown); err != nil {
			return err
		}
	}
	if cfg.svgPath != "" {
		if err := writeFile(cfg.svgPath, rep.writeSVG); err != nil {
			return err
		}
		fmt.Fprintln(os.Stderr, "compare: chart written to", cfg.svgPath)
	}
	return nil
}

// openGoStores opens the two stores on url and runs their Init: default
// options on purpose (what a user gets without tuning), but the prefix and
// the layout options (the cluster's WithShards).
func openGoStores(ctx context.Context, url, prefix string, layout ...pikkuredis.Option) (*goStores, error) {
	opts := append([]pikkuredis.Option{pikkuredis.WithKeyPrefix(prefix)}, layout...)
	channels, err := pikkuredis.OpenChannelStore(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("open channel store: %w", err)
	}
	hub, err := pikkuredis.OpenEventHubStore(url, opts...)
	if err != nil {
		channels.Close()
		return nil, fmt.Errorf("open event hub store: %w", err)
	}
	g := &goStores{channels: channels, hub: hub}
	err = channels.Init(ctx)
	if err == nil {
		err = hub.Init(ctx)
	}
	if err != nil {
		channels.Close()
		hub.Close()
		return nil, fmt.Errorf("init the Go stores: %w", err)
	}
	return g, nil
}

// runner holds what every run shares.
type runner struct {
	cfg        config
	srv        *server
	g          *goStores
	stores     [numImpls]stores // the Go implementations
	node       *nodeBench
	lim        *limits
	pipe       *pipeLimits
	prefixes   [numImpls]string   // of each implementation on the single server
	cluster    *clusterBench      // nil without -cluster
	impls      []impl             // those measured
	removeRate map[string]float64 // fastest RemoveChannels calls/s seen, to size the next seed
	unsubRate  map[string]float64 // the last Unsubscribe calls/s, for the first RemoveChannels seed
	warnings   []string
}

func (r *runner) runOnce(ctx context.Context, run int) (*runResults, error) {
	rr := &runResults{limits: map[string]result{}, pipe: map[string]result{}}
	for i := range rr.res {
		rr.res[i], rr.perRead[i] = map[cell]result{}, map[cell]float64{}
	}
	// Rotate which implementation goes first, so that none always meets
	// the machine right after another's writes.
	order := make([]impl, len(r.impls))
	for i := range order {
		order[i] = r.impls[(i+run)%len(r.impls)]
	}
	for _, op := range r.cfg.ops {
		t0 := time.Now()
		for _, callers := range r.cfg.callers {
			c := cell{op.name, callers}
			for _, who := range order {
				res, perRead, err := r.measureImpl(ctx, who, op, callers, r.cfg.tm)
				// A cell whose calls outlast its window is measured again
				// in a longer one (4x, then 16x).
				for x := time.Duration(4); errors.Is(err, errNoCalls) && x <= 16; x *= 4 {
					long := timing{warmup: x * r.cfg.tm.warmup, duration: x * r.cfg.tm.duration}
					r.warn(fmt.Sprintf("%s %s with %d callers recorded no call in its window; measured again with a %dx longer warm-up and duration", who, op.name, callers, x))
					res, perRead, err = r.measureImpl(ctx, who, op, callers, long)
				}
				if err != nil {
					return nil, err
				}
				rr.res[who][c], rr.perRead[who][c] = res, perRead
				logf("run %d/%d  %-26s %3d callers  %-8s %9s ops/s  p50 %6.0f µs  p99 %6.0f µs  %5.1f calls/read",
					run+1, r.cfg.runs, op.name, callers, who, fmtRate(res.OpsPerSec), res.P50us, res.P99us, perRead)
			}
			if op.limit == nil {
				continue
			}
			key := limitKey(op.limit, callers)
			if _, done := rr.limits[key]; done {
				continue // the shape is shared by several operations
			}
			hint := math.Inf(1)
			for _, who := range r.impls {
				hint = min(hint, rr.res[who][c].OpsPerSec)
			}
			res, err := r.measureLimit(ctx, op.limit, callers, hint)
			if err != nil {
				return nil, err
			}
			rr.limits[key] = res
			logf("run %d/%d  %-26s %3d callers  redis-benchmark %-16s %9s req/s  p50 %6.0f µs  p99 %6.0f µs",
				run+1, r.cfg.runs, op.name, callers, op.limit.name, fmtRate(res.OpsPerSec), res.P50us, res.P99us)
		}
		// The physical limit, once per operation, sized from the fastest
		// implementation at the most callers.
		hint := 0.0
		for _, who := range r.impls {
			hint = max(hint, rr.res[who][cell{op.name, slices.Max(r.cfg.callers)}].OpsPerSec)
		}
		res, err := r.pipe.measure(ctx, op, hint)
		if err != nil {
			return nil, err
		}
		rr.pipe[op.name] = res
		logf("run %d/%d  %-26s redis-cli --pipe  %9s calls/s (%d calls in %.2fs); the operation took %s",
			run+1, r.cfg.runs, op.name, fmtRate(res.OpsPerSec), res.Ops, res.Seconds, time.Since(t0).Round(100*time.Millisecond))
	}
	if r.cfg.bulk {
		b, err := bulkRemove(ctx, r.srv, r.g, r.prefixes[implGo])
		if err != nil {
			return nil, err
		}
		rr.bulk = &b
		logf("run %d/%d  RemoveChannels of %d: %s channels/s; PING p50 %.0f µs p99 %.0f µs max %.0f µs (%d pings)",
			run+1, r.cfg.runs, bulkChannels, fmtRate(b.ChannelsPerSec), b.PingP50us, b.PingP99us, b.PingMaxus, b.Pings)
	}
	return rr, nil
}

// measureImpl seeds what op needs under the implementation's prefix, then
// times it, and returns how many calls Redis received per socket read
// meanwhile (on a cluster: over all its masters).
func (r *runner) measureImpl(ctx context.Context, who impl, op *operation, callers int, tm timing) (result, float64, error) {
	seed := seeder{r.srv, standardLayout(r.prefixes[who])}
	stats := r.srv.stats
	ours := r.srv.started != nil // the runner started the server: any error reply is a failure
	if who == implCluster {
		seed, stats, ours = seeder{r.cluster, r.cluster.layout}, r.cluster.stats, true
	}
	removals := 0
	if op.name == "RemoveChannels" {
		removals = r.removals(who, callers, tm)
	}
	if op.seed != nil {
		if err := op.seed(ctx, seed, removals); err != nil {
			return result{}, 0, fmt.Errorf("%s %s: %w", who, op.name, err)
		}
	}
	peer := who == implRueidis || who == implGoRedis
	var kinds0 map[string]int64
	if peer && ours {
		var err error
		if kinds0, err = r.srv.errorKinds(ctx); err != nil {
			return result{}, 0, err
		}
	}
	before, err := stats(ctx)
	if err != nil {
		return result{}, 0, err
	}
	var res result
	if who == implTS {
		res, err = r.node.run(op.tsName, op.tsArgs, callers, tm, removals)
	} else {
		s := r.stores[who]
		res, err = measure(ctx, callers, tm, removals, func(ctx context.Context, k int) error { return op.call(ctx, s, k) })
		if err != nil {
			err = fmt.Errorf("%s %s, %d callers: %w", who, op.name, callers, err)
		}
	}
	if err != nil {
		return result{}, 0, err
	}
	after, err := stats(ctx)
	if err != nil {
		return result{}, 0, err
	}
	d := after.sub(before)
	what := fmt.Sprintf("%s %s with %d callers", who, op.name, callers)
	if peer && ours && d.errors > 0 {
		// A peer that reconnects (its own timeout ran out on a loaded
		// machine) sends CLIENT SETINFO in its handshake, which Redis
		// before 7.2 answers with ERR: a warning. Any other kind of error
		// (NOSCRIPT, WRONGTYPE, ...) still fails the run.
		kinds1, err := r.srv.errorKinds(ctx)
		if err != nil {
			return result{}, 0, err
		}
		var other []string
		for kind, n := range kinds1 {
			if n > kinds0[kind] && kind != "ERR" {
				other = append(other, fmt.Sprintf("%s %d", kind, n-kinds0[kind]))
			}
		}
		if len(other) == 0 {
			r.warn(fmt.Sprintf("Redis sent %d ERR replies during %s: a reconnection's CLIENT SETINFO (Redis before 7.2 refuses it) after the client's own timeout?", d.errors, what))
			d.errors = 0
		} else {
			slices.Sort(other)
			return result{}, 0, fmt.Errorf("error replies from Redis during %s: %s", what, strings.Join(other, ", "))
		}
	}
	if err := r.checkErrors(d, what, ours); err != nil {
		return result{}, 0, err
	}
	if op.name == "Unsubscribe" {
		r.unsubRate[removeKey(who, callers)] = res.OpsPerSec
	}
	if removals > 0 {
		key := removeKey(who, callers)
		r.removeRate[key] = max(r.removeRate[key], res.OpsPerSec)
		if res.Seconds < 0.9*tm.duration.Seconds() {
			r.warn(fmt.Sprintf("%s RemoveChannels with %d callers ran out of seeded channels after %.2fs (later runs seed more)", who, callers, res.Seconds))
		}
	}
	return res, d.callsPerRead(res.Calls), nil
}

func removeKey(who impl, callers int) string { return fmt.Sprintf("%s/%d", who, callers) }

// removals is how many channels to seed for a RemoveChannels cell: twice
// what the warm-up and the measured time take at the fastest rate seen so
// far, as rates on a busy machine vary that much. The first time, half
// the rate of the same implementation's Unsubscribe at as many callers
// stands in (a script call too, which does less), or else a guess. A cell that
// runs out anyway ends early and is still valid, its rate taken over the
// time it ran.
func (r *runner) removals(who impl, callers int, tm timing) int {
	key := removeKey(who, callers)
	rate := r.removeRate[key]
	if rate == 0 {
		rate = r.unsubRate[key] / 2 // RemoveChannels' script does 2-3 times the work
	}
	if rate == 0 {
		rate = min(20_000*float64(callers), 60_000)
	}
	secs := (tm.warmup + tm.duration).Seconds()
	return int(rate*secs*2) + 1000
}

func (r *runner) measureLimit(ctx context.Context, sh *shape, callers int, hint float64) (result, error) {
	before, err := r.srv.stats(ctx)
	if err != nil {
		return result{}, err
	}
	res, err := r.lim.measure(ctx, sh, callers, hint)
	if err != nil {
		return result{}, err
	}
	after, err := r.srv.stats(ctx)
	if err != nil {
		return result{}, err
	}
	return res, r.checkErrors(after.sub(before), fmt.Sprintf("redis-benchmark %s -c %d", sh.name, callers), r.srv.started != nil)
}

// checkErrors fails a measurement during which Redis sent error replies:
// its figures would count errors as work. On a shared server (ours
// false) the errors may be another client's, so there it is only a
// warning.
func (r *runner) checkErrors(d serverStats, what string, ours bool) error {
	if d.errors == 0 {
		return nil
	}
	msg := fmt.Sprintf("Redis sent %d error replies during %s", d.errors, what)
	if ours {
		return errors.New(msg)
	}
	r.warn(msg + " (another client's?)")
	return nil
}

func (r *runner) warn(msg string) {
	r.warnings = append(r.warnings, msg)
	logf("warning: %s", msg)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
}

func randomPrefix() (string, error) {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random prefix: %w", err)
	}
	return "pikkucmp-" + hex.EncodeToString(b), nil
}

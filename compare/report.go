package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// row is one line of the tables: medians across runs of one operation at
// one concurrency. Ratios are medians of the per-run ratios, not ratios of
// the medians. NaN marks a figure that was not measured.
type row struct {
	op               string
	callers          int
	ops, p50, p99    [numImpls]float64
	perRead          [numImpls]float64 // calls per socket read
	storeOver        [numImpls]float64 // the store's ops/s ÷ the implementation's
	clusterOverStore float64           // the cluster's ops/s ÷ the store's on the single server
	shape            string            // redis-benchmark's, "—" for none
	limP1            float64           // redis-benchmark -P 1 -c callers
	storeLim, grLim  float64           // the store's and go-redis's ops/s ÷ limP1
	pipeCmd          string            // what redis-cli --pipe sent; "" but at the most callers
	pipe             float64           // redis-cli --pipe calls/s
	pipeBusy         float64           // redis-server's CPU time ÷ the --pipe run's time
	pipePerCPU       float64           // --pipe calls per second of redis-server's CPU time
	overPipe         [numImpls]float64 // the implementation's ops/s ÷ pipe
}

type bulkSummary struct {
	channelsPerSec             float64
	pingP50, pingP99, pingMax  float64 // medians across runs, µs
	worstPingP99, worstPingMax float64 // the worst run, µs
	pings                      float64
}

type report struct {
	machine  machine
	impls    []impl // those measured, in the order of the columns
	cluster  bool   // the cluster was measured: its columns are shown
	callers  []int
	most     int // the most callers: the rows with the --pipe limit
	rows     []row
	bulk     *bulkSummary
	warnings []string
}

// columnOrder is the order of the implementations in every table.
var columnOrder = []impl{implGo, implRueidis, implGoRedis, implTS, implCluster}

func summarize(cfg config, impls []impl, runs []*runResults) *report {
	rep := &report{callers: cfg.callers, most: slices.Max(cfg.callers)}
	for _, i := range columnOrder {
		if slices.Contains(impls, i) {
			rep.impls = append(rep.impls, i)
		}
	}
	rep.cluster = slices.Contains(impls, implCluster)
	for _, op := range cfg.ops {
		for _, callers := range cfg.callers {
			c := cell{op.name, callers}
			pick := func(f func(rr *runResults) float64) float64 {
				vals := make([]float64, len(runs))
				for i, rr := range runs {
					vals[i] = f(rr)
				}
				return median(vals)
			}
			// A figure of an implementation that was not measured is NaN.
			res := func(rr *runResults, i impl, f func(result) float64) float64 {
				if r, ok := rr.res[i][c]; ok {
					return f(r)
				}
				return math.NaN()
			}
			ops := func(rr *runResults, i impl) float64 { return res(rr, i, func(r result) float64 { return r.OpsPerSec }) }
			lim := func(rr *runResults) float64 {
				if op.limit == nil {
					return math.NaN()
				}
				if res, ok := rr.limits[limitKey(op.limit, callers)]; ok {
					return res.OpsPerSec
				}
				return math.NaN()
			}
			pipe := func(rr *runResults) float64 {
				if res, ok := rr.pipe[op.name]; ok && callers == rep.most {
					return res.OpsPerSec
				}
				return math.NaN()
			}
			r := row{op: op.name, callers: callers, shape: "—"}
			for i := impl(0); i < numImpls; i++ {
				r.ops[i] = pick(func(rr *runResults) float64 { return ops(rr, i) })
				r.p50[i] = pick(func(rr *runResults) float64 { return res(rr, i, func(r result) float64 { return r.P50us }) })
				r.p99[i] = pick(func(rr *runResults) float64 { return res(rr, i, func(r result) float64 { return r.P99us }) })
				r.storeOver[i] = pick(func(rr *runResults) float64 { return ops(rr, implGo) / ops(rr, i) })
				r.overPipe[i] = pick(func(rr *runResults) float64 { return ops(rr, i) / pipe(rr) })
				r.perRead[i] = pick(func(rr *runResults) float64 {
					if v, ok := rr.perRead[i][c]; ok {
						return v
					}
					return math.NaN()
				})
			}
			r.clusterOverStore = pick(func(rr *runResults) float64 { return ops(rr, implCluster) / ops(rr, implGo) })
			if op.limit != nil {
				r.shape = op.limit.name
				r.limP1 = pick(lim)
				r.storeLim = pick(func(rr *runResults) float64 { return ops(rr, implGo) / lim(rr) })
				r.grLim = pick(func(rr *runResults) float64 { return ops(rr, implGoRedis) / lim(rr) })
			} else {
				r.limP1, r.storeLim, r.grLim = math.NaN(), math.NaN(), math.NaN()
			}
			r.pipe = pick(pipe)
			pipeCPU := func(f func(res result) float64) func(rr *runResults) float64 {
				return func(rr *runResults) float64 {
					if res, ok := rr.pipe[op.name]; ok && callers == rep.most && res.ServerCPU > 0 {
						return f(res)
					}
					return math.NaN()
				}
			}
			r.pipeBusy = pick(pipeCPU(func(res result) float64 { return res.ServerCPU / res.Seconds }))
			r.pipePerCPU = pick(pipeCPU(func(res result) float64 { return float64(res.Ops) / res.ServerCPU }))
			if callers == rep.most {
				r.pipeCmd = op.pipeCmd
			}
			rep.rows = append(rep.rows, r)
		}
	}
	if cfg.bulk {
		var rate, p50, p99, pmax, pings []float64
		b := &bulkSummary{}
		for _, rr := range runs {
			rate = append(rate, rr.bulk.ChannelsPerSec)
			p50 = append(p50, rr.bulk.PingP50us)
			p99 = append(p99, rr.bulk.PingP99us)
			pmax = append(pmax, rr.bulk.PingMaxus)
			pings = append(pings, float64(rr.bulk.Pings))
			b.worstPingP99 = max(b.worstPingP99, rr.bulk.PingP99us)
			b.worstPingMax = max(b.worstPingMax, rr.bulk.PingMaxus)
		}
		b.channelsPerSec, b.pingP50, b.pingP99, b.pingMax, b.pings = median(rate), median(p50), median(p99), median(pmax), median(pings)
		rep.bulk = b
	}
	return rep
}

// table is one table of the report: a title, a header, the rows, which
// columns hold numbers (right-aligned).
type table struct {
	title  string
	header []string
	right  []bool
	rows   [][]string
}

func (t *table) col(header string, right bool) {
	t.header, t.right = append(t.header, header), append(t.right, right)
}

// tables are the report's tables, in order.
func (rep *report) tables() []*table {
	peers := []impl{implRueidis, implGoRedis, implTS} // the store's ratio to each
	var out []*table

	// Throughput, and the store's ratio to each other implementation.
	t := &table{title: "Calls per second (ops/s) and the store's ratio to each peer (above 1: the store is faster):"}
	t.col("op", false)
	t.col("callers", true)
	for _, i := range rep.impls {
		t.col(i.String()+" ops/s", true)
	}
	for _, i := range peers {
		if slices.Contains(rep.impls, i) {
			t.col("store÷"+i.String(), true)
		}
	}
	if rep.cluster {
		t.col("Cluster÷store", true)
	}
	for _, r := range rep.rows {
		line := []string{r.op, fmt.Sprint(r.callers)}
		for _, i := range rep.impls {
			line = append(line, fmtRate(r.ops[i]))
		}
		for _, i := range peers {
			if slices.Contains(rep.impls, i) {
				line = append(line, fmtRatio(r.storeOver[i]))
			}
		}
		if rep.cluster {
			line = append(line, fmtRatio(r.clusterOverStore))
		}
		t.rows = append(t.rows, line)
	}
	out = append(out, t)

	// Latency.
	t = &table{title: "Latency of one call, p50 / p99 in µs:"}
	t.col("op", false)
	t.col("callers", true)
	for _, i := range rep.impls {
		t.col(i.String(), true)
	}
	for _, r := range rep.rows {
		line := []string{r.op, fmt.Sprint(r.callers)}
		for _, i := range rep.impls {
			line = append(line, fmtLatency(r.p50[i], r.p99[i]))
		}
		t.rows = append(t.rows, line)
	}
	out = append(out, t)

	// The physical limit, at the most callers.
	t = &table{title: fmt.Sprintf("The physical limit: redis-cli --pipe sending the exact commands of the calls on one connection; how busy redis-server was meanwhile (its CPU time ÷ the wall time: well below 100%%, something else set the rate: redis-cli reading the replies, or other processes on the CPUs) and the calls it served per second of its CPU time; each implementation's ops/s at %d callers ÷ the --pipe rate:", rep.most)}
	t.col("op", false)
	t.col("commands sent", false)
	t.col("--pipe calls/s", true)
	t.col("Redis CPU", true)
	t.col("calls per Redis CPU s", true)
	for _, i := range rep.impls {
		t.col(i.String()+"÷pipe", true)
	}
	for _, r := range rep.rows {
		if r.callers != rep.most {
			continue
		}
		busy := "—"
		if !math.IsNaN(r.pipeBusy) {
			busy = fmt.Sprintf("%.0f%%", 100*r.pipeBusy)
		}
		line := []string{r.op, r.pipeCmd, fmtRate(r.pipe), busy, fmtRate(r.pipePerCPU)}
		for _, i := range rep.impls {
			line = append(line, fmtRatio(r.overPipe[i]))
		}
		t.rows = append(t.rows, line)
	}
	out = append(out, t)

	// The unpipelined limit, at each number of callers.
	t = &table{title: "The unpipelined limit: redis-benchmark -P 1 -c callers sending the command shape (what a client that waits for each reply on a connection can reach):"}
	for _, h := range []string{"op", "callers", "shape", "limit ops/s", "store÷limit", "go-redis÷limit"} {
		t.col(h, h != "op" && h != "shape")
	}
	for _, r := range rep.rows {
		t.rows = append(t.rows, []string{r.op, fmt.Sprint(r.callers), r.shape, fmtRate(r.limP1), fmtRatio(r.storeLim), fmtRatio(r.grLim)})
	}
	out = append(out, t)

	// Pipelining, as Redis saw it.
	var counts []string
	for _, c := range rep.callers {
		counts = append(counts, fmt.Sprint(c))
	}
	t = &table{title: fmt.Sprintf("Calls per socket read at the server, at %s callers (1.0: each call arrived on its own; more: the client pipelined calls; Cluster: over all its masters):", strings.Join(counts, " / "))}
	t.col("op", false)
	for _, i := range rep.impls {
		t.col(i.String(), true)
	}
	for i := 0; i < len(rep.rows); i += len(rep.callers) {
		line := []string{rep.rows[i].op}
		for _, who := range rep.impls {
			var cells []string
			for _, r := range rep.rows[i : i+len(rep.callers)] {
				cells = append(cells, fmtPerRead(r.perRead[who]))
			}
			line = append(line, strings.Join(cells, " / "))
		}
		t.rows = append(t.rows, line)
	}
	return append(out, t)
}

func (rep *report) title() string {
	what := "pikkuredis (Go"
	if rep.cluster {
		what += ", one Redis and a Redis Cluster"
	}
	return what + ") vs rueidis and go-redis vs @pikku/redis " + rep.machine.pikkuRedis + " (TypeScript) vs redis-cli --pipe and redis-benchmark"
}

func (rep *report) machineLines() []string {
	m := rep.machine
	lines := []string{
		"machine: " + m.oneLine(),
		fmt.Sprintf("date: %s; median of %s; each cell %s after a warm-up", m.date, plural(m.runs, "run"), m.duration),
	}
	if m.cluster != "" {
		lines = append(lines, "cluster: "+m.cluster)
	}
	return lines
}

func (rep *report) notes() []string {
	notes := []string{
		"store: pikkuredis with default options, one goroutine per caller. rueidis, go-redis: the same calls written on those clients with their defaults (rueidis auto-pipelines concurrent calls; go-redis sends each call on a pooled connection of its own): the same keys, commands and arguments, the same Lua files by EVALSHA, the replies decoded into the same Go types. TS: @pikku/redis on Node.js, one async loop per caller on one ioredis client.",
	}
	if rep.cluster {
		notes = append(notes, "Cluster: the same Go stores, default options, opened from the cluster's redis+cluster:// URL (auto-pipelined per master); its redis-server processes share this machine's CPUs with the client. Cluster÷store is its ops/s over the store's on the single server.")
	}
	return append(notes,
		"Ratios are medians of the per-run ratios. RemoveChannels: 1 channel of 10 subscriptions per call; @pikku/redis deletes the hash and subs set only and leaves the id in its topic sets, the others also remove it from every topic set.",
	)
}

func (rep *report) bulkLine() string {
	b := rep.bulk
	verdict := "met"
	if b.pingP99 >= 5000 {
		verdict = "NOT met"
	}
	return fmt.Sprintf("RemoveChannels of %s channels x %d subscriptions (store, default options): %s channels/s; PING from another connection meanwhile (%.0f pings): p50 %.0f µs, p99 %.0f µs, max %.0f µs (worst run: p99 %.0f µs, max %.0f µs); target PING p99 < 5 ms: %s.",
		thousands(bulkChannels), bulkSubs, fmtRate(b.channelsPerSec), b.pings, b.pingP50, b.pingP99, b.pingMax, b.worstPingP99, b.worstPingMax, verdict)
}

func (rep *report) writeText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintln(bw, rep.title())
	for _, l := range rep.machineLines() {
		fmt.Fprintln(bw, l)
	}
	for i, t := range rep.tables() {
		fmt.Fprintln(bw)
		fmt.Fprintln(bw, t.title)
		writeAligned(bw, t.header, t.rows, t.right)
		if i == 0 {
			fmt.Fprintln(bw)
			for _, n := range rep.notes() {
				fmt.Fprintln(bw, n)
			}
		}
	}
	if rep.bulk != nil {
		fmt.Fprintln(bw)
		fmt.Fprintln(bw, rep.bulkLine())
	}
	for _, wn := range rep.warnings {
		fmt.Fprintln(bw, "warning:", wn)
	}
	return bw.Flush()
}

func (rep *report) writeMarkdown(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "## %s\n\n", rep.title())
	for _, l := range rep.machineLines() {
		fmt.Fprintf(bw, "%s  \n", l)
	}
	for i, t := range rep.tables() {
		fmt.Fprintf(bw, "\n%s\n\n", t.title)
		writeMarkdownTable(bw, t.header, t.rows, t.right)
		if i == 0 {
			fmt.Fprintln(bw)
			for _, n := range rep.notes() {
				fmt.Fprintf(bw, "- %s\n", n)
			}
		}
	}
	if rep.bulk != nil {
		fmt.Fprintln(bw)
		fmt.Fprintln(bw, rep.bulkLine())
	}
	for _, wn := range rep.warnings {
		fmt.Fprintf(bw, "\n> warning: %s\n", wn)
	}
	return bw.Flush()
}

// writeAligned prints a plain-text table with columns padded to width,
// numbers right-aligned.
func writeAligned(w io.Writer, header []string, rows [][]string, right []bool) {
	widths := make([]int, len(header))
	for _, r := range append([][]string{header}, rows...) {
		for i, c := range r {
			widths[i] = max(widths[i], len([]rune(c)))
		}
	}
	line := func(r []string) {
		var b strings.Builder
		for i, c := range r {
			pad := strings.Repeat(" ", widths[i]-len([]rune(c)))
			if i > 0 {
				b.WriteString("  ")
			}
			if i < len(right) && right[i] {
				b.WriteString(pad + c)
			} else {
				b.WriteString(c + pad)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
	line(header)
	sep := make([]string, len(header))
	for i := range sep {
		sep[i] = strings.Repeat("-", widths[i])
	}
	line(sep)
	for _, r := range rows {
		line(r)
	}
}

func writeMarkdownTable(w io.Writer, header []string, rows [][]string, right []bool) {
	fmt.Fprintf(w, "| %s |\n", strings.Join(header, " | "))
	align := make([]string, len(header))
	for i := range align {
		align[i] = "---"
		if i < len(right) && right[i] {
			align[i] = "---:"
		}
	}
	fmt.Fprintf(w, "| %s |\n", strings.Join(align, " | "))
	for _, r := range rows {
		fmt.Fprintf(w, "| %s |\n", strings.Join(r, " | "))
	}
}

// fmtRate writes a rate with three significant digits: 987, 12.3k, 1.23M.
func fmtRate(v float64) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return "—"
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 100e3:
		return fmt.Sprintf("%.0fk", v/1e3)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}

func fmtRatio(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "—"
	}
	return fmt.Sprintf("%.2f", v)
}

func fmtPerRead(v float64) string {
	if math.IsNaN(v) {
		return "—"
	}
	return fmt.Sprintf("%.1f", v)
}

func fmtLatency(p50, p99 float64) string {
	if math.IsNaN(p50) || math.IsNaN(p99) {
		return "—"
	}
	return fmt.Sprintf("%.0f / %.0f", p50, p99)
}

// writeFile writes through write to path, creating its directory, and
// removes a half-written file on error.
func writeFile(path string, write func(io.Writer) error) error {
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	err = write(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// thousands writes n with comma separators: 10,000.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

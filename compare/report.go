package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// row is one line of the table: medians across runs of one operation at
// one concurrency. Ratios are medians of the per-run ratios, not ratios of
// the medians. NaN marks a figure that was not measured.
type row struct {
	op                   string
	callers              int
	goOps, tsOps, goTS   float64
	goP50, goP99         float64
	tsP50, tsP99         float64
	clOps, clGo          float64 // the cluster, and its ratio to Go on the single server
	clP50, clP99         float64
	shape                string
	limP1, limP16        float64
	goLimP1, goLimP16    float64
	goPerRead, tsPerRead float64
	clPerRead            float64
}

type bulkSummary struct {
	channelsPerSec             float64
	pingP50, pingP99, pingMax  float64 // medians across runs, µs
	worstPingP99, worstPingMax float64 // the worst run, µs
	pings                      float64
}

type report struct {
	machine  machine
	cluster  bool // the cluster was measured: its columns are shown
	callers  []int
	rows     []row
	bulk     *bulkSummary
	warnings []string
}

func summarize(cfg config, impls []impl, runs []*runResults) *report {
	rep := &report{callers: cfg.callers}
	for _, i := range impls {
		rep.cluster = rep.cluster || i == implCluster
	}
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
			lim := func(rr *runResults, pipeline int) float64 {
				if op.limit == nil {
					return math.NaN()
				}
				if res, ok := rr.limits[limitKey(op.limit, callers, pipeline)]; ok {
					return res.OpsPerSec
				}
				return math.NaN()
			}
			// A figure of an implementation that was not measured is NaN.
			res := func(rr *runResults, i impl, f func(result) float64) float64 {
				if r, ok := rr.res[i][c]; ok {
					return f(r)
				}
				return math.NaN()
			}
			ops := func(r result) float64 { return r.OpsPerSec }
			p50 := func(r result) float64 { return r.P50us }
			p99 := func(r result) float64 { return r.P99us }
			perRead := func(rr *runResults, i impl) float64 {
				if v, ok := rr.perRead[i][c]; ok {
					return v
				}
				return math.NaN()
			}
			r := row{
				op: op.name, callers: callers, shape: "—",
				goOps:     pick(func(rr *runResults) float64 { return res(rr, implGo, ops) }),
				tsOps:     pick(func(rr *runResults) float64 { return res(rr, implTS, ops) }),
				clOps:     pick(func(rr *runResults) float64 { return res(rr, implCluster, ops) }),
				goTS:      pick(func(rr *runResults) float64 { return res(rr, implGo, ops) / res(rr, implTS, ops) }),
				clGo:      pick(func(rr *runResults) float64 { return res(rr, implCluster, ops) / res(rr, implGo, ops) }),
				goP50:     pick(func(rr *runResults) float64 { return res(rr, implGo, p50) }),
				goP99:     pick(func(rr *runResults) float64 { return res(rr, implGo, p99) }),
				tsP50:     pick(func(rr *runResults) float64 { return res(rr, implTS, p50) }),
				tsP99:     pick(func(rr *runResults) float64 { return res(rr, implTS, p99) }),
				clP50:     pick(func(rr *runResults) float64 { return res(rr, implCluster, p50) }),
				clP99:     pick(func(rr *runResults) float64 { return res(rr, implCluster, p99) }),
				limP1:     pick(func(rr *runResults) float64 { return lim(rr, 1) }),
				limP16:    pick(func(rr *runResults) float64 { return lim(rr, 16) }),
				goLimP1:   pick(func(rr *runResults) float64 { return res(rr, implGo, ops) / lim(rr, 1) }),
				goLimP16:  pick(func(rr *runResults) float64 { return res(rr, implGo, ops) / lim(rr, 16) }),
				goPerRead: pick(func(rr *runResults) float64 { return perRead(rr, implGo) }),
				tsPerRead: pick(func(rr *runResults) float64 { return perRead(rr, implTS) }),
				clPerRead: pick(func(rr *runResults) float64 { return perRead(rr, implCluster) }),
			}
			if op.limit != nil {
				r.shape = op.limit.name
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

// column is one column of the table: its header, whether it holds
// numbers (right-aligned), whether it is about the cluster (left out when
// the cluster was not measured), and its cell in a row.
type column struct {
	header  string
	right   bool
	cluster bool
	cell    func(r row) string
}

var columns = []column{
	{"op", false, false, func(r row) string { return r.op }},
	{"callers", true, false, func(r row) string { return fmt.Sprint(r.callers) }},
	{"Go ops/s", true, false, func(r row) string { return fmtRate(r.goOps) }},
	{"TS ops/s", true, false, func(r row) string { return fmtRate(r.tsOps) }},
	{"Go/TS", true, false, func(r row) string { return fmtRatio(r.goTS) }},
	{"Go p50/p99 µs", true, false, func(r row) string { return fmtLatency(r.goP50, r.goP99) }},
	{"TS p50/p99 µs", true, false, func(r row) string { return fmtLatency(r.tsP50, r.tsP99) }},
	{"Cluster ops/s", true, true, func(r row) string { return fmtRate(r.clOps) }},
	{"Cluster/Go", true, true, func(r row) string { return fmtRatio(r.clGo) }},
	{"Cluster p50/p99 µs", true, true, func(r row) string { return fmtLatency(r.clP50, r.clP99) }},
	{"limit shape", false, false, func(r row) string { return r.shape }},
	{"limit unpipelined ops/s", true, false, func(r row) string { return fmtRate(r.limP1) }},
	{"limit 16-pipelined ops/s", true, false, func(r row) string { return fmtRate(r.limP16) }},
	{"Go/limit (unpipelined)", true, false, func(r row) string { return fmtRatio(r.goLimP1) }},
	{"Go/limit (P16)", true, false, func(r row) string { return fmtRatio(r.goLimP16) }},
}

// table returns the header, rows and alignment of the main table.
func (rep *report) table() ([]string, [][]string, []bool) {
	var header []string
	var right []bool
	var cols []column
	for _, c := range columns {
		if c.cluster && !rep.cluster {
			continue
		}
		cols = append(cols, c)
		header, right = append(header, c.header), append(right, c.right)
	}
	var rows [][]string
	for _, r := range rep.rows {
		line := make([]string, len(cols))
		for i, c := range cols {
			line[i] = c.cell(r)
		}
		rows = append(rows, line)
	}
	return header, rows, right
}

// pipeliningRows: calls per socket read at the server, Go, TS and the
// cluster side by side for each number of callers.
func (rep *report) pipeliningRows() ([]string, [][]string, []bool) {
	header, right := []string{"op"}, []bool{false}
	for _, c := range rep.callers {
		header = append(header, fmt.Sprintf("Go, %d", c), fmt.Sprintf("TS, %d", c))
		right = append(right, true, true)
		if rep.cluster {
			header, right = append(header, fmt.Sprintf("Cluster, %d", c)), append(right, true)
		}
	}
	var rows [][]string
	for i := 0; i < len(rep.rows); i += len(rep.callers) {
		line := []string{rep.rows[i].op}
		for _, r := range rep.rows[i : i+len(rep.callers)] {
			line = append(line, fmt.Sprintf("%.1f", r.goPerRead), fmt.Sprintf("%.1f", r.tsPerRead))
			if rep.cluster {
				line = append(line, fmt.Sprintf("%.1f", r.clPerRead))
			}
		}
		rows = append(rows, line)
	}
	return header, rows, right
}

const pipeliningTitle = "Calls per socket read at the server (1.0: each call arrived on its own; more: the client pipelined calls; Cluster: over all its masters), by implementation and callers:"

func (rep *report) title() string {
	if rep.cluster {
		return "pikkuredis (Go, one Redis and a Redis Cluster) vs @pikku/redis " + rep.machine.pikkuRedis + " (TypeScript) vs redis-benchmark"
	}
	return "pikkuredis (Go) vs @pikku/redis " + rep.machine.pikkuRedis + " (TypeScript) vs redis-benchmark"
}

func (rep *report) machineLines() []string {
	m := rep.machine
	lines := []string{
		fmt.Sprintf("machine: %s, %d CPUs; Go %s; Node.js %s (ioredis %s, @pikku/redis %s); redis-server %s; %s",
			m.cpu, m.nproc, m.goVersion, m.node, m.ioredis, m.pikkuRedis, m.redis, m.redisBenchmark),
		fmt.Sprintf("date: %s; median of %s; each cell %s after a warm-up", m.date, plural(m.runs, "run"), m.duration),
	}
	if m.cluster != "" {
		lines = append(lines, "cluster: "+m.cluster)
	}
	return lines
}

func (rep *report) notes() []string {
	notes := []string{
		"Go: pikkuredis with default options, one goroutine per caller. TS: @pikku/redis on Node.js, one async loop per caller on one ioredis client.",
	}
	if rep.cluster {
		notes = append(notes, "Cluster: the same Go stores, default options, opened from the cluster's redis+cluster:// URL (auto-pipelined per master); its redis-server processes share this machine's CPUs with the client. Cluster/Go is its ops/s over Go's on the single server.")
	}
	return append(notes,
		"limit: redis-benchmark sending the command in \"limit shape\" with -c = callers, unpipelined (-P 1) and in 16-deep pipelines (-P 16).",
		"Go/TS, Cluster/Go and Go/limit are medians of the per-run ratios. RemoveChannels: 1 channel of 10 subscriptions per call; @pikku/redis deletes the hash and subs set only and leaves the id in its topic sets, pikkuredis also removes it from every topic set.",
	)
}

func (rep *report) bulkLine() string {
	b := rep.bulk
	verdict := "met"
	if b.pingP99 >= 5000 {
		verdict = "NOT met"
	}
	return fmt.Sprintf("RemoveChannels of %s channels x %d subscriptions (Go, default options): %s channels/s; PING from another connection meanwhile (%.0f pings): p50 %.0f µs, p99 %.0f µs, max %.0f µs (worst run: p99 %.0f µs, max %.0f µs); target PING p99 < 5 ms: %s.",
		thousands(bulkChannels), bulkSubs, fmtRate(b.channelsPerSec), b.pings, b.pingP50, b.pingP99, b.pingMax, b.worstPingP99, b.worstPingMax, verdict)
}

func (rep *report) writeText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintln(bw, rep.title())
	for _, l := range rep.machineLines() {
		fmt.Fprintln(bw, l)
	}
	fmt.Fprintln(bw)
	h, rows, right := rep.table()
	writeAligned(bw, h, rows, right)
	fmt.Fprintln(bw)
	for _, n := range rep.notes() {
		fmt.Fprintln(bw, n)
	}
	fmt.Fprintln(bw)
	fmt.Fprintln(bw, pipeliningTitle)
	h, rows, right = rep.pipeliningRows()
	writeAligned(bw, h, rows, right)
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
	fmt.Fprintln(bw)
	h, rows, right := rep.table()
	writeMarkdownTable(bw, h, rows, right)
	fmt.Fprintln(bw)
	for _, n := range rep.notes() {
		fmt.Fprintf(bw, "- %s\n", n)
	}
	fmt.Fprintln(bw)
	fmt.Fprintln(bw, pipeliningTitle)
	fmt.Fprintln(bw)
	h, rows, right = rep.pipeliningRows()
	writeMarkdownTable(bw, h, rows, right)
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

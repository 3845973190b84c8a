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
	shape                string
	limP1, limP16        float64
	goLimP1, goLimP16    float64
	goPerRead, tsPerRead float64
}

type bulkSummary struct {
	channelsPerSec             float64
	pingP50, pingP99, pingMax  float64 // medians across runs, µs
	worstPingP99, worstPingMax float64 // the worst run, µs
	pings                      float64
}

type report struct {
	machine  machine
	callers  []int
	rows     []row
	bulk     *bulkSummary
	warnings []string
}

func summarize(cfg config, runs []*runResults) *report {
	rep := &report{callers: cfg.callers}
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
			r := row{
				op: op.name, callers: callers, shape: "—",
				goOps:     pick(func(rr *runResults) float64 { return rr.goRes[c].OpsPerSec }),
				tsOps:     pick(func(rr *runResults) float64 { return rr.tsRes[c].OpsPerSec }),
				goTS:      pick(func(rr *runResults) float64 { return rr.goRes[c].OpsPerSec / rr.tsRes[c].OpsPerSec }),
				goP50:     pick(func(rr *runResults) float64 { return rr.goRes[c].P50us }),
				goP99:     pick(func(rr *runResults) float64 { return rr.goRes[c].P99us }),
				tsP50:     pick(func(rr *runResults) float64 { return rr.tsRes[c].P50us }),
				tsP99:     pick(func(rr *runResults) float64 { return rr.tsRes[c].P99us }),
				limP1:     pick(func(rr *runResults) float64 { return lim(rr, 1) }),
				limP16:    pick(func(rr *runResults) float64 { return lim(rr, 16) }),
				goLimP1:   pick(func(rr *runResults) float64 { return rr.goRes[c].OpsPerSec / lim(rr, 1) }),
				goLimP16:  pick(func(rr *runResults) float64 { return rr.goRes[c].OpsPerSec / lim(rr, 16) }),
				goPerRead: pick(func(rr *runResults) float64 { return rr.goPerRead[c] }),
				tsPerRead: pick(func(rr *runResults) float64 { return rr.tsPerRead[c] }),
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

var tableHeader = []string{
	"op", "callers", "Go ops/s", "TS ops/s", "Go/TS", "Go p50/p99 µs", "TS p50/p99 µs",
	"limit shape", "limit unpipelined ops/s", "limit 16-pipelined ops/s", "Go/limit (unpipelined)", "Go/limit (P16)",
}

// rightAligned says which columns hold numbers.
var rightAligned = []bool{false, true, true, true, true, true, true, false, true, true, true, true}

func (rep *report) tableRows() [][]string {
	var out [][]string
	for _, r := range rep.rows {
		out = append(out, []string{
			r.op, fmt.Sprint(r.callers), fmtRate(r.goOps), fmtRate(r.tsOps), fmtRatio(r.goTS),
			fmtLatency(r.goP50, r.goP99), fmtLatency(r.tsP50, r.tsP99),
			r.shape, fmtRate(r.limP1), fmtRate(r.limP16), fmtRatio(r.goLimP1), fmtRatio(r.goLimP16),
		})
	}
	return out
}

// pipeliningRows: calls per socket read at the server, Go and TS side by
// side for each number of callers.
func (rep *report) pipeliningRows() ([]string, [][]string, []bool) {
	header, right := []string{"op"}, []bool{false}
	for _, c := range rep.callers {
		header = append(header, fmt.Sprintf("Go, %d", c), fmt.Sprintf("TS, %d", c))
		right = append(right, true, true)
	}
	var rows [][]string
	for i := 0; i < len(rep.rows); i += len(rep.callers) {
		line := []string{rep.rows[i].op}
		for _, r := range rep.rows[i : i+len(rep.callers)] {
			line = append(line, fmt.Sprintf("%.1f", r.goPerRead), fmt.Sprintf("%.1f", r.tsPerRead))
		}
		rows = append(rows, line)
	}
	return header, rows, right
}

const pipeliningTitle = "Calls per socket read at the server (1.0: each call arrived on its own; more: the client pipelined calls), by implementation and callers:"

func (rep *report) title() string {
	return "pikkuredis (Go) vs @pikku/redis " + rep.machine.pikkuRedis + " (TypeScript) vs redis-benchmark"
}

func (rep *report) machineLines() []string {
	m := rep.machine
	return []string{
		fmt.Sprintf("machine: %s, %d CPUs; Go %s; Node.js %s (ioredis %s, @pikku/redis %s); redis-server %s; %s",
			m.cpu, m.nproc, m.goVersion, m.node, m.ioredis, m.pikkuRedis, m.redis, m.redisBenchmark),
		fmt.Sprintf("date: %s; median of %s; each cell %s after a warm-up", m.date, plural(m.runs, "run"), m.duration),
	}
}

func (rep *report) notes() []string {
	return []string{
		"Go: pikkuredis with default options, one goroutine per caller. TS: @pikku/redis on Node.js, one async loop per caller on one ioredis client.",
		"limit: redis-benchmark sending the command in \"limit shape\" with -c = callers, unpipelined (-P 1) and in 16-deep pipelines (-P 16).",
		"Go/TS and Go/limit are medians of the per-run ratios. RemoveChannels: 1 channel of 10 subscriptions per call; @pikku/redis deletes the hash and subs set only and leaves the id in its topic sets, pikkuredis also removes it from every topic set.",
	}
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
	writeAligned(bw, tableHeader, rep.tableRows(), rightAligned)
	fmt.Fprintln(bw)
	for _, n := range rep.notes() {
		fmt.Fprintln(bw, n)
	}
	fmt.Fprintln(bw)
	fmt.Fprintln(bw, pipeliningTitle)
	h, rows, right := rep.pipeliningRows()
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
	writeMarkdownTable(bw, tableHeader, rep.tableRows(), rightAligned)
	fmt.Fprintln(bw)
	for _, n := range rep.notes() {
		fmt.Fprintf(bw, "- %s\n", n)
	}
	fmt.Fprintln(bw)
	fmt.Fprintln(bw, pipeliningTitle)
	fmt.Fprintln(bw)
	h, rows, right := rep.pipeliningRows()
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

package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"unicode"
)

// The chart is written as plain SVG text (no dependency): horizontal bars,
// one panel per concurrency shown (the most callers, then the fewest) side
// by side, one group of bars per operation, one bar per implementation or
// limit. Operations differ by four orders of magnitude (a 100,000-id topic
// read against an HSET), so each group has a scale of its own, its longest
// bar, and every bar carries its value and the store's ratio to it. Sizes
// are fixed for a 900 px wide image that GitHub renders as is.
const (
	svgWidth      = 900
	svgLabelW     = 160 // the operations' names, left of the panels
	svgRight      = 12
	svgPanelGap   = 18
	svgValueW     = 92 // right of the longest bar: its value and ratio
	svgHeadH      = 64 // title and legend
	svgLegendRowH = 18 // each further row of the legend
	svgPanelHead  = 26 // a panel's title
	svgBarH       = 9
	svgBarGap     = 1
	svgGroupGap   = 10
	svgCaptionH   = 70
	svgFont       = `font-family="Helvetica, Arial, sans-serif"`
	svgTextColor  = "#222"
)

// series is one kind of bar: its legend, its colour, whether the report
// has it, its value in a row, and the store's ops/s ÷ that value (nil for
// the store's own bar).
type series struct {
	label, color string
	shown        func(rep *report) bool
	value        func(r row) float64
	storeOver    func(r row) float64
}

func implSeries(i impl, label, color string) series {
	s := series{label: label, color: color,
		shown: func(rep *report) bool { return slices.Contains(rep.impls, i) },
		value: func(r row) float64 { return r.ops[i] }}
	if i != implGo {
		s.storeOver = func(r row) float64 { return r.storeOver[i] }
	}
	return s
}

var allSeries = []series{
	implSeries(implGo, "pikkuredis (store)", "#0a7ea4"),
	implSeries(implCluster, "pikkuredis, Cluster (3 masters)", "#59b36b"),
	implSeries(implRueidis, "rueidis", "#8e5ac8"),
	implSeries(implGoRedis, "go-redis", "#d1495b"),
	implSeries(implTS, "@pikku/redis (TypeScript)", "#e39b2d"),
	{"redis-benchmark, unpipelined", "#8a8a8a", func(*report) bool { return true },
		func(r row) float64 { return r.limP1 }, func(r row) float64 { return r.storeLim }},
	{"redis-cli --pipe (exact commands)", "#c8c8c8", func(*report) bool { return true },
		func(r row) float64 { return r.pipe }, func(r row) float64 { return r.overPipe[implGo] }},
}

// svgSeries are the series the chart shows.
func (rep *report) svgSeries() []series {
	var out []series
	for _, s := range allSeries {
		if s.shown(rep) {
			out = append(out, s)
		}
	}
	return out
}

func (rep *report) writeSVG(w io.Writer) error {
	var panels []int // callers
	if n := len(rep.callers); n > 0 {
		fewest := rep.callers[0]
		for _, c := range rep.callers {
			fewest = min(fewest, c)
		}
		panels = append(panels, rep.most)
		if fewest != rep.most {
			panels = append(panels, fewest)
		}
	}
	all := rep.svgSeries()
	legend, legendRows := legendLayout(all)
	headH := svgHeadH + (legendRows-1)*svgLegendRowH
	ops := rep.opNames()
	groupH := len(all)*(svgBarH+svgBarGap) + svgGroupGap
	plotH := svgPanelHead + len(ops)*groupH
	captionLines := rep.captionLines()
	height := headH + plotH + 12 + len(captionLines)*15

	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" %s fill="%s">`+"\n",
		svgWidth, height, svgWidth, height, svgFont, svgTextColor)
	fmt.Fprintf(bw, `<rect width="100%%" height="100%%" fill="#ffffff"/>`+"\n")
	fmt.Fprintf(bw, `<text x="16" y="24" font-size="16" font-weight="bold">%s</text>`+"\n",
		esc("Calls per second: pikkuredis vs rueidis, go-redis, @pikku/redis "+rep.machine.pikkuRedis+" and the limits"))
	for i, s := range all {
		x, y := legend[i][0], legend[i][1]
		fmt.Fprintf(bw, `<rect x="%.0f" y="%.0f" width="12" height="12" fill="%s" stroke="#666" stroke-width="0.5"/>`, x, y, s.color)
		fmt.Fprintf(bw, `<text x="%.0f" y="%.0f" font-size="11">%s</text>`+"\n", x+16, y+10, esc(s.label))
	}

	// Alternate bands and the operations' names, across the panels.
	top := headH + svgPanelHead
	for g, op := range ops {
		y := top + g*groupH
		if g%2 == 0 {
			fmt.Fprintf(bw, `<rect x="8" y="%d" width="%d" height="%d" fill="#f4f6f8"/>`+"\n", y-svgGroupGap/2, svgWidth-16, groupH)
		}
		parts := splitName(op, 16)
		mid := float64(y) + float64(groupH-svgGroupGap)/2
		for k, part := range parts {
			fmt.Fprintf(bw, `<text x="16" y="%.1f" font-size="11" font-weight="bold">%s</text>`+"\n",
				mid+4+float64(k)*13-float64(len(parts)-1)*6.5, esc(part))
		}
	}

	panelW := float64(svgWidth-svgLabelW-svgRight-(len(panels)-1)*svgPanelGap) / float64(max(1, len(panels)))
	for p, callers := range panels {
		x0 := float64(svgLabelW) + float64(p)*(panelW+svgPanelGap)
		rep.svgPanel(bw, all, ops, x0, panelW, headH, groupH, callers)
	}

	y := headH + plotH + 12
	for j, l := range captionLines {
		fmt.Fprintf(bw, `<text x="16" y="%d" font-size="11" fill="#555">%s</text>`+"\n", y+j*15, esc(l))
	}
	fmt.Fprintln(bw, "</svg>")
	return bw.Flush()
}

// opNames are the operations, in the order of the rows.
func (rep *report) opNames() []string {
	var out []string
	for _, r := range rep.rows {
		if len(out) == 0 || out[len(out)-1] != r.op {
			out = append(out, r.op)
		}
	}
	return out
}

func (rep *report) captionLines() []string {
	m := rep.machine
	lines := []string{
		fmt.Sprintf("%s, %d CPUs · Go %s (rueidis %s, go-redis %s) · Node.js %s (ioredis %s) · redis-server %s · %s",
			m.cpu, m.nproc, m.goVersion, m.rueidis, m.goRedis, m.node, m.ioredis, m.redis, m.date),
		fmt.Sprintf("median of %s, %s per cell · each operation's bars have a scale of their own: compare within a group, read the values across groups", plural(m.runs, "run"), m.duration),
		"(×n): the store's ops/s ÷ that bar's, median of the per-run ratios (above 1: the store is faster) · redis-cli --pipe: at the most callers only",
		"redis-benchmark shapes: HSET (AddChannel), EVALSHA subscribe.lua (script ops), HMGET, SMEMBERS; none for RemoveChannels",
	}
	if m.cluster != "" {
		lines = append(lines, "cluster: "+m.cluster)
	}
	return lines
}

// legendLayout places the legend's entries (the top left corner of each
// one's colour box) in rows that fit the chart's width, and returns how
// many rows it took.
func legendLayout(all []series) (pos [][2]float64, rows int) {
	x, y := 16.0, 38.0
	rows = 1
	for _, s := range all {
		w := 16 + textWidth(s.label, 11)
		if x > 16 && x+w > svgWidth-svgRight {
			x, y = 16, y+svgLegendRowH
			rows++
		}
		pos = append(pos, [2]float64{x, y})
		x += w + 22
	}
	return pos, rows
}

// svgPanel draws the bars of every operation at one concurrency, in a
// panel of width w from x0.
func (rep *report) svgPanel(w io.Writer, all []series, ops []string, x0, width float64, headH, groupH, callers int) {
	noun := "callers"
	if callers == 1 {
		noun = "caller"
	}
	fmt.Fprintf(w, `<text x="%.1f" y="%d" font-size="13" font-weight="bold">%d concurrent %s</text>`+"\n", x0, headH+16, callers, noun)
	barMax := width - svgValueW
	top := headH + svgPanelHead
	for g, op := range ops {
		var r *row
		for i := range rep.rows {
			if rep.rows[i].op == op && rep.rows[i].callers == callers {
				r = &rep.rows[i]
			}
		}
		if r == nil {
			continue
		}
		peak := 0.0
		for _, s := range all {
			if v := s.value(*r); !math.IsNaN(v) {
				peak = max(peak, v)
			}
		}
		y := float64(top + g*groupH)
		fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#444"/>`+"\n", x0, y-2, x0, y+float64(groupH-svgGroupGap))
		for j, s := range all {
			by := y + float64(j*(svgBarH+svgBarGap))
			v := s.value(*r)
			if math.IsNaN(v) || peak <= 0 {
				continue
			}
			bl := max(1, v/peak*barMax)
			fmt.Fprintf(w, `<rect x="%.1f" y="%.1f" width="%.1f" height="%d" fill="%s" stroke="#888" stroke-width="0.3"><title>%s: %s ops/s</title></rect>`,
				x0+0.5, by, bl, svgBarH, s.color, esc(s.label), fmtRate(v))
			label := fmtRate(v)
			if s.storeOver != nil {
				if q := s.storeOver(*r); !math.IsNaN(q) && !math.IsInf(q, 0) {
					label += fmt.Sprintf(" (×%.2f)", q)
				}
			}
			fmt.Fprintf(w, `<text x="%.1f" y="%.1f" font-size="8.5">%s</text>`+"\n", x0+bl+4, by+svgBarH-1, esc(label))
		}
	}
}

// splitName cuts a name longer than n into lines: a last word after a
// space goes on a line of its own, and a CamelCase word longer than n is
// cut at the capital letter nearest its middle ("GetChannelIDsForTopic
// 400" -> "GetChannel", "IDsForTopic", "400").
func splitName(name string, n int) []string {
	if len(name) <= n {
		return []string{name}
	}
	if i := strings.LastIndexByte(name, ' '); i > 0 {
		return append(splitName(name[:i], n), name[i+1:])
	}
	best := -1
	for i, r := range name {
		if i > 0 && unicode.IsUpper(r) && !unicode.IsUpper(rune(name[i-1])) {
			if best < 0 || abs(i-len(name)/2) < abs(best-len(name)/2) {
				best = i
			}
		}
	}
	if best <= 0 {
		return []string{name}
	}
	return []string{name[:best], name[best:]}
}

func abs(i int) int {
	if i < 0 {
		return -i
	}
	return i
}

// textWidth estimates the width of text in a sans-serif font, for laying
// out the legend.
func textWidth(s string, size float64) float64 { return float64(len([]rune(s))) * size * 0.55 }

var xmlEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;")

func esc(s string) string { return xmlEscaper.Replace(s) }

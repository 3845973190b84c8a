package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"strings"
	"unicode"
)

// The chart is written as plain SVG text (no dependency): one panel of
// grouped bars per concurrency shown (the most callers, then the fewest),
// one group per operation, one bar per implementation or limit. Sizes are
// fixed for a ~900 px wide image that GitHub renders as is.
const (
	svgWidth      = 900
	svgLeft       = 64 // room for the y tick labels and axis title
	svgRight      = 16
	svgHeadH      = 64  // title and legend
	svgLegendRowH = 18  // each further row of the legend
	svgPanelH     = 276 // one panel: title, plot, x labels
	svgPlotTop    = 30  // within a panel
	svgPlotH      = 196
	svgCaptionH   = 60
	svgFont       = `font-family="Helvetica, Arial, sans-serif"`
	svgTextColor  = "#222"
)

// series is one kind of bar: its legend, its colour, its value in a row.
type series struct {
	label, color string
	cluster      bool // shown only when the cluster was measured
	value        func(r row) float64
}

var allSeries = []series{
	{"pikkuredis (Go)", "#0a7ea4", false, func(r row) float64 { return r.goOps }},
	{"pikkuredis (Go), Cluster (3 masters)", "#59b36b", true, func(r row) float64 { return r.clOps }},
	{"@pikku/redis (TypeScript)", "#e39b2d", false, func(r row) float64 { return r.tsOps }},
	{"redis-benchmark, no pipelining", "#8a8a8a", false, func(r row) float64 { return r.limP1 }},
	{"redis-benchmark, 16-deep pipelines", "#cccccc", false, func(r row) float64 { return r.limP16 }},
}

// svgSeries are the series the chart shows.
func (rep *report) svgSeries() []series {
	var out []series
	for _, s := range allSeries {
		if !s.cluster || rep.cluster {
			out = append(out, s)
		}
	}
	return out
}

func (rep *report) writeSVG(w io.Writer) error {
	var panels []int // callers
	if n := len(rep.callers); n > 0 {
		most, fewest := rep.callers[0], rep.callers[0]
		for _, c := range rep.callers {
			most, fewest = max(most, c), min(fewest, c)
		}
		panels = append(panels, most)
		if fewest != most {
			panels = append(panels, fewest)
		}
	}
	all := rep.svgSeries()
	legend, legendRows := legendLayout(all)
	headH := svgHeadH + (legendRows-1)*svgLegendRowH
	height := headH + len(panels)*svgPanelH + svgCaptionH
	if rep.machine.cluster != "" {
		height += 15 // one more caption line
	}
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" %s fill="%s">`+"\n",
		svgWidth, height, svgWidth, height, svgFont, svgTextColor)
	fmt.Fprintf(bw, `<rect width="100%%" height="100%%" fill="#ffffff"/>`+"\n")
	fmt.Fprintf(bw, `<text x="%d" y="24" font-size="16" font-weight="bold">%s</text>`+"\n", svgLeft, esc("Operations per second: pikkuredis vs @pikku/redis "+rep.machine.pikkuRedis+" vs redis-benchmark"))

	for i, s := range all {
		x, y := legend[i][0], legend[i][1]
		fmt.Fprintf(bw, `<rect x="%.0f" y="%.0f" width="12" height="12" fill="%s" stroke="#666" stroke-width="0.5"/>`, x, y, s.color)
		fmt.Fprintf(bw, `<text x="%.0f" y="%.0f" font-size="11">%s</text>`+"\n", x+16, y+10, esc(s.label))
	}

	for i, callers := range panels {
		rep.svgPanel(bw, headH+i*svgPanelH, callers)
	}

	// Caption.
	m := rep.machine
	y := headH + len(panels)*svgPanelH + 16
	lines := []string{
		fmt.Sprintf("%s, %d CPUs · Go %s · Node.js %s (ioredis %s, @pikku/redis %s) · redis-server %s · %s",
			m.cpu, m.nproc, m.goVersion, m.node, m.ioredis, m.pikkuRedis, m.redis, m.date),
		fmt.Sprintf("median of %s, %s per cell · limit shapes: HSET (AddChannel), EVALSHA subscribe.lua (script ops), HMGET, SMEMBERS; none for RemoveChannels", plural(m.runs, "run"), m.duration),
		"bars cut by two white lines go off the scale; their value is printed inside",
	}
	if m.cluster != "" {
		lines = append(lines, "cluster: "+m.cluster)
	}
	for j, l := range lines {
		fmt.Fprintf(bw, `<text x="16" y="%d" font-size="11" fill="#555">%s</text>`+"\n", y+j*15, esc(l))
	}
	fmt.Fprintln(bw, "</svg>")
	return bw.Flush()
}

// legendLayout places the legend's entries (the top left corner of each
// one's colour box) in rows that fit the chart's width, and returns how
// many rows it took.
func legendLayout(all []series) (pos [][2]float64, rows int) {
	x, y := float64(svgLeft), 38.0
	rows = 1
	for _, s := range all {
		w := 16 + textWidth(s.label, 11)
		if x > svgLeft && x+w > svgWidth-svgRight {
			x, y = svgLeft, y+svgLegendRowH
			rows++
		}
		pos = append(pos, [2]float64{x, y})
		x += w + 22
	}
	return pos, rows
}

// svgPanel draws the bars of every operation at one concurrency.
func (rep *report) svgPanel(w io.Writer, top, callers int) {
	var rows []row
	for _, r := range rep.rows {
		if r.callers == callers {
			rows = append(rows, r)
		}
	}
	noun := "callers"
	if callers == 1 {
		noun = "caller"
	}
	fmt.Fprintf(w, `<text x="%d" y="%d" font-size="13" font-weight="bold">%d concurrent %s</text>`+"\n", svgLeft, top+16, callers, noun)

	plotTop := float64(top + svgPlotTop)
	plotBottom := plotTop + svgPlotH
	plotW := float64(svgWidth - svgLeft - svgRight)
	// The scale fits the implementations and the unpipelined limit; the
	// 16-deep pipelines, often several times higher, would flatten
	// everything else, so their bars are cut at the top (value printed).
	peak := 0.0
	for _, r := range rows {
		for _, v := range []float64{r.goOps, r.clOps, r.tsOps, r.limP1} {
			if !math.IsNaN(v) {
				peak = max(peak, v)
			}
		}
	}
	peak *= 1.15 // room for the value labels
	step := niceStep(peak / 5)
	yMax := math.Max(step, math.Ceil(peak/step)*step)
	yOf := func(v float64) float64 { return plotBottom - min(v, yMax)/yMax*svgPlotH }

	// Grid and y ticks.
	for v := 0.0; v <= yMax+step/2; v += step {
		y := yOf(v)
		fmt.Fprintf(w, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#e6e6e6"/>`, svgLeft, y, svgWidth-svgRight, y)
		fmt.Fprintf(w, `<text x="%d" y="%.1f" font-size="10" text-anchor="end">%s</text>`+"\n", svgLeft-6, y+3.5, shortRate(v))
	}
	mid := (plotTop + plotBottom) / 2
	fmt.Fprintf(w, `<text x="16" y="%.1f" font-size="11" text-anchor="middle" transform="rotate(-90 16 %.1f)">ops/s</text>`+"\n", mid, mid)
	fmt.Fprintf(w, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#444"/>`+"\n", svgLeft, plotBottom, svgWidth-svgRight, plotBottom)

	if len(rows) == 0 {
		return
	}
	all := rep.svgSeries()
	groupW := plotW / float64(len(rows))
	barW := groupW * 0.8 / float64(len(all))
	for i, r := range rows {
		gx := float64(svgLeft) + float64(i)*groupW
		for j, s := range all {
			v := s.value(r)
			if math.IsNaN(v) {
				continue
			}
			bx := gx + groupW*0.1 + float64(j)*barW
			y := yOf(v)
			fmt.Fprintf(w, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s: %s ops/s</title></rect>`,
				bx, y, barW-1, plotBottom-y, s.color, esc(s.label), fmtRate(v))
			labelY := y - 3
			if v > yMax { // cut: a white break across the bar, the value inside it
				fmt.Fprintf(w, `<path d="M%.1f %.1f l%.1f -5 M%.1f %.1f l%.1f -5" stroke="#fff" stroke-width="2"/>`,
					bx-1, y+22, barW+1, bx-1, y+27, barW+1)
				labelY = y + 11
			}
			fmt.Fprintf(w, `<text x="%.1f" y="%.1f" font-size="9" text-anchor="middle">%s</text>`+"\n", bx+barW/2, labelY, shortRate(v))
		}
		if math.IsNaN(r.limP1) && math.IsNaN(r.limP16) {
			lx := gx + groupW*0.1 + float64(len(all)-1)*barW
			fmt.Fprintf(w, `<text x="%.1f" y="%.1f" font-size="9" fill="#888" text-anchor="middle">no limit</text>`+"\n", lx, plotBottom-4)
		}
		// The operation's name, on two lines when long.
		cx := gx + groupW/2
		for k, part := range splitName(r.op, 13) {
			fmt.Fprintf(w, `<text x="%.1f" y="%.1f" font-size="11" text-anchor="middle">%s</text>`+"\n", cx, plotBottom+15+float64(k)*13, esc(part))
		}
	}
}

// niceStep rounds a tick step up to 1, 2 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if raw <= 0 || math.IsNaN(raw) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if raw <= m*p {
			return m * p
		}
	}
	return 10 * p
}

// shortRate is a rate with no decimals: 950, 12k, 237k, 1.2M.
func shortRate(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.0fk", v/1e3)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}

// splitName cuts a CamelCase name longer than n at the capital letter
// nearest its middle: "GetChannelIDsForTopic" -> "GetChannel", "IDsForTopic".
func splitName(name string, n int) []string {
	if len(name) <= n {
		return []string{name}
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

package main

import (
	"bytes"
	"fmt"
	"html"
	"math"
)

// chart draws one horizontal bar per compared command: coffer's median
// divided by that command's (above 1, coffer is slower), on a log scale
// from 0.1x to 10x with a line at 1x, grouped by section. Plain SVG, no
// script or external font.
func chart(title string, rows []Result) []byte {
	const (
		left, barW, rowH, top = 360, 420, 22, 60
		lo, hi                = 0.1, 10.0
	)
	type bar struct {
		label string
		ratio float64
		head  bool
	}
	var bars []bar
	section := ""
	for _, r := range rows {
		if r.Section != section {
			section = r.Section
			bars = append(bars, bar{label: section, head: true})
		}
		if !r.Reference && r.Ratio > 0 {
			bars = append(bars, bar{label: r.Name, ratio: r.Ratio})
		}
	}
	x := func(v float64) float64 {
		v = math.Min(math.Max(v, lo), hi)
		return left + barW*(math.Log10(v)-math.Log10(lo))/(math.Log10(hi)-math.Log10(lo))
	}
	h := top + rowH*len(bars) + 40
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", left+barW+80, h)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="10" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", html.EscapeString(title))
	fmt.Fprintf(&b, `<text x="10" y="42">coffer median ÷ this command's median (log scale; left of 1x: coffer is faster)</text>`+"\n")
	for _, t := range []float64{0.1, 0.3, 1, 3, 10} {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s"/>`+"\n", x(t), top-6, x(t), h-30,
			map[bool]string{true: "black", false: "#ddd"}[t == 1])
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%gx</text>`+"\n", x(t), h-14, t)
	}
	for i, br := range bars {
		y := top + i*rowH
		if br.head {
			fmt.Fprintf(&b, `<text x="10" y="%d" font-weight="bold">%s</text>`+"\n", y+15, html.EscapeString(br.label))
			continue
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", left-8, y+15, html.EscapeString(br.label))
		x0, x1 := x(1), x(br.ratio)
		color := "#4a8"
		if br.ratio > 1 {
			color = "#d64"
		}
		fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", math.Min(x0, x1), y+4,
			math.Max(math.Abs(x1-x0), 1), rowH-8, color)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d">%.2fx</text>`+"\n", math.Max(x0, x1)+4, y+15, br.ratio)
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

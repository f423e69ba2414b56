package console

// A small SVG line chart, drawn on the server: fixed size (the page never
// reflows when it refreshes), a y axis from 0 to a rounded maximum, one
// polyline per series, a legend. Colours come from the stylesheet
// (.s0, .s1, ...) so that the chart follows the page's theme.

import (
	"fmt"
	"html/template"
	"math"
	"strings"
	"time"
)

type series struct {
	Name   string
	Values []float64
}

const (
	chartW, chartH         = 560, 180
	padL, padR, padT, padB = 64, 12, 12, 28
	plotW, plotH           = chartW - padL - padR, chartH - padT - padB
	gridLines              = 4
	chartEmptyMessage      = "collecting samples…"
)

// lineChart renders series over times (same length as each series'
// Values) as an accessible SVG: role=img with title as its label. unit
// formats the y axis labels.
func lineChart(title string, times []time.Time, ss []series, unit func(float64) string) template.HTML {
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s">`,
		chartW, chartH, chartW, chartH, template.HTMLEscapeString(title))
	fmt.Fprintf(&b, `<title>%s</title>`, template.HTMLEscapeString(title))
	top := 0.0
	for _, s := range ss {
		for _, v := range s.Values {
			top = math.Max(top, v)
		}
	}
	top = niceCeil(top * 1.05) // headroom: a flat line stays off the frame
	for i := 0; i <= gridLines; i++ {
		y := padT + plotH - plotH*i/gridLines
		fmt.Fprintf(&b, `<line class="grid" x1="%d" y1="%d" x2="%d" y2="%d"/>`, padL, y, padL+plotW, y)
		fmt.Fprintf(&b, `<text class="axis" x="%d" y="%d" text-anchor="end">%s</text>`, padL-6, y+4,
			template.HTMLEscapeString(unit(top*float64(i)/gridLines)))
	}
	if len(times) < 2 {
		fmt.Fprintf(&b, `<text class="axis" x="%d" y="%d" text-anchor="middle">%s</text>`, padL+plotW/2, padT+plotH/2, chartEmptyMessage)
	} else {
		t0, t1 := times[0], times[len(times)-1]
		span := t1.Sub(t0).Seconds()
		x := func(t time.Time) float64 { return padL + float64(plotW)*t.Sub(t0).Seconds()/span }
		y := func(v float64) float64 { return padT + float64(plotH) - float64(plotH)*v/top }
		for i, s := range ss {
			fmt.Fprintf(&b, `<polyline class="line s%d" points="`, i%4)
			for j, v := range s.Values {
				if j < len(times) {
					fmt.Fprintf(&b, "%.1f,%.1f ", x(times[j]), y(v))
				}
			}
			b.WriteString(`"/>`)
		}
		fmt.Fprintf(&b, `<text class="axis" x="%d" y="%d">%s</text>`, padL, chartH-8, t0.Local().Format("15:04:05"))
		fmt.Fprintf(&b, `<text class="axis" x="%d" y="%d" text-anchor="end">%s</text>`, padL+plotW, chartH-8, t1.Local().Format("15:04:05"))
	}
	for i, s := range ss {
		fmt.Fprintf(&b, `<rect class="key s%d" x="%d" y="%d" width="10" height="10"/><text class="axis" x="%d" y="%d">%s</text>`,
			i%4, padL+8+i*130, padT, padL+22+i*130, padT+9, template.HTMLEscapeString(s.Name))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten (1 for v <= 0).
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

package drill

import (
	"html/template"
	"io"
	"strings"
	"time"

	"github.com/cofferhq/coffer/internal/units"
)

// WriteHTML writes r as one self-contained HTML page for auditors: which
// snapshot, when and where the drill ran and who ran it, every check with
// its result and details, the timings per source (an inline SVG chart) and
// coffer's version. The page holds no script and loads nothing: its
// styles are inline and its Content-Security-Policy forbids any fetch, so
// it shows the same offline, archived or attached to a ticket. Every
// string is escaped by html/template: a check's detail that quotes a
// restored database cannot add markup.
func WriteHTML(w io.Writer, r *Report) error {
	return pageTemplate.Execute(w, newPage(r))
}

// page is what the template shows, computed from a Report.
type page struct {
	R           *Report
	Verdict     string
	ResultClass string
	Label       string
	// VerdictDetail is the verdict without its leading result.
	VerdictDetail string
	Failed        []checkLine
	Snapshot      []fact
	Drill         []fact
	Figures       []fact
	Chart         chart
	Sources       []sourceView
	Checks        []checkView // the snapshot-wide ones
	Generated     string
}

type fact struct{ Label, Value string }

type checkView struct {
	Class, Label, Name, Detail string
}

type sourceView struct {
	Name, Kind, Class, Label, Scratch, Read string
	Total, Fetch, Decrypt, Restore, Check   string
	Checks                                  []checkView
}

// chart is a horizontal bar per source, its four phases stacked.
type chart struct {
	Width, Height, LabelWidth, BarWidth float64
	Rows                                []chartRow
	Ticks                               []chartTick
}

type chartRow struct {
	Y, TextY float64
	Name     string
	Total    string
	TotalX   float64
	Segments []segment
}

type segment struct {
	X, W  float64
	Class string
	Title string
}

type chartTick struct {
	X     float64
	Label string
}

// phases are the parts of a source's time, in order, with their classes.
var phases = []struct{ Name, Class string }{
	{"fetch", "ph-fetch"}, {"decrypt", "ph-decrypt"}, {"restore", "ph-restore"}, {"check", "ph-check"},
}

func resultClass(r Result) string {
	switch r {
	case Pass, Warn, Fail, Error:
		return "r-" + string(r)
	}
	return "r-unknown"
}

func viewCheck(c Check) checkView {
	return checkView{Class: resultClass(c.Result), Label: label(c.Result), Name: c.Name, Detail: c.Detail}
}

func newPage(r *Report) *page {
	p := &page{R: r, Verdict: verdict(r), ResultClass: resultClass(r.Result), Label: label(r.Result), Generated: when(time.Now())}
	p.VerdictDetail = p.Verdict
	if _, rest, ok := strings.Cut(p.Verdict, ": "); ok {
		p.VerdictDetail = rest
	}
	for _, c := range orderedChecks(r) {
		if c.Result == Fail || c.Result == Error {
			p.Failed = append(p.Failed, c)
		}
	}
	snap := r.Snapshot
	if snap == "" {
		snap = "none (the drill could not pick one)"
	}
	p.Snapshot = []fact{
		{"Snapshot", snap},
		{"Taken", when(r.SnapshotTime)},
		{"Taken on", dash(r.SnapshotHost)},
		{"Repository", dash(r.Repository)},
		{"Repository id", dash(r.RepositoryID)},
	}
	p.Drill = []fact{
		{"Drill id", dash(r.ID)},
		{"Started", when(r.Started)},
		{"Finished", when(r.Finished)},
		{"Drill host", dash(r.Host)},
		{"Run by", dash(r.User)},
		{"coffer version", dash(r.Coffer)},
	}
	p.Figures = []fact{
		{"RTO", human(r.RTO.Duration())},
		{"RPO", human(r.RPO.Duration())},
		{"Bytes read", units.Bytes(r.BytesRead)},
		{"Throughput", throughput(r.Throughput)},
	}
	for _, c := range r.Checks {
		p.Checks = append(p.Checks, viewCheck(c))
	}
	for _, s := range r.Sources {
		t := s.Timings
		sv := sourceView{Name: s.Name, Kind: s.Kind, Class: resultClass(s.Result), Label: label(s.Result),
			Scratch: s.Scratch, Read: units.Bytes(s.BytesRead),
			Total: human(t.Total.Duration()), Fetch: human(t.Fetch.Duration()), Decrypt: human(t.Decrypt.Duration()),
			Restore: human(t.Restore.Duration()), Check: human(t.Check.Duration())}
		for _, c := range s.Checks {
			sv.Checks = append(sv.Checks, viewCheck(c))
		}
		p.Sources = append(p.Sources, sv)
	}
	p.Chart = newChart(r.Sources)
	return p
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// newChart lays out the timing chart: one bar per source, the phases
// stacked from the left, scaled so that the longest source fills the
// bar width; the total is written after each bar.
func newChart(sources []SourceReport) chart {
	const row, labelW, barW, totalW = 26.0, 150.0, 440.0, 70.0
	c := chart{LabelWidth: labelW, BarWidth: barW, Width: labelW + barW + totalW, Height: float64(len(sources))*row + 22}
	var longest time.Duration
	for _, s := range sources {
		t := s.Timings
		longest = max(longest, t.Total.Duration(), t.Fetch.Duration()+t.Decrypt.Duration()+t.Restore.Duration()+t.Check.Duration())
	}
	if longest <= 0 {
		longest = time.Second
	}
	scale := barW / float64(longest)
	for i, s := range sources {
		t := s.Timings
		y := float64(i) * row
		cr := chartRow{Y: y + 4, TextY: y + 17, Name: s.Name, Total: human(t.Total.Duration())}
		x := labelW
		for j, d := range []time.Duration{t.Fetch.Duration(), t.Decrypt.Duration(), t.Restore.Duration(), t.Check.Duration()} {
			if d <= 0 {
				continue
			}
			w := float64(d) * scale
			cr.Segments = append(cr.Segments, segment{X: x, W: w, Class: phases[j].Class, Title: phases[j].Name + " " + human(d)})
			x += w
		}
		cr.TotalX = max(x, labelW+float64(t.Total.Duration())*scale) + 6
		c.Rows = append(c.Rows, cr)
	}
	for i := 0; i <= 4; i++ {
		l := human(longest * time.Duration(i) / 4)
		if i == 0 {
			l = "0s"
		}
		c.Ticks = append(c.Ticks, chartTick{X: labelW + barW*float64(i)/4, Label: l})
	}
	return c
}

var pageTemplate = template.Must(template.New("report").Funcs(template.FuncMap{"label": label}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'">
<meta name="referrer" content="no-referrer">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="coffer {{.R.Coffer}}">
<link rel="icon" href="data:,">
<title>coffer restore drill {{.R.ID}}: {{.Verdict}}</title>
<style>
:root { --pass:#1a7f37; --warn:#9a6700; --fail:#cf222e; --error:#82071e; --ink:#1f2328; --muted:#59636e; --line:#d1d9e0; --bg:#f6f8fa; }
* { box-sizing: border-box; }
body { margin: 0; padding: 24px 32px 40px; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--ink); background: #fff; max-width: 1100px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 8px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 18px 0 6px; }
.sub { color: var(--muted); margin: 0 0 16px; }
.mono, code, td.detail { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace; font-size: 12.5px; }
.verdict { display: flex; align-items: center; gap: 16px; padding: 14px 18px; border-radius: 8px; border: 2px solid; margin: 12px 0 8px; }
.verdict .badge { font-size: 22px; font-weight: 700; letter-spacing: .04em; }
.verdict.r-pass { border-color: var(--pass); background: #dafbe1; } .verdict.r-pass .badge { color: var(--pass); }
.verdict.r-warn { border-color: var(--warn); background: #fff8c5; } .verdict.r-warn .badge { color: var(--warn); }
.verdict.r-fail { border-color: var(--fail); background: #ffebe9; } .verdict.r-fail .badge { color: var(--fail); }
.verdict.r-error, .verdict.r-unknown { border-color: var(--error); background: #ffebe9; } .verdict.r-error .badge { color: var(--error); }
.figures { display: grid; grid-template-columns: repeat(4, minmax(120px, 1fr)); gap: 10px; margin: 14px 0; }
.figure { background: var(--bg); border: 1px solid var(--line); border-radius: 6px; padding: 10px 14px; }
.figure .k { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .05em; }
.figure .v { font-size: 22px; font-weight: 600; }
.facts { display: grid; grid-template-columns: 1fr 1fr; gap: 0 32px; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 14px; margin: 0; }
dt { color: var(--muted); }
dd { margin: 0; overflow-wrap: anywhere; }
table { border-collapse: collapse; width: 100%; margin: 4px 0 8px; }
th, td { text-align: left; vertical-align: top; padding: 5px 8px; border-bottom: 1px solid var(--line); }
th { background: var(--bg); font-weight: 600; font-size: 12.5px; }
td.num, th.num { text-align: right; white-space: nowrap; }
td.detail { white-space: pre-wrap; overflow-wrap: anywhere; }
.res { display: inline-block; min-width: 48px; text-align: center; font-weight: 700; font-size: 11.5px; padding: 1px 6px; border-radius: 10px; color: #fff; }
.res.r-pass { background: var(--pass); } .res.r-warn { background: var(--warn); } .res.r-fail { background: var(--fail); } .res.r-error, .res.r-unknown { background: var(--error); }
tr.r-fail td, tr.r-error td { background: #fff5f5; }
.failed { border: 2px solid var(--fail); border-radius: 8px; padding: 6px 14px 10px; background: #fff5f5; margin-top: 24px; }
.failed h2 { color: var(--fail); border-color: #ffcecb; margin-top: 8px; }
svg text { font: 12px system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; fill: var(--ink); }
svg .tick { stroke: var(--line); }
svg .ticklabel { fill: var(--muted); font-size: 11px; }
.ph-fetch { fill: #4e79a7; background: #4e79a7; } .ph-decrypt { fill: #f28e2b; background: #f28e2b; }
.ph-restore { fill: #59a14f; background: #59a14f; } .ph-check { fill: #b07aa1; background: #b07aa1; }
.legend { display: flex; gap: 18px; color: var(--muted); font-size: 12.5px; margin: 2px 0 8px; }
.legend span::before { content: ""; display: inline-block; width: 11px; height: 11px; margin-right: 5px; vertical-align: -1px; border-radius: 2px; background: inherit; }
.legend span { background: none; } .legend .ph-fetch::before { background: #4e79a7; } .legend .ph-decrypt::before { background: #f28e2b; } .legend .ph-restore::before { background: #59a14f; } .legend .ph-check::before { background: #b07aa1; }
footer { margin-top: 32px; color: var(--muted); font-size: 12px; border-top: 1px solid var(--line); padding-top: 8px; }
@media print { body { padding: 0; } .verdict, .figure, .failed, tr.r-fail td, .res { -webkit-print-color-adjust: exact; print-color-adjust: exact; } }
</style>
</head>
<body>
<h1>Restore drill report</h1>
<p class="sub">coffer restored a snapshot into a scratch environment, checked what came back and measured how long it took.</p>

<div class="verdict {{.ResultClass}}" id="verdict">
<span class="badge" id="result">{{.Label}}</span>
<span>{{.VerdictDetail}}</span>
</div>
{{if .R.Error}}<p><strong>Why the drill could not run:</strong> <span class="mono" id="error">{{.R.Error}}</span></p>{{end}}

<div class="figures">
{{range .Figures}}<div class="figure"><div class="k">{{.Label}}</div><div class="v">{{.Value}}</div></div>
{{end}}</div>

<div class="facts">
<section><h2>Snapshot</h2><dl>
{{range .Snapshot}}<dt>{{.Label}}</dt><dd class="mono">{{.Value}}</dd>
{{end}}</dl></section>
<section><h2>Drill</h2><dl>
{{range .Drill}}<dt>{{.Label}}</dt><dd class="mono">{{.Value}}</dd>
{{end}}</dl></section>
</div>

{{if .Failed}}<section class="failed" id="failed">
<h2>Failed checks</h2>
<table><thead><tr><th>Result</th><th>Source</th><th>Check</th><th>Detail</th></tr></thead><tbody>
{{range .Failed}}<tr class="r-{{.Result}}"><td><span class="res r-{{.Result}}">{{.Result | label}}</span></td><td>{{if .Source}}{{.Source}}{{else}}(snapshot){{end}}</td><td class="mono">{{.Name}}</td><td class="detail">{{.Detail}}</td></tr>
{{end}}</tbody></table>
</section>{{end}}

{{if .Sources}}<section id="timings">
<h2>Recovery time per source</h2>
<div class="legend"><span class="ph-fetch">fetch</span><span class="ph-decrypt">decrypt</span><span class="ph-restore">restore</span><span class="ph-check">check</span></div>
<svg role="img" aria-label="recovery time per source" width="{{.Chart.Width}}" height="{{.Chart.Height}}" viewBox="0 0 {{.Chart.Width}} {{.Chart.Height}}">
{{range .Chart.Ticks}}<line class="tick" x1="{{.X}}" x2="{{.X}}" y1="0" y2="{{$.Chart.Height}}"/>
{{end}}{{range $row := .Chart.Rows}}<text x="0" y="{{.TextY}}">{{.Name}}</text>
{{range .Segments}}<rect class="{{.Class}}" x="{{.X}}" y="{{$row.Y}}" width="{{.W}}" height="18"><title>{{.Title}}</title></rect>
{{end}}<text x="{{.TotalX}}" y="{{.TextY}}">{{.Total}}</text>
{{end}}{{range .Chart.Ticks}}<text class="ticklabel" x="{{.X}}" y="{{$.Chart.Height}}" dy="-4" text-anchor="middle">{{.Label}}</text>
{{end}}</svg>
<table><thead><tr><th>Source</th><th>Kind</th><th>Result</th><th class="num">Total</th><th class="num">Fetch</th><th class="num">Decrypt</th><th class="num">Restore</th><th class="num">Check</th><th class="num">Read</th></tr></thead><tbody>
{{range .Sources}}<tr><td>{{.Name}}</td><td>{{.Kind}}</td><td><span class="res {{.Class}}">{{.Label}}</span></td><td class="num">{{.Total}}</td><td class="num">{{.Fetch}}</td><td class="num">{{.Decrypt}}</td><td class="num">{{.Restore}}</td><td class="num">{{.Check}}</td><td class="num">{{.Read}}</td></tr>
{{end}}</tbody></table>
<p class="sub">Total runs from the drill's start until the source was restored and checked; the largest total is the drill's RTO.</p>
</section>{{end}}

<section id="checks">
<h2>Every check</h2>
{{if .Checks}}<h3>Whole snapshot</h3>
<table><thead><tr><th>Result</th><th>Check</th><th>Detail</th></tr></thead><tbody>
{{range .Checks}}<tr class="{{.Class}}"><td><span class="res {{.Class}}">{{.Label}}</span></td><td class="mono">{{.Name}}</td><td class="detail">{{.Detail}}</td></tr>
{{end}}</tbody></table>{{end}}
{{range .Sources}}<h3>{{.Name}} <span class="sub">({{.Kind}}{{if .Scratch}}, restored into {{.Scratch}}{{end}})</span> <span class="res {{.Class}}">{{.Label}}</span></h3>
{{if .Checks}}<table><thead><tr><th>Result</th><th>Check</th><th>Detail</th></tr></thead><tbody>
{{range .Checks}}<tr class="{{.Class}}"><td><span class="res {{.Class}}">{{.Label}}</span></td><td class="mono">{{.Name}}</td><td class="detail">{{.Detail}}</td></tr>
{{end}}</tbody></table>{{else}}<p class="sub">No checks ran for this source.</p>{{end}}
{{end}}</section>

<footer>Written by coffer {{.R.Coffer}} on {{.Generated}}, report format {{.R.Version}}. This page is self-contained: it holds no script and loads nothing from anywhere.</footer>
</body>
</html>
`))

package drill_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/drill"
	"github.com/cofferhq/coffer/internal/testing/drillreport"
)

func TestWriteTextFailuresFirst(t *testing.T) {
	r := drillreport.Sample(drillreport.Options{Fail: true})
	var b bytes.Buffer
	if err := drill.WriteText(&b, r); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	lines := strings.Split(out, "\n")
	if want := "drill " + r.ID[:8] + ": FAIL: 1 of 13 checks failed, 1 warned"; lines[0] != want {
		t.Errorf("first line %q, want %q", lines[0], want)
	}
	for _, want := range []string{
		"snapshot:   " + r.Snapshot[:8] + ", taken 2026-11-30 02:00:00 UTC on airflow-prod-1\n",
		"repository: s3://acme-backups/airflow-prod\n",
		"drill:      2026-11-30 11:32:05 UTC on drill-runner-2 by auditor@acme.example, coffer v0.9.0 (3f2a1c9)\n",
		"RTO 1m22s   RPO 9h32m   read 1.2 GiB at 15.0 MiB/s\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no line %q in\n%s", want, out)
		}
	}
	// One line per check after the sources table, the failure first,
	// then the warning, then the passes.
	var checks []string
	for _, l := range lines {
		for _, tag := range []string{"FAIL ", "WARN ", "ok "} {
			if strings.HasPrefix(l, tag) {
				checks = append(checks, l)
			}
		}
	}
	if len(checks) != 13 {
		t.Fatalf("%d check lines, want 13:\n%s", len(checks), out)
	}
	if want := "FAIL  invoices/fingerprints: public.invoices: 1204331 rows at backup time, 1204330 restored"; checks[0] != want {
		t.Errorf("first check %q, want %q", checks[0], want)
	}
	if !strings.HasPrefix(checks[1], "WARN  airflow/git-head: ") || !strings.HasPrefix(checks[2], "ok    integrity: ") {
		t.Errorf("checks 2 and 3: %q, %q", checks[1], checks[2])
	}
	if !strings.Contains(out, "invoices   postgres  FAIL    1m22s  12.4s  6.1s     48.3s    9.8s   1.0 GiB") {
		t.Errorf("no timings row for invoices in\n%s", out)
	}

	pass := drillreport.Sample(drillreport.Options{})
	b.Reset()
	drill.WriteText(&b, pass)
	if first, _, _ := strings.Cut(b.String(), "\n"); !strings.HasSuffix(first, ": WARN: 1 of 13 checks warned, none failed") {
		t.Errorf("first line of a passed drill with a warning: %q", first)
	}
}

// TestWriteTextEscapes: a detail from a restored database cannot drive the
// terminal (escape sequences, carriage returns, bidi overrides) or split
// its check's line.
func TestWriteTextEscapes(t *testing.T) {
	r := drillreport.Sample(drillreport.Options{Detail: "\x1b[2J\x1b]0;owned\a\rok    all good\nFAIL \u202eevil\xff"})
	var b bytes.Buffer
	if err := drill.WriteText(&b, r); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, bad := range []string{"\x1b", "\a", "\r", "\u202e", "\xff", "\nFAIL \\u202e", "\nok    all good"} {
		if strings.Contains(out, bad) {
			t.Errorf("the summary holds %q", bad)
		}
	}
	if want := `ok    invoices/user:open-invoices: \x1b[2J\x1b]0;owned\a\rok    all good\nFAIL \u202eevil\xff` + "\n"; !strings.Contains(out, want) {
		t.Errorf("no escaped line %q in\n%s", want, out)
	}
}

func TestJSONRoundTrip(t *testing.T) {
	r := drillreport.Sample(drillreport.Options{Fail: true})
	var a, b bytes.Buffer
	if err := drill.WriteJSON(&a, r); err != nil {
		t.Fatal(err)
	}
	got, err := drill.ReadJSON(bytes.NewReader(a.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	drill.WriteJSON(&b, got)
	if a.String() != b.String() {
		t.Errorf("JSON round trip differs:\n%s\n%s", a.String(), b.String())
	}
	for _, want := range []string{`"rto": 81.7`, `"result": "fail"`, `"throughput_bytes_per_second": `} {
		if !strings.Contains(a.String(), want) {
			t.Errorf("the JSON report has no %s", want)
		}
	}
	if _, err := drill.ReadJSON(strings.NewReader(`{"version": 99}`)); err == nil || !strings.Contains(err.Error(), "version 99 is not supported") {
		t.Errorf("ReadJSON of version 99: %v", err)
	}
}

// TestWriteHTMLEscapes checks the page's source without a browser (the
// browser test is TestHTMLInChromium): hostile details come out as text,
// and the page names no URL at all.
func TestWriteHTMLEscapes(t *testing.T) {
	hostile := `<script>alert(1)</script><img src="https://evil.example/x.png"><a href="javascript:alert(2)">x</a>`
	r := drillreport.Sample(drillreport.Options{Fail: true, Detail: hostile})
	r.Sources[0].Name = `inv"oices<b>`
	var b bytes.Buffer
	if err := drill.WriteHTML(&b, r); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, bad := range []string{"<script", "<img", "<a ", "<b>", "href=\"javascript"} {
		if strings.Contains(page, bad) {
			t.Errorf("the page holds %q", bad)
		}
	}
	for _, want := range []string{"&lt;script&gt;alert(1)&lt;/script&gt;", "inv&#34;oices&lt;b&gt;", "default-src 'none'"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page does not hold %q", want)
		}
	}
	// Without the hostile detail the page names no URL: nothing to fetch.
	b.Reset()
	clean := drillreport.Sample(drillreport.Options{})
	clean.Repository = "/srv/backups/airflow"
	drill.WriteHTML(&b, clean)
	for _, bad := range []string{"http:", "https:", "//", "src=", "@import", "url("} {
		if strings.Contains(b.String(), bad) {
			t.Errorf("the page holds %q", bad)
		}
	}
}

func TestWriteTextError(t *testing.T) {
	r := &drill.Report{Version: drill.ReportVersion, ID: drill.NewID(), Result: drill.Error,
		Error: "no snapshot holds source invoices", Coffer: "(devel)"}
	var b bytes.Buffer
	if err := drill.WriteText(&b, r); err != nil {
		t.Fatal(err)
	}
	want := "drill " + r.ID[:8] + ": ERROR: the drill could not run\nerror: no snapshot holds source invoices\nsnapshot:   -\n"
	if !strings.HasPrefix(b.String(), want) {
		t.Errorf("summary of a drill that could not run:\n%s\nwant it to start with\n%s", b.String(), want)
	}
}

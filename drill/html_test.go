package drill_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/cofferhq/coffer/drill"
	"github.com/cofferhq/coffer/internal/testing/drillreport"
	"github.com/cofferhq/coffer/internal/testing/testutil"
)

// hostile is a check detail as a restored database could hold it: markup
// that would run a script, fetch an image and draw a fake verdict if it
// were not escaped.
const hostile = `</td></tr></table><script>console.error("pwned");document.title="pwned"</script>` +
	`<img src="http://127.0.0.1:9/leak.png" onerror="console.error('img')"><style>body{display:none}</style>` +
	`<div id="result">PASS</div>`

// browser is a headless Chromium the page is opened in, and what it saw.
type browser struct {
	ctx context.Context

	mu       sync.Mutex
	requests []string // every URL the page asked for
	console  []string // console calls, exceptions and log entries of level error or warning
}

// chromiumPath finds the Chromium binary (Debian's package chromium).
func chromiumPath() (string, bool) {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, true
		}
	}
	return "", false
}

// openBrowser starts headless Chromium for the test, cut off from any
// network: every host name resolves to nothing and every connection goes
// through a proxy on a closed loopback port. The browser is stopped when
// the test ends.
func openBrowser(t *testing.T) *browser {
	t.Helper()
	bin, ok := chromiumPath()
	if !ok {
		testutil.Missing(t, "chromium not installed (Debian package chromium; scripts/install-packages.sh)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.WindowSize(1200, 900),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND"),
		chromedp.Flag("proxy-server", "http://127.0.0.1:9"),
		chromedp.Flag("proxy-bypass-list", "<-loopback>"),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("no-pings", true),
		chromedp.Flag("allow-file-access-from-files", false),
	)
	if os.Geteuid() == 0 {
		// Chromium refuses to run as root with its sandbox.
		opts = append(opts, chromedp.NoSandbox)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(acancel)
	b := &browser{}
	bctx, bcancel := chromedp.NewContext(actx, chromedp.WithListener(b.listen))
	t.Cleanup(bcancel)
	b.ctx = bctx
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start chromium (%s): %v", bin, err)
	}
	return b
}

// listen records requests and console output. It runs in the tab's loop.
func (b *browser) listen(ev any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch ev := ev.(type) {
	case *network.EventRequestWillBeSent:
		b.requests = append(b.requests, ev.Request.URL)
	case *runtime.EventConsoleAPICalled:
		var args []string
		for _, a := range ev.Args {
			args = append(args, strings.Trim(string(a.Value), `"`))
		}
		b.console = append(b.console, fmt.Sprintf("console.%s(%s)", ev.Type, strings.Join(args, ", ")))
	case *runtime.EventExceptionThrown:
		b.console = append(b.console, "exception: "+ev.ExceptionDetails.Text)
	case *log.EventEntryAdded:
		if ev.Entry.Level == log.EntryLevelError || ev.Entry.Level == log.EntryLevelWarning {
			b.console = append(b.console, fmt.Sprintf("log %s %s: %s %s", ev.Entry.Level, ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
		}
	}
}

// load opens the file in the browser and returns the page's text as
// rendered (innerText of the body: what a reader sees, hidden elements
// left out), the requests other than the page itself, and the console.
func (b *browser) load(t *testing.T, file string) (text string, requests, console []string) {
	t.Helper()
	url := "file://" + file
	if err := chromedp.Do(b.ctx, chromedp.Navigate(url), chromedp.WaitReady(chromedp.CSS("body"))); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	text, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS("body")))
	if err != nil {
		t.Fatalf("read the page's text: %v", err)
	}
	// Events that arrive after the load (a late image, a CSP report).
	time.Sleep(300 * time.Millisecond)
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, u := range b.requests {
		if u != url {
			requests = append(requests, u)
		}
	}
	console = append(console, b.console...)
	b.requests, b.console = nil, nil
	return text, requests, console
}

func writePage(t *testing.T, name string, body []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, body, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestHTMLInChromium opens the auditors' page in headless Chromium: it
// loads nothing but itself, logs no error, shows the snapshot id, the
// result and the RTO, and a hostile check detail stays text. With
// COFFER_UPDATE_SCREENSHOT=1 it writes doc/drill-report.png.
func TestHTMLInChromium(t *testing.T) {
	b := openBrowser(t)

	// The harness sees what it must refuse: a page that fetches and logs.
	bad := writePage(t, "bad.html", []byte(`<!DOCTYPE html><html><body><p>x</p>`+
		`<img src="http://127.0.0.1:9/leak.png"><script>console.error("boom")</script></body></html>`))
	_, reqs, cons := b.load(t, bad)
	if len(reqs) == 0 {
		t.Fatal("the browser reported no request for a page that loads an image: the harness cannot see leaks")
	}
	if !strings.Contains(strings.Join(cons, "\n"), "boom") {
		t.Fatalf("the browser reported no console error for a page that logs one: %q", cons)
	}

	for _, tc := range []struct {
		name string
		rep  *drill.Report
	}{
		{"fail", drillreport.Sample(drillreport.Options{Fail: true, Detail: hostile})},
		{"pass", drillreport.Sample(drillreport.Options{})},
		{"error", &drill.Report{Version: drill.ReportVersion, ID: drill.NewID(), Result: drill.Error,
			Error: "no snapshot holds source invoices" + hostile, Started: time.Now(), Coffer: "(devel)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var page bytes.Buffer
			if err := drill.WriteHTML(&page, tc.rep); err != nil {
				t.Fatal(err)
			}
			file := writePage(t, "drill-"+tc.name+".html", page.Bytes())
			text, reqs, cons := b.load(t, file)
			if len(reqs) > 0 {
				t.Errorf("the page made requests: %q", reqs)
			}
			if len(cons) > 0 {
				t.Errorf("console: %q", cons)
			}
			r := tc.rep
			want := []string{r.ID, strings.ToUpper(string(r.Result)), r.Coffer}
			if r.Snapshot != "" {
				want = append(want, r.Snapshot, "RTO\n"+fmtRTO(r), r.Host, r.User, r.Repository)
			}
			for _, s := range r.Sources {
				for _, c := range s.Checks {
					want = append(want, c.Name)
				}
			}
			for _, w := range want {
				if !strings.Contains(text, w) {
					t.Errorf("the rendered page does not show %q", w)
				}
			}
			title, err := chromedp.Run(b.ctx, chromedp.Title())
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(title, "pwned") {
				t.Errorf("a script in a check's detail ran (title %q)", title)
			}
			scripts, err := chromedp.Run(b.ctx, chromedp.Nodes(chromedp.CSSAll("script"), chromedp.AtLeast(0)))
			if err != nil {
				t.Fatal(err)
			}
			imgs, err := chromedp.Run(b.ctx, chromedp.Nodes(chromedp.CSSAll("img"), chromedp.AtLeast(0)))
			if err != nil {
				t.Fatal(err)
			}
			if len(scripts) > 0 || len(imgs) > 0 {
				t.Errorf("the page holds %d script and %d img elements, want none", len(scripts), len(imgs))
			}
			results, err := chromedp.Run(b.ctx, chromedp.Nodes(chromedp.CSSAll("#result"), chromedp.AtLeast(0)))
			if err != nil {
				t.Fatal(err)
			}
			if len(results) != 1 {
				t.Errorf("%d elements with id result, want 1: a detail added markup", len(results))
			}
			if tc.name == "fail" {
				// The hostile detail is shown as the text it is.
				if !strings.Contains(text, `<script>console.error("pwned")`) {
					t.Errorf("the hostile detail is not shown as text")
				}
				if os.Getenv("COFFER_UPDATE_SCREENSHOT") == "1" {
					screenshot(t, b, r)
				}
			}
		})
	}
}

// fmtRTO is the RTO as the page's figure shows it.
func fmtRTO(r *drill.Report) string {
	var b bytes.Buffer
	drill.WriteText(&b, r)
	// "RTO 1m22s   RPO ..." in the text summary; the page uses the same
	// formatting.
	line := b.String()[strings.Index(b.String(), "RTO "):]
	return strings.Fields(line)[1]
}

// screenshot writes doc/drill-report.png from a report without hostile
// strings (the picture shows what an auditor usually sees).
func screenshot(t *testing.T, b *browser, failing *drill.Report) {
	t.Helper()
	r := drillreport.Sample(drillreport.Options{Fail: true, Snapshot: failing.Snapshot})
	var page bytes.Buffer
	if err := drill.WriteHTML(&page, r); err != nil {
		t.Fatal(err)
	}
	file := writePage(t, "drill-report.html", page.Bytes())
	if _, reqs, cons := b.load(t, file); len(reqs)+len(cons) > 0 {
		t.Fatalf("requests %q, console %q", reqs, cons)
	}
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(testutil.ModuleRoot(), "doc", "drill-report.png")
	if err := os.WriteFile(out, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (%d bytes)", out, len(png))
}

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"

	"github.com/cofferhq/coffer/internal/progress"
	"github.com/cofferhq/coffer/internal/units"
)

// A long command (backup, restore, verify) shows how it moves in one of
// three ways: under --json as newline-delimited JSON events on stdout
// (start, progress at most once a second, warning, end, or error: every
// line one JSON object, see doc/design.md "JSON events"); on a terminal as
// a live bar per part on stderr (mpb: many bars at once, redrawn in place);
// otherwise, or with --quiet, not at all.

// eventInterval is the least time between two progress events.
const eventInterval = time.Second

// run is the output of one long command.
type runOutput struct {
	g       *globals
	command string
	tracker *progress.Tracker
	bars    *mpb.Progress
	mu      sync.Mutex
	byPart  map[string]*mpb.Bar
	stop    chan struct{}
	stopped chan struct{}
	once    sync.Once
	// events: under --json, lines go to stdout.
	events bool
	out    io.Writer
	outMu  sync.Mutex
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// begin starts the output of a long command; end or fail ends it.
func (g *globals) begin(command string) *runOutput {
	r := &runOutput{g: g, command: command, tracker: progress.NewTracker(), byPart: map[string]*mpb.Bar{},
		stop: make(chan struct{}), stopped: make(chan struct{}), out: g.stdout}
	g.run = r
	switch {
	case g.json:
		r.events = true
		r.emit(map[string]any{"event": "start", "command": command, "time": time.Now().UTC()})
		go r.tick()
	case !g.quiet && isTerminal(g.stderr):
		r.bars = mpb.New(mpb.WithOutput(g.stderr), mpb.WithWidth(100), mpb.WithRefreshRate(200*time.Millisecond))
		close(r.stopped)
	default:
		close(r.stopped)
	}
	return r
}

// reporter is what the library is told to report to: nil when nothing
// is shown.
func (r *runOutput) reporter() progress.Reporter {
	if !r.events && r.bars == nil {
		return nil
	}
	return r
}

// Start implements progress.Reporter.
func (r *runOutput) Start(part string, total progress.Counts) {
	r.tracker.Start(part, total)
	if r.bars == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if b := r.byPart[part]; b != nil {
		b.SetTotal(total.Bytes, false)
		return
	}
	// Built with total 0 the bar never completes by itself: an estimate
	// may be exceeded. Finish completes it.
	b := r.bars.New(0, mpb.BarStyle(),
		mpb.PrependDecorators(decor.Name(part, decor.WC{C: decor.DindentRight | decor.DextraSpace}),
			decor.Any(func(decor.Statistics) string { return r.describe(part) }, decor.WCSyncSpaceR)),
		mpb.AppendDecorators(decor.Any(func(decor.Statistics) string { return r.eta(part) })))
	if total.Bytes > 0 {
		b.SetTotal(total.Bytes, false)
	}
	r.byPart[part] = b
}

// Add implements progress.Reporter.
func (r *runOutput) Add(part string, n progress.Counts) {
	r.tracker.Add(part, n)
	if r.bars == nil || n.Bytes == 0 {
		return
	}
	r.mu.Lock()
	b := r.byPart[part]
	r.mu.Unlock()
	if b != nil {
		b.IncrInt64(n.Bytes)
	}
}

// Finish implements progress.Reporter.
func (r *runOutput) Finish(part string) {
	r.tracker.Finish(part)
	if r.bars == nil {
		return
	}
	r.mu.Lock()
	b := r.byPart[part]
	r.mu.Unlock()
	if b != nil {
		b.SetTotal(-1, true)
	}
}

func (r *runOutput) partState(name string) (progress.Part, bool) {
	for _, p := range r.tracker.Parts() {
		if p.Name == name {
			return p, true
		}
	}
	return progress.Part{}, false
}

// describe is a bar's counts: "1.2 MiB / 3.4 MiB, 12 files, 5.0 MiB/s".
func (r *runOutput) describe(part string) string {
	p, _ := r.partState(part)
	s := units.Bytes(p.Done.Bytes)
	if p.Total.Bytes > 0 {
		s += " / " + units.Bytes(p.Total.Bytes)
	}
	s += fmt.Sprintf(", %d files, %s/s", p.Done.Files, units.Bytes(int64(p.Rate(time.Now()))))
	return s
}

func (r *runOutput) eta(part string) string {
	p, _ := r.partState(part)
	if !p.Finished.IsZero() {
		return "done"
	}
	if d, ok := p.ETA(time.Now()); ok {
		return "ETA " + d.Round(time.Second).String()
	}
	return ""
}

// tick emits progress events at most once a second, for parts that moved.
func (r *runOutput) tick() {
	defer close(r.stopped)
	t := time.NewTicker(eventInterval)
	defer t.Stop()
	last := map[string]progress.Counts{}
	for {
		select {
		case <-r.stop:
			return
		case now := <-t.C:
			for _, p := range r.tracker.Parts() {
				if l, ok := last[p.Name]; ok && l == p.Done {
					continue
				}
				last[p.Name] = p.Done
				r.emit(progressEvent(p, now))
			}
		}
	}
}

func progressEvent(p progress.Part, now time.Time) map[string]any {
	ev := map[string]any{"event": "progress", "part": p.Name, "bytes": p.Done.Bytes, "files": p.Done.Files,
		"bytes_per_second": int64(p.Rate(now)), "done": !p.Finished.IsZero()}
	if p.Total.Bytes > 0 || p.Total.Files > 0 {
		ev["total_bytes"], ev["total_files"] = p.Total.Bytes, p.Total.Files
	}
	if d, ok := p.ETA(now); ok {
		ev["eta_seconds"] = d.Seconds()
	}
	return ev
}

// emit writes one event as one line, its "event" first.
func (r *runOutput) emit(ev map[string]any) {
	name, _ := ev["event"].(string)
	rest := map[string]any{}
	for k, v := range ev {
		if k != "event" {
			rest[k] = v
		}
	}
	b, err := json.Marshal(rest)
	if err != nil {
		name = "warning"
		b, _ = json.Marshal(map[string]any{"message": "cannot encode an event: " + err.Error()})
	}
	head, _ := json.Marshal(name)
	if len(b) > 2 {
		b = append(append([]byte(`{"event":`), head...), append([]byte{','}, b[1:]...)...)
	} else {
		b = append(append([]byte(`{"event":`), head...), '}')
	}
	r.outMu.Lock()
	defer r.outMu.Unlock()
	r.out.Write(append(b, '\n'))
}

// halt stops the ticker and the bars (once).
func (r *runOutput) halt() {
	r.once.Do(func() {
		close(r.stop)
		<-r.stopped
		if r.bars != nil {
			r.mu.Lock()
			for _, b := range r.byPart {
				if !b.Completed() {
					b.Abort(false)
				}
			}
			r.mu.Unlock()
			r.bars.Wait()
		}
	})
}

// warn prints a warning once: a "coffer: warning:" line, or a warning
// event under --json.
func (r *runOutput) warn(msg string) {
	if r.events {
		r.emit(map[string]any{"event": "warning", "message": msg})
		return
	}
	fmt.Fprintf(r.g.stderr, "coffer: warning: %s\n", msg)
}

// end finishes the run: under --json the last progress of every part and
// the end event with the command's result; else nothing (the caller
// prints its summary after).
func (r *runOutput) end(result any) error {
	r.halt()
	if !r.events {
		return nil
	}
	now := time.Now()
	for _, p := range r.tracker.Parts() {
		r.emit(progressEvent(p, now))
	}
	r.emit(map[string]any{"event": "end", "command": r.command, "result": result})
	return nil
}

// warnf prints a warning once: through the running long command's output
// when there is one (an event under --json), else as a "coffer: warning:"
// line on stderr, or under --json as {"event":"warning","message":...}.
func (g *globals) warnf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	switch {
	case g.run != nil:
		g.run.warn(msg)
	case g.json:
		b, _ := json.Marshal(struct {
			Event   string `json:"event"`
			Message string `json:"message"`
		}{"warning", msg})
		fmt.Fprintf(g.stderr, "%s\n", b)
	default:
		fmt.Fprintf(g.stderr, "coffer: warning: %s\n", msg)
	}
}

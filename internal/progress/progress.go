// Package progress is how long runs (a backup, a restore, a verify, a
// drill) tell their caller how far they are, part by part: a backup's
// sources, a restore's source, verify's phases. The libraries only count;
// what is shown (a bar on a terminal, JSON events, nothing) is the
// caller's choice.
package progress

import (
	"sync"
	"time"
)

// Counts are bytes and files (or objects) of one part.
type Counts struct {
	Bytes int64 `json:"bytes"`
	Files int64 `json:"files"`
}

// Reporter is told how a run moves. Start announces a part with its
// expected total (zero fields: unknown), Add adds what was just done (it
// is called often, per chunk: keep it cheap), Finish ends the part.
// Implementations must be safe for concurrent use.
type Reporter interface {
	Start(part string, total Counts)
	Add(part string, n Counts)
	Finish(part string)
}

// Or returns r, or a Reporter that does nothing when r is nil.
func Or(r Reporter) Reporter {
	if r == nil {
		return nop{}
	}
	return r
}

type nop struct{}

func (nop) Start(string, Counts) {}
func (nop) Add(string, Counts)   {}
func (nop) Finish(string)        {}

// Part is one part's state, as a Tracker keeps it.
type Part struct {
	Name    string
	Total   Counts
	Done    Counts
	Started time.Time
	// Finished is zero while the part runs.
	Finished time.Time
}

// Rate is the part's bytes per second so far.
func (p Part) Rate(now time.Time) float64 {
	end := p.Finished
	if end.IsZero() {
		end = now
	}
	d := end.Sub(p.Started).Seconds()
	if d <= 0 {
		return 0
	}
	return float64(p.Done.Bytes) / d
}

// ETA is the time left at the rate so far, when the total is known and
// something was done; ok is false otherwise.
func (p Part) ETA(now time.Time) (time.Duration, bool) {
	r := p.Rate(now)
	if p.Total.Bytes <= 0 || r <= 0 || !p.Finished.IsZero() {
		return 0, false
	}
	left := max(p.Total.Bytes-p.Done.Bytes, 0)
	return time.Duration(float64(left) / r * float64(time.Second)), true
}

// Tracker is a Reporter that keeps every part's counts, for a caller
// that samples them (JSON events once a second, a drill's report).
type Tracker struct {
	mu    sync.Mutex
	parts []*Part
	by    map[string]*Part
	now   func() time.Time
}

// NewTracker returns an empty Tracker.
func NewTracker() *Tracker { return &Tracker{by: map[string]*Part{}, now: time.Now} }

func (t *Tracker) part(name string) *Part {
	p := t.by[name]
	if p == nil {
		p = &Part{Name: name, Started: t.now()}
		t.by[name] = p
		t.parts = append(t.parts, p)
	}
	return p
}

// Start implements Reporter.
func (t *Tracker) Start(name string, total Counts) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.part(name)
	p.Total = total
}

// Add implements Reporter.
func (t *Tracker) Add(name string, n Counts) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.part(name)
	p.Done.Bytes += n.Bytes
	p.Done.Files += n.Files
}

// Finish implements Reporter.
func (t *Tracker) Finish(name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.part(name).Finished = t.now()
}

// Parts returns a copy of every part's state, in the order they started.
func (t *Tracker) Parts() []Part {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Part, len(t.parts))
	for i, p := range t.parts {
		out[i] = *p
	}
	return out
}

// Tee returns a Reporter that tells every non-nil reporter of rs.
func Tee(rs ...Reporter) Reporter {
	var out tee
	for _, r := range rs {
		if r != nil {
			out = append(out, r)
		}
	}
	return out
}

type tee []Reporter

func (t tee) Start(p string, c Counts) {
	for _, r := range t {
		r.Start(p, c)
	}
}

func (t tee) Add(p string, c Counts) {
	for _, r := range t {
		r.Add(p, c)
	}
}

func (t tee) Finish(p string) {
	for _, r := range t {
		r.Finish(p)
	}
}

package progress

import (
	"sync"
	"testing"
	"time"
)

func TestTracker(t *testing.T) {
	tr := NewTracker()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tr.now = func() time.Time { return now }
	var r Reporter = tr
	r.Start("docs", Counts{Bytes: 1000, Files: 10})
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.Add("docs", Counts{Bytes: 25, Files: 1})
		}()
	}
	wg.Wait()
	r.Add("db", Counts{Bytes: 7})
	parts := tr.Parts()
	if len(parts) != 2 || parts[0].Name != "docs" || parts[1].Name != "db" {
		t.Fatalf("parts %+v, want docs then db", parts)
	}
	p := parts[0]
	if p.Done != (Counts{Bytes: 250, Files: 10}) {
		t.Errorf("done %+v, want 250 bytes, 10 files", p.Done)
	}
	later := now.Add(5 * time.Second)
	if got := p.Rate(later); got != 50 {
		t.Errorf("rate %v, want 50 B/s", got)
	}
	if eta, ok := p.ETA(later); !ok || eta != 15*time.Second {
		t.Errorf("ETA %v %v, want 15s", eta, ok)
	}
	if _, ok := parts[1].ETA(later); ok {
		t.Error("an ETA without a total")
	}
	r.Finish("docs")
	if _, ok := tr.Parts()[0].ETA(later); ok {
		t.Error("an ETA after Finish")
	}
}

func TestTeeAndOr(t *testing.T) {
	a, b := NewTracker(), NewTracker()
	r := Tee(a, nil, b)
	r.Start("x", Counts{})
	r.Add("x", Counts{Bytes: 3})
	r.Finish("x")
	for _, tr := range []*Tracker{a, b} {
		if p := tr.Parts(); len(p) != 1 || p[0].Done.Bytes != 3 || p[0].Finished.IsZero() {
			t.Errorf("tee: %+v", p)
		}
	}
	Or(nil).Add("x", Counts{Bytes: 1}) // does nothing, does not panic
}

package backup

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/cofferhq/coffer/storage"
)

// TestLedger: a pack is trusted as first seen; a changed size or time marks
// it changed for good, until a repair vouches for it at the time now
// listed; a pack a repair named damaged is not reported; S3's second
// precision HEAD times equal its millisecond listings.
func TestLedger(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := t.TempDir()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)
	oi := func(size int64, mt time.Time) storage.ObjectInfo { return storage.ObjectInfo{Size: size, ModTime: mt} }
	l := loadLedger(dir, "repo", log)
	if got := l.check(map[string]storage.ObjectInfo{"a": oi(10, t0), "b": oi(20, t0)}, nil, nil); len(got) != 0 {
		t.Fatalf("first sight: changed %v", got)
	}
	l.wrote(oi(30, t0.Truncate(time.Second)), "s3") // as HEAD answers
	l.save(log)

	l = loadLedger(dir, "repo", log)
	present := map[string]storage.ObjectInfo{
		"a":  oi(10, t0),                            // unchanged
		"b":  oi(20, t0.Add(time.Millisecond)),      // rewritten, same size
		"s3": oi(30, t0.Truncate(time.Millisecond)), // as a listing answers
	}
	got := l.check(present, nil, nil)
	if len(got) != 1 || !got["b"] {
		t.Fatalf("changed = %v, want b", got)
	}
	l.save(log)

	// Changed stays changed, even when the old time comes back.
	l = loadLedger(dir, "repo", log)
	present["b"] = oi(20, t0)
	if got := l.check(present, nil, nil); !got["b"] {
		t.Fatalf("changed = %v, want b still", got)
	}
	// A repair that checked it at another time does not vouch for it.
	if got := l.check(present, map[string]time.Time{"b": t0.Add(time.Hour)}, nil); !got["b"] {
		t.Fatalf("changed = %v, want b still", got)
	}
	// One that named it damaged: left out, not reported.
	if got := l.check(present, nil, map[string]bool{"b": true}); got["b"] {
		t.Fatalf("changed = %v, want b not reported", got)
	}
	// A repair that checked it at the time now listed does.
	if got := l.check(present, map[string]time.Time{"b": t0}, nil); len(got) != 0 {
		t.Fatalf("changed = %v after the repair vouched", got)
	}
	if got := l.check(present, nil, nil); len(got) != 0 {
		t.Fatalf("changed = %v after the repair vouched, next backup", got)
	}
	// No cache dir, no ledger.
	if l := loadLedger("", "repo", log); l != nil || len(l.check(present, nil, nil)) != 0 {
		t.Fatal("a ledger without a cache dir")
	}
}

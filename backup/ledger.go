package backup

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/storage"
)

// The pack ledger is the backup host's memory of every pack it has seen in
// the store: its size and the modification time the store listed for it
// the first time (or, for the packs this host wrote, right after writing
// it). Packs are never rewritten, so a pack whose listed size or time
// changed has been replaced or damaged in place: a same-size swap passes
// the index's size check, and without the ledger the next backup would
// deduplicate against it. Such a pack is "changed" for good: no backup of
// this host deduplicates against it again, until a repair record vouches
// for it (its rebuilt index lists the pack with the time now listed, so
// the repair read it whole, checked its hash and every chunk's id after it
// changed). It lives beside the change cache, CacheDir/<repo id>/packs.json
// (0600); pack names, sizes and times are public anyway. Without a cache
// dir there is no ledger, and only sizes and repair records protect the
// deduplication.

type ledgerEntry struct {
	Size  int64     `json:"size"`
	MTime time.Time `json:"mtime"`
	// Changed is set once the store listed another size or time.
	Changed bool `json:"changed,omitempty"`
}

type ledgerFile struct {
	Version int                     `json:"version"`
	Packs   map[string]*ledgerEntry `json:"packs"`
}

type ledger struct {
	path  string
	packs map[string]*ledgerEntry
	dirty bool
}

// loadLedger reads the ledger; a missing or unreadable one starts empty
// (every pack is then seen for the first time).
func loadLedger(dir, repoID string, log *slog.Logger) *ledger {
	if dir == "" {
		return nil
	}
	l := &ledger{path: filepath.Join(dir, repoID, "packs.json"), packs: map[string]*ledgerEntry{}}
	b, err := os.ReadFile(l.path)
	if err != nil {
		if !os.IsNotExist(err) {
			log.Warn("pack ledger unreadable; starting a new one", "err", err)
		}
		return l
	}
	var f ledgerFile
	if err := json.Unmarshal(b, &f); err != nil || f.Version != 1 {
		log.Warn("pack ledger damaged; starting a new one", "err", err)
		return l
	}
	if f.Packs != nil {
		l.packs = f.Packs
	}
	return l
}

// check compares the store's listing with the ledger and returns the packs
// that changed since this host first saw them and that no repair record
// vouches for. Packs seen for the first time are remembered. Packs a
// repair record named damaged are left out anyway, and not reported again.
func (l *ledger) check(present map[string]storage.ObjectInfo, vouched map[string]time.Time, damaged map[string]bool) map[string]bool {
	changed := map[string]bool{}
	if l == nil {
		return changed
	}
	for sum, oi := range present {
		if damaged[sum] {
			continue
		}
		e := l.packs[sum]
		switch {
		case e == nil:
			l.packs[sum] = &ledgerEntry{Size: oi.Size, MTime: mtime(oi.ModTime)}
			l.dirty = true
		case !e.Changed && e.Size == oi.Size && sameTime(e.MTime, oi.ModTime):
		case vouchedFor(vouched, sum, oi):
			*e = ledgerEntry{Size: oi.Size, MTime: mtime(oi.ModTime)}
			l.dirty = true
		default:
			if !e.Changed {
				e.Changed = true
				l.dirty = true
			}
			changed[sum] = true
		}
	}
	return changed
}

func vouchedFor(vouched map[string]time.Time, sum string, oi storage.ObjectInfo) bool {
	t, ok := vouched[sum]
	return ok && sameTime(t, oi.ModTime)
}

func mtime(t time.Time) time.Time { return t.UTC() }

// sameTime compares two listed modification times at the precision both
// have: S3 lists milliseconds but HEAD answers in whole seconds, a local
// file system gives nanoseconds to both.
func sameTime(a, b time.Time) bool {
	if a.Equal(b) {
		return true
	}
	if a.Nanosecond() == 0 || b.Nanosecond() == 0 {
		return a.Truncate(time.Second).Equal(b.Truncate(time.Second))
	}
	return false
}

// wrote remembers a pack this host just wrote, as the store describes it.
func (l *ledger) wrote(oi storage.ObjectInfo, sum string) {
	if l == nil {
		return
	}
	l.packs[sum] = &ledgerEntry{Size: oi.Size, MTime: mtime(oi.ModTime)}
	l.dirty = true
}

// save writes the ledger atomically.
func (l *ledger) save(log *slog.Logger) {
	if l == nil || !l.dirty {
		return
	}
	b, err := json.Marshal(ledgerFile{Version: 1, Packs: l.packs})
	if err == nil {
		err = writeFileAtomic(l.path, b)
	}
	if err != nil {
		log.Warn("pack ledger not saved", "err", err)
	}
}

// changedWarning is the warning about packs a backup did not
// deduplicate against because they changed.
func changedWarning(changed map[string]bool) string {
	names := make([]string, 0, len(changed))
	for sum := range changed {
		names = append(names, repo.PackName(sum))
	}
	sort.Strings(names)
	if len(names) > 3 {
		names = append(names[:3], "...")
	}
	return fmt.Sprintf("%d packs changed in the store since this host first saw them (%s): not deduplicated against, their chunks are stored again; run coffer verify, and coffer repair if it finds damage",
		len(changed), strings.Join(names, ", "))
}

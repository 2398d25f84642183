package inspect

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cofferhq/coffer/internal/pathglob"
	"github.com/cofferhq/coffer/internal/repo"
)

// Range selects snapshots by time and source.
type Range struct {
	// Source: only snapshots that hold this source ("" any).
	Source string
	// Since and Until bound the snapshots' times (inclusive); zero is
	// unbounded.
	Since, Until time.Time
}

// Contains reports whether m is in the range.
func (rg Range) Contains(m *repo.Manifest) bool {
	if !rg.Since.IsZero() && m.Time.Before(rg.Since) {
		return false
	}
	if !rg.Until.IsZero() && m.Time.After(rg.Until) {
		return false
	}
	if rg.Source == "" {
		return true
	}
	for _, s := range m.Sources {
		if s.Name == rg.Source {
			return true
		}
	}
	return false
}

// Statuses of a found path, against the previous snapshot (in time) that
// holds the same source.
const (
	Added     = "added"     // not in the previous snapshot (or none)
	Changed   = "changed"   // there, with other contents, size, type or mode
	Unchanged = "unchanged" // there, the same
	Removed   = "removed"   // matched in the previous snapshot, gone from this one
)

// Found is a path that matched, in one snapshot.
type Found struct {
	Snapshot string    `json:"snapshot"`
	Time     time.Time `json:"time"`
	Entry
	// Status compares the entry with the previous snapshot holding its
	// source: added, changed, unchanged, or removed (then Entry is the
	// entry as it was in that snapshot).
	Status string `json:"status"`
}

// Find returns the entries whose paths match pattern in the snapshots ms
// (sorted by time) that rg contains, in the order of ms and then of the
// catalogs; give it every snapshot: the first ones in range are compared
// with the last one before it that holds their source. In each snapshot it also returns, as Removed, what matched in
// the previous snapshot that holds the same source and is gone: so the
// result says in which snapshot a file appeared, changed or vanished.
// Snapshots whose catalog cannot be read are skipped and reported in
// warnings.
func Find(ctx context.Context, r *repo.Repository, ms []*repo.Manifest, pattern *pathglob.Pattern, rg Range) (found []Found, warnings []string, err error) {
	if !r.HasIdentity() {
		return nil, nil, repo.ErrNoIdentity
	}
	found = []Found{}
	// prev holds, per source, what matched in the last snapshot that held
	// it.
	prev := map[string]map[string]Entry{}
	base := baseline(ms, rg)
	for _, m := range ms {
		show := rg.Contains(m)
		if !show && !base[m.ID] {
			continue
		}
		c, err := r.ReadCatalog(ctx, m)
		if err != nil {
			var ie *repo.IntegrityError
			if errors.As(err, &ie) {
				warnings = append(warnings, fmt.Sprintf("snapshot %s skipped: %v", repo.ShortID(m.ID), err))
				continue
			}
			return nil, warnings, err
		}
		for i := range c.Sources {
			sc := &c.Sources[i]
			if rg.Source != "" && sc.Name != rg.Source {
				continue
			}
			before := prev[sc.Name]
			now := map[string]Entry{}
			dumps := dumpEntries(sc, fingerprintsByPart(sc))
			for j := range sc.Entries {
				e := &sc.Entries[j]
				if !pattern.Match(e.Path) {
					continue
				}
				x := newEntry(sc.Name, e)
				x.Fingerprints = dumps[j]
				status := Added
				if old, ok := before[e.Path]; ok {
					status = Unchanged
					if differs(&old, &x) {
						status = Changed
					}
				}
				now[e.Path] = x
				if show {
					found = append(found, Found{Snapshot: m.ID, Time: m.Time, Entry: x, Status: status})
				}
			}
			prev[sc.Name] = now
			if !show {
				continue
			}
			for j := range sc.Entries {
				delete(before, sc.Entries[j].Path)
			}
			// What is left in before matched last time and is gone.
			for _, old := range sortedEntries(before) {
				found = append(found, Found{Snapshot: m.ID, Time: m.Time, Entry: old, Status: Removed})
			}
		}
	}
	return found, warnings, nil
}

// baseline returns the snapshots before rg.Since that the first snapshots
// in range are compared with: for each source, the last one before the
// range that holds it. Their catalogs are read, not listed, so that a
// range does not make a file "added" on its first night.
func baseline(ms []*repo.Manifest, rg Range) map[string]bool {
	base := map[string]bool{}
	if rg.Since.IsZero() {
		return base
	}
	covered := map[string]bool{}
	for i := len(ms) - 1; i >= 0; i-- {
		m := ms[i]
		if !m.Time.Before(rg.Since) {
			continue
		}
		for _, s := range m.Sources {
			if (rg.Source == "" || s.Name == rg.Source) && !covered[s.Name] {
				covered[s.Name] = true
				base[m.ID] = true
			}
		}
	}
	return base
}

// differs reports whether b is another version of a: type, contents,
// size, link target or mode.
func differs(a, b *Entry) bool {
	return a.Type != b.Type || a.SHA256 != b.SHA256 || a.Size != b.Size || a.Link != b.Link || a.Mode != b.Mode
}

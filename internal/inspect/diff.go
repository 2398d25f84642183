package inspect

import (
	"fmt"
	"sort"
	"strings"

	"github.com/cofferhq/coffer/internal/fingerprint"
	"github.com/cofferhq/coffer/internal/repo"
)

// Diff is what changed from one snapshot to another.
type Diff struct {
	From    string       `json:"from"`
	To      string       `json:"to"`
	Sources []SourceDiff `json:"sources"`
	Summary Summary      `json:"summary"`
}

// SourceDiff is what changed in one source. A source only one snapshot
// holds is all added or all removed.
type SourceDiff struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
	// Status is "added" or "removed" for a source only one snapshot
	// holds, "" otherwise.
	Status  string   `json:"status,omitempty"`
	Added   []Entry  `json:"added"`
	Removed []Entry  `json:"removed"`
	Changed []Change `json:"changed"`
	// Fingerprints that differ, by database part ("/" for a database
	// source, "/metadb" for a part of a composite source).
	Fingerprints []FingerprintDiff `json:"fingerprints"`
	Summary      Summary           `json:"summary"`
}

// Change is an entry both snapshots hold, in another version.
type Change struct {
	Path string `json:"path"`
	// What changed: "type", "content", "size", "mode", "mtime", "owner",
	// "link".
	What []string `json:"what"`
	Old  Entry    `json:"old"`
	New  Entry    `json:"new"`
}

// FingerprintDiff is a fingerprint (a table's row count, a check's
// result) that differs.
type FingerprintDiff struct {
	Part string `json:"part"`
	What string `json:"what"`
	Old  string `json:"old"`
	New  string `json:"new"`
}

// Summary counts entries and bytes.
type Summary struct {
	Added        int   `json:"added"`
	Removed      int   `json:"removed"`
	Changed      int   `json:"changed"`
	AddedBytes   int64 `json:"added_bytes"`
	RemovedBytes int64 `json:"removed_bytes"`
	// SizeDelta is the change of the total size of the files: added
	// minus removed, plus the changed files' growth.
	SizeDelta int64 `json:"size_delta"`
	// Fingerprints counts the fingerprints that differ.
	Fingerprints int `json:"fingerprints"`
}

func (s *Summary) add(o Summary) {
	s.Added += o.Added
	s.Removed += o.Removed
	s.Changed += o.Changed
	s.AddedBytes += o.AddedBytes
	s.RemovedBytes += o.RemovedBytes
	s.SizeDelta += o.SizeDelta
	s.Fingerprints += o.Fingerprints
}

// Empty reports whether nothing changed.
func (s Summary) Empty() bool {
	return s.Added+s.Removed+s.Changed+s.Fingerprints == 0
}

// Compare returns what changed from catalog a to catalog b. With source
// set it compares only that source, which one of them must hold.
func Compare(a, b *repo.Catalog, source string) (*Diff, error) {
	d := &Diff{From: a.Snapshot, To: b.Snapshot, Sources: []SourceDiff{}}
	if source != "" {
		_, inA := a.Source(source)
		_, inB := b.Source(source)
		if !inA && !inB {
			return nil, fmt.Errorf("%w %q in snapshot %s (it has: %s) or %s (it has: %s)", ErrNoSource, source,
				repo.ShortID(a.Snapshot), sourceNames(a), repo.ShortID(b.Snapshot), sourceNames(b))
		}
	}
	// Sources in a's order, then those only b holds.
	var names []string
	seen := map[string]bool{}
	for _, c := range []*repo.Catalog{a, b} {
		for _, s := range c.Sources {
			if !seen[s.Name] && (source == "" || s.Name == source) {
				seen[s.Name] = true
				names = append(names, s.Name)
			}
		}
	}
	for _, name := range names {
		sa, _ := a.Source(name)
		sb, _ := b.Source(name)
		sd := compareSource(name, sa, sb)
		d.Summary.add(sd.Summary)
		d.Sources = append(d.Sources, sd)
	}
	return d, nil
}

func compareSource(name string, a, b *repo.SourceCatalog) SourceDiff {
	sd := SourceDiff{Name: name, Added: []Entry{}, Removed: []Entry{}, Changed: []Change{}, Fingerprints: []FingerprintDiff{}}
	empty := &repo.SourceCatalog{}
	switch {
	case a == nil:
		sd.Kind, sd.Status, a = b.Kind, "added", empty
	case b == nil:
		sd.Kind, sd.Status, b = a.Kind, "removed", empty
	default:
		sd.Kind = b.Kind
	}
	old := make(map[string]*repo.Entry, len(a.Entries))
	for i := range a.Entries {
		old[a.Entries[i].Path] = &a.Entries[i]
	}
	inB := make(map[string]bool, len(b.Entries))
	for i := range b.Entries {
		e := &b.Entries[i]
		inB[e.Path] = true
		o, ok := old[e.Path]
		if !ok {
			x := newEntry(name, e)
			sd.Added = append(sd.Added, x)
			sd.Summary.Added++
			sd.Summary.AddedBytes += e.Size
			sd.Summary.SizeDelta += e.Size
			continue
		}
		if what := changes(o, e); len(what) > 0 {
			sd.Changed = append(sd.Changed, Change{Path: slashPath(e.Path), What: what, Old: newEntry(name, o), New: newEntry(name, e)})
			sd.Summary.Changed++
			sd.Summary.SizeDelta += e.Size - o.Size
		}
	}
	for i := range a.Entries {
		e := &a.Entries[i]
		if !inB[e.Path] {
			sd.Removed = append(sd.Removed, newEntry(name, e))
			sd.Summary.Removed++
			sd.Summary.RemovedBytes += e.Size
			sd.Summary.SizeDelta -= e.Size
		}
	}
	fa, fb := fingerprintsByPart(a), fingerprintsByPart(b)
	var parts []string
	for p := range fa {
		if _, ok := fb[p]; ok {
			parts = append(parts, p)
		}
	}
	sort.Strings(parts)
	for _, p := range parts {
		for _, x := range fingerprint.Compare(*fa[p], *fb[p]) {
			sd.Fingerprints = append(sd.Fingerprints, FingerprintDiff{Part: slashPath(p), What: x.What, Old: x.Want, New: x.Got})
		}
		// Compare reports checks the restored side lacks, not those only
		// it has.
		for c, rows := range fb[p].Checks {
			if _, ok := fa[p].Checks[c]; !ok {
				sd.Fingerprints = append(sd.Fingerprints, FingerprintDiff{Part: slashPath(p), What: "check " + c, Old: "missing", New: strings.Join(rows, "; ")})
			}
		}
	}
	sd.Summary.Fingerprints = len(sd.Fingerprints)
	return sd
}

// changes lists what differs between two versions of an entry. A folder's
// time changes whenever something in it does, so for folders only type,
// mode and owner count.
func changes(a, b *repo.Entry) []string {
	var what []string
	if a.Type != b.Type {
		return []string{"type"}
	}
	if a.SHA256 != b.SHA256 {
		what = append(what, "content")
	}
	if a.Size != b.Size {
		what = append(what, "size")
	}
	if a.Link != b.Link {
		what = append(what, "link")
	}
	if a.Mode != b.Mode {
		what = append(what, "mode")
	}
	if a.UID != b.UID || a.GID != b.GID || a.User != b.User || a.Group != b.Group {
		what = append(what, "owner")
	}
	if a.Type != "dir" && !a.ModTime.Equal(b.ModTime) {
		what = append(what, "mtime")
	}
	return what
}

// sortedEntries returns m's entries sorted by path.
func sortedEntries(m map[string]Entry) []Entry {
	out := make([]Entry, 0, len(m))
	for _, e := range m {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

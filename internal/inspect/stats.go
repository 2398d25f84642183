package inspect

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/storage"
)

// Stats sum up a repository.
type Stats struct {
	// Objects counts the stored objects by type (the first element of
	// their names: data, index, catalogs, snapshots, ...), sorted by
	// type.
	Objects []ObjectCount `json:"objects"`
	// StoredBytes is the size of every object; PackBytes that of the
	// packs (data/), what file contents and catalogs take.
	StoredBytes int64 `json:"stored_bytes"`
	PackBytes   int64 `json:"pack_bytes"`
	// Snapshots is the number of snapshots (manifests that verify).
	Snapshots int `json:"snapshots"`
	// With the identity: LogicalBytes is the sum of every snapshot's
	// size (the files' sizes, what restoring them all would write);
	// DedupRatio is LogicalBytes / PackBytes.
	LogicalBytes *int64   `json:"logical_bytes,omitempty"`
	DedupRatio   *float64 `json:"dedup_ratio,omitempty"`
	// Growth is, per snapshot in time order, each source's size and the
	// bytes it added to the repository.
	Growth []SnapshotGrowth `json:"growth"`
}

// ObjectCount is the number and total size of one type of object.
type ObjectCount struct {
	Type  string `json:"type"`
	Count int    `json:"count"`
	Bytes int64  `json:"bytes"`
}

// SnapshotGrowth is one snapshot's sources.
type SnapshotGrowth struct {
	Snapshot string         `json:"snapshot"`
	Time     time.Time      `json:"time"`
	Sources  []SourceGrowth `json:"sources"`
}

// SourceGrowth is one source of a snapshot: its files and size, and the
// stored (compressed) bytes of the chunks no earlier snapshot, and no
// source before it in this one, referenced.
type SourceGrowth struct {
	Name     string `json:"name"`
	Kind     string `json:"kind"`
	Files    int    `json:"files"`
	Size     int64  `json:"size"`
	NewBytes int64  `json:"new_bytes"`
}

// Collect sums up the repository: a listing of its objects and, with the
// identity, the catalogs of the snapshots ms (sorted by time). It reads
// no pack but the catalogs' own. Catalogs that cannot be read are skipped
// and reported in warnings.
func Collect(ctx context.Context, r *repo.Repository, ms []*repo.Manifest) (*Stats, []string, error) {
	st := &Stats{Objects: []ObjectCount{}, Growth: []SnapshotGrowth{}, Snapshots: len(ms)}
	by := map[string]*ObjectCount{}
	err := r.Store.List(ctx, "", func(oi storage.ObjectInfo) error {
		typ, _, _ := strings.Cut(oi.Name, "/")
		oc := by[typ]
		if oc == nil {
			oc = &ObjectCount{Type: typ}
			by[typ] = oc
		}
		oc.Count++
		oc.Bytes += oi.Size
		st.StoredBytes += oi.Size
		if oi.Name != typ && typ+"/" == repo.DataPrefix {
			st.PackBytes += oi.Size
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list %s: %w", r.Store.Location(), err)
	}
	for _, oc := range by {
		st.Objects = append(st.Objects, *oc)
	}
	sort.Slice(st.Objects, func(i, j int) bool { return st.Objects[i].Type < st.Objects[j].Type })
	if !r.HasIdentity() {
		return st, nil, nil
	}
	var warnings []string
	seen := map[repo.ChunkID]bool{}
	var logical int64
	for _, m := range ms {
		g, size, err := growth(ctx, r, m, seen)
		if err != nil {
			var ie *repo.IntegrityError
			if errors.As(err, &ie) {
				warnings = append(warnings, fmt.Sprintf("snapshot %s left out: %v", repo.ShortID(m.ID), err))
				continue
			}
			return nil, warnings, err
		}
		logical += size
		st.Growth = append(st.Growth, g)
	}
	st.LogicalBytes = &logical
	if st.PackBytes > 0 {
		ratio := float64(logical) / float64(st.PackBytes)
		st.DedupRatio = &ratio
	}
	return st, warnings, nil
}

// growth reads m's catalog as a stream (its entries are never held) and
// counts each source's files, their size, and the stored bytes of the
// chunks not in seen, which it adds to seen. A snapshot that fails a check
// adds nothing to seen.
func growth(ctx context.Context, r *repo.Repository, m *repo.Manifest, seen map[repo.ChunkID]bool) (SnapshotGrowth, int64, error) {
	g := SnapshotGrowth{Snapshot: m.ID, Time: m.Time, Sources: []SourceGrowth{}}
	cs, err := r.OpenCatalog(ctx, m)
	if err != nil {
		return g, 0, err
	}
	defer cs.Close()
	added := map[repo.ChunkID]bool{}
	var logical int64
	for {
		h, err := cs.NextSource()
		if err == io.EOF {
			break
		}
		if err != nil {
			return g, 0, err
		}
		sg := SourceGrowth{Name: h.Name, Kind: h.Kind}
		for {
			var e repo.Entry
			if err := cs.NextEntry(&e); err == io.EOF {
				break
			} else if err != nil {
				return g, 0, err
			}
			if e.Type != "file" {
				continue
			}
			sg.Files++
			sg.Size += e.Size
			for _, ch := range e.Chunks {
				if !seen[ch.ID] && !added[ch.ID] {
					added[ch.ID] = true
					sg.NewBytes += ch.Length
				}
			}
		}
		logical += sg.Size
		g.Sources = append(g.Sources, sg)
	}
	for id := range added {
		seen[id] = true
	}
	return g, logical, nil
}

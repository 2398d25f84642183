package retention

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/storage"
)

// DefaultGrace is how old an unreferenced object must be before Prune
// removes it, on top of the running markers of backups (see PruneOptions).
const DefaultGrace = time.Hour

// PruneOptions tune Prune.
type PruneOptions struct {
	// DryRun reports what would be removed and removes nothing.
	DryRun bool
	// Grace: an unreferenced object written less than Grace ago, and a
	// forgotten snapshot whose tombstone is younger, are kept (a backup
	// that could not announce itself may still use them). Negative means
	// 0; zero means DefaultGrace unless GraceSet.
	Grace    time.Duration
	GraceSet bool
	// Skew is the clock difference tolerated between hosts and the store;
	// zero means repo.MaxClockSkew.
	Skew time.Duration
	// Now is prune's clock; zero means time.Now.
	Now time.Time
	// Progress, if set, is called before each deletion.
	Progress func(name string)
	// Repack copies the chunks in use of partly used packs into new packs
	// and writes a signed repack record (doc/design.md, section 6.3); a
	// later prune deletes the old packs. It needs an identity (to read the
	// catalogs and the packs) and the host signing key r was opened with.
	// With an identity but without Repack (or in a dry run), Prune reports
	// the candidates only.
	Repack bool
	// RepackThreshold is the share of a pack's bytes that must be unused
	// for it to be repacked; zero means DefaultRepackThreshold.
	RepackThreshold float64
}

// Kind counts objects of one kind.
type Kind struct {
	Objects int   `json:"objects"`
	Bytes   int64 `json:"bytes"`
}

func (k *Kind) add(size int64) { k.Objects++; k.Bytes += size }

// Locked is an object prune would remove but that S3 Object Lock retains.
type Locked struct {
	Name  string    `json:"name"`
	Size  int64     `json:"size"`
	Until time.Time `json:"until"`
}

// PruneResult is what Prune found and did.
type PruneResult struct {
	DryRun bool `json:"dry_run"`
	// Cutoff: unreferenced objects written after it were kept.
	Cutoff time.Time `json:"cutoff"`
	// Running is the number of backups running (live markers).
	Running int `json:"running"`
	// Before and After are the bytes of every object under data/, index/,
	// catalogs/, private/ and snapshots/ (the rest is a few KiB of
	// configs, keys, tombstones and markers).
	Before int64 `json:"bytes_before"`
	After  int64 `json:"bytes_after"`
	// Live is what the kept snapshots reference, plus their manifests;
	// PendingData what only forgotten snapshots that are still held or
	// were forgotten after the cutoff reference (kept for now).
	Live        Kind `json:"live"`
	PendingData Kind `json:"pending_data"`
	// Removed is what was removed (or would be, in a dry run), by prefix
	// ("data", "index", "catalogs", "private", "snapshots", "holds",
	// "running").
	Removed map[string]*Kind `json:"removed"`
	// Young is unreferenced objects kept because they are younger than
	// Cutoff (a backup running now, or within the grace period).
	Young Kind `json:"young"`
	// Locked are objects kept because Object Lock retains them; they free
	// up at FreesAt, the latest of their retention ends.
	Locked  []Locked  `json:"locked,omitempty"`
	FreesAt time.Time `json:"frees_at,omitzero"`
	// Forgotten are the forgotten snapshots whose manifests were removed;
	// Pending those kept for now (tombstone younger than the cutoff, or
	// held).
	Forgotten []string `json:"forgotten"`
	Pending   []string `json:"pending"`
	// StaleUploads is the number of incomplete multipart uploads (on a
	// local disk: temporary files) of killed writes removed.
	StaleUploads int `json:"stale_uploads"`
	// Warnings are what prune noticed and left alone: release records of
	// holds that release nothing (a forged one, say).
	Warnings []string `json:"warnings,omitempty"`
	// Repack is what repacking found and did.
	Repack RepackResult `json:"repack"`
}

// holdWarnings words the release records that st ignored, sorted.
func holdWarnings(st repo.HoldState) []string {
	var out []string
	for name, why := range st.Ignored {
		out = append(out, name+": "+why)
	}
	sort.Strings(out)
	return out
}

// Removed bytes in total.
func (r *PruneResult) RemovedBytes() int64 {
	var n int64
	for _, k := range r.Removed {
		n += k.Bytes
	}
	return n
}

// prunable are the prefixes whose unreferenced objects prune removes.
var prunable = []string{repo.DataPrefix, repo.IndexPrefix, repo.CatalogPrefix, repo.PrivatePrefix}

// Prune removes what no snapshot needs: packs, indexes, catalog roots and
// private parts that no kept snapshot references (those of forgotten
// snapshots, and the orphans of killed backups), then the manifests of
// forgotten snapshots, then expired holds and running markers, and the
// incomplete uploads of killed writes. It needs credentials that may
// delete (an error wrapping storage.ErrDeleteDenied otherwise) and no
// identity; with repair records it needs a key that opens the repository
// secrets (the host's signing key), to read the newest record's index.
//
// It is safe against backups running at the same time (doc/design.md,
// section 17): it keeps every unreferenced object written after the
// cutoff, the start of the oldest running backup (its running marker) or
// now minus the grace period, whichever is earlier, less the clock skew;
// and it keeps the data of a snapshot forgotten after the cutoff. It never
// tries to delete an object that Object Lock retains, and reports when
// those free up. It is ordered so that a crash at any point loses nothing
// a kept snapshot needs: every object it deletes is referenced by no kept
// snapshot, data before the forgotten manifests (which their tombstones
// already hide).
func Prune(ctx context.Context, r *repo.Repository, opts PruneOptions) (*PruneResult, error) {
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	grace := opts.Grace
	if grace == 0 && !opts.GraceSet {
		grace = DefaultGrace
	}
	grace = max(grace, 0)
	skew := opts.Skew
	if skew == 0 {
		skew = repo.MaxClockSkew
	}
	res := &PruneResult{DryRun: opts.DryRun, Removed: map[string]*Kind{}, Forgotten: []string{}, Pending: []string{}}

	// 1. Running backups first: whatever they read or write after this
	// listing is newer than the cutoff.
	markers, err := r.Running(ctx)
	if err != nil {
		return nil, err
	}
	liveRuns := repo.LiveRuns(markers, now)
	cutoff := now.Add(-grace)
	if oldest, ok := repo.OldestRunning(markers, now); ok && oldest.Before(cutoff) {
		cutoff = oldest
	}
	res.Running = len(liveRuns)
	cutoff = cutoff.Add(-skew)
	res.Cutoff = cutoff.UTC()
	held, err := r.Held(ctx, now)
	if err != nil {
		return nil, err
	}

	// 2. What the kept snapshots reference.
	ids, _, err := r.ListAllSnapshots(ctx)
	if err != nil {
		return nil, err
	}
	forgotten, _, err := r.Forgotten(ctx)
	if err != nil {
		return nil, err
	}
	live := map[string]bool{}
	pending := map[string]bool{}
	var kept []keptSnapshot
	var dropManifests []string
	var bad []error
	for _, id := range ids {
		if t := forgotten[id]; t != nil {
			if _, isHeld := held[id]; !isHeld && !t.Since().After(cutoff) {
				dropManifests = append(dropManifests, id)
				continue
			}
			res.Pending = append(res.Pending, id)
		}
		m, err := r.ReadManifest(ctx, id)
		if err != nil {
			var ie *repo.IntegrityError
			if errors.As(err, &ie) {
				bad = append(bad, err)
				continue
			}
			return nil, err
		}
		kept = append(kept, keptSnapshot{m: m, forgotten: forgotten[id] != nil})
		set := live
		if forgotten[id] != nil {
			set = pending
		}
		set[repo.SnapshotName(id)] = true
		for _, ref := range m.Objects() {
			set[ref.Name] = true
		}
	}
	if len(bad) > 0 {
		return nil, &DamagedError{Errs: bad}
	}
	if err := repairsLive(ctx, r, live); err != nil {
		return nil, err
	}
	cands, err := repacksLive(ctx, r, kept, live, pending, cutoff, opts, res)
	if err != nil {
		return nil, err
	}

	// 3. What the store holds.
	type object struct {
		storage.ObjectInfo
		prefix string
	}
	var remove []object
	dropSet := map[string]bool{}
	for _, id := range dropManifests {
		dropSet[repo.SnapshotName(id)] = true
	}
	for _, prefix := range append(append([]string{}, prunable...), repo.SnapshotsPrefix) {
		err := r.Store.List(ctx, prefix, func(oi storage.ObjectInfo) error {
			res.Before += oi.Size
			switch {
			case live[oi.Name]:
				res.Live.add(oi.Size)
			case pending[oi.Name]:
				res.PendingData.add(oi.Size)
			case prefix == repo.SnapshotsPrefix:
				if dropSet[oi.Name] {
					remove = append(remove, object{oi, prefix})
				} // else: junk or a manifest listed after step 2: not prune's
			case oi.ModTime.After(cutoff):
				res.Young.add(oi.Size)
			default:
				remove = append(remove, object{oi, prefix})
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", strings.TrimSuffix(prefix, "/"), err)
		}
	}
	hs, err := r.Holds(ctx)
	if err != nil {
		return nil, err
	}
	holds := repo.Holding(hs, now, skew)
	for _, name := range holds.Done {
		remove = append(remove, object{storage.ObjectInfo{Name: name}, repo.HoldsPrefix})
	}
	res.Warnings = append(res.Warnings, holdWarnings(holds)...)
	// A live run's markers stay, its first one included: its write time
	// is the run's start on the store's clock.
	for name, m := range markers {
		if _, running := liveRuns[m.Run]; !running {
			remove = append(remove, object{storage.ObjectInfo{Name: name}, repo.RunningPrefix})
		}
	}
	// Data first, then the forgotten manifests (hidden by their
	// tombstones already), then the markers.
	order := map[string]int{repo.DataPrefix: 0, repo.IndexPrefix: 1, repo.CatalogPrefix: 2, repo.PrivatePrefix: 3,
		repo.SnapshotsPrefix: 4, repo.HoldsPrefix: 5, repo.RunningPrefix: 6}
	sort.SliceStable(remove, func(i, j int) bool { return order[remove[i].prefix] < order[remove[j].prefix] })

	// 4. Remove.
	res.After = res.Before
	for _, o := range remove {
		kind := strings.TrimSuffix(o.prefix, "/")
		if opts.DryRun {
			count(res, kind, o.ObjectInfo)
			continue
		}
		if opts.Progress != nil {
			opts.Progress(o.Name)
		}
		until, err := storage.Purge(ctx, r.Store, o.Name)
		if err != nil {
			return res, fmt.Errorf("prune: %w", err)
		}
		if !until.IsZero() {
			res.Locked = append(res.Locked, Locked{Name: o.Name, Size: o.Size, Until: until.UTC()})
			if res.Repack.replaced[o.Name] {
				res.Repack.Replaced.Objects--
				res.Repack.Replaced.Bytes -= o.Size
			}
			if until.After(res.FreesAt) {
				res.FreesAt = until.UTC()
			}
			continue
		}
		count(res, kind, o.ObjectInfo)
	}
	for _, o := range remove {
		if o.prefix == repo.SnapshotsPrefix && !lockedName(res.Locked, o.Name) {
			res.Forgotten = append(res.Forgotten, strings.TrimPrefix(o.Name, repo.SnapshotsPrefix))
		}
	}
	if !opts.DryRun {
		// Against the real clock: the store's cleaner compares with it.
		n, err := storage.CleanStale(ctx, r.Store, max(time.Since(cutoff), 0))
		if err != nil {
			return res, fmt.Errorf("prune: remove incomplete uploads: %w", err)
		}
		res.StaleUploads = n
	}
	if len(cands.packs) > 0 {
		if err := writeRepack(ctx, r, cands.packs, cands.u, kept, &res.Repack); err != nil {
			return res, fmt.Errorf("prune: %w", err)
		}
	}
	return res, nil
}

// repackPlan is the packs to repack, with the chunks in use.
type repackPlan struct {
	packs []repo.PackRef
	u     usage
}

// repacksLive applies the repack records: their indexes are live, and so
// are their new packs while a kept snapshot may read from them; an old
// pack that a record replaces is dropped from live (and pending) once the
// record has taken over (replacedDone). It then finds the packs worth
// repacking when r has an identity, and returns them unless res says why
// they are not repacked now.
func repacksLive(ctx context.Context, r *repo.Repository, kept []keptSnapshot, live, pending map[string]bool, cutoff time.Time,
	opts PruneOptions, res *PruneResult) (plan repackPlan, err error) {
	rks, bad, err := r.Repacks(ctx)
	if err != nil {
		return plan, err
	}
	if len(bad) > 0 {
		return plan, &RepackRecordError{Errs: bad}
	}
	present, err := listPacks(ctx, r)
	if err != nil {
		return plan, err
	}
	var u usage
	if r.HasIdentity() {
		if u, err = chunkUsage(ctx, r, kept, present); err != nil {
			var ie *repo.IntegrityError
			if !errors.As(err, &ie) {
				return plan, err
			}
			res.Repack.Skipped = fmt.Sprintf("a catalog does not read (%v): run coffer verify", err)
			u = nil
		}
	} else {
		res.Repack.Skipped = "finding partly used packs reads the catalogs: pass --identity"
	}
	isForgotten := map[string]bool{}
	for _, k := range kept {
		isForgotten[k.m.ID] = k.forgotten
	}
	users := packUsers(kept, rks)
	for _, rk := range rks {
		live[rk.Index.Name] = true
		for _, p := range rk.Packs {
			for id := range users[p.Name()] {
				if isForgotten[id] {
					pending[p.Name()] = true
				} else {
					live[p.Name()] = true
				}
			}
		}
	}
	done := map[string]bool{}
	for _, rk := range rks {
		for _, p := range rk.Replaces {
			name := p.Name()
			if done[p.SHA256] {
				continue
			}
			if _, ok := present[p.SHA256]; !ok {
				continue
			}
			ok, err := replacedDone(ctx, r, name, p.SHA256, users[name], present, u, cutoff)
			if err != nil {
				return plan, err
			}
			if !ok {
				if len(users[name]) > 0 {
					res.Repack.Waiting.add(present[p.SHA256])
				}
				continue
			}
			done[p.SHA256] = true
			delete(live, name)
			delete(pending, name)
			res.Repack.Replaced.add(present[p.SHA256])
			if res.Repack.replaced == nil {
				res.Repack.replaced = map[string]bool{}
			}
			res.Repack.replaced[name] = true
		}
	}
	if u == nil {
		return plan, nil
	}
	threshold := opts.RepackThreshold
	if threshold <= 0 {
		threshold = DefaultRepackThreshold
	}
	// A pack a record replaced is left alone while that record may still
	// take over (it waits for the cutoff), unless a snapshot made meanwhile
	// uses it: then it is repacked again.
	skip := map[string]bool{}
	for sum := range done {
		skip[sum] = true
	}
	for _, rk := range rks {
		counted := map[string]bool{}
		for _, id := range rk.Snapshots {
			counted[id] = true
		}
		for _, p := range rk.Replaces {
			all := true
			for id := range users[p.Name()] {
				all = all && counted[id]
			}
			if all {
				skip[p.SHA256] = true
			}
		}
	}
	cands := repackCandidates(u, present, skip, threshold)
	for _, p := range cands {
		res.Repack.Candidates++
		res.Repack.CandidateBytes += p.Size
		res.Repack.UnusedBytes += p.Size - packUsed(u[p.SHA256])
	}
	switch {
	case len(cands) == 0:
	case opts.DryRun:
		res.Repack.Skipped = "dry run"
	case !opts.Repack:
		res.Repack.Skipped = "repacking is off"
	case r.Host() == nil:
		res.Repack.Skipped = "repacking signs a repack record: pass --signing-key"
	default:
		plan = repackPlan{packs: cands, u: u}
	}
	return plan, nil
}

func count(res *PruneResult, kind string, oi storage.ObjectInfo) {
	k := res.Removed[kind]
	if k == nil {
		k = &Kind{}
		res.Removed[kind] = k
	}
	k.add(oi.Size)
	switch kind {
	case "holds", "running":
	default:
		res.After -= oi.Size
	}
}

func lockedName(ls []Locked, name string) bool {
	for _, l := range ls {
		if l.Name == name {
			return true
		}
	}
	return false
}

// repairsLive marks what repair records keep: every record's index, and
// the packs of the newest record's index (backups deduplicate against
// them, section 6.1 of doc/design.md).
func repairsLive(ctx context.Context, r *repo.Repository, live map[string]bool) error {
	rs, bad, err := r.Repairs(ctx)
	if err != nil {
		return err
	}
	if len(bad) > 0 {
		return &DamagedError{Errs: bad}
	}
	if len(rs) == 0 {
		return nil
	}
	for _, rp := range rs {
		live[rp.Index.Name] = true
	}
	packs, err := r.IndexPacks(ctx, rs[len(rs)-1].Index)
	if err != nil {
		return fmt.Errorf("read the newest repair record's index: %w", err)
	}
	for _, p := range packs {
		live[repo.PackName(p)] = true
	}
	return nil
}

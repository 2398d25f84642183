package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/cofferhq/coffer/internal/progress"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/storage"
)

// Depth says how deeply Verify checks.
type Depth int

const (
	// Quick checks manifest signatures and the presence and size of every
	// referenced object.
	Quick Depth = iota
	// Read also reads every object and checks its ciphertext hash. It
	// needs no key but the signing public key.
	Read
	// Decrypt also decrypts every catalog and chunk and checks chunk ids
	// and per-file plaintext hashes. It needs the identity.
	Decrypt
)

// Problem is one integrity failure: the object and the snapshots it
// breaks. Kind is empty for a damaged or missing object, else one of the
// Problem kinds below.
type Problem struct {
	Object    string   `json:"object"`
	Error     string   `json:"error"`
	Kind      string   `json:"kind,omitempty"`
	Snapshots []string `json:"snapshots,omitempty"`
}

// Problem kinds that are not damage: the repository's history was changed.
const (
	// KindDeleted: a manifest names as seen a snapshot that does not exist.
	KindDeleted = "deleted"
	// KindFuture: a manifest is dated beyond repo.MaxClockSkew.
	KindFuture = "future"
	// KindUnpublished: no snapshot exists, yet catalog roots, indexes or
	// private parts do.
	KindUnpublished = "unpublished"
	// KindConfig: a config object was passed over (not signed by the
	// owner key, or out of the chain), or the config was rolled back.
	KindConfig = "config"
	// KindVanished: a newest snapshot this client saw before is gone.
	KindVanished = "vanished"
)

// Warning is something verify noticed that does not make a snapshot
// unrestorable, such as an object no snapshot references.
type Warning struct {
	Object  string `json:"object"`
	Message string `json:"message"`
}

// Report of a verify run.
type Report struct {
	Depth     string    `json:"depth"`
	Snapshots int       `json:"snapshots"`
	Objects   int       `json:"objects"`
	Bytes     int64     `json:"bytes"`
	Files     int       `json:"files,omitempty"`
	Problems  []Problem `json:"problems"`
	Warnings  []Warning `json:"warnings,omitempty"`
	// Overwritten names the objects of the repository that someone
	// overwrote or deleted in a versioned bucket (object lock) after coffer
	// wrote them: the bucket kept the originals, which are what coffer
	// reads and checked. Not a problem of the snapshots, but a sign that
	// the bucket's write credentials are in other hands.
	Overwritten []string `json:"overwritten,omitempty"`
}

// OK reports whether no problem was found.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// Verify checks the given snapshots (all when ids is empty) at depth.
// Integrity failures are collected in the report; an error is returned only
// when verification itself could not run (storage unreachable, no key).
//
// Besides the objects the snapshots reference, it reports as problems the
// snapshots that a manifest names as seen but that were deleted, and
// manifests dated more than repo.MaxClockSkew in the future. When checking
// every snapshot it also lists catalog roots, indexes, private parts and
// packs that no manifest references: warnings, because a killed backup
// leaves them legitimately, except when no snapshot exists at all while
// catalog roots, indexes or private parts do (every manifest deleted): that
// is a problem. With an identity (and at least read depth) it also
// decrypts and checks every snapshot's private part.
func Verify(ctx context.Context, r *repo.Repository, ids []string, depth Depth) (*Report, error) {
	return VerifyProgress(ctx, r, ids, depth, nil)
}

// Parts of a verify's progress (VerifyProgress): the objects the
// snapshots reference (their bytes and number), then, at Decrypt depth,
// the files of each snapshot (ContentsPart).
const ObjectsPart = "objects"

// ContentsPart names the progress part of a snapshot's contents.
func ContentsPart(id string) string { return "contents " + repo.ShortID(id) }

// VerifyProgress is Verify that tells prog (if not nil) how it moves:
// ObjectsPart, then ContentsPart of each snapshot at Decrypt depth.
func VerifyProgress(ctx context.Context, r *repo.Repository, ids []string, depth Depth, prog progress.Reporter) (*Report, error) {
	prog = progress.Or(prog)
	if depth == Decrypt && !r.HasIdentity() {
		return nil, repo.ErrNoIdentity
	}
	rep := &Report{Depth: [...]string{"quick", "read", "decrypt"}[depth]}
	listed, err := r.SnapshotIDs(ctx)
	if err != nil {
		return nil, err
	}
	var ms []*repo.Manifest
	if len(ids) == 0 {
		all, bad, err := r.Manifests(ctx)
		if err != nil {
			return nil, err
		}
		ms = all
		for _, err := range bad {
			rep.add(err, nil)
		}
		_, junk, err := r.ListSnapshots(ctx)
		if err != nil {
			return nil, err
		}
		for _, name := range junk {
			rep.add(&repo.IntegrityError{Object: name, Err: errors.New("not a snapshot: its name is not a snapshot id (ignored by every other command)")}, nil)
		}
	} else {
		for _, id := range ids {
			m, err := Resolve(ctx, r, id, time.Time{})
			if err != nil {
				var ie *repo.IntegrityError
				if errors.As(err, &ie) {
					rep.add(err, nil)
					continue
				}
				return nil, err
			}
			ms = append(ms, m)
		}
	}
	rep.Snapshots = len(ms)
	present, err := presentIDs(ctx, r, listed)
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		// A tombstone that does not verify hides nothing: the snapshot
		// it names counts as deleted, and the tombstone is a problem.
		_, bad, err := r.Forgotten(ctx)
		if err != nil {
			return nil, err
		}
		for _, err := range bad {
			rep.add(err, nil)
		}
	}
	for _, d := range Deletions(ms, present) {
		rep.Problems = append(rep.Problems, Problem{Object: repo.SnapshotName(d.ID), Error: d.String(), Kind: KindDeleted})
	}
	now := time.Now()
	for _, m := range ms {
		if m.InFuture(now) {
			rep.Problems = append(rep.Problems, Problem{Object: repo.SnapshotName(m.ID), Error: futureMessage(m) + ": latest skips it",
				Kind: KindFuture, Snapshots: []string{repo.ShortID(m.ID)}})
		}
	}
	// Repack records say where the chunks of the packs they replace went:
	// check their signatures, and their indexes and new packs like the
	// rest.
	repacks, badRepacks, err := r.Repacks(ctx)
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		for _, err := range badRepacks {
			rep.add(err, nil)
		}
	}
	// Repair records steer what backups deduplicate against: check their
	// signatures, and the indexes they name like the rest (they are no
	// orphans).
	var repairs []*repo.Repair
	if len(ids) == 0 {
		var bad []error
		if repairs, bad, err = r.Repairs(ctx); err != nil {
			return nil, err
		}
		for _, err := range bad {
			rep.add(err, nil)
		}
		if err := unreferenced(ctx, r, ms, repairs, repacks, len(listed) == 0, rep); err != nil {
			return nil, err
		}
		// Holds are not signed: a release record without its holder's
		// token (a forged one) releases nothing, and is worth a look.
		hs, err := r.Holds(ctx)
		if err != nil {
			return nil, err
		}
		ignored := repo.Holding(hs, now, repo.MaxClockSkew).Ignored
		for _, name := range slices.Sorted(maps.Keys(ignored)) {
			rep.Warnings = append(rep.Warnings, Warning{Object: name, Message: "release record ignored: " + ignored[name]})
		}
	}
	// Drill summaries are evidence: check their signatures, and their
	// reports like the rest.
	var drills []*repo.DrillRecord
	if len(ids) == 0 {
		var bad []error
		if drills, bad, err = r.Drills(ctx); err != nil {
			return nil, err
		}
		for _, err := range bad {
			rep.add(err, nil)
		}
	}

	// Every object once, remembering which snapshots use it.
	users := map[string][]string{}
	refs := map[string]repo.ObjectRef{}
	for _, m := range ms {
		for _, ref := range m.Objects() {
			users[ref.Name] = append(users[ref.Name], m.ID)
			refs[ref.Name] = ref
		}
	}
	if len(ms) > 0 {
		// The secrets object serves every snapshot: without it an
		// identity holder cannot check chunk ids.
		// The data keys serve every snapshot too: through them a
		// recipient added later reads what was stored before it.
		for _, sec := range []repo.ObjectRef{r.Config.Secrets, r.Config.DataKeys} {
			refs[sec.Name] = sec
			for _, m := range ms {
				users[sec.Name] = append(users[sec.Name], m.ID)
			}
		}
	}
	for _, rp := range repairs {
		refs[rp.Index.Name] = rp.Index
	}
	// A repack record's index and new packs serve the snapshots that use
	// the packs it replaces (through earlier records too). Its index is
	// always kept; its new packs only while a snapshot may read from them
	// (prune removes them after the last one), so only those are checked.
	for _, rk := range repacks {
		refs[rk.Index.Name] = rk.Index
	}
	for changed := true; changed; {
		changed = false
		for _, rk := range repacks {
			var snaps []string
			for _, old := range rk.Replaces {
				snaps = append(snaps, users[old.Name()]...)
			}
			if len(snaps) == 0 {
				continue
			}
			for _, ref := range append([]repo.ObjectRef{rk.Index}, packRefs(rk.Packs)...) {
				refs[ref.Name] = ref
				for _, s := range snaps {
					if !slices.Contains(users[ref.Name], s) {
						users[ref.Name] = append(users[ref.Name], s)
						changed = true
					}
				}
			}
		}
	}
	for _, d := range drills {
		refs[d.Report.Name] = d.Report
	}
	names := make([]string, 0, len(refs))
	for n := range refs {
		names = append(names, n)
	}
	sort.Strings(names)
	broken := map[string]bool{}
	var total progress.Counts
	for _, n := range names {
		total.Bytes += refs[n].Size
		total.Files++
	}
	prog.Start(ObjectsPart, total)
	failed := map[string]error{}
	for _, n := range names {
		ref := refs[n]
		prog.Add(ObjectsPart, progress.Counts{Bytes: ref.Size, Files: 1})
		rep.Objects++
		if err := checkObject(ctx, r, ref, depth >= Read); err != nil {
			var ie *repo.IntegrityError
			if !errors.As(err, &ie) {
				return nil, err
			}
			failed[n] = err
			continue
		}
		rep.Bytes += ref.Size
	}
	prog.Finish(ObjectsPart)
	// A pack that is gone is no damage when a verified repack record
	// replaces it and the record's new packs are there (or are replaced in
	// turn): the chunks are read from those.
	for _, n := range names {
		err := failed[n]
		if err == nil {
			continue
		}
		if ok, err := relocated(ctx, r, refs[n], failed, 0); err != nil {
			return nil, err
		} else if ok {
			continue
		}
		rep.add(err, users[n])
		broken[n] = true
	}
	if depth >= Read && r.HasIdentity() {
		for _, m := range ms {
			if broken[m.Private.Name] {
				continue
			}
			if _, err := r.ReadPrivate(ctx, m); err != nil {
				var ie *repo.IntegrityError
				if !errors.As(err, &ie) {
					return nil, err
				}
				rep.add(err, []string{m.ID})
			}
		}
	}
	if depth >= Decrypt {
		for _, m := range ms {
			if broken[m.Catalog.Name] {
				continue
			}
			if err := verifyContents(ctx, r, m, rep, broken, prog); err != nil {
				return nil, err
			}
		}
	}
	if ow, ok := storage.As[storage.Overwrites](r.Store); ok {
		names, err := ow.Overwritten(ctx, "")
		if err != nil {
			return nil, err
		}
		rep.Overwritten = names
	}
	return rep, nil
}

// unreferenced lists the catalog roots, indexes, private parts and packs
// that no manifest of ms (and, for indexes, no repair record) references. Each is a warning (a killed backup
// leaves packs, an index, a catalog root or a private part behind), except
// when the repository lists no snapshot at all (none) while catalog roots,
// indexes or private parts exist: then every manifest was deleted, or every
// backup so far was killed between writing those and its manifest, and
// that is one problem. Orphaned packs alone (a first backup killed while
// uploading) stay a warning.
func unreferenced(ctx context.Context, r *repo.Repository, ms []*repo.Manifest, repairs []*repo.Repair, repacks []*repo.Repack, none bool, rep *Report) error {
	used := map[string]bool{}
	for _, rp := range repairs {
		used[rp.Index.Name] = true
	}
	for _, rk := range repacks {
		used[rk.Index.Name] = true
		for _, p := range rk.Packs {
			used[p.Name()] = true
		}
	}
	for _, m := range ms {
		for _, ref := range m.Objects() {
			used[ref.Name] = true
		}
	}
	// The objects of snapshots forgotten on purpose, whose manifests are
	// still stored, wait for prune: they are not orphans.
	forgotten, _, err := r.Forgotten(ctx)
	if err != nil {
		return err
	}
	for id := range forgotten {
		m, err := r.ReadManifest(ctx, id)
		if err != nil {
			continue // pruned meanwhile, or damaged: its objects count as orphans
		}
		for _, ref := range m.Objects() {
			used[ref.Name] = true
		}
	}
	var orphans []string
	count := map[string]int{}
	for _, prefix := range []string{repo.CatalogPrefix, repo.IndexPrefix, repo.PrivatePrefix} {
		err := r.Store.List(ctx, prefix, func(oi storage.ObjectInfo) error {
			if !used[oi.Name] {
				orphans = append(orphans, oi.Name)
				count[prefix]++
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("list %s: %w", prefix, err)
		}
	}
	var packs, packBytes int64
	err = r.Store.List(ctx, repo.DataPrefix, func(oi storage.ObjectInfo) error {
		if !used[oi.Name] {
			packs++
			packBytes += oi.Size
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list %s: %w", repo.DataPrefix, err)
	}
	sort.Strings(orphans)
	if none && len(orphans) > 0 {
		rep.Problems = append(rep.Problems, Problem{Object: repo.SnapshotsPrefix, Kind: KindUnpublished,
			Error: fmt.Sprintf("no snapshot, but %d catalog roots, %d indexes and %d private parts that no snapshot references: "+
				"the manifests were deleted (or every backup so far was killed before it published)",
				count[repo.CatalogPrefix], count[repo.IndexPrefix], count[repo.PrivatePrefix])})
	} else {
		for _, name := range orphans {
			rep.Warnings = append(rep.Warnings, Warning{Object: name,
				Message: "no snapshot references it (left by a killed backup, or its snapshot's manifest was deleted)"})
		}
	}
	if packs > 0 {
		rep.Warnings = append(rep.Warnings, Warning{Object: repo.DataPrefix,
			Message: fmt.Sprintf("%d packs (%d bytes) that no snapshot references (left by killed backups, or their snapshots' manifests were deleted)", packs, packBytes)})
	}
	return nil
}

func (rep *Report) add(err error, snaps []string) {
	obj := "?"
	var ie *repo.IntegrityError
	if errors.As(err, &ie) {
		obj = ie.Object
		err = ie.Err
	}
	short := make([]string, len(snaps))
	for i, s := range snaps {
		short[i] = repo.ShortID(s)
	}
	for i := range rep.Problems {
		if p := &rep.Problems[i]; p.Object == obj {
			// The same object breaks one more snapshot.
			for _, s := range short {
				if !slices.Contains(p.Snapshots, s) {
					p.Snapshots = append(p.Snapshots, s)
				}
			}
			return
		}
	}
	rep.Problems = append(rep.Problems, Problem{Object: obj, Error: err.Error(), Snapshots: short})
}

func packRefs(ps []repo.PackRef) []repo.ObjectRef {
	out := make([]repo.ObjectRef, len(ps))
	for i, p := range ps {
		out[i] = p.Ref()
	}
	return out
}

// relocated reports whether ref, which failed its check (failed), is a
// pack that is gone (missing, or of another size) and that a verified
// repack record replaces whose new packs all passed their checks or are
// relocated in turn.
func relocated(ctx context.Context, r *repo.Repository, ref repo.ObjectRef, failed map[string]error, depth int) (bool, error) {
	if !strings.HasPrefix(ref.Name, repo.DataPrefix) || depth > 16 {
		return false, nil
	}
	oi, err := r.Store.Stat(ctx, ref.Name)
	switch {
	case errors.Is(err, storage.ErrNotExist):
	case err != nil:
		return false, fmt.Errorf("stat %s: %w", ref.Name, err)
	case oi.Size == ref.Size:
		return false, nil // there, but damaged: no record stands in for it
	}
	recs, err := r.Replaced(ctx, ref.SHA256)
	if err != nil {
		return false, err
	}
next:
	for _, rk := range recs {
		if failed[rk.Index.Name] != nil {
			continue
		}
		for _, p := range rk.Packs {
			if failed[p.Name()] == nil {
				continue
			}
			if ok, err := relocated(ctx, r, p.Ref(), failed, depth+1); err != nil {
				return false, err
			} else if !ok {
				continue next
			}
		}
		return true, nil
	}
	return false, nil
}

func checkObject(ctx context.Context, r *repo.Repository, ref repo.ObjectRef, read bool) error {
	if read {
		_, err := r.ReadObject(ctx, ref)
		return err
	}
	oi, err := r.Store.Stat(ctx, ref.Name)
	if errors.Is(err, storage.ErrNotExist) {
		return &repo.IntegrityError{Object: ref.Name, Err: errors.New("missing")}
	}
	if err != nil {
		return fmt.Errorf("stat %s: %w", ref.Name, err)
	}
	if oi.Size != ref.Size {
		return &repo.IntegrityError{Object: ref.Name, Err: fmt.Errorf("size %d, want %d", oi.Size, ref.Size)}
	}
	return nil
}

// verifyContents decrypts a snapshot's catalog and reads every file back,
// checking every chunk's id and every file's hash.
func verifyContents(ctx context.Context, r *repo.Repository, m *repo.Manifest, rep *Report, broken map[string]bool, prog progress.Reporter) error {
	s, err := Load(ctx, r, m)
	if err != nil {
		var ie *repo.IntegrityError
		if errors.As(err, &ie) {
			rep.add(err, []string{m.ID})
			return nil
		}
		return err
	}
	cr, err := r.NewChunkReader(ctx, m)
	if err != nil {
		return err
	}
	// copyChunks is done with each chunk before it reads the next.
	cr.ReuseBuffers()
	part := ContentsPart(m.ID)
	var total progress.Counts
	for _, sc := range s.Catalog.Sources {
		for _, e := range sc.Entries {
			if e.Type == "file" {
				total.Bytes += e.Size
				total.Files++
			}
		}
	}
	prog.Start(part, total)
	for _, sc := range s.Catalog.Sources {
		// Every source must restore: valid paths, each listed once,
		// parents before children, and the source's hash over the
		// entries' exact bytes. Nothing is written.
		if err := sc.CheckRestorable(); err != nil {
			rep.add(&repo.IntegrityError{Object: m.Catalog.Name, Err: err}, []string{m.ID})
		}
		for i := range sc.Entries {
			e := &sc.Entries[i]
			if e.Type != "file" {
				continue
			}
			rep.Files++
			prog.Add(part, progress.Counts{Bytes: e.Size, Files: 1})
			if err := copyChunks(ctx, s, cr, e, io.Discard, true); err != nil {
				var ie *repo.IntegrityError
				if !errors.As(err, &ie) {
					return err
				}
				if !broken[ie.Object] {
					rep.add(err, []string{m.ID})
				}
			}
		}
	}
	// Finished only when it is: an interrupted check is not shown done.
	prog.Finish(part)
	return nil
}

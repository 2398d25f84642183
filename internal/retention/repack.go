package retention

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/storage"
)

// DefaultRepackThreshold is the share of a pack's bytes that no snapshot
// uses from which prune repacks it. At one half, copying a pack's used
// chunks costs at most as many bytes written as it frees, and a pack is
// rewritten at most once per halving of its use: a repository's data is
// rewritten a bounded number of times however often prune runs, while no
// pack keeps more than half of its bytes dead.
const DefaultRepackThreshold = 0.5

// RepackResult says what repacking found and did.
type RepackResult struct {
	// Candidates are the packs that live snapshots use and whose unused
	// bytes reach the threshold; CandidateBytes their size, and
	// UnusedBytes what deleting them after the repack frees (their size
	// less the chunks copied).
	Candidates     int   `json:"candidates"`
	CandidateBytes int64 `json:"candidate_bytes"`
	UnusedBytes    int64 `json:"unused_bytes"`
	// Record is the repack record written (empty when none was); Chunks
	// the chunks copied; Written the new packs and index.
	Record  string `json:"record,omitempty"`
	Chunks  int    `json:"chunks,omitempty"`
	Written Kind   `json:"written"`
	// Skipped says why prune did not repack the candidates (a dry run,
	// no identity, no signing key), if it did not.
	Skipped string `json:"skipped,omitempty"`
	// Replaced are the old packs that earlier repack records replace and
	// that this prune deleted (counted in Removed too).
	Replaced Kind `json:"replaced"`
	// replaced names them, so that those object lock retains are
	// counted out again.
	replaced map[string]bool
	// Waiting are old packs that a repack record replaces but that stay
	// for now: the record is younger than the cutoff, or a snapshot that
	// uses the pack was made while the repack ran.
	Waiting Kind `json:"waiting"`
}

// RepackRecordError is returned when some repack records do not verify:
// snapshots may read their chunks through them, so prune removes nothing
// until verify has been run and the damage dealt with.
type RepackRecordError struct{ Errs []error }

func (e *RepackRecordError) Error() string {
	return fmt.Sprintf("%d repack record(s) do not verify (first: %v); nothing was removed, since snapshots may read their chunks through them", len(e.Errs), e.Errs[0])
}

// Unwrap returns the first record's error.
func (e *RepackRecordError) Unwrap() error { return e.Errs[0] }

// keptSnapshot is a manifest prune keeps (live, or forgotten but pending).
type keptSnapshot struct {
	m         *repo.Manifest
	forgotten bool
}

// usage is where the chunks that kept snapshots use live now (a pack that
// is present, after following repack records), by pack.
type usage map[string]map[repo.ChunkID]repo.ChunkRef

// packUsers returns, for every pack name, the kept snapshots that may read
// from it: those whose manifests list it, and, through repack records,
// those that list a pack a record replaces, for the record's new packs.
func packUsers(kept []keptSnapshot, rks []*repo.Repack) map[string]map[string]bool {
	users := map[string]map[string]bool{}
	add := func(name, id string) bool {
		if users[name] == nil {
			users[name] = map[string]bool{}
		}
		if users[name][id] {
			return false
		}
		users[name][id] = true
		return true
	}
	for _, k := range kept {
		for _, p := range k.m.Packs {
			add(p.Name(), k.m.ID)
		}
	}
	for changed := true; changed; {
		changed = false
		for _, rk := range rks {
			for _, old := range rk.Replaces {
				for id := range users[old.Name()] {
					for _, p := range rk.Packs {
						if add(p.Name(), id) {
							changed = true
						}
					}
				}
			}
		}
	}
	return users
}

// chunkUsage reads the catalog of every kept snapshot and returns where
// each chunk it uses is now: in the pack the catalog names if that is
// present at the manifest's size, else where repack records moved it.
func chunkUsage(ctx context.Context, r *repo.Repository, kept []keptSnapshot, present map[string]int64) (usage, error) {
	u := usage{}
	for _, k := range kept {
		c, err := r.OpenCatalog(ctx, k.m) // entry by entry: a catalog is never whole in memory
		if err != nil {
			return nil, fmt.Errorf("snapshot %s: %w", repo.ShortID(k.m.ID), err)
		}
		sizes := map[string]int64{}
		for _, p := range k.m.Packs {
			sizes[p.SHA256] = p.Size
		}
		// A chunk is in use in every present pack on its way: the pack
		// the catalog names, and the packs repack records moved it to,
		// which it is read from once the packs before them are deleted
		// (so a record that replaces such a new pack must hold it too).
		add := func(ref repo.ChunkRef) error {
			size := sizes[ref.Pack]
			for range 16 {
				if s, ok := present[ref.Pack]; ok && s == size {
					if u[ref.Pack] == nil {
						u[ref.Pack] = map[repo.ChunkID]repo.ChunkRef{}
					}
					u[ref.Pack][ref.ID] = ref
				}
				loc, ok, err := r.Relocate(ctx, ref.Pack, ref.ID)
				if err != nil {
					return err
				}
				if !ok {
					return nil // not moved (or, from a pack that is gone, lost: verify reports it)
				}
				ref = repo.ChunkRef{ID: ref.ID, Pack: loc.Pack.SHA256, Offset: loc.Chunk.Offset, Length: loc.Chunk.Length,
					Raw: loc.Chunk.Raw, Zstd: loc.Chunk.Zstd}
				size = loc.Pack.Size
			}
			return nil
		}
		for _, ref := range c.RootChunks() {
			if err := add(ref); err != nil {
				return nil, err
			}
		}
		for {
			if _, err := c.NextSource(); err == io.EOF {
				break
			} else if err != nil {
				return nil, fmt.Errorf("snapshot %s: %w", repo.ShortID(k.m.ID), err)
			}
			for {
				var e repo.Entry
				if err := c.NextEntry(&e); err == io.EOF {
					break
				} else if err != nil {
					return nil, fmt.Errorf("snapshot %s: %w", repo.ShortID(k.m.ID), err)
				}
				for _, ref := range e.Chunks {
					if err := add(ref); err != nil {
						return nil, err
					}
				}
			}
		}
		c.Close()
	}
	return u, nil
}

// replacedDone reports whether old pack name can go: a verified repack
// record that replaces it was written before the cutoff (no backup that
// may have deduplicated against the pack's other chunks still runs), its
// new packs are present at their sizes, every kept snapshot that may read
// from the pack is among those the record counted, and (when the chunks
// in use are known) every chunk in use there is in the record's index.
func replacedDone(ctx context.Context, r *repo.Repository, name, sum string, users map[string]bool, present map[string]int64,
	u usage, cutoff time.Time) (bool, error) {
	rks, err := r.Replaced(ctx, sum)
	if err != nil {
		return false, err
	}
next:
	for _, rk := range rks {
		if !rk.Since().Before(cutoff) {
			continue
		}
		for _, p := range rk.Packs {
			if s, ok := present[p.SHA256]; !ok || s != p.Size {
				continue next
			}
		}
		counted := map[string]bool{}
		for _, id := range rk.Snapshots {
			counted[id] = true
		}
		for id := range users {
			if !counted[id] {
				continue next
			}
		}
		if u != nil {
			moved, err := r.RepackChunks(ctx, rk)
			if err != nil {
				return false, err
			}
			for id := range u[sum] {
				if _, ok := moved[id]; !ok {
					continue next
				}
			}
		}
		return true, nil
	}
	return false, nil
}

// packOverhead is what a pack of used plaintext bytes holds besides its
// chunks and their trailer entries, at most: the trailer's length and
// magic, age's 16 bytes a 64 KiB chunk, and an allowance for its header
// (a stanza a recipient, about 140 bytes for X25519, more for others).
func packOverhead(used int64) int64 { return 12 + (used/(64<<10)+1)*16 + 4<<10 }

// packUsed is the size of a pack of chunks, at most.
func packUsed(chunks map[repo.ChunkID]repo.ChunkRef) int64 {
	var used int64
	for _, c := range chunks {
		used += repo.PackEntrySize(c.Length, c.Raw)
	}
	return used + packOverhead(used)
}

// repackCandidates returns the present packs whose unused bytes reach
// threshold, with the chunks in use in each, sorted by pack. The bytes in
// use are the chunks' and what a pack of only them would hold besides: a
// pack of tiny chunks, mostly trailer, is otherwise a candidate with every
// chunk in use, and its copy one again at every prune.
func repackCandidates(u usage, present map[string]int64, skip map[string]bool, threshold float64) []repo.PackRef {
	var out []repo.PackRef
	for sum, chunks := range u {
		size, ok := present[sum]
		if !ok || skip[sum] || len(chunks) == 0 {
			continue
		}
		used := packUsed(chunks)
		if float64(size-used) >= threshold*float64(size) {
			out = append(out, repo.PackRef{SHA256: sum, Size: size})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SHA256 < out[j].SHA256 })
	return out
}

// writeRepack copies the chunks in use of the candidate packs into new
// packs, as a backup writes them (PackBuilder, sealed at the config's
// target size, encrypted to the recipients and the data key), writes their
// index (readable by the backup host, as a backup's) and the signed repack
// record that names them.
func writeRepack(ctx context.Context, r *repo.Repository, cands []repo.PackRef, u usage, kept []keptSnapshot, res *RepackResult) error {
	host := r.Host()
	if host == nil {
		return repo.ErrNoSigningKey
	}
	if err := r.CheckWriter(host); err != nil {
		return err
	}
	start := time.Now().UTC()
	recipients, err := r.Recipients()
	if err != nil {
		return err
	}
	secrets, err := r.Secrets(ctx)
	if err != nil {
		return err
	}
	cr, err := r.NewPackReader(ctx, cands)
	if err != nil {
		return err
	}
	target := int(r.Config.Packs.TargetSize)
	b := repo.NewPackBuilder(target + 8<<20)
	var packs []repo.IndexPack
	flush := func() error {
		if b.Count() == 0 {
			return nil
		}
		chunks := append([]repo.IndexChunk(nil), b.Chunks()...)
		ct, err := repo.Encrypt(b.Finish(), recipients...)
		if err != nil {
			return fmt.Errorf("encrypt pack: %w", err)
		}
		b.Reset()
		sum := repo.HashHex(ct)
		if err := repo.PutObject(ctx, r.Store, repo.PackName(sum), ct); err != nil {
			return fmt.Errorf("upload pack: %w", err)
		}
		packs = append(packs, repo.IndexPack{SHA256: sum, Size: int64(len(ct)), Chunks: chunks})
		res.Written.add(int64(len(ct)))
		return nil
	}
	copied := map[repo.ChunkID]bool{}
	for _, p := range cands {
		refs := make([]repo.ChunkRef, 0, len(u[p.SHA256]))
		for _, c := range u[p.SHA256] {
			refs = append(refs, c)
		}
		sort.Slice(refs, func(i, j int) bool { return refs[i].Offset < refs[j].Offset }) // read ahead serves the next
		for _, c := range refs {
			if copied[c.ID] {
				continue
			}
			stored, _, err := cr.ReadStored(ctx, p.SHA256, c)
			if err != nil {
				return fmt.Errorf("repack %s: %w", repo.PackName(p.SHA256), err)
			}
			b.Add(c.ID, stored, c.Raw, c.Zstd)
			copied[c.ID] = true
			if b.Len() >= target {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	if len(packs) == 0 {
		return errors.New("repack: no chunk to copy")
	}
	ref, err := repo.PutSealed(ctx, r.Store, repo.IndexPrefix, repo.Index{Version: repo.Version, Packs: packs},
		append(recipients, secrets.IndexIdentity.Recipient())...)
	if err != nil {
		return err
	}
	res.Written.add(ref.Size)
	rec := &repo.Repack{Version: repo.Version, ID: repo.NewID(), Repo: r.Config.ID, Time: start, ConfigSeq: r.Config.Seq,
		Signer: host.Public().String(), Index: ref, Replaces: cands, Snapshots: []string{}}
	for _, p := range packs {
		rec.Packs = append(rec.Packs, repo.PackRef{SHA256: p.SHA256, Size: p.Size})
	}
	for _, k := range kept {
		rec.Snapshots = append(rec.Snapshots, k.m.ID)
	}
	sort.Strings(rec.Snapshots)
	if err := r.WriteRepack(ctx, rec, host); err != nil {
		return err
	}
	res.Record, res.Chunks = rec.ID, len(copied)
	return nil
}

// listPacks returns every pack the store lists, by SHA-256, with its size.
func listPacks(ctx context.Context, r *repo.Repository) (map[string]int64, error) {
	present := map[string]int64{}
	err := r.Store.List(ctx, repo.DataPrefix, func(oi storage.ObjectInfo) error {
		if len(oi.Name) >= 64 {
			present[oi.Name[len(oi.Name)-64:]] = oi.Size
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list packs: %w", err)
	}
	return present, nil
}

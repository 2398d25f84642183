package repo

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"filippo.io/age"
)

// This file is the read side of repacking (doc/design.md, section 6.3):
// prune copies the live chunks of partly used packs into new packs and
// publishes a signed repack record that maps them, so that snapshots keep
// naming the old packs and readers follow the record once those are gone.

// RepacksPrefix holds repack records: repacks/<id>, signed by a host key.
const RepacksPrefix = "repacks/"

// KindRepack is the signed document kind of a repack record.
const KindRepack = "repack"

// maxRepack bounds a repack record.
const maxRepack = 64 << 20

// maxRelocations bounds how many repack records a chunk is followed
// through (a pack repacked, its new pack repacked again, ...).
const maxRelocations = 16

// Repack is a repack record: the chunks that the snapshots it names use
// in the packs it replaces were copied into new packs, listed with their
// chunks in a new index object. Snapshots keep naming the old packs;
// readers find a chunk through the record when its old pack is gone, and
// check its keyed id as always. Records are never deleted.
type Repack struct {
	Version int       `json:"version"`
	ID      string    `json:"id"`
	Repo    string    `json:"repo"`
	Time    time.Time `json:"time"`
	// ConfigSeq and Signer are as in a manifest.
	ConfigSeq int64  `json:"config_seq"`
	Signer    string `json:"signer"`
	// Index lists the new packs and their chunks (section 6 form).
	Index ObjectRef `json:"index"`
	// Packs are the new packs; Replaces the old ones whose used chunks
	// were copied.
	Packs    []PackRef `json:"packs"`
	Replaces []PackRef `json:"replaces"`
	// Snapshots are the snapshots whose chunks were counted (every
	// snapshot not yet pruned when the repack ran): a later prune deletes
	// an old pack only when every snapshot that uses it is among them.
	Snapshots []string `json:"snapshots"`

	// docSHA256 is the SHA-256 of the document as read; Stored the
	// store's modification time of it (set by Repacks).
	docSHA256 string
	Stored    time.Time `json:"-"`
}

// RepackName is the object name of repack record id.
func RepackName(id string) string { return RepacksPrefix + id }

// Since is when the record counts as written: the later of its own time
// and its write time in the store (a host whose clock is behind must not
// date it before a running backup's start).
func (rp *Repack) Since() time.Time {
	if rp.Stored.After(rp.Time) {
		return rp.Stored
	}
	return rp.Time
}

func (rp *Repack) signedBy() (string, string, string, int64) {
	return rp.ID, rp.Repo, rp.Signer, rp.ConfigSeq
}

// Validate checks the record's shape (not its signature).
func (rp *Repack) Validate() error {
	if err := checkSignedHeader("repack record", "repack", rp.Version, rp.ID, rp.ConfigSeq); err != nil {
		return err
	}
	if !validHex(rp.Index.SHA256, 64) || rp.Index.Name != IndexPrefix+rp.Index.SHA256 || rp.Index.Size <= 0 {
		return errors.New("invalid index reference")
	}
	if len(rp.Packs) == 0 || len(rp.Replaces) == 0 {
		return errors.New("a repack record names new packs and the packs they replace")
	}
	seen := map[string]bool{}
	for _, list := range [][]PackRef{rp.Packs, rp.Replaces} {
		for _, p := range list {
			if !validHex(p.SHA256, 64) || p.Size <= 0 {
				return errors.New("invalid pack reference")
			}
			if seen[p.SHA256] {
				return fmt.Errorf("pack %s is named twice", ShortID(p.SHA256))
			}
			seen[p.SHA256] = true
		}
	}
	for _, id := range rp.Snapshots {
		if !validHex(id, 64) {
			return errors.New("invalid snapshot id")
		}
	}
	return nil
}

// WriteRepack signs a repack record and writes it if no record of its id
// exists. The repository's cached view of repack records is reset.
func (r *Repository) WriteRepack(ctx context.Context, rp *Repack, s Signer) error {
	doc, err := Sign(KindRepack, rp, s)
	if err != nil {
		return err
	}
	if err := PutObject(ctx, r.Store, RepackName(rp.ID), doc); err != nil {
		return err
	}
	r.forgetRepacks()
	return nil
}

// forgetRepacks drops the cached view of repack records: the next use
// lists them again.
func (r *Repository) forgetRepacks() {
	r.repackMu.Lock()
	r.repacks = nil
	r.repackMu.Unlock()
}

// ReadRepack reads and verifies repack record id: signed by a host key
// that may sign manifests (as a manifest, see ReadManifest), well formed,
// stored under its own id, of this repository.
func (r *Repository) ReadRepack(ctx context.Context, id string) (*Repack, error) {
	var rp Repack
	sum, err := r.readHostSigned(ctx, KindRepack, RepackName(id), id, maxRepack, func() hostSigned {
		rp = Repack{}
		return &rp
	})
	if err != nil {
		return nil, err
	}
	rp.docSHA256 = sum
	return &rp, nil
}

// repackState is what the repository knows of repack records, loaded once
// (Repacks) and their indexes as a chunk is first looked up in them.
type repackState struct {
	recs  []*Repack
	bad   []error
	byOld map[string][]*Repack // replaced pack -> records, newest first
	index map[string]map[ChunkID]Relocation
}

// Repacks reads every repack record, oldest first. Records that do not
// verify are returned as errors beside the good ones (they move nothing);
// objects under repacks/ not named by an id are errors too. The result is
// cached for the life of r.
func (r *Repository) Repacks(ctx context.Context) ([]*Repack, []error, error) {
	st, err := r.repackState(ctx)
	if err != nil {
		return nil, nil, err
	}
	return st.recs, st.bad, nil
}

func (r *Repository) repackState(ctx context.Context) (*repackState, error) {
	r.repackMu.Lock()
	defer r.repackMu.Unlock()
	if r.repacks != nil {
		return r.repacks, nil
	}
	ids, stored, junk, err := r.listIDs(ctx, RepacksPrefix)
	if err != nil {
		return nil, fmt.Errorf("list repacks: %w", err)
	}
	var bad []error
	for _, name := range junk {
		bad = append(bad, integrity(name, "not a repack record: its name is not an id (ignored)"))
	}
	st := &repackState{byOld: map[string][]*Repack{}, index: map[string]map[ChunkID]Relocation{}}
	for _, id := range ids {
		rp, err := r.ReadRepack(ctx, id)
		if err != nil {
			var ie *IntegrityError
			if errors.As(err, &ie) {
				bad = append(bad, integrity(RepackName(id), "repack record does not verify, so it relocates nothing: %v", ie.Err))
				continue
			}
			return nil, err
		}
		rp.Stored = stored[id]
		st.recs = append(st.recs, rp)
	}
	sort.Slice(st.recs, func(i, j int) bool { return st.recs[i].Time.Before(st.recs[j].Time) })
	for i := len(st.recs) - 1; i >= 0; i-- {
		for _, p := range st.recs[i].Replaces {
			st.byOld[p.SHA256] = append(st.byOld[p.SHA256], st.recs[i])
		}
	}
	sort.Slice(bad, func(i, j int) bool { return bad[i].Error() < bad[j].Error() })
	st.bad = bad
	r.repacks = st
	return st, nil
}

// Relocation is where a repack record moved a chunk: its new pack (with
// the size the signed record gives) and its place there.
type Relocation struct {
	Pack   PackRef
	Chunk  IndexChunk
	Record string // the repack record's id
}

// Replaced returns the verified repack records that replace pack, newest
// first.
func (r *Repository) Replaced(ctx context.Context, pack string) ([]*Repack, error) {
	st, err := r.repackState(ctx)
	if err != nil {
		return nil, err
	}
	return st.byOld[pack], nil
}

// Relocate returns where the verified repack records that replace pack put
// chunk id (one step: the new pack may itself be replaced). ok is false
// when no such record holds the chunk. Reading a record's index needs an
// identity or a key that opens the repository secrets.
func (r *Repository) Relocate(ctx context.Context, pack string, id ChunkID) (Relocation, bool, error) {
	recs, err := r.Replaced(ctx, pack)
	if err != nil {
		return Relocation{}, false, err
	}
	for _, rp := range recs {
		m, err := r.repackIndex(ctx, rp)
		if err != nil {
			return Relocation{}, false, err
		}
		if loc, ok := m[id]; ok {
			return loc, true, nil
		}
	}
	return Relocation{}, false, nil
}

// RepackChunks returns the chunks of rp's index that lie in the packs the
// record names as new, by id.
func (r *Repository) RepackChunks(ctx context.Context, rp *Repack) (map[ChunkID]Relocation, error) {
	return r.repackIndex(ctx, rp)
}

func (r *Repository) repackIndex(ctx context.Context, rp *Repack) (map[ChunkID]Relocation, error) {
	st, err := r.repackState(ctx)
	if err != nil {
		return nil, err
	}
	r.repackMu.Lock()
	m, ok := st.index[rp.ID]
	r.repackMu.Unlock()
	if ok {
		return m, nil
	}
	var id age.Identity
	if len(r.identities) > 0 {
		id = multiIdentity(r.identities)
	} else {
		d, err := r.Secrets(ctx)
		if err != nil {
			return nil, err
		}
		id = d.IndexIdentity
	}
	ix, err := r.readIndex(ctx, rp.Index, id)
	if err != nil {
		return nil, err
	}
	packs := map[string]int64{}
	for _, p := range rp.Packs {
		packs[p.SHA256] = p.Size
	}
	m = map[ChunkID]Relocation{}
	for _, ip := range ix.Packs {
		size, ok := packs[ip.SHA256]
		if !ok || size != ip.Size {
			continue // only the packs the signed record names
		}
		for _, c := range ip.Chunks {
			m[c.ID] = Relocation{Pack: PackRef{SHA256: ip.SHA256, Size: size}, Chunk: c, Record: rp.ID}
		}
	}
	r.repackMu.Lock()
	st.index[rp.ID] = m
	r.repackMu.Unlock()
	return m, nil
}

// multiIdentity tries each identity in turn.
type multiIdentity []age.Identity

func (m multiIdentity) Unwrap(stanzas []*age.Stanza) ([]byte, error) {
	for _, id := range m {
		k, err := id.Unwrap(stanzas)
		if errors.Is(err, age.ErrIncorrectIdentity) {
			continue
		}
		return k, err
	}
	return nil, age.ErrIncorrectIdentity
}

package repo

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"
)

// TombstonesPrefix holds tombstones: tombstones/<snapshot id>, signed by a
// host key, one for each snapshot that `coffer forget` (or the daemon's
// retention) removed on purpose.
const TombstonesPrefix = "tombstones/"

// KindTombstone is the signed document kind of a tombstone.
const KindTombstone = "tombstone"

// maxTombstone bounds a tombstone document.
const maxTombstone = 1 << 20

// Tombstone records that a snapshot was forgotten on purpose: by which
// host key, when, under which policy, and which manifest document exactly
// (its name, size and SHA-256 as stored). A snapshot with a tombstone that
// verifies is hidden from every listing, is not a deletion when a later
// manifest names it in seen, and is not "vanished" for a client that saw
// it; prune removes its manifest and the data only it used. A snapshot
// whose manifest disappears without one is still reported as deleted.
type Tombstone struct {
	Version int `json:"version"`
	// ID is the forgotten snapshot's id; the object name is
	// tombstones/<ID>.
	ID   string    `json:"id"`
	Repo string    `json:"repo"`
	Time time.Time `json:"time"`
	// ConfigSeq and Signer are as in a manifest.
	ConfigSeq int64  `json:"config_seq"`
	Signer    string `json:"signer"`
	// Manifest is the forgotten manifest as stored.
	Manifest ObjectRef `json:"manifest"`
	// SnapshotTime is the forgotten snapshot's time.
	SnapshotTime time.Time `json:"snapshot_time"`
	// Policy is the retention policy that let it go, as text.
	Policy string `json:"policy"`
	// Stored is when the store says the tombstone was written (its
	// modification time, on the store's clock; not part of the document),
	// set by Forgotten. Prune counts a snapshot as forgotten since the
	// later of Time and Stored: a forgetting host whose clock is behind
	// must not make a snapshot look forgotten before a running backup
	// started.
	Stored time.Time `json:"-"`
}

// Since is when the snapshot counts as forgotten: the later of the
// tombstone's own time and its write time in the store.
func (t *Tombstone) Since() time.Time {
	if t.Stored.After(t.Time) {
		return t.Stored
	}
	return t.Time
}

// TombstoneName is the object name of snapshot id's tombstone.
func TombstoneName(id string) string { return TombstonesPrefix + id }

func (t *Tombstone) signedBy() (string, string, string, int64) {
	return t.ID, t.Repo, t.Signer, t.ConfigSeq
}

// checkSignedHeader checks the fields every host-signed record of this
// format starts with: the format version, a 64-hex id (idNoun names it in
// the error) and a config seq.
func checkSignedHeader(noun, idNoun string, version int, id string, seq int64) error {
	if version != Version {
		return fmt.Errorf("unsupported %s version %d", noun, version)
	}
	if !validHex(id, 64) {
		return fmt.Errorf("invalid %s id", idNoun)
	}
	if seq < 1 {
		return errors.New("invalid config seq")
	}
	return nil
}

// Validate checks the tombstone's shape (not its signature).
func (t *Tombstone) Validate() error {
	if err := checkSignedHeader("tombstone", "snapshot", t.Version, t.ID, t.ConfigSeq); err != nil {
		return err
	}
	if t.Manifest.Name != SnapshotName(t.ID) || !validHex(t.Manifest.SHA256, 64) || t.Manifest.Size <= 0 {
		return errors.New("invalid manifest reference")
	}
	return nil
}

// NewTombstone returns the tombstone of m (which must have been read with
// ReadManifest) for the host key r was opened with.
func (r *Repository) NewTombstone(m *Manifest, policy string, now time.Time) (*Tombstone, error) {
	if r.host == nil {
		return nil, ErrNoSigningKey
	}
	if m.docSHA256 == "" || m.docSize == 0 {
		return nil, fmt.Errorf("tombstone for %s: the manifest was not read from the repository", ShortID(m.ID))
	}
	return &Tombstone{Version: Version, ID: m.ID, Repo: r.Config.ID, Time: now.UTC(), ConfigSeq: r.Config.Seq,
		Signer: r.host.Public().String(), Manifest: ObjectRef{Name: SnapshotName(m.ID), Size: m.docSize, SHA256: m.docSHA256},
		SnapshotTime: m.Time, Policy: policy}, nil
}

// ErrNoSigningKey is returned when an operation signs (forget) and the
// repository was opened without a host signing key.
var ErrNoSigningKey = errors.New("no signing key: forgetting a snapshot writes a tombstone signed by an authorised host key")

// WriteTombstone signs t with the host key r was opened with and writes
// it, create-if-absent. The repository's cached view of forgotten
// snapshots is reset.
func (r *Repository) WriteTombstone(ctx context.Context, t *Tombstone) error {
	if r.host == nil {
		return ErrNoSigningKey
	}
	if err := r.CheckWriter(r.host); err != nil {
		return err
	}
	if err := t.Validate(); err != nil {
		return err
	}
	doc, err := Sign(KindTombstone, t, r.host)
	if err != nil {
		return err
	}
	if err := PutObject(ctx, r.Store, TombstoneName(t.ID), doc); err != nil {
		return err
	}
	r.forgotMu.Lock()
	r.forgotLoaded = false
	r.forgotMu.Unlock()
	return nil
}

// Reread makes the next Forgotten and Repacks list and read the
// tombstones and repack records again instead of answering from what they
// read before. A backup calls it once it has announced itself (design.md,
// section 17.4): prune expires a snapshot forgotten before that, and may
// delete the new packs of a repack record no listed snapshot reads through,
// so the backup must not deduplicate against either, even when the command
// (or a program reusing the Repository) read them earlier.
func (r *Repository) Reread() {
	r.forgotMu.Lock()
	r.forgotLoaded = false
	r.forgotMu.Unlock()
	r.forgetRepacks()
}

// ReadTombstone reads and verifies snapshot id's tombstone: signed by an
// authorised host key (a revoked key's tombstones are refused: its keep
// list names manifests, not tombstones), well formed, stored under its own
// id, of this repository.
func (r *Repository) ReadTombstone(ctx context.Context, id string) (*Tombstone, error) {
	var t Tombstone
	if _, err := r.readHostSigned(ctx, KindTombstone, TombstoneName(id), id, maxTombstone, func() hostSigned {
		t = Tombstone{}
		return &t
	}); err != nil {
		return nil, err
	}
	return &t, nil
}

// Forgotten returns the snapshots forgotten on purpose: those with a
// tombstone that verifies, by id. Tombstones that do not verify (forged,
// signed by an unknown or revoked key, damaged) are returned as
// IntegrityErrors and hide nothing. The result is cached for the life of
// r (WriteTombstone resets it).
func (r *Repository) Forgotten(ctx context.Context) (map[string]*Tombstone, []error, error) {
	r.forgotMu.Lock()
	defer r.forgotMu.Unlock()
	if r.forgotLoaded {
		return r.forgotten, r.forgotBad, nil
	}
	ids, stored, junk, err := r.listIDs(ctx, TombstonesPrefix)
	if err != nil {
		return nil, nil, fmt.Errorf("list tombstones: %w", err)
	}
	var bad []error
	for _, name := range junk {
		bad = append(bad, integrity(name, "not a tombstone: its name is not a snapshot id (ignored)"))
	}
	out := map[string]*Tombstone{}
	for _, id := range ids {
		t, err := r.ReadTombstone(ctx, id)
		if err != nil {
			var ie *IntegrityError
			if errors.As(err, &ie) {
				bad = append(bad, integrity(TombstoneName(id), "tombstone does not verify, so snapshot %s counts as deleted, not forgotten: %v", ShortID(id), ie.Err))
				continue
			}
			return nil, nil, err
		}
		t.Stored = stored[id]
		out[id] = t
	}
	sort.Slice(bad, func(i, j int) bool { return bad[i].Error() < bad[j].Error() })
	r.forgotten, r.forgotBad, r.forgotLoaded = out, bad, true
	return out, bad, nil
}

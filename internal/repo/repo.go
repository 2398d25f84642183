package repo

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"filippo.io/age"
	"github.com/restic/chunker"
	"golang.org/x/crypto/hkdf"

	"github.com/cofferhq/coffer/internal/keys"
	"github.com/cofferhq/coffer/storage"
)

// ErrNotInitialized is returned when a repository has no config object.
var ErrNotInitialized = errors.New("repository not initialised")

// ErrNotCoffer is wrapped when a store holds a config object that is not a
// coffer config at all (another tool's repository, such as restic's).
var ErrNotCoffer = errors.New("not a coffer repository")

// ErrNoIdentity is returned when an operation needs to decrypt but no
// identity was given.
var ErrNoIdentity = errors.New("no identity: this operation decrypts and needs the age identity")

// ErrNoRecipients is returned by Init without recipients.
var ErrNoRecipients = errors.New("no recipients")

// IntegrityError says that a stored object is missing, damaged or not what
// the signed manifest says it is. The CLI maps it to exit code 3.
type IntegrityError struct {
	Object string
	Err    error
}

func (e *IntegrityError) Error() string { return fmt.Sprintf("integrity: %s: %v", e.Object, e.Err) }
func (e *IntegrityError) Unwrap() error { return e.Err }

func integrity(object string, format string, args ...any) error {
	return &IntegrityError{Object: object, Err: fmt.Errorf(format, args...)}
}

// Repository is an opened repository: its store and verified config.
type Repository struct {
	Store storage.Store
	// Config is the newest config that verifies against the owner key.
	Config Config
	// Problems are the config objects that were passed over: not signed
	// by the owner key, or out of the chain. Readers report them (verify
	// as integrity problems); the newest config that verifies is used.
	Problems []error

	owner      keys.OwnerPublic
	configDoc  []byte // the document of Config
	maxSeq     int64  // the highest config seq stored, valid or not
	host       *keys.SigningKey
	ownerKey   *keys.OwnerKey
	identities []age.Identity
	dataKeys   []*age.X25519Identity // loaded with the identities
	secretsMu  sync.Mutex
	secrets    *keys.Derived
	pol        chunker.Pol

	forgotMu     sync.Mutex
	forgotLoaded bool
	forgotten    map[string]*Tombstone // snapshots forgotten on purpose
	forgotBad    []error               // tombstones that do not verify

	repackMu sync.Mutex
	repacks  *repackState // repack records, loaded on first use
}

// HasIdentity reports whether the repository was opened with an identity.
func (r *Repository) HasIdentity() bool { return len(r.identities) > 0 }

// Identities returns the identities the repository was opened with.
func (r *Repository) Identities() []age.Identity { return r.identities }

// Recipients returns what a backup encrypts packs, catalog roots and
// indexes to: the config's recipients and the current data key.
func (r *Repository) Recipients() ([]age.Recipient, error) {
	var out []age.Recipient
	for _, s := range r.Config.Recipients {
		rc, err := keys.ParseRecipient(s)
		if err != nil {
			return nil, integrity(ConfigName(r.Config.Seq), "recipient: %v", err)
		}
		out = append(out, rc.Recipient)
	}
	data, err := age.ParseX25519Recipient(r.Config.DataRecipient)
	if err != nil {
		return nil, integrity(ConfigName(r.Config.Seq), "malformed data recipient")
	}
	return append(out, data), nil
}

// Secrets returns the repository secrets, decrypting the secrets object
// with the identities, the host's box identity or the owner's.
func (r *Repository) Secrets(ctx context.Context) (*keys.Derived, error) {
	r.secretsMu.Lock()
	defer r.secretsMu.Unlock()
	if r.secrets != nil {
		return r.secrets, nil
	}
	ids := append([]age.Identity{}, r.identities...)
	if r.host != nil {
		ids = append(ids, r.host.BoxIdentity())
	}
	if r.ownerKey != nil {
		ids = append(ids, r.ownerKey.BoxIdentity())
	}
	if len(ids) == 0 {
		return nil, ErrNoIdentity
	}
	ct, err := r.ReadObject(ctx, r.Config.Secrets)
	if err != nil {
		return nil, err
	}
	plain, err := Decrypt(ct, ids...)
	if err != nil {
		return nil, decryptError(r.Config.Secrets.Name, err)
	}
	d, err := keys.UnmarshalDerived(plain)
	if err != nil {
		return nil, integrity(r.Config.Secrets.Name, "%v", err)
	}
	r.secrets = d
	return d, nil
}

// decryptError turns an age error into a clear one: a wrong identity is a
// usage problem, anything else is damage.
func decryptError(name string, err error) error {
	var nm *age.NoIdentityMatchError
	if errors.As(err, &nm) {
		return &WrongIdentityError{Object: name}
	}
	return integrity(name, "decrypt: %s", cleanMessage(err))
}

// cleanMessage keeps an error message short and printable: age's parse
// errors can quote raw bytes of a damaged object.
func cleanMessage(err error) string {
	msg := err.Error()
	for _, r := range msg {
		if r == utf8.RuneError || (r < 0x20 && r != '\t') || r > 0x7e {
			return "the age header or payload is damaged"
		}
	}
	if len(msg) > 160 {
		msg = msg[:160] + "..."
	}
	return msg
}

// WrongIdentityError says that none of the given identities can decrypt.
type WrongIdentityError struct{ Object string }

func (e *WrongIdentityError) Error() string {
	return fmt.Sprintf("wrong identity: it cannot decrypt %s (the repository is encrypted to other recipients)", e.Object)
}

// Polynomial returns the chunker polynomial derived from the secrets.
func (r *Repository) Polynomial(ctx context.Context) (chunker.Pol, error) {
	if r.pol != 0 {
		return r.pol, nil
	}
	s, err := r.Secrets(ctx)
	if err != nil {
		return 0, err
	}
	pol, err := chunker.DerivePolynomial(hkdf.New(sha256.New, s.PolySeed, nil, []byte("coffer chunker stream v1")))
	if err != nil {
		return 0, err
	}
	r.pol = pol
	return pol, nil
}

// ChunkIDFunc returns the keyed hash that names chunks.
func (r *Repository) ChunkIDFunc(ctx context.Context) (func([]byte) ChunkID, error) {
	s, err := r.Secrets(ctx)
	if err != nil {
		return nil, err
	}
	key := s.ChunkKey
	// An HMAC is reset, not made again, for each chunk: a tree of small
	// files names a chunk a file.
	type mac struct {
		h   hash.Hash
		sum ChunkID
	}
	macs := sync.Pool{New: func() any { return &mac{h: hmac.New(sha256.New, key[:])} }}
	return func(b []byte) ChunkID {
		m := macs.Get().(*mac)
		m.h.Reset()
		m.h.Write(b)
		m.h.Sum(m.sum[:0])
		id := m.sum
		macs.Put(m)
		return id
	}, nil
}

// ReadObject reads a whole object and checks its size and SHA-256 against
// ref. A mismatch or missing object is an IntegrityError naming it.
func (r *Repository) ReadObject(ctx context.Context, ref ObjectRef) ([]byte, error) {
	b, err := readAll(ctx, r.Store, ref.Name, ref.Size+1)
	if errors.Is(err, storage.ErrNotExist) {
		return nil, integrity(ref.Name, "missing")
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", ref.Name, err)
	}
	if int64(len(b)) != ref.Size {
		return nil, integrity(ref.Name, "size %d, want %d", len(b), ref.Size)
	}
	if HashHex(b) != ref.SHA256 {
		return nil, integrity(ref.Name, "content hash does not match")
	}
	return b, nil
}

func readAll(ctx context.Context, st storage.Store, name string, limit int64) ([]byte, error) {
	rc, err := st.Open(ctx, name, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, limit))
}

// ReadManifest reads and verifies snapshot id's manifest.
func (r *Repository) ReadManifest(ctx context.Context, id string) (*Manifest, error) {
	var m Manifest
	sum, size, err := r.readHostSignedSize(ctx, KindManifest, SnapshotName(id), id, 64<<20, func() hostSigned {
		m = Manifest{}
		return &m
	})
	if err != nil {
		return nil, err
	}
	m.docSHA256, m.docSize = sum, size
	return &m, nil
}

// hostSigned is a document a host key signs: a manifest or a repair
// record.
type hostSigned interface {
	// signedBy returns the document's id, repository id, signer and the
	// config version its writer used.
	signedBy() (id, repoID, signer string, configSeq int64)
	Validate() error
}

func (m *Manifest) signedBy() (string, string, string, int64) {
	return m.ID, m.Repo, m.Signer, m.ConfigSeq
}

// readHostSigned reads the document of the given kind stored under name
// (for id) and verifies it into the value fresh returns: signed by a host
// key the config authorises (or a revoked one that kept it), naming no
// config newer than the newest that verifies, well formed, stored under its
// own id and of this repository. It returns the document's SHA-256.
func (r *Repository) readHostSigned(ctx context.Context, kind, name, id string, limit int64, fresh func() hostSigned) (string, error) {
	sum, _, err := r.readHostSignedSize(ctx, kind, name, id, limit, fresh)
	return sum, err
}

// readHostSignedSize is readHostSigned, and also returns the document's
// size.
func (r *Repository) readHostSignedSize(ctx context.Context, kind, name, id string, limit int64, fresh func() hostSigned) (string, int64, error) {
	noun := map[string]string{KindManifest: "manifest", KindRepair: "repair record", KindTombstone: "tombstone", KindDrill: "drill record", KindRepack: "repack record"}[kind]
	doc, err := readAll(ctx, r.Store, name, limit)
	if errors.Is(err, storage.ErrNotExist) {
		return "", 0, integrity(name, "missing")
	}
	if err != nil {
		return "", 0, fmt.Errorf("read %s: %w", name, err)
	}
	// The signer's key is named inside: read it unverified, then verify
	// the whole document with that key if the config allows it.
	v := fresh()
	if err := openSigned(kind, doc, nil, v); err != nil {
		return "", 0, integrity(name, "%w", err)
	}
	_, _, signerText, seq := v.signedBy()
	if seq > r.Config.Seq {
		return "", 0, integrity(name, "names config %d, but the newest config that verifies is %d: a newer config was removed (rollback), or the %s is forged",
			seq, r.Config.Seq, noun)
	}
	signer, err := r.signerKey(id, signerText, doc)
	if err != nil {
		return "", 0, integrity(name, "%w", err)
	}
	v = fresh()
	if err := openSigned(kind, doc, signer, v); err != nil {
		return "", 0, integrity(name, "%w", err)
	}
	if err := v.Validate(); err != nil {
		return "", 0, integrity(name, "%w", err)
	}
	gotID, repoID, _, _ := v.signedBy()
	if gotID != id {
		return "", 0, integrity(name, "%s of %s stored under another name (replayed)", noun, ShortID(gotID))
	}
	if repoID != r.Config.ID {
		return "", 0, integrity(name, "%s belongs to repository %s", noun, ShortID(repoID))
	}
	return HashHex(doc), int64(len(doc)), nil
}

// SnapshotIDs lists the ids of every manifest object. Objects under
// snapshots/ whose name is not a snapshot id are not snapshots, and are
// left out (ListSnapshots returns them).
func (r *Repository) SnapshotIDs(ctx context.Context) ([]string, error) {
	ids, _, err := r.ListSnapshots(ctx)
	return ids, err
}

// ListSnapshots lists snapshots/: the ids of the manifest objects, and the
// names of objects there that are not named by a snapshot id (coffer never
// writes one: verify reports them; nothing else reads them). Snapshots
// forgotten on purpose (a tombstone that verifies, see Forgotten) are left
// out: their manifests stay until prune removes them with their data.
func (r *Repository) ListSnapshots(ctx context.Context) (ids, junk []string, err error) {
	all, junk, err := r.ListAllSnapshots(ctx)
	if err != nil {
		return nil, nil, err
	}
	forgotten, _, err := r.Forgotten(ctx)
	if err != nil {
		return nil, nil, err
	}
	for _, id := range all {
		if forgotten[id] == nil {
			ids = append(ids, id)
		}
	}
	return ids, junk, nil
}

// ListAllSnapshots is ListSnapshots with the forgotten snapshots whose
// manifests are still stored.
func (r *Repository) ListAllSnapshots(ctx context.Context) (ids, junk []string, err error) {
	ids, _, junk, err = r.listIDs(ctx, SnapshotsPrefix)
	return ids, junk, err
}

// listIDs lists the objects under prefix: those named by an id (64
// lowercase hex digits), with the time each was stored, and the names of
// the others.
func (r *Repository) listIDs(ctx context.Context, prefix string) (ids []string, stored map[string]time.Time, junk []string, err error) {
	stored = map[string]time.Time{}
	err = r.Store.List(ctx, prefix, func(oi storage.ObjectInfo) error {
		if id := strings.TrimPrefix(oi.Name, prefix); validHex(id, 64) {
			ids = append(ids, id)
			stored[id] = oi.ModTime
		} else {
			junk = append(junk, oi.Name)
		}
		return nil
	})
	return ids, stored, junk, err
}

// manifestReaders is how many manifests Manifests reads at once: every
// backup (for its "seen"), "latest" and verify read them all, and on S3
// each is one request.
const manifestReaders = 8

// Manifests reads every manifest, sorted by time. Damaged manifests are
// returned as errors beside the good ones, in the order of their names.
func (r *Repository) Manifests(ctx context.Context) ([]*Manifest, []error, error) {
	ids, err := r.SnapshotIDs(ctx)
	if err != nil {
		return nil, nil, err
	}
	got := make([]*Manifest, len(ids))
	errs := make([]error, len(ids))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(manifestReaders, len(ids)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				got[i], errs[i] = r.ReadManifest(ctx, ids[i])
			}
		}()
	}
	for i := range ids {
		next <- i
	}
	close(next)
	wg.Wait()
	var ms []*Manifest
	var bad []error
	for i, err := range errs {
		if err != nil {
			var ie *IntegrityError
			if errors.As(err, &ie) {
				bad = append(bad, err)
				continue
			}
			return nil, nil, err
		}
		ms = append(ms, got[i])
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Time.Before(ms[j].Time) })
	return ms, bad, nil
}

// ReadCatalog reads, checks and decrypts a snapshot's catalog: the root
// object, then the catalog's chunks, each checked against its keyed id,
// and the whole against the root's SHA-256 (the checks of OpenCatalog).
// It holds the whole catalog decoded; OpenCatalog reads it entry by entry.
func (r *Repository) ReadCatalog(ctx context.Context, m *Manifest) (*Catalog, error) {
	s, err := r.OpenCatalog(ctx, m)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	c := &Catalog{Version: Version, Snapshot: m.ID, rootChunks: s.rootChunks}
	for {
		h, err := s.NextSource()
		if err == io.EOF {
			return c, nil
		}
		if err != nil {
			return nil, err
		}
		sc := SourceCatalog{Name: h.Name, Kind: h.Kind, Meta: h.Meta}
		for {
			var e Entry
			if err := s.NextEntry(&e); err == io.EOF {
				break
			} else if err != nil {
				return nil, err
			}
			sc.Entries = append(sc.Entries, e)
		}
		sc.SHA256, sc.Size = s.sha, s.size
		c.Sources = append(c.Sources, sc)
	}
}

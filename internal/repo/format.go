// Package repo is coffer's repository format: the signed config, the
// per-snapshot signed manifest, the encrypted catalog, the encrypted index
// and the pack objects that hold compressed, encrypted chunks.
//
// # Format
//
// doc/design.md specifies the format; this package is its only
// implementation. Object names are:
//
//	config/<seq>            signed repository config, one per change (public; signed by the owner key)
//	keys/<sha256>           repository secrets, age-encrypted to the recipients and the owner's and hosts' boxes
//	data/<xx>/<sha256>      packs: one age file each; the name is the SHA-256 of the ciphertext
//	index/<sha256>          chunk index, age-encrypted to the recipients and the index key
//	catalogs/<sha256>       per-snapshot catalog, age-encrypted to the recipients only
//	private/<sha256>        per-snapshot private part (host, tags, sizes, stats), to the recipients only
//	snapshots/<id>          signed manifest, written last
//	repairs/<id>            signed repair record (a rebuilt index, the damaged packs)
//	drill-reports/<sha256>  a restore drill's full report, to the recipients and the data key
//	drills/<id>             a restore drill's signed public summary, written last
//
// Every object is either a valid age file or a signed document, and no name
// reveals anything about the data.
package repo

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cofferhq/coffer/storage"
)

// Version is the repository format version this code writes and reads.
const Version = 2

// Object name prefixes.
const (
	ConfigPrefix    = "config/"
	KeysPrefix      = "keys/"
	DataPrefix      = "data/"
	IndexPrefix     = "index/"
	CatalogPrefix   = "catalogs/"
	SnapshotsPrefix = "snapshots/"
	PrivatePrefix   = "private/"
)

// Chunking and packing defaults, recorded in the config so that every
// backup of a repository chunks alike.
const (
	DefaultChunkMin     = 256 << 10
	DefaultChunkMax     = 4 << 20
	DefaultChunkAvgBits = 19 // 512 KiB average
	DefaultPackSize     = 16 << 20
)

// legacyConfigName is where format version 1 kept its one config.
const legacyConfigName = "config"

// ConfigName is the object name of config number seq: "config/" and seq
// in 10 decimal digits, so that names sort by seq.
func ConfigName(seq int64) string { return fmt.Sprintf("%s%010d", ConfigPrefix, seq) }

// parseConfigName returns the seq of a config object name.
func parseConfigName(name string) (int64, bool) {
	rest, ok := strings.CutPrefix(name, ConfigPrefix)
	if !ok || len(rest) != 10 || strings.Trim(rest, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseInt(rest, 10, 64)
	return n, err == nil && n > 0
}

// Config is one version of the repository's config. Every version is an
// object config/<seq> signed by the owner key; the newest that verifies
// against the pinned owner key is the repository's config. A change (a
// recipient added, a host revoked) writes seq+1, naming its predecessor's
// hash in Prev.
type Config struct {
	Version int    `json:"version"`
	ID      string `json:"id"`
	Seq     int64  `json:"seq"`
	// Prev is the SHA-256 of the previous config document; empty for the
	// first.
	Prev string `json:"prev"`
	// Created is when this version was written.
	Created time.Time `json:"created"`
	// Owner is the owner public key that signs every version.
	Owner      string       `json:"owner"`
	Recipients []string     `json:"recipients"`
	Hosts      []Host       `json:"hosts"`
	Revoked    []Revocation `json:"revoked"`
	// DataRecipient is the recipient of the current data key: packs,
	// catalog roots and indexes are encrypted to it beside the
	// recipients, so that a recipient added later reads what was stored
	// before it (through DataKeys).
	DataRecipient string `json:"data_recipient"`
	// DataKeys is the object holding every data key's identity, oldest
	// first, encrypted to the recipients only (never to a host or the
	// owner).
	DataKeys ObjectRef `json:"data_keys"`
	// ChunkID names how chunk ids are computed: HMAC-SHA256 of the
	// plaintext chunk under the random chunk key of the secrets object.
	ChunkID string         `json:"chunk_id"`
	Chunker ChunkerParams  `json:"chunker"`
	Packs   PackParams     `json:"packs"`
	Secrets ObjectRef      `json:"secrets"`
	Extra   map[string]any `json:"extra,omitempty"`
	// ObjectLock, if set, has every object written with S3 Object Lock
	// retention for ObjectLock.Days from its write.
	ObjectLock *ObjectLock `json:"object_lock,omitempty"`
}

// ObjectLock is a repository's S3 Object Lock setting: every object is
// locked in Mode ("governance" or "compliance") for Days days from the
// moment it is written.
type ObjectLock struct {
	Mode string `json:"mode"`
	Days int    `json:"days"`
}

// MaxObjectLockDays bounds ObjectLock.Days (100 years, as S3 does).
const MaxObjectLockDays = 36500

// Validate checks the mode and the number of days.
func (l *ObjectLock) Validate() error {
	if !storage.LockMode(l.Mode).Valid() {
		return fmt.Errorf("object lock mode %q: want %q or %q", l.Mode, storage.LockGovernance, storage.LockCompliance)
	}
	if l.Days < 1 || l.Days > MaxObjectLockDays {
		return fmt.Errorf("object lock of %d days: want 1 to %d", l.Days, MaxObjectLockDays)
	}
	return nil
}

// Host is a backup host authorised to publish snapshots: its signing
// public key, the box recipient its seed derives, and when it was added.
type Host struct {
	Key   string    `json:"key"`
	Box   string    `json:"box"`
	Added time.Time `json:"added"`
}

// Revocation is a host key that may no longer publish snapshots. Keep
// lists the snapshots (and repair records) it signed that existed and
// verified when it was revoked, each with the SHA-256 of its document:
// those documents stay valid; every other document it signs is refused,
// whatever time or id it claims.
type Revocation struct {
	Key  string    `json:"key"`
	Time time.Time `json:"time"`
	Keep []Kept    `json:"keep"`
}

// Kept is one document a revoked host key signed that stays valid: its
// id and the SHA-256 (hex) of the signed document as stored.
type Kept struct {
	ID     string `json:"id"`
	SHA256 string `json:"sha256"`
}

// Keeps reports whether the keep list names document doc with id id.
func (v *Revocation) Keeps(id string, doc []byte) bool {
	sum := HashHex(doc)
	for _, k := range v.Keep {
		if k.ID == id && k.SHA256 == sum {
			return true
		}
	}
	return false
}

// HostEntry returns the authorised host with public key key, or nil.
func (c *Config) HostEntry(key string) *Host {
	for i := range c.Hosts {
		if c.Hosts[i].Key == key {
			return &c.Hosts[i]
		}
	}
	return nil
}

// Revocation returns the revocation of host key key, or nil.
func (c *Config) Revocation(key string) *Revocation {
	for i := range c.Revoked {
		if c.Revoked[i].Key == key {
			return &c.Revoked[i]
		}
	}
	return nil
}

// ChunkerParams configure content-defined chunking: Algorithm is
// ChunkerGear (new repositories) or ChunkerRabin (repositories made
// before it), both keyed by the repository secrets. It never changes in a
// repository's life (UpdateConfig refuses it).
type ChunkerParams struct {
	Algorithm   string `json:"algorithm"`
	MinSize     uint   `json:"min_size"`
	MaxSize     uint   `json:"max_size"`
	AverageBits int    `json:"average_bits"`
}

// PackParams configure packs.
type PackParams struct {
	TargetSize  int64  `json:"target_size"`
	Compression string `json:"compression"`
}

// ObjectRef names a stored object with its ciphertext size and SHA-256.
type ObjectRef struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Manifest is the signed, public description of one snapshot. A snapshot
// exists if and only if its manifest does. It holds only what a reader
// without keys needs to verify the snapshot (ids, time, source names and
// kinds, the objects it references); everything else about the backup is in
// the sealed Private object it references.
type Manifest struct {
	Version int       `json:"version"`
	ID      string    `json:"id"`
	Repo    string    `json:"repo"`
	Time    time.Time `json:"time"`
	// ConfigSeq is the config version the writer used.
	ConfigSeq int64 `json:"config_seq"`
	// Signer is the host public key that signed the manifest.
	Signer string `json:"signer"`
	// docSHA256 is the SHA-256 of the document as read (ReadManifest).
	docSHA256 string
	docSize   int64
	// Seen are the snapshot heads the writer saw when it started: among the
	// manifests it could read and verify, those that no other of them names
	// in its Seen. A snapshot named here that does not exist was deleted.
	Seen []string `json:"seen"`
	// Incomplete is set when a source left out something it could not
	// read (a folder's unreadable file): the snapshot holds everything
	// else. The skipped paths are in the encrypted catalog.
	Incomplete bool             `json:"incomplete"`
	Sources    []ManifestSource `json:"sources"`
	Catalog    ObjectRef        `json:"catalog"`
	Indexes    []ObjectRef      `json:"indexes,omitempty"`
	Packs      []PackRef        `json:"packs"`
	// Private is the object sealed to the recipients that holds the host,
	// tags, sizes, statistics, duration and warnings.
	Private ObjectRef `json:"private"`
}

// ManifestSource is the public part of one source: its name and kind.
type ManifestSource struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
}

// MaxClockSkew is how far in the future a manifest's time may lie. A
// manifest dated later than now + MaxClockSkew was written by a host whose
// clock is wrong or by someone holding a host key who wants to stay
// "latest" for good: "latest" skips it and verify reports it.
const MaxClockSkew = 5 * time.Minute

// InFuture reports whether m is dated more than MaxClockSkew after now.
func (m *Manifest) InFuture(now time.Time) bool { return m.Time.After(now.Add(MaxClockSkew)) }

// Private is the part of a snapshot's description that only the recipients
// may read: sealed (like a catalog root, to the recipients only) under
// private/<sha256> and referenced by the manifest.
type Private struct {
	Version  int      `json:"version"`
	Snapshot string   `json:"snapshot"`
	Host     string   `json:"host"`
	Tags     []string `json:"tags,omitempty"`
	// Sources are in the manifest's order.
	Sources  []PrivateSource `json:"sources"`
	Stats    Stats           `json:"stats"`
	Duration time.Duration   `json:"duration_ns"`
	Warnings []string        `json:"warnings,omitempty"`
}

// PrivateSource is the private part of one source: its size in bytes.
type PrivateSource struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
}

// TotalSize is the sum of the sources' sizes.
func (p *Private) TotalSize() int64 {
	var n int64
	for _, s := range p.Sources {
		n += s.Size
	}
	return n
}

// Check checks that p belongs to m and is well formed.
func (p *Private) Check(m *Manifest) error {
	if p.Version != Version {
		return fmt.Errorf("unsupported private part version %d", p.Version)
	}
	if p.Snapshot != m.ID {
		return fmt.Errorf("private part belongs to snapshot %s", ShortID(p.Snapshot))
	}
	if len(p.Sources) != len(m.Sources) {
		return fmt.Errorf("private part has %d sources, the manifest %d", len(p.Sources), len(m.Sources))
	}
	for i, s := range p.Sources {
		if s.Name != m.Sources[i].Name {
			return fmt.Errorf("private part's source %d is %q, the manifest's %q", i, s.Name, m.Sources[i].Name)
		}
		if s.Size < 0 {
			return fmt.Errorf("source %q has a negative size", s.Name)
		}
	}
	st := p.Stats
	if st.BytesRead < 0 || st.BytesNew < 0 || st.BytesStored < 0 || st.Chunks < 0 || st.ChunksNew < 0 || p.Duration < 0 {
		return errors.New("negative statistics")
	}
	return nil
}

// PackRef is a pack referenced by a snapshot: its SHA-256 (which is also its
// name) and ciphertext size.
type PackRef struct {
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// Name is the pack's object name.
func (p PackRef) Name() string { return PackName(p.SHA256) }

// Ref returns p as an ObjectRef.
func (p PackRef) Ref() ObjectRef { return ObjectRef{Name: p.Name(), Size: p.Size, SHA256: p.SHA256} }

// Stats of one backup.
type Stats struct {
	BytesRead   int64 `json:"bytes_read"`
	BytesNew    int64 `json:"bytes_new"`
	BytesStored int64 `json:"bytes_stored"`
	ChunksNew   int64 `json:"chunks_new"`
	Chunks      int64 `json:"chunks"`
}

// Objects returns every object the snapshot references, manifest excluded.
func (m *Manifest) Objects() []ObjectRef {
	refs := []ObjectRef{m.Catalog}
	refs = append(refs, m.Indexes...)
	for _, p := range m.Packs {
		refs = append(refs, p.Ref())
	}
	return append(refs, m.Private)
}

// PackName is the object name of the pack whose ciphertext hash is sum.
func PackName(sum string) string {
	if len(sum) < 2 {
		return DataPrefix + sum
	}
	return DataPrefix + sum[:2] + "/" + sum
}

// SnapshotName is the object name of the manifest of snapshot id.
func SnapshotName(id string) string { return SnapshotsPrefix + id }

// NewID returns a random 32-byte id in hex.
func NewID() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b[:])
}

// HashHex returns the hex SHA-256 of b.
func HashHex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// ShortID is the first 8 characters of an id, as shown in tables.
func ShortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// validHex reports whether s is n hex digits.
func validHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

// Validate checks the manifest's shape (not its signature).
func (m *Manifest) Validate() error {
	if m.Version != Version {
		return fmt.Errorf("unsupported manifest version %d", m.Version)
	}
	if !validHex(m.ID, 64) {
		return fmt.Errorf("invalid snapshot id")
	}
	if m.ConfigSeq < 1 {
		return fmt.Errorf("invalid config seq")
	}
	seen := make(map[string]bool, len(m.Seen))
	for _, id := range m.Seen {
		if !validHex(id, 64) || id == m.ID || seen[id] {
			return fmt.Errorf("invalid seen snapshot id")
		}
		seen[id] = true
	}
	names := make(map[string]bool, len(m.Sources))
	for _, s := range m.Sources {
		if s.Name == "" || s.Kind == "" || names[s.Name] {
			return fmt.Errorf("invalid source list")
		}
		names[s.Name] = true
	}
	if !validHex(m.Catalog.SHA256, 64) || m.Catalog.Name != CatalogPrefix+m.Catalog.SHA256 {
		return fmt.Errorf("invalid catalog reference")
	}
	if !validHex(m.Private.SHA256, 64) || m.Private.Name != PrivatePrefix+m.Private.SHA256 || m.Private.Size <= 0 {
		return fmt.Errorf("invalid private reference")
	}
	for _, p := range m.Packs {
		if !validHex(p.SHA256, 64) || p.Size <= 0 {
			return fmt.Errorf("invalid pack reference")
		}
	}
	for _, ix := range m.Indexes {
		if !validHex(ix.SHA256, 64) || ix.Name != IndexPrefix+ix.SHA256 {
			return fmt.Errorf("invalid index reference")
		}
	}
	return nil
}

// Package repo is coffer's repository format: the signed config, the
// per-snapshot signed manifest, the encrypted catalog, the encrypted index
// and the pack objects that hold compressed, encrypted chunks.
//
// # Format
//
// doc/design.md specifies the format; this package is its only
// implementation. Object names are:
//
//	config                  signed repository config (public)
//	keys/<sha256>           derived repository secrets, age-encrypted to the recipients
//	data/<xx>/<sha256>      packs: one age file each; the name is the SHA-256 of the ciphertext
//	index/<sha256>          chunk index, age-encrypted to the recipients and the index key
//	catalogs/<sha256>       per-snapshot catalog, age-encrypted to the recipients only
//	snapshots/<id>          signed manifest, written last
//
// Every object is either a valid age file or a signed document, and no name
// reveals anything about the data.
package repo

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/cofferhq/coffer/storage"
)

// Version is the repository format version this code writes and reads.
const Version = 1

// Object name prefixes.
const (
	ConfigName      = "config"
	KeysPrefix      = "keys/"
	DataPrefix      = "data/"
	IndexPrefix     = "index/"
	CatalogPrefix   = "catalogs/"
	SnapshotsPrefix = "snapshots/"
)

// Chunking and packing defaults, recorded in the config so that every
// backup of a repository chunks alike.
const (
	DefaultChunkMin     = 256 << 10
	DefaultChunkMax     = 4 << 20
	DefaultChunkAvgBits = 19 // 512 KiB average
	DefaultPackSize     = 16 << 20
)

// Config is the repository's config object. It is signed with the
// repository's signing key; a backup checks that signature with its own key
// before it trusts the recipients listed here.
type Config struct {
	Version    int       `json:"version"`
	ID         string    `json:"id"`
	Created    time.Time `json:"created"`
	Recipients []string  `json:"recipients"`
	SigningKey string    `json:"signing_key"`
	// ChunkID names how chunk ids are computed: HMAC-SHA256 of the
	// plaintext chunk under a key derived from the signing key.
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

// ChunkerParams configure content-defined chunking (restic's Rabin chunker
// with a polynomial derived from the repository secrets).
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
// exists if and only if its manifest does.
type Manifest struct {
	Version int       `json:"version"`
	ID      string    `json:"id"`
	Repo    string    `json:"repo"`
	Time    time.Time `json:"time"`
	// Incomplete is set when a source left out something it could not
	// read (a folder's unreadable file): the snapshot holds everything
	// else. The skipped paths are in the encrypted catalog.
	Incomplete bool             `json:"incomplete"`
	Host       string           `json:"host"`
	Tags       []string         `json:"tags,omitempty"`
	Sources    []ManifestSource `json:"sources"`
	Catalog    ObjectRef        `json:"catalog"`
	Indexes    []ObjectRef      `json:"indexes,omitempty"`
	Packs      []PackRef        `json:"packs"`
	Stats      Stats            `json:"stats"`
	Duration   time.Duration    `json:"duration_ns"`
}

// ManifestSource is the public part of one source: its name, kind and size.
type ManifestSource struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
	Size int64  `json:"size"`
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

// TotalSize is the sum of the sources' sizes.
func (m *Manifest) TotalSize() int64 {
	var n int64
	for _, s := range m.Sources {
		n += s.Size
	}
	return n
}

// Objects returns every object the snapshot references, manifest excluded.
func (m *Manifest) Objects() []ObjectRef {
	refs := []ObjectRef{m.Catalog}
	refs = append(refs, m.Indexes...)
	for _, p := range m.Packs {
		refs = append(refs, p.Ref())
	}
	return refs
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
	if !validHex(m.Catalog.SHA256, 64) || m.Catalog.Name != CatalogPrefix+m.Catalog.SHA256 {
		return fmt.Errorf("invalid catalog reference")
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

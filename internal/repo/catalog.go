package repo

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"time"
)

// Catalog is the per-snapshot description of every source: the file tree
// with modes, times and owners, each file's chunks with their locations,
// per-file SHA-256 and per-source metadata such as database fingerprints.
//
// It is stored as chunks of its JSON encoding, through the same pipeline
// as file contents, so that tomorrow's catalog of a mostly unchanged tree
// deduplicates against today's; a small CatalogRoot object, encrypted to
// the recipients only, lists those chunks. Only identity holders can read
// either.
type Catalog struct {
	Version  int             `json:"version"`
	Snapshot string          `json:"snapshot"`
	Sources  []SourceCatalog `json:"sources"`
}

// CatalogRoot is the object catalogs/<sha256>: where the catalog's JSON
// encoding is stored, its size and its SHA-256.
type CatalogRoot struct {
	Version  int        `json:"version"`
	Snapshot string     `json:"snapshot"`
	Size     int64      `json:"size"`
	SHA256   string     `json:"sha256"`
	Chunks   []ChunkRef `json:"chunks"`
}

// SourceCatalog is one source inside a catalog.
type SourceCatalog struct {
	Name    string                     `json:"name"`
	Kind    string                     `json:"kind"`
	Meta    map[string]json.RawMessage `json:"meta,omitempty"`
	Entries []Entry                    `json:"entries"`
	// SHA256 is the hash over every entry's path, type and content hash,
	// in order: one value that says "this source, exactly".
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// Entry is one item of a source.
type Entry struct {
	Path    string      `json:"path"`
	Type    string      `json:"type"`
	Mode    fs.FileMode `json:"mode"`
	ModTime time.Time   `json:"mtime"`
	UID     int         `json:"uid,omitempty"`
	GID     int         `json:"gid,omitempty"`
	User    string      `json:"user,omitempty"`
	Group   string      `json:"group,omitempty"`
	Size    int64       `json:"size,omitempty"`
	Link    string      `json:"link,omitempty"`
	SHA256  string      `json:"sha256,omitempty"`
	Chunks  []ChunkRef  `json:"chunks,omitempty"`
}

// ChunkRef locates one chunk: its keyed id and where its (maybe
// compressed) bytes sit in the plaintext of a pack.
type ChunkRef struct {
	ID     ChunkID `json:"id"`
	Pack   string  `json:"p"` // SHA-256 of the pack
	Offset int64   `json:"o"`
	Length int64   `json:"l"`
	Raw    int64   `json:"r"` // plaintext length after decompression
	Zstd   bool    `json:"z,omitempty"`
}

// valid reports whether a reference is well formed: a pack name, and a
// range and length a reader can allocate.
func (c ChunkRef) valid() bool {
	return validHex(c.Pack, 64) && c.Offset >= 0 && c.Length > 0 && c.Length <= maxChunk+1<<20 &&
		c.Raw >= 0 && c.Raw <= maxChunk
}

// ChunkID is the keyed hash of a chunk's plaintext.
type ChunkID [32]byte

func (id ChunkID) String() string { return hex.EncodeToString(id[:]) }

func (id ChunkID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

func (id *ChunkID) UnmarshalText(b []byte) error {
	if len(b) != 64 {
		return fmt.Errorf("invalid chunk id length %d", len(b))
	}
	_, err := hex.Decode(id[:], b)
	return err
}

// Packs returns the SHA-256 of every pack the catalog's chunks use.
func (c *Catalog) Packs() map[string]bool {
	packs := map[string]bool{}
	for _, s := range c.Sources {
		for _, e := range s.Entries {
			for _, ch := range e.Chunks {
				packs[ch.Pack] = true
			}
		}
	}
	return packs
}

// Source returns the named source.
func (c *Catalog) Source(name string) (*SourceCatalog, bool) {
	for i := range c.Sources {
		if c.Sources[i].Name == name {
			return &c.Sources[i], true
		}
	}
	return nil, false
}

// Validate checks what a reader must be able to rely on: chunk references
// point into the pack table and paths are clean and relative.
func (c *Catalog) Validate() error {
	if c.Version != Version {
		return fmt.Errorf("unsupported catalog version %d", c.Version)
	}
	for _, s := range c.Sources {
		for _, e := range s.Entries {
			if err := CheckPath(e.Path); err != nil {
				return fmt.Errorf("source %s: %w", s.Name, err)
			}
			for _, ch := range e.Chunks {
				if !ch.valid() {
					return fmt.Errorf("source %s: %s: invalid chunk reference", s.Name, e.Path)
				}
			}
		}
	}
	return nil
}

// CheckPath refuses any path that could land outside a restore target:
// absolute paths, "..", empty elements and unclean forms.
func CheckPath(p string) error {
	if p == "." {
		return nil
	}
	if p == "" || strings.HasPrefix(p, "/") || path.Clean(p) != p || p == ".." ||
		strings.HasPrefix(p, "../") || strings.Contains(p, "\x00") {
		return fmt.Errorf("unsafe path %q", p)
	}
	for _, el := range strings.Split(p, "/") {
		if el == ".." || el == "." || el == "" {
			return fmt.Errorf("unsafe path %q", p)
		}
	}
	return nil
}

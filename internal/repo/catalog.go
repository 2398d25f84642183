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

// Catalog is the encrypted, per-snapshot description of every source: the
// file tree with modes, times and owners, each file's chunks with their
// locations, per-file SHA-256 and per-source metadata such as database
// fingerprints. Only identity holders can read it.
type Catalog struct {
	Version  int             `json:"version"`
	Snapshot string          `json:"snapshot"`
	Packs    []string        `json:"packs"` // pack SHA-256s; ChunkRef.Pack indexes this
	Sources  []SourceCatalog `json:"sources"`
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
	Pack   int     `json:"p"`
	Offset int64   `json:"o"`
	Length int64   `json:"l"`
	Raw    int64   `json:"r"` // plaintext length after decompression
	Zstd   bool    `json:"z,omitempty"`
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
	for _, p := range c.Packs {
		if !validHex(p, 64) {
			return fmt.Errorf("invalid pack in catalog")
		}
	}
	for _, s := range c.Sources {
		for _, e := range s.Entries {
			if err := CheckPath(e.Path); err != nil {
				return fmt.Errorf("source %s: %w", s.Name, err)
			}
			for _, ch := range e.Chunks {
				if ch.Pack < 0 || ch.Pack >= len(c.Packs) || ch.Offset < 0 || ch.Length <= 0 || ch.Raw < 0 {
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

package repo

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
	"time"
	"unicode/utf8"
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

	rootChunks []ChunkRef // the catalog's own chunks (set by ReadCatalog)
}

// RootChunks returns the chunks that hold the catalog's JSON, as its root
// lists them (only for a catalog read with ReadCatalog).
func (c *Catalog) RootChunks() []ChunkRef { return c.rootChunks }

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

// Entry is one item of a source. Path and Link hold the name's and the
// link target's exact bytes, whatever their encoding; see MarshalJSON for
// how the catalog stores bytes that are not UTF-8.
type Entry struct {
	Path    string
	Type    string
	Mode    fs.FileMode
	ModTime time.Time
	UID     int
	GID     int
	User    string
	Group   string
	Size    int64
	Link    string
	SHA256  string
	Chunks  []ChunkRef
}

// entryJSON is an Entry as the catalog stores it. JSON strings hold only
// UTF-8 (encoding/json writes U+FFFD for anything else), so a path or link
// target that is not valid UTF-8 goes into path_b64 or link_b64 instead
// (standard base64 of the exact bytes). Exactly one of path and path_b64
// is present, and the _b64 form is used only for bytes that are not valid
// UTF-8: every name has exactly one encoding, so two different names can
// never decode to the same one.
type entryJSON struct {
	Path    string      `json:"path,omitempty"`
	PathB64 []byte      `json:"path_b64,omitempty"`
	Type    string      `json:"type"`
	Mode    fs.FileMode `json:"mode"`
	ModTime time.Time   `json:"mtime"`
	UID     int         `json:"uid,omitempty"`
	GID     int         `json:"gid,omitempty"`
	User    string      `json:"user,omitempty"`
	Group   string      `json:"group,omitempty"`
	Size    int64       `json:"size,omitempty"`
	Link    string      `json:"link,omitempty"`
	LinkB64 []byte      `json:"link_b64,omitempty"`
	SHA256  string      `json:"sha256,omitempty"`
	Chunks  []ChunkRef  `json:"chunks,omitempty"`
}

func (e *Entry) wire() entryJSON {
	w := entryJSON{Type: e.Type, Mode: e.Mode, ModTime: e.ModTime, UID: e.UID, GID: e.GID,
		User: e.User, Group: e.Group, Size: e.Size, SHA256: e.SHA256, Chunks: e.Chunks}
	if utf8.ValidString(e.Path) {
		w.Path = e.Path
	} else {
		w.PathB64 = []byte(e.Path)
	}
	if utf8.ValidString(e.Link) {
		w.Link = e.Link
	} else {
		w.LinkB64 = []byte(e.Link)
	}
	return w
}

func (w *entryJSON) entry() (Entry, error) {
	e := Entry{Path: w.Path, Type: w.Type, Mode: w.Mode, ModTime: w.ModTime, UID: w.UID, GID: w.GID,
		User: w.User, Group: w.Group, Size: w.Size, Link: w.Link, SHA256: w.SHA256, Chunks: w.Chunks}
	if w.PathB64 != nil {
		if w.Path != "" {
			return e, fmt.Errorf("entry %q has both path and path_b64", w.Path)
		}
		if utf8.Valid(w.PathB64) {
			return e, fmt.Errorf("entry path_b64 %q is valid UTF-8: it must be stored as path", w.PathB64)
		}
		e.Path = string(w.PathB64)
	}
	if w.LinkB64 != nil {
		if w.Link != "" {
			return e, fmt.Errorf("entry %q has both link and link_b64", e.Path)
		}
		if utf8.Valid(w.LinkB64) {
			return e, fmt.Errorf("entry %q: link_b64 is valid UTF-8: it must be stored as link", e.Path)
		}
		e.Link = string(w.LinkB64)
	}
	return e, nil
}

// MarshalJSON encodes e as the catalog stores it: "path" and "link" when
// they are valid UTF-8, else "path_b64" and "link_b64" (standard base64 of
// the exact bytes).
func (e Entry) MarshalJSON() ([]byte, error) { return json.Marshal(e.wire()) }

// UnmarshalJSON decodes an entry and refuses a non-canonical one (both
// forms of a name, or a _b64 form that holds valid UTF-8).
func (e *Entry) UnmarshalJSON(b []byte) error {
	var w entryJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	var err error
	*e, err = w.entry()
	return err
}

// catalogJSON mirrors Catalog for decoding without a per-entry
// UnmarshalJSON call (which would scan each entry twice more).
type catalogJSON struct {
	Version  int    `json:"version"`
	Snapshot string `json:"snapshot"`
	Sources  []struct {
		Name    string                     `json:"name"`
		Kind    string                     `json:"kind"`
		Meta    map[string]json.RawMessage `json:"meta,omitempty"`
		Entries []entryJSON                `json:"entries"`
		SHA256  string                     `json:"sha256"`
		Size    int64                      `json:"size"`
	} `json:"sources"`
}

// DecodeCatalog decodes a catalog's JSON, names byte for byte.
func DecodeCatalog(b []byte) (*Catalog, error) {
	var w catalogJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, err
	}
	c := &Catalog{Version: w.Version, Snapshot: w.Snapshot, Sources: make([]SourceCatalog, len(w.Sources))}
	for i, ws := range w.Sources {
		s := &c.Sources[i]
		*s = SourceCatalog{Name: ws.Name, Kind: ws.Kind, Meta: ws.Meta, SHA256: ws.SHA256, Size: ws.Size,
			Entries: make([]Entry, len(ws.Entries))}
		for j := range ws.Entries {
			e, err := ws.Entries[j].entry()
			if err != nil {
				return nil, fmt.Errorf("source %q: %w", ws.Name, err)
			}
			s.Entries[j] = e
		}
		w.Sources[i].Entries = nil // hold one source's entries twice at most
	}
	return c, nil
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
				return fmt.Errorf("source %q: %w", s.Name, err)
			}
			for _, ch := range e.Chunks {
				if !ch.valid() {
					return fmt.Errorf("source %q: %q: invalid chunk reference", s.Name, e.Path)
				}
			}
		}
	}
	return nil
}

// HashEntry adds e to a per-source SHA-256: path, type, content hash and
// link target, over their exact bytes (design.md, section 7).
func HashEntry(h io.Writer, e *Entry) {
	io.WriteString(h, e.Path)
	h.Write([]byte{0})
	io.WriteString(h, e.Type)
	h.Write([]byte{0})
	io.WriteString(h, e.SHA256)
	h.Write([]byte{0})
	io.WriteString(h, e.Link)
	h.Write([]byte{'\n'})
}

// Hash recomputes the source's SHA-256 from its entries.
func (s *SourceCatalog) Hash() string {
	h := sha256.New()
	for i := range s.Entries {
		HashEntry(h, &s.Entries[i])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// CheckRestorable reports why the source could not be restored into a
// folder, without writing anything: see CheckEntries. It also checks the
// source's hash over its entries.
func (s *SourceCatalog) CheckRestorable() error {
	if err := CheckEntries(s.Entries); err != nil {
		return fmt.Errorf("source %q would not restore: %w", s.Name, err)
	}
	if got := s.Hash(); got != s.SHA256 {
		return fmt.Errorf("source %q: its entries do not match the source's SHA-256", s.Name)
	}
	return nil
}

// CheckEntries reports the first entry that a folder restore could not
// create exactly: an unsafe path, an unknown type, a path listed twice, an
// entry whose parent is not a folder listed before it (so nothing is ever
// created through a symlink or in a folder the catalog does not describe),
// a symlink without a target, or a file whose chunks do not add up to its
// size. It holds every path; see EntryChecker for what holds less.
func CheckEntries(entries []Entry) error {
	c := NewEntryChecker(true)
	for i := range entries {
		if err := c.Check(&entries[i]); err != nil {
			return err
		}
	}
	return nil
}

// EntryChecker makes CheckEntries' checks one entry at a time, for a
// reader that streams a catalog (CatalogStream). It holds the path of
// every folder (to check that an entry's parent is a folder listed before
// it, and that no folder is listed twice, in any catalog order), and,
// only if asked, the path of every other entry. Without them a file or
// symlink listed twice, or a folder listed after a file of its name, is
// not found here: a folder restore finds it when it creates the second
// (every entry is created with O_EXCL semantics in a fresh staging
// folder, so the second creation fails and nothing is restored).
type EntryChecker struct {
	dirs  map[string]struct{}
	other map[string]struct{} // nil unless every path is held
	root  bool
}

// NewEntryChecker returns a checker; all makes it hold every path, so
// that it finds every path listed twice by itself.
func NewEntryChecker(all bool) *EntryChecker {
	c := &EntryChecker{dirs: map[string]struct{}{}}
	if all {
		c.other = map[string]struct{}{}
	}
	return c
}

// Folders is the number of folders the checker holds.
func (c *EntryChecker) Folders() int { return len(c.dirs) }

// Check checks the next entry of a source.
func (c *EntryChecker) Check(e *Entry) error {
	if err := CheckPath(e.Path); err != nil {
		return err
	}
	switch e.Type {
	case "dir":
	case "file":
		var n int64
		for _, c := range e.Chunks {
			n += c.Raw
		}
		if n != e.Size {
			return fmt.Errorf("%q: its chunks hold %d bytes, the entry says %d", e.Path, n, e.Size)
		}
	case "symlink":
		if e.Link == "" || strings.Contains(e.Link, "\x00") {
			return fmt.Errorf("%q: invalid symlink target %q", e.Path, e.Link)
		}
	default:
		return fmt.Errorf("%q: unknown type %q", e.Path, e.Type)
	}
	if e.Path == "." {
		// The root exists before any entry; it may be listed once, as a
		// folder.
		if e.Type != "dir" {
			return fmt.Errorf("the root is a %s, not a folder", e.Type)
		}
		if c.root {
			return fmt.Errorf("%q is listed twice", e.Path)
		}
		c.root = true
		return nil
	}
	_, dir := c.dirs[e.Path]
	_, other := c.other[e.Path]
	if dir || other {
		return fmt.Errorf("%q is listed twice", e.Path)
	}
	if parent := path.Dir(e.Path); parent != "." {
		if _, ok := c.dirs[parent]; !ok {
			return fmt.Errorf("%q: its folder %q is not a folder listed before it", e.Path, parent)
		}
	}
	if e.Type == "dir" {
		c.dirs[e.Path] = struct{}{}
	} else if c.other != nil {
		c.other[e.Path] = struct{}{}
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

package repo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
)

// CatalogStream reads a snapshot's catalog one entry at a time, so that a
// reader of a catalog of millions of entries holds one entry, not the
// catalog (design.md, sections 7 and 14.2). It makes every check of
// ReadCatalog as the bytes come: each chunk against its keyed id and the
// manifest's packs, each entry's canonical names, path and chunk
// references, each source's SHA-256 and size at the end of its entries,
// and the whole catalog's size and SHA-256 at its end.
//
// Call NextSource for each source and NextEntry for each of its entries;
// NextEntry returns io.EOF once the source's hash and size were checked,
// NextSource io.EOF once the whole catalog was. Any other error is
// final. A catalog of a source order other than coffer's (name, kind and
// meta before the entries) is refused.
type CatalogStream struct {
	name  string // the root object, for errors
	id    string // the manifest's snapshot id
	packs map[string]bool
	in    *stickyReader
	dec   *json.Decoder
	state int
	err   error

	cur            SourceHeader
	sha            string // the source's sha256 as the catalog states it
	size           int64
	hasSHA, hasSz  bool
	h              hash.Hash
	total, entries int64

	rootChunks []ChunkRef // the catalog's own chunks, as its root lists them
}

// RootChunks returns the chunks that hold the catalog's JSON, as its root
// lists them.
func (s *CatalogStream) RootChunks() []ChunkRef { return s.rootChunks }

// SourceHeader is a source of a catalog without its entries.
type SourceHeader struct {
	Name string
	Kind string
	Meta map[string]json.RawMessage
}

const (
	streamSources = iota // between sources
	streamEntries        // inside a source's entries
	streamDone           // the catalog ended and was checked
)

// OpenCatalog opens m's catalog for reading as a stream: it reads and
// checks the catalog root, and the catalog's version and snapshot id.
func (r *Repository) OpenCatalog(ctx context.Context, m *Manifest) (*CatalogStream, error) {
	if len(r.identities) == 0 {
		return nil, ErrNoIdentity
	}
	name := m.Catalog.Name
	ct, err := r.ReadObject(ctx, m.Catalog)
	if err != nil {
		return nil, err
	}
	var root CatalogRoot
	if err := Unseal(ct, &root, r.identities...); err != nil {
		return nil, decryptError(name, err)
	}
	if root.Version != Version {
		return nil, integrity(name, "unsupported catalog version %d", root.Version)
	}
	for _, c := range root.Chunks {
		if !c.valid() {
			return nil, integrity(name, "invalid chunk reference")
		}
	}
	if root.Snapshot != m.ID {
		return nil, integrity(name, "catalog belongs to snapshot %s", ShortID(root.Snapshot))
	}
	packs := make(map[string]bool, len(m.Packs))
	for _, p := range m.Packs {
		packs[p.SHA256] = true
	}
	if root.Size < 0 || root.Size > maxDocument {
		return nil, integrity(name, "catalog size %d out of range", root.Size)
	}
	cr, err := r.NewChunkReader(ctx, m)
	if err != nil {
		return nil, err
	}
	// The catalog is read in order: its windows reach no further than
	// its own chunks, 1 MiB at a time.
	cr.SetWindow(1 << 20)
	cr.Plan(slices.Values(root.Chunks))
	in := &catalogBytes{ctx: ctx, name: name, root: &root, packs: packs, cr: cr, h: sha256.New()}
	s, err := decodeCatalog(in, name, m.ID, packs)
	if err != nil {
		return nil, err
	}
	s.rootChunks = root.Chunks
	return s, nil
}

// decodeCatalog starts decoding the catalog JSON that r yields: name is
// the catalog root's (for errors), id the snapshot's, packs the manifest's
// (nil: not checked, for the fuzz target alone).
func decodeCatalog(r io.Reader, name, id string, packs map[string]bool) (*CatalogStream, error) {
	in := &stickyReader{r: r}
	s := &CatalogStream{name: name, id: id, packs: packs, in: in, dec: json.NewDecoder(in)}
	if err := s.header(); err != nil {
		return nil, s.fail(err)
	}
	return s, nil
}

// stickyReader remembers the error its reader returned.
type stickyReader struct {
	r   io.Reader
	err error
}

func (s *stickyReader) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.r.Read(p)
	if err != nil {
		s.err = err
	}
	return n, err
}

// header reads the catalog up to its sources.
func (s *CatalogStream) header() error {
	if err := s.delim('{'); err != nil {
		return err
	}
	var version int
	var snapshot string
	seen := map[string]bool{}
	for {
		key, err := s.key()
		if err != nil {
			return err
		}
		if key == "" {
			return errors.New("the catalog has no sources")
		}
		if seen[key] {
			return fmt.Errorf("key %q twice", key)
		}
		seen[key] = true
		switch key {
		case "version":
			err = s.dec.Decode(&version)
		case "snapshot":
			err = s.dec.Decode(&snapshot)
		case "sources":
			if !seen["version"] || !seen["snapshot"] {
				return errors.New("the catalog's version and snapshot must come before its sources")
			}
			if version != Version {
				return fmt.Errorf("unsupported catalog version %d", version)
			}
			if snapshot != s.id {
				return &catalogSnapshotError{snapshot}
			}
			return s.delim('[')
		default:
			err = s.skip()
		}
		if err != nil {
			return err
		}
	}
}

type catalogSnapshotError struct{ id string }

func (e *catalogSnapshotError) Error() string {
	return "catalog belongs to snapshot " + ShortID(e.id)
}

// NextSource returns the next source's name, kind and metadata. Entries
// of the previous source not yet read are read and checked first. At the
// end of the catalog it checks the catalog's size and SHA-256 and returns
// io.EOF.
func (s *CatalogStream) NextSource() (*SourceHeader, error) {
	if s.err != nil {
		return nil, s.err
	}
	var e Entry
	for s.state == streamEntries {
		if err := s.NextEntry(&e); err == io.EOF {
			break
		} else if err != nil {
			return nil, err
		}
	}
	if s.state == streamDone {
		return nil, io.EOF
	}
	if !s.dec.More() {
		if err := s.end(); err != nil {
			return nil, s.fail(err)
		}
		s.state = streamDone
		return nil, io.EOF
	}
	if err := s.source(); err != nil {
		return nil, s.fail(err)
	}
	h := s.cur
	return &h, nil
}

// source reads a source's keys up to its entries.
func (s *CatalogStream) source() error {
	if err := s.delim('{'); err != nil {
		return err
	}
	s.cur = SourceHeader{}
	s.sha, s.size, s.hasSHA, s.hasSz = "", 0, false, false
	s.h, s.total, s.entries = sha256.New(), 0, 0
	seen := map[string]bool{}
	for {
		key, err := s.key()
		if err != nil {
			return err
		}
		if seen[key] {
			return fmt.Errorf("source %q: key %q twice", s.cur.Name, key)
		}
		seen[key] = true
		switch key {
		case "":
			// A source without entries: it has none.
			s.state = streamEntries
			return s.checkSource(true)
		case "name":
			err = s.dec.Decode(&s.cur.Name)
		case "kind":
			err = s.dec.Decode(&s.cur.Kind)
		case "meta":
			err = s.dec.Decode(&s.cur.Meta)
		case "sha256", "size":
			err = s.sourceSum(key)
		case "entries":
			if err := s.delim('['); err != nil {
				return err
			}
			s.state = streamEntries
			return nil
		default:
			err = s.skip()
		}
		if err != nil {
			return err
		}
	}
}

func (s *CatalogStream) sourceSum(key string) error {
	if key == "sha256" {
		s.hasSHA = true
		return s.dec.Decode(&s.sha)
	}
	s.hasSz = true
	return s.dec.Decode(&s.size)
}

// NextEntry decodes the current source's next entry into e and checks
// it. After the last one it reads the rest of the source, checks its
// SHA-256 and size, and returns io.EOF.
func (s *CatalogStream) NextEntry(e *Entry) error {
	if s.err != nil {
		return s.err
	}
	if s.state != streamEntries {
		return io.EOF
	}
	if !s.dec.More() {
		if err := s.delim(']'); err != nil {
			return s.fail(err)
		}
		if err := s.checkSource(false); err != nil {
			return s.fail(err)
		}
		s.state = streamSources
		return io.EOF
	}
	var w entryJSON
	if err := s.dec.Decode(&w); err != nil {
		return s.fail(err)
	}
	var err error
	if *e, err = w.entry(); err != nil {
		return s.fail(fmt.Errorf("source %q: %w", s.cur.Name, err))
	}
	if err := CheckPath(e.Path); err != nil {
		return s.fail(fmt.Errorf("source %q: %w", s.cur.Name, err))
	}
	for _, ch := range e.Chunks {
		if !ch.valid() {
			return s.fail(fmt.Errorf("source %q: %q: invalid chunk reference", s.cur.Name, e.Path))
		}
		if s.packs != nil && !s.packs[ch.Pack] {
			return s.fail(&catalogPackError{ch.Pack})
		}
	}
	HashEntry(s.h, e)
	s.total += e.Size
	s.entries++
	return nil
}

type catalogPackError struct{ pack string }

func (e *catalogPackError) Error() string {
	return fmt.Sprintf("references pack %s that the manifest does not list", ShortID(e.pack))
}

// checkSource reads the source's keys after its entries (unless ended,
// when its closing brace was read) and checks its hash and size.
func (s *CatalogStream) checkSource(ended bool) error {
	for !ended {
		key, err := s.key()
		if err != nil {
			return err
		}
		switch key {
		case "":
			ended = true
			continue
		case "sha256", "size":
			if (key == "sha256" && s.hasSHA) || (key == "size" && s.hasSz) {
				return fmt.Errorf("source %q: key %q twice", s.cur.Name, key)
			}
			err = s.sourceSum(key)
		case "name", "kind", "meta", "entries":
			return fmt.Errorf("source %q: %q after its entries", s.cur.Name, key)
		default:
			err = s.skip()
		}
		if err != nil {
			return err
		}
	}
	if got := hex.EncodeToString(s.h.Sum(nil)); got != s.sha {
		return fmt.Errorf("source %q: its entries do not match the source's SHA-256", s.cur.Name)
	}
	if s.total != s.size {
		return fmt.Errorf("source %q: its entries hold %d bytes, the source says %d", s.cur.Name, s.total, s.size)
	}
	return nil
}

// end reads the catalog after its sources, and checks that nothing
// follows it and that its bytes match the root.
func (s *CatalogStream) end() error {
	if err := s.delim(']'); err != nil {
		return err
	}
	for {
		key, err := s.key()
		if err != nil {
			return err
		}
		switch key {
		case "":
			if _, err := s.dec.Token(); err != io.EOF {
				if err == nil {
					err = errors.New("data after the catalog")
				}
				return err
			}
			return nil
		case "version", "snapshot", "sources":
			return fmt.Errorf("key %q twice", key)
		}
		if err := s.skip(); err != nil {
			return err
		}
	}
}

// fail makes err final. A catalog whose bytes do not match its root is
// reported as such, whatever the decoder made of them: the rest of the
// bytes are read and checked first.
func (s *CatalogStream) fail(err error) error {
	if s.err != nil {
		return s.err
	}
	if s.in.err == nil {
		io.Copy(io.Discard, s.in) // the decoder's complaint: do the bytes match the root?
	}
	if rerr := s.in.err; rerr != nil && rerr != io.EOF {
		s.err = rerr // the bytes are damaged or could not be read
		return rerr
	}
	var se *catalogSnapshotError
	var pe *catalogPackError
	switch {
	case errors.As(err, &se), errors.As(err, &pe):
		s.err = integrity(s.name, "%v", err)
	default:
		s.err = integrity(s.name, "decode catalog: %v", err)
	}
	return s.err
}

// Close releases the stream (nothing to release today; it reads nothing
// more).
func (s *CatalogStream) Close() error { return nil }

// delim reads the delimiter d.
func (s *CatalogStream) delim(d json.Delim) error {
	t, err := s.dec.Token()
	if err != nil {
		return err
	}
	if got, ok := t.(json.Delim); !ok || got != d {
		return fmt.Errorf("want %q, found %v", d, t)
	}
	return nil
}

// key reads an object's next key, or its closing brace ("").
func (s *CatalogStream) key() (string, error) {
	t, err := s.dec.Token()
	if err != nil {
		return "", err
	}
	switch t := t.(type) {
	case string:
		return t, nil
	case json.Delim:
		if t == '}' {
			return "", nil
		}
	}
	return "", fmt.Errorf("want a key, found %v", t)
}

// skip reads and drops one value.
func (s *CatalogStream) skip() error {
	var v json.RawMessage
	return s.dec.Decode(&v)
}

// catalogBytes is the catalog's JSON as its root lists it: each chunk read
// and checked as section 5.1 says, its pack listed in the manifest, and at
// the end the whole against the root's size and SHA-256.
type catalogBytes struct {
	ctx   context.Context
	name  string
	root  *CatalogRoot
	packs map[string]bool
	cr    *ChunkReader
	h     hash.Hash
	next  int
	n     int64
	buf   []byte
	err   error
}

func (c *catalogBytes) Read(p []byte) (int, error) {
	for len(c.buf) == 0 {
		if c.err != nil {
			return 0, c.err
		}
		c.err = c.fill()
	}
	n := copy(p, c.buf)
	c.buf = c.buf[n:]
	return n, nil
}

// fill reads the next chunk, or at the end checks the whole and returns
// io.EOF.
func (c *catalogBytes) fill() error {
	if c.next == len(c.root.Chunks) {
		if c.n != c.root.Size || hex.EncodeToString(c.h.Sum(nil)) != c.root.SHA256 {
			return integrity(c.name, "catalog contents do not match the catalog root")
		}
		return io.EOF
	}
	ch := c.root.Chunks[c.next]
	c.next++
	if !c.packs[ch.Pack] {
		return integrity(c.name, "catalog chunk in pack %s that the manifest does not list", ShortID(ch.Pack))
	}
	if c.n+ch.Raw > c.root.Size {
		return integrity(c.name, "catalog chunks exceed the catalog's size")
	}
	data, err := c.cr.Read(c.ctx, ch.Pack, ch)
	if err != nil {
		return err
	}
	c.h.Write(data)
	c.n += int64(len(data))
	c.buf = data
	return nil
}

package repo

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"

	"filippo.io/age"

	"github.com/cofferhq/coffer/storage"
)

// This file is the format's write side: what a snapshot writer reads to
// deduplicate (the index) and how it stores what describes a snapshot (the
// catalog, sealed objects, the manifest).

// ErrManifestWrite is wrapped when writing a manifest failed: on S3 a write
// whose answer was lost may still have landed, so the snapshot may exist.
var ErrManifestWrite = errors.New("write manifest")

// CatalogEncoder writes a Catalog as JSON one entry at a time, so that a
// catalog of millions of entries is never whole in memory. Call Source for
// each source, Entry for each of its entries, then Close.
type CatalogEncoder struct {
	bw      *bufio.Writer
	sources int
	entries int
	open    bool
	h       hash.Hash
	size    int64
	cur     ManifestSource
	done    []ManifestSource
	sizes   []PrivateSource
	buf     []byte // an entry's JSON
}

// NewCatalogEncoder starts the catalog of snapshot id on w.
func NewCatalogEncoder(w io.Writer, id string) *CatalogEncoder {
	c := &CatalogEncoder{bw: bufio.NewWriterSize(w, 256<<10)}
	fmt.Fprintf(c.bw, `{"version":%d,"snapshot":%q,"sources":[`, Version, id)
	return c
}

func (c *CatalogEncoder) put(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = c.bw.Write(b)
	return err
}

// Source starts a source; meta is its metadata (may be empty).
func (c *CatalogEncoder) Source(name, kind string, meta map[string]json.RawMessage) error {
	if err := c.endSource(); err != nil {
		return err
	}
	if c.sources > 0 {
		c.bw.WriteByte(',')
	}
	c.sources++
	c.bw.WriteString(`{"name":`)
	c.put(name)
	c.bw.WriteString(`,"kind":`)
	c.put(kind)
	if len(meta) > 0 {
		c.bw.WriteString(`,"meta":`)
		if err := c.put(meta); err != nil {
			return err
		}
	}
	c.bw.WriteString(`,"entries":[`)
	c.open, c.entries, c.h, c.size = true, 0, sha256.New(), 0
	c.cur = ManifestSource{Name: name, Kind: kind}
	return nil
}

// Entry adds an entry to the current source.
func (c *CatalogEncoder) Entry(e *Entry) error {
	HashEntry(c.h, e)
	c.size += e.Size
	if c.entries > 0 {
		c.bw.WriteByte(',')
	}
	c.entries++
	w := e.wire()
	var err error
	if c.buf, err = appendEntryJSON(c.buf[:0], &w); err != nil {
		return fmt.Errorf("json: %w", err)
	}
	_, err = c.bw.Write(c.buf)
	return err
}

func (c *CatalogEncoder) endSource() error {
	if !c.open {
		return nil
	}
	_, err := fmt.Fprintf(c.bw, `],"sha256":%q,"size":%d}`, hex.EncodeToString(c.h.Sum(nil)), c.size)
	c.done = append(c.done, c.cur)
	c.sizes = append(c.sizes, PrivateSource{Name: c.cur.Name, Size: c.size})
	c.open = false
	return err
}

// Close ends the catalog and returns the public part of each source (for
// the manifest) and each source's size (for the private part).
func (c *CatalogEncoder) Close() ([]ManifestSource, []PrivateSource, error) {
	if err := c.endSource(); err != nil {
		return nil, nil, err
	}
	c.bw.WriteString("]}")
	return c.done, c.sizes, c.bw.Flush()
}

// PutSealed encrypts v to recipients and stores it under prefix and the
// SHA-256 of its ciphertext.
func PutSealed(ctx context.Context, st storage.Store, prefix string, v any, recipients ...age.Recipient) (ObjectRef, error) {
	ct, err := Seal(v, recipients...)
	if err != nil {
		return ObjectRef{}, err
	}
	return putContent(ctx, st, prefix, ct)
}

// PutIndex stores an Index of packs, sealed to recipients, under
// IndexPrefix. It is PutSealed for an Index, streamed pack by pack
// (IndexWriter), so a large index is held only as its ciphertext.
func PutIndex(ctx context.Context, st storage.Store, packs []IndexPack, recipients ...age.Recipient) (ObjectRef, error) {
	var ct bytes.Buffer
	w, err := NewIndexWriter(&ct, recipients...)
	if err != nil {
		return ObjectRef{}, err
	}
	for i := range packs {
		if err := w.Add(&packs[i]); err != nil {
			return ObjectRef{}, err
		}
	}
	if err := w.Close(); err != nil {
		return ObjectRef{}, err
	}
	return putContent(ctx, st, IndexPrefix, ct.Bytes())
}

// IndexWriter seals an Index to dst a pack at a time, as it is learnt: a
// backup adds each pack once it is stored, and never holds the list of
// every chunk it stored. The document is the one Seal makes of the Index
// (the same JSON, compressed in other frames, padded by the same rule).
type IndexWriter struct {
	sw  *sealWriter
	n   int
	err error
}

// NewIndexWriter starts an index sealed to recipients.
func NewIndexWriter(dst io.Writer, recipients ...age.Recipient) (*IndexWriter, error) {
	sw, err := newSealWriter(dst, recipients...)
	if err != nil {
		return nil, err
	}
	// Byte for byte json.Marshal(Index{Version, packs}).
	if _, err := fmt.Fprintf(sw, `{"version":%d,"packs":[`, Version); err != nil {
		return nil, err
	}
	return &IndexWriter{sw: sw}, nil
}

// Add appends a pack.
func (w *IndexWriter) Add(ip *IndexPack) error {
	if w.err != nil {
		return w.err
	}
	if w.n > 0 {
		if _, w.err = io.WriteString(w.sw, ","); w.err != nil {
			return w.err
		}
	}
	w.n++
	w.err = writeIndexPack(w.sw, ip)
	return w.err
}

// Len is the number of packs added.
func (w *IndexWriter) Len() int { return w.n }

// Close ends the index.
func (w *IndexWriter) Close() error {
	if w.err != nil {
		return w.err
	}
	if _, err := io.WriteString(w.sw, "]}"); err != nil {
		return err
	}
	return w.sw.Close()
}

// writeIndexPack writes what json.Marshal makes of ip, its chunk list a
// piece at a time (a pack of tiny chunks lists 90,000 of them).
func writeIndexPack(w io.Writer, ip *IndexPack) error {
	sum, err := json.Marshal(ip.SHA256)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(w, `{"sha256":%s,"size":%d,"chunks":`, sum, ip.Size); err != nil {
		return err
	}
	if _, err := writeChunkList(w, ip.Chunks); err != nil {
		return err
	}
	if !ip.ModTime.IsZero() {
		t, err := json.Marshal(ip.ModTime)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, `,"mtime":%s`, t); err != nil {
			return err
		}
	}
	_, err = io.WriteString(w, "}")
	return err
}

// putContent stores ct under prefix and the SHA-256 of ct.
func putContent(ctx context.Context, st storage.Store, prefix string, ct []byte) (ObjectRef, error) {
	sum := HashHex(ct)
	ref := ObjectRef{Name: prefix + sum, Size: int64(len(ct)), SHA256: sum}
	if err := PutObject(ctx, st, ref.Name, ct); err != nil {
		return ref, err
	}
	return ref, nil
}

// WriteManifest signs m and writes it if no manifest of its id exists: from
// then on the snapshot exists. Errors wrap ErrManifestWrite.
func WriteManifest(ctx context.Context, st storage.Store, m *Manifest, s Signer) error {
	doc, err := Sign(KindManifest, m, s)
	if err != nil {
		return err
	}
	// A retried write whose first attempt landed finds its own manifest:
	// PutObject counts that as success.
	if err := PutObject(ctx, st, SnapshotName(m.ID), doc); err != nil {
		return fmt.Errorf("%w: %w", ErrManifestWrite, err)
	}
	return nil
}

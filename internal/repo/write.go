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
	"strings"

	"filippo.io/age"

	"github.com/cofferhq/coffer/storage"
)

// This file is the format's write side: what a snapshot writer reads to
// deduplicate (the index) and how it stores what describes a snapshot (the
// catalog, sealed objects, the manifest).

// ErrManifestWrite is wrapped when writing a manifest failed: on S3 a write
// whose answer was lost may still have landed, so the snapshot may exist.
var ErrManifestWrite = errors.New("write manifest")

// LoadIndex reads every index object that id can decrypt and returns the
// packs they describe that are present in st at the recorded size, and the
// sizes of all packs present. Damaged index objects and those id cannot
// read are skipped: verify reports them, and nothing deduplicates against
// them.
func LoadIndex(ctx context.Context, st storage.Store, id age.Identity) (packs []IndexPack, present map[string]int64, err error) {
	present = map[string]int64{}
	err = st.List(ctx, DataPrefix, func(oi storage.ObjectInfo) error {
		present[oi.Name[strings.LastIndexByte(oi.Name, '/')+1:]] = oi.Size
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list packs: %w", err)
	}
	var names []string
	err = st.List(ctx, IndexPrefix, func(oi storage.ObjectInfo) error {
		names = append(names, oi.Name)
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list index: %w", err)
	}
	for _, name := range names {
		rc, err := st.Open(ctx, name, 0, -1)
		if err != nil {
			return nil, nil, fmt.Errorf("read %s: %w", name, err)
		}
		ct, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil, nil, fmt.Errorf("read %s: %w", name, err)
		}
		if HashHex(ct) != strings.TrimPrefix(name, IndexPrefix) {
			continue // damaged
		}
		var ix Index
		if err := Unseal(ct, &ix, id); err != nil {
			continue // not ours to read, or damaged
		}
		for _, ip := range ix.Packs {
			if size, ok := present[ip.SHA256]; ok && size == ip.Size {
				packs = append(packs, ip)
			}
		}
	}
	return packs, present, nil
}

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
	return c.put(e.wire())
}

func (c *CatalogEncoder) endSource() error {
	if !c.open {
		return nil
	}
	_, err := fmt.Fprintf(c.bw, `],"sha256":%q,"size":%d}`, hex.EncodeToString(c.h.Sum(nil)), c.size)
	c.cur.Size = c.size
	c.done = append(c.done, c.cur)
	c.open = false
	return err
}

// Close ends the catalog and returns the public part of each source, for
// the manifest.
func (c *CatalogEncoder) Close() ([]ManifestSource, error) {
	if err := c.endSource(); err != nil {
		return nil, err
	}
	c.bw.WriteString("]}")
	return c.done, c.bw.Flush()
}

// PutSealed encrypts v to recipients and stores it under prefix and the
// SHA-256 of its ciphertext.
func PutSealed(ctx context.Context, st storage.Store, prefix string, v any, recipients ...age.Recipient) (ObjectRef, error) {
	ct, err := Seal(v, recipients...)
	if err != nil {
		return ObjectRef{}, err
	}
	sum := HashHex(ct)
	ref := ObjectRef{Name: prefix + sum, Size: int64(len(ct)), SHA256: sum}
	if err := st.Put(ctx, ref.Name, bytes.NewReader(ct), ref.Size, storage.PutOptions{}); err != nil {
		return ref, fmt.Errorf("write %s: %w", ref.Name, err)
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
	name := SnapshotName(m.ID)
	if err := st.Put(ctx, name, bytes.NewReader(doc), int64(len(doc)), storage.PutOptions{IfNotExists: true}); err != nil {
		// A retried write whose first attempt landed finds its own
		// manifest: that is success.
		if !errors.Is(err, storage.ErrExists) || !sameObject(ctx, st, name, doc) {
			return fmt.Errorf("%w: %w", ErrManifestWrite, err)
		}
	}
	return nil
}

func sameObject(ctx context.Context, st storage.Store, name string, want []byte) bool {
	rc, err := st.Open(ctx, name, 0, -1)
	if err != nil {
		return false
	}
	defer rc.Close()
	got, err := io.ReadAll(io.LimitReader(rc, int64(len(want))+1))
	return err == nil && bytes.Equal(got, want)
}

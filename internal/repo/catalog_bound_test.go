package repo_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/cofferhq/coffer/backup"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/internal/testing/testrepo"
	"github.com/cofferhq/coffer/source"
	dirkind "github.com/cofferhq/coffer/source/dir"
	"github.com/cofferhq/coffer/storage"
)

// TestReadCatalogBoundedByRootSize: a catalog root that claims a tiny
// catalog but lists the same large chunk many times (a forgery the holder
// of the signing key can make) is refused as soon as its chunks exceed the
// size it claims, before they are all read. ReadCatalog's memory is bounded
// by root.Size, as design.md says ("size bytes, allocated up front"), not
// by the number of references.
func TestReadCatalogBoundedByRootSize(t *testing.T) {
	ctx := context.Background()
	tr := testrepo.New(t)
	dir := t.TempDir()
	big := make([]byte, 8<<20)
	rand.Read(big)
	if err := os.WriteFile(filepath.Join(dir, "big.bin"), big, 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := backup.Run(ctx, backup.Options{Repo: tr.Host(t), Signing: tr.Signing,
		Sources: []source.Source{&dirkind.Source{SourceName: "docs", Path: dir}}})
	if err != nil {
		t.Fatal(err)
	}
	m := res.Manifest
	op := tr.Operator(t)
	cat, err := op.ReadCatalog(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	var largest repo.ChunkRef
	for _, e := range cat.Sources[0].Entries {
		for _, c := range e.Chunks {
			if c.Raw > largest.Raw {
				largest = c
			}
		}
	}

	// Forge a root (as the holder of the signing key can): same size and
	// hash claims, but the largest data chunk listed many times first.
	ct, err := op.ReadObject(ctx, m.Catalog)
	if err != nil {
		t.Fatal(err)
	}
	var root repo.CatalogRoot
	if err := repo.Unseal(ct, &root, tr.Identities...); err != nil {
		t.Fatal(err)
	}
	n := int((128<<20)/largest.Raw) + 1
	var chunks []repo.ChunkRef
	for range n {
		chunks = append(chunks, largest)
	}
	root.Chunks = append(chunks, root.Chunks...)
	recips, _ := op.Recipients()
	ct, err = repo.Seal(&root, recips...)
	if err != nil {
		t.Fatal(err)
	}
	sum := repo.HashHex(ct)
	m.Catalog = repo.ObjectRef{Name: repo.CatalogPrefix + sum, Size: int64(len(ct)), SHA256: sum}
	if err := tr.Store.Put(ctx, m.Catalog.Name, bytes.NewReader(ct), int64(len(ct)), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	doc, err := repo.Sign(repo.KindManifest, m, tr.Signing)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Store.Put(ctx, repo.SnapshotName(m.ID), bytes.NewReader(doc), int64(len(doc)), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	m2, err := op.ReadManifest(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err = op.ReadCatalog(ctx, m2)
	runtime.ReadMemStats(&after)
	if err == nil {
		t.Fatal("forged root accepted")
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("root claims %d bytes; lists %d refs to a %d-byte chunk; ReadCatalog allocated %d MiB before failing: %v",
		root.Size, n, largest.Raw, alloc>>20, err)
	if alloc > 48<<20 {
		t.Errorf("ReadCatalog allocated %d MiB for a root that claims %d bytes: it should stop once the chunks exceed the claimed size", alloc>>20, root.Size)
	}
}

package backup

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/internal/testing/testrepo"
	"github.com/cofferhq/coffer/source"
	"github.com/cofferhq/coffer/source/dir"
)

// TestCacheRefusesResizedPack: a pack that a bucket writer replaced with
// bytes of another size is not in the loaded index, so the change cache
// does not reuse its chunks: the next backup stores the file again rather
// than adopting the pack at its new size (which no snapshot could restore).
func TestCacheRefusesResizedPack(t *testing.T) {
	ctx := context.Background()
	tr := testrepo.New(t)
	src := t.TempDir()
	data := make([]byte, 1<<20)
	rand.Read(data)
	if err := os.WriteFile(filepath.Join(src, "invoice.pdf"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	run := func() *Result {
		t.Helper()
		res, err := Run(ctx, Options{Repo: tr.Host(t), Signing: tr.Signing, CacheDir: cache,
			Sources: []source.Source{&dir.Source{SourceName: "docs", Path: src}}})
		if err != nil {
			t.Fatalf("backup: %v", err)
		}
		return res
	}
	m1 := run().Manifest

	// Find the data pack that holds the file and replace it with
	// different-size bytes (any bucket writer can).
	snap, err := tr.Operator(t).ReadCatalog(ctx, m1)
	if err != nil {
		t.Fatal(err)
	}
	var pack string
	for _, e := range snap.Sources[0].Entries {
		if e.Path == "invoice.pdf" {
			pack = e.Chunks[0].Pack
		}
	}
	p := filepath.Join(tr.Dir, "repo", filepath.FromSlash(repo.PackName(pack)))
	if err := os.WriteFile(p, []byte("replaced by a bucket writer"), 0o600); err != nil {
		t.Fatal(err)
	}

	res2 := run()
	for _, pr := range res2.Manifest.Packs {
		if pr.SHA256 == pack {
			t.Errorf("second snapshot references the replaced pack %s with size %d (skipped %d bytes via the change cache); "+
				"its index entry said a different size, so the file should have been read and stored again",
				repo.ShortID(pack), pr.Size, res2.BytesSkipped)
		}
	}
}

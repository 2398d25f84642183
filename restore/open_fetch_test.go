package restore

import (
	"context"
	"io"
	"testing"

	"github.com/cofferhq/coffer/internal/repo"
)

// TestOpenFetchesPacksOnce: a file read whole through Open (a database's
// dump restored with one job, cat) fetches each pack about once. Open
// reads with two chunk readers that take every other chunk; each fetched
// whole windows, so both fetched the same bytes, and windows reaching
// forward from each chunk fetched again the chunks a backup had stored
// before it (2.1x the packs; now 1.01-1.18x).
func TestOpenFetchesPacksOnce(t *testing.T) {
	ctx := context.Background()
	cs, op, m, _ := packedTree(t, 1, 24<<20, 24<<20+1, 6<<20)
	var packs int64
	for _, p := range m.Packs {
		packs += p.Size
	}
	s, err := OpenSource(ctx, op, m, "docs")
	if err != nil {
		t.Fatal(err)
	}
	var path string
	if err := s.each(ctx, func(e *repo.Entry) error {
		if e.Type == "file" {
			path = e.Path
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	cs.Reset()
	rc, err := s.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, rc)
	rc.Close()
	if err != nil || n != 24<<20 {
		t.Fatalf("read %d bytes: %v", n, err)
	}
	fetched := cs.Bytes(repo.DataPrefix)
	ratio := float64(fetched) / float64(packs)
	t.Logf("%d packs, %d bytes; reading the file fetched %d bytes: %.3fx", len(m.Packs), packs, fetched, ratio)
	if ratio > 1.3 {
		t.Errorf("reading the file fetched %.2fx the packs' bytes, want at most 1.3x", ratio)
	}
}

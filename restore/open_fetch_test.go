package restore

import (
	"context"
	"io"
	"testing"

	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/internal/testing/testutil"
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
	path := onlyFile(t, s)
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

// TestOpenHeldWindows reads a file through Open and samples the live
// heap: the reader keeps at most fileBudget of windows. With 16 MiB (the
// default budget) the peak was 18.6-20.4 MiB, and a database restore's
// parallel runs, each one a reader, put the peak RSS of a 256 MB restore
// over 80 MiB; with 8 MiB it is 13.8-13.9.
func TestOpenHeldWindows(t *testing.T) {
	ctx := context.Background()
	_, op, m, _ := packedTree(t, 1, 24<<20, 24<<20+1, 16<<20)
	s, err := OpenSource(ctx, op, m, "docs")
	if err != nil {
		t.Fatal(err)
	}
	path := onlyFile(t, s)
	live := func() int64 { return int64(testutil.LiveHeap()) }
	base := live()
	rc, err := s.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var peak int64
	buf := make([]byte, 256<<10)
	for {
		_, err := io.ReadFull(rc, buf)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		peak = max(peak, live()-base)
	}
	t.Logf("peak live heap over the file read: %.1f MiB", float64(peak)/(1<<20))
	if peak > 17<<20 {
		t.Errorf("reading the file held %.1f MiB, want at most 17 (8 MiB of windows, the chunks in flight)", float64(peak)/(1<<20))
	}
}

// onlyFile returns the path of the one file in s.
func onlyFile(t *testing.T, s *Source) string {
	t.Helper()
	var path string
	if err := s.each(context.Background(), func(e *repo.Entry) error {
		if e.Type == "file" {
			path = e.Path
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return path
}

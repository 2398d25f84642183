package retention

import (
	"context"
	"testing"
)

// TestRepackTinyChunksStable: a pack of tiny chunks (files of a few
// bytes, each its own chunk) is not a repack candidate while every chunk
// is in use. Its trailer lists each chunk in about 36 bytes (version 2;
// about 110 in version 1), so counting only the chunks' bytes as used
// made such a pack look mostly unused: every prune copied it into a new
// pack that looked the same, with a new repack record and index, and the
// space it said a later prune would free never was.
func TestRepackTinyChunksStable(t *testing.T) {
	e := newEnv(t)
	dir := e.tree(500, 8)
	e.backupCached(dir, t.TempDir())
	res, err := Prune(context.Background(), e.full(), PruneOptions{Now: timeNowPlusHour(), GraceSet: true, Repack: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Repack.Candidates != 0 || res.Repack.Record != "" {
		t.Fatalf("prune of a repository whose every chunk is in use repacked: %+v", res.Repack)
	}
}

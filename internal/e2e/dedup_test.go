package e2e

import (
	"testing"

	"github.com/cofferhq/coffer/backup"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/internal/testing/fixture"
	"github.com/cofferhq/coffer/restore"
)

// checkUnchanged asserts that a backup of an unchanged tree has under 1% new
// bytes and stored nothing but the changed chunks of its catalog. Stored
// bytes are held under 1% of the first backup's only for the
// acceptance-size tree (~250 MiB stored); the reduced tree of -short and
// -race stores ~40 MiB, where a few catalog chunks are already ~0.4%.
func checkUnchanged(t *testing.T, label string, first, m *repo.Private) {
	t.Helper()
	s, f := m.Stats, first.Stats
	newPct := 100 * float64(s.BytesNew) / float64(f.BytesRead)
	storedPct := 100 * float64(s.BytesStored) / float64(f.BytesStored)
	t.Logf("dedup %s: bytes new %d (%.4f%% of %s read first), bytes stored %d (%.4f%% of %s stored first)",
		label, s.BytesNew, newPct, mib(f.BytesRead), s.BytesStored, storedPct, mib(f.BytesStored))
	if newPct >= 1 {
		t.Errorf("dedup %s: %.3f%% new bytes; want under 1%%", label, newPct)
	}
	if storedPct >= 1 && f.BytesStored >= 100<<20 {
		t.Errorf("dedup %s: %.3f%% stored; want under 1%%", label, storedPct)
	}
	// Nothing but the new catalog was stored: no new data chunk. The
	// catalog itself goes through the chunk pipeline, so it may add a pack
	// with its changed chunks (and an index for it).
	if s.BytesNew != 0 || s.ChunksNew != 0 {
		t.Errorf("dedup %s: %d new bytes in %d new data chunks; want none", label, s.BytesNew, s.ChunksNew)
	}
}

// checkAdded asserts that the new bytes of a backup after AddFiles are close
// to the added bytes (random, incompressible files).
func checkAdded(t *testing.T, label string, added int64, m *repo.Private) {
	t.Helper()
	s := m.Stats
	ratio := float64(s.BytesNew) / float64(added)
	storedRatio := float64(s.BytesStored) / float64(added)
	t.Logf("dedup %s: added %d bytes; bytes new %d (%.4fx), bytes stored %d (%.4fx)",
		label, added, s.BytesNew, ratio, s.BytesStored, storedRatio)
	if ratio < 0.9 || ratio > 1.3 {
		t.Errorf("dedup %s: bytes new %.3fx the added bytes, want 0.9x..1.3x", label, ratio)
	}
}

// testDedup runs on the round-trip repository: backups of the unchanged
// tree with and without the change cache (the latter proves chunk-level
// dedup: every byte is read again and none is new), then 1% new files,
// once with the cache and once without, and finally restores the last
// snapshot, which mixes old and new packs.
func testDedup(t *testing.T, e *env, dir string, st fixture.TreeStats, firstRes *backup.Result) {
	first := firstRes.Private
	t.Run("unchanged/cache", func(t *testing.T) {
		res := e.backupDir(t, dir, true)
		checkUnchanged(t, "unchanged, change cache", first, res.Private)
		if res.BytesSkipped != st.Bytes {
			t.Errorf("change cache skipped %d bytes, want all %d", res.BytesSkipped, st.Bytes)
		}
	})
	t.Run("unchanged/nocache", func(t *testing.T) {
		res := e.backupDir(t, dir, false)
		checkUnchanged(t, "unchanged, no cache", first, res.Private)
		if got := res.Private.Stats.BytesRead; got != st.Bytes || res.BytesSkipped != 0 {
			t.Errorf("without the cache: read %d, skipped %d; want every byte (%d) read", got, res.BytesSkipped, st.Bytes)
		}
		if res.Private.Stats.ChunksNew != 0 {
			t.Errorf("%d new chunks, want 0", res.Private.Stats.ChunksNew)
		}
	})
	t.Run("added/cache", func(t *testing.T) {
		added, err := fixture.AddFiles(dir, 0.01, 1)
		if err != nil {
			t.Fatal(err)
		}
		res := e.backupDir(t, dir, true)
		checkAdded(t, "1% added, change cache", added, res.Private)
		if want := st.Bytes; res.BytesSkipped != want {
			t.Errorf("change cache skipped %d bytes, want the old tree's %d", res.BytesSkipped, want)
		}
	})
	t.Run("added/nocache", func(t *testing.T) {
		added, err := fixture.AddFiles(dir, 0.01, 2)
		if err != nil {
			t.Fatal(err)
		}
		res := e.backupDir(t, dir, false)
		checkAdded(t, "1% added, no cache", added, res.Private)
		target := t.TempDir() + "/restored"
		if _, err := e.restoreTo(t, res.Manifest.ID, target, restore.DirOptions{}); err != nil {
			t.Fatalf("restore: %v", err)
		}
		compareTrees(t, dir, target)
	})
}

package retention

import (
	"context"
	"testing"

	"github.com/cofferhq/coffer/internal/repo"
)

// TestCacheRefusesChangedPack: the change cache places an unchanged
// file's chunks in the packs it names once each pack is found in the
// loaded index, without looking each chunk up. A pack that is gone, or
// replaced by a repack record, is not there: the next backup reads the
// file again, names no such pack, and its snapshot restores byte for
// byte.
func TestCacheRefusesChangedPack(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(e *env, m *repo.Manifest) map[string]bool // the packs no snapshot may name now
	}{
		{"removed", func(e *env, m *repo.Manifest) map[string]bool {
			gone := map[string]bool{}
			for _, p := range m.Packs {
				if err := e.tr.Store.Delete(context.Background(), p.Name()); err != nil {
					e.t.Fatal(err)
				}
				gone[p.SHA256] = true
			}
			return gone
		}},
		{"repacked", func(e *env, m *repo.Manifest) map[string]bool {
			gone := map[string]bool{}
			for _, p := range e.moveAll(m).Replaces {
				gone[p.SHA256] = true
			}
			return gone
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			dir := e.tree(5, 300_000)
			cache := t.TempDir()
			m1 := e.backupCached(dir, cache).Manifest
			if again := e.backupCached(dir, cache); again.BytesSkipped == 0 {
				t.Fatalf("the unchanged second backup read every file (skipped %d bytes): the cache is not used", again.BytesSkipped)
			}
			gone := tc.change(e, m1)
			res := e.backupCached(dir, cache)
			if res.BytesSkipped != 0 {
				t.Fatalf("backup after the packs changed skipped %d bytes through the change cache, want 0 (every file read)",
					res.BytesSkipped)
			}
			for _, p := range res.Manifest.Packs {
				if gone[p.SHA256] {
					t.Fatalf("backup after the packs changed names pack %s", repo.ShortID(p.SHA256))
				}
			}
			e.restoreEqual(e.tr.Operator(t), res.Manifest, dir)
		})
	}
}

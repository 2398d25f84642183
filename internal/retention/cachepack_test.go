package retention

import (
	"bytes"
	"context"
	"testing"

	"github.com/cofferhq/coffer/backup"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/storage"
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
		// Bytes of the same size: the ledger sees the pack changed since
		// this host stored it, and drops it.
		{"overwritten", func(e *env, m *repo.Manifest) map[string]bool {
			return e.overwritePacks(m)
		}},
		// Then a repair names it damaged.
		{"damaged", func(e *env, m *repo.Manifest) map[string]bool {
			gone := e.overwritePacks(m)
			res, err := backup.Repair(context.Background(), backup.RepairOptions{Repo: e.full(), Signing: e.tr.Signing})
			if err != nil {
				e.t.Fatal(err)
			}
			if len(res.Record.Damaged) != len(gone) {
				e.t.Fatalf("repair named %d packs damaged, want %d", len(res.Record.Damaged), len(gone))
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

// overwritePacks replaces m's packs with as many bytes of garbage.
func (e *env) overwritePacks(m *repo.Manifest) map[string]bool {
	e.t.Helper()
	gone := map[string]bool{}
	for _, p := range m.Packs {
		oi, err := e.tr.Store.Stat(context.Background(), p.Name())
		if err != nil {
			e.t.Fatal(err)
		}
		junk := bytes.Repeat([]byte{0x5a}, int(oi.Size))
		if err := e.tr.Store.Put(context.Background(), p.Name(), bytes.NewReader(junk), oi.Size, storage.PutOptions{}); err != nil {
			e.t.Fatal(err)
		}
		gone[p.SHA256] = true
	}
	return gone
}

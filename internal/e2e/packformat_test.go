package e2e

import (
	"bytes"
	"io"
	"path/filepath"
	"testing"

	"filippo.io/age"

	"github.com/cofferhq/coffer/backup"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/internal/testing/fixture"
	"github.com/cofferhq/coffer/restore"
)

// TestOldPackTrailers: a repository whose first snapshot was written with
// version 1 pack trailers (JSON, CPAK0001) and whose second, after new
// files, with version 2 (design.md section 5). Both snapshots verify with
// --decrypt and restore, and a repair, which reads every pack's trailer,
// finds every pack of both formats good.
func TestOldPackTrailers(t *testing.T) {
	e := localEnv(t)
	dir, _ := tree(t, fixture.TreeSpec{Files: 300, BigFileSize: 1 << 20, Seed: 21})
	undo := repo.WriteV1PackTrailers()
	first := e.backupDir(t, dir, true).Manifest
	undo()
	old := filepath.Join(t.TempDir(), "first")
	if _, err := e.restoreTo(t, first.ID, old, restore.DirOptions{}); err != nil {
		t.Fatalf("restore %s: %v", repo.ShortID(first.ID), err)
	}
	compareTrees(t, dir, old)
	if _, err := fixture.AddFiles(dir, 0.05, 4); err != nil {
		t.Fatal(err)
	}
	second := e.backupDir(t, dir, true).Manifest

	magics := map[string]int{}
	for _, m := range []*repo.Manifest{first, second} {
		for _, p := range m.Packs {
			ct := readObject(t, e.store, repo.PackName(p.SHA256))
			r, err := age.Decrypt(bytes.NewReader(ct), e.ids...)
			if err != nil {
				t.Fatal(err)
			}
			plain, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			magics[string(plain[len(plain)-8:])]++
		}
	}
	if magics["CPAK0001"] == 0 || magics["CPAK0002"] == 0 {
		t.Fatalf("pack magics %v: want packs of both versions", magics)
	}

	rep, err := restore.Verify(ctxT(t), e.openRestore(t), nil, restore.Decrypt)
	if err != nil {
		t.Fatal(err)
	}
	wantClean(t, rep)

	for _, m := range []*repo.Manifest{first, second} {
		target := filepath.Join(t.TempDir(), "restored")
		if _, err := e.restoreTo(t, m.ID, target, restore.DirOptions{}); err != nil {
			t.Fatalf("restore %s: %v", repo.ShortID(m.ID), err)
		}
		want := dir
		if m == first {
			want = old
		}
		compareTrees(t, want, target)
	}

	rr, err := repo.Open(ctxT(t), e.store, repo.OpenOptions{Owner: e.owner.Public(), Signing: e.signing, Identities: e.ids})
	if err != nil {
		t.Fatal(err)
	}
	res, err := backup.Repair(ctxT(t), backup.RepairOptions{Repo: rr, Signing: e.signing})
	if err != nil {
		t.Fatalf("repair: %v", err)
	}
	packs := len(listObjects(t, e.store, "data/"))
	if res.Good != packs || len(res.Record.Damaged) != 0 {
		t.Fatalf("repair: %d good of %d packs, damaged %v", res.Good, packs, res.Record.Damaged)
	}
}

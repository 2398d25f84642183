package e2e

import (
	"bytes"
	"slices"
	"testing"

	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/internal/testing/fixture"
	"github.com/cofferhq/coffer/restore"
)

// TestE2EIntegrityS3 runs the main damage cases against a real S3 server:
// a flipped byte, a truncated and a deleted pack, and an edited manifest
// are each named by verify and make a restore fail, leaving the target
// as it was.
func TestE2EIntegrityS3(t *testing.T) {
	t.Parallel()
	e := s3Env(t)
	dir, _ := tree(t, fixture.TreeSpec{Files: 60, BigFileSize: 6 << 20, Seed: 21})
	m := e.backupDir(t, dir, false).Manifest
	d := &damageEnv{env: e, dir: dir, first: m, second: m}
	st := e.store
	wantClean(t, d.verify(t, restore.Decrypt))

	packs := slices.Clone(m.Packs)
	slices.SortFunc(packs, func(a, b repo.PackRef) int { return int(b.Size - a.Size) })
	pack := packs[0].Name()
	manifest := repo.SnapshotName(m.ID)
	orig := readObject(t, st, pack)
	origManifest := readObject(t, st, manifest)

	cases := []struct {
		name   string
		damage func(t *testing.T)
		object string
		depth  restore.Depth
	}{
		{"flip a byte of a pack", func(t *testing.T) {
			replaceObject(t, st, pack, flipByte(orig, len(orig)/2))
		}, pack, restore.Read},
		{"truncate a pack", func(t *testing.T) {
			replaceObject(t, st, pack, orig[:len(orig)/3])
		}, pack, restore.Quick},
		{"delete a pack", func(t *testing.T) {
			deleteObject(t, st, pack)
		}, pack, restore.Quick},
		{"edit a manifest field", func(t *testing.T) {
			edited := bytes.Replace(origManifest, []byte(`"kind": "dir"`), []byte(`"kind": "dix"`), 1)
			if bytes.Equal(edited, origManifest) {
				t.Fatal("the manifest has no source kind to edit")
			}
			replaceObject(t, st, manifest, edited)
		}, manifest, restore.Quick},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.damage(t)
			defer func() {
				replaceObject(t, st, pack, orig)
				replaceObject(t, st, manifest, origManifest)
			}()
			rep := d.verify(t, c.depth)
			if !slices.ContainsFunc(rep.Problems, func(p restore.Problem) bool { return p.Object == c.object }) {
				t.Fatalf("verify (%s) problems %+v do not name %s", depthName(c.depth), rep.Problems, c.object)
			}
			d.wantRestoreFails(t, m.ID)
		})
	}
	wantClean(t, d.verify(t, restore.Decrypt))
}

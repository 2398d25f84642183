package retention

import (
	"context"
	"testing"

	"github.com/cofferhq/coffer/backup"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/source"
	dirkind "github.com/cofferhq/coffer/source/dir"
)

// TestBackupSeesForgetBeforeItStarts: a snapshot forgotten (by another
// process) after coffer backup opened the repository but before the
// backup announced itself is not deduplicated against. Prune treats it as
// expired as soon as no backup that started before its tombstone runs, so
// a backup that still used its packs lost them: seen as 4 missing packs
// after TestPruneWhileBackupRuns (the backup read the tombstones when the
// command opened the repository, before the forget, and kept that view).
func TestBackupSeesForgetBeforeItStarts(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	docs := e.tree(3, 300<<10)
	s1 := e.backup(nil, false, "a="+docs)
	e.backup(nil, false, "a="+e.tree(3, 300<<10))

	// coffer backup opens the repository and reads the tombstones (the
	// vanished check) before the backup runs.
	r := e.tr.Host(t)
	if _, _, err := r.Forgotten(ctx); err != nil {
		t.Fatal(err)
	}
	// Meanwhile another host forgets s1.
	if _, err := Forget(ctx, e.tr.Host(t), Policy{Last: 1}, ForgetOptions{}); err != nil {
		t.Fatal(err)
	}
	res, err := backup.Run(ctx, backup.Options{Repo: r, Signing: e.tr.Signing,
		Sources: []source.Source{&dirkind.Source{SourceName: "a", Path: docs}}})
	if err != nil {
		t.Fatal(err)
	}
	old := map[string]bool{}
	for _, p := range s1.Packs {
		old[p.SHA256] = true
	}
	for _, p := range res.Manifest.Packs {
		if old[p.SHA256] {
			t.Fatalf("the backup deduplicated against pack %s of snapshot %s, forgotten before it started", repo.ShortID(p.SHA256), repo.ShortID(s1.ID))
		}
	}
	// And so prune, once the backup ended, leaves a repository that verifies.
	pruneNow(t, e.tr.Host(t))
	e.mustVerify()
}

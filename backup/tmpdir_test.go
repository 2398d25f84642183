package backup_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/backup"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/internal/testing/testrepo"
	"github.com/cofferhq/coffer/source"
	dirkind "github.com/cofferhq/coffer/source/dir"
	"github.com/cofferhq/coffer/storage"
)

// TestBackupTempDirMissing: a backup reads the repository's indexes
// through temporary files. When TMPDIR cannot hold one, the backup fails
// saying so (it named only a file under /nonexistent before) and publishes
// nothing.
func TestBackupTempDirMissing(t *testing.T) {
	ctx := context.Background()
	tr := testrepo.New(t)
	data := t.TempDir()
	if err := os.WriteFile(filepath.Join(data, "a"), []byte("invoice 1"), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func() error {
		_, err := backup.Run(ctx, backup.Options{Repo: tr.Host(t), Signing: tr.Signing,
			Sources: []source.Source{&dirkind.Source{SourceName: "docs", Path: data}}})
		return err
	}
	if err := run(); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TMPDIR", filepath.Join(t.TempDir(), "gone"))
	err := run()
	if err == nil || !strings.Contains(err.Error(), "(TMPDIR)") {
		t.Fatalf("backup with a missing TMPDIR: %v, want an error naming TMPDIR", err)
	}
	n := 0
	if err := tr.Store.List(ctx, repo.SnapshotsPrefix, func(storage.ObjectInfo) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("%d snapshots, want the first one only", n)
	}
}

package backup_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/cofferhq/coffer/backup"
	"github.com/cofferhq/coffer/internal/testing/testrepo"
	"github.com/cofferhq/coffer/restore"
	"github.com/cofferhq/coffer/source"
	dirkind "github.com/cofferhq/coffer/source/dir"
	"github.com/cofferhq/coffer/storage"
)

// createOnly is a store as a bucket policy that enforces conditional
// writes and grants no delete leaves it to the backup host: every write
// must be create-if-absent, nothing is ever replaced or deleted.
type createOnly struct {
	storage.Store
	t *testing.T
}

func (s createOnly) Put(ctx context.Context, name string, r io.Reader, size int64, opts storage.PutOptions) error {
	if !opts.IfNotExists {
		s.t.Errorf("write of %s without If-None-Match", name)
		return errors.New("access denied: conditional writes required")
	}
	return s.Store.Put(ctx, name, r, size, opts)
}

func (s createOnly) Delete(ctx context.Context, name string) error {
	s.t.Errorf("delete of %s", name)
	return errors.New("access denied: no delete")
}

// TestBackupCreateOnly backs up twice (the second run deduplicates) through
// a store that only allows create-if-absent writes: every object a backup
// writes is written so, and the snapshots verify.
func TestBackupCreateOnly(t *testing.T) {
	ctx := context.Background()
	tr := testrepo.New(t)
	dir := t.TempDir()
	for i, name := range []string{"a.py", "b.py", "c.sql"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(name+string(rune('0'+i))), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	host := tr.Host(t)
	host.Store = createOnly{Store: host.Store, t: t}
	for run := range 2 {
		if run == 1 {
			os.WriteFile(filepath.Join(dir, "d.py"), []byte("new"), 0o644)
		}
		_, err := backup.Run(ctx, backup.Options{Repo: host, Signing: tr.Signing,
			Sources: []source.Source{&dirkind.Source{SourceName: "dags", Path: dir}}})
		if err != nil {
			t.Fatalf("backup %d: %v", run+1, err)
		}
	}
	rep, err := restore.Verify(ctx, tr.Operator(t), nil, restore.Decrypt)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("verify: %+v", rep.Problems)
	}
	if ids, _ := tr.Operator(t).SnapshotIDs(ctx); len(ids) != 2 {
		t.Fatalf("%d snapshots, want 2", len(ids))
	}
}

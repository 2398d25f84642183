package restore

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cofferhq/coffer/backup"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/internal/testing/testrepo"
	"github.com/cofferhq/coffer/source"
	dirkind "github.com/cofferhq/coffer/source/dir"
)

// reviewSnapshot backs up dir into a fresh repository and returns the
// source "docs" opened by a restore operator.
func reviewSnapshot(t *testing.T, dir string) *Source {
	t.Helper()
	tr := testrepo.New(t)
	res, err := backup.Run(context.Background(), backup.Options{Repo: tr.Host(t), Signing: tr.Signing,
		Sources: []source.Source{&dirkind.Source{SourceName: "docs", Path: dir}}})
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	snap, err := Load(context.Background(), tr.Operator(t), res.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	src, err := snap.Source("docs")
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// TestRestoreRefusesEntryBelowSymlink: a catalog (signed by the backup
// host, i.e. one a thief of that host can produce) with a symlink "a" ->
// OUTSIDE and a second symlink "a/evil" must not make RestoreDir create
// OUTSIDE/evil through "a": every entry's parent must be a folder entry
// listed before it.
func TestRestoreRefusesEntryBelowSymlink(t *testing.T) {
	outside := t.TempDir()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f.txt"), []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "a")); err != nil {
		t.Fatal(err)
	}
	src := reviewSnapshot(t, dir)
	// The hostile part: one more entry below the symlink, as a forged (but
	// validly signed) catalog would hold. Paths pass repo.CheckPath.
	evil := repo.Entry{Path: "a/evil", Type: "symlink", Link: "/etc/shadow", ModTime: time.Now()}
	if err := repo.CheckPath(evil.Path); err != nil {
		t.Fatal(err)
	}
	src.sc.Entries = append(src.sc.Entries, evil)

	target := filepath.Join(t.TempDir(), "restored")
	_, err := RestoreDir(context.Background(), src, target, DirOptions{})
	if _, lerr := os.Lstat(filepath.Join(outside, "evil")); lerr == nil {
		t.Fatalf("restore created %s outside the target (restore error: %v)", filepath.Join(outside, "evil"), err)
	}
	if err == nil {
		t.Fatal("restore of an entry below a symlink succeeded")
	}
}

// TestFileReaderCancelled: a file reader whose context is cancelled before
// the dispatcher hands out the chunk Read waits for returns
// context.Canceled instead of blocking, so a cancelled pg_restore, cat or
// SQLite restore cannot hang.
func TestFileReaderCancelled(t *testing.T) {
	dir := t.TempDir()
	big := make([]byte, 6<<20) // random: several chunks, not compressible
	rand.Read(big)
	if err := os.WriteFile(filepath.Join(dir, "big.bin"), big, 0o600); err != nil {
		t.Fatal(err)
	}
	src := reviewSnapshot(t, dir)
	e, _ := src.Entry("big.bin")
	if len(e.Chunks) < 2 {
		t.Fatalf("want a multi-chunk file, got %d chunks", len(e.Chunks))
	}
	for i := 0; i < 50; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		rc, err := src.Open(ctx, "big.bin")
		if err != nil {
			continue // refusing a cancelled context up front is fine
		}
		done := make(chan error, 1)
		go func() {
			_, err := io.Copy(io.Discard, rc)
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil {
				t.Fatalf("try %d: read of a cancelled reader succeeded", i)
			}
			if !errors.Is(err, context.Canceled) {
				t.Logf("try %d: err %v", i, err)
			}
		case <-time.After(5 * time.Second):
			rc.Close()
			t.Fatalf("try %d: Read blocked for 5s after its context was cancelled", i)
		}
		rc.Close()
	}
}

package backup_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/backup"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/internal/testing/benchutil"
	"github.com/cofferhq/coffer/source"
	"github.com/cofferhq/coffer/source/dir"
	"github.com/cofferhq/coffer/storage"
	"golang.org/x/sys/unix"
)

// tempFiles counts this process's open files in dir: packs and this
// backup's index wait in unlinked temporary files, which show in
// /proc/self/fd as "<dir>/coffer-pack-... (deleted)".
func tempFiles(t *testing.T, dir string) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	n := 0
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err == nil && strings.HasPrefix(target, filepath.Join(dir, "coffer-pack-")) {
			n++
		}
	}
	return n
}

// failingReader returns data, then an error.
type failingReader struct{ r io.Reader }

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, errors.New("disk went away")
	}
	return n, err
}

// TestPackTempFilesClosed checks that a backup leaves no temporary pack
// file open, after a backup that stored several packs and after one whose
// source failed with packs in flight: a daemon runs backups for months,
// and an open unlinked file keeps its disk space.
func TestPackTempFilesClosed(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	data, err := io.ReadAll(benchutil.Stream(40<<20, 3, false)) // incompressible: 3 packs
	if err != nil {
		t.Fatal(err)
	}
	if n := tempFiles(t, tmp); n != 0 {
		t.Fatalf("%d pack files open before the backup", n)
	}
	res := runBackup(t, filepath.Join(t.TempDir(), "ok"), streamSource{strings.NewReader(string(data))})
	if got := len(res.Manifest.Packs); got < 3 {
		t.Fatalf("%d packs stored, want at least 3", got)
	}
	if n := tempFiles(t, tmp); n != 0 {
		t.Fatalf("%d pack files left open after a backup", n)
	}
	r, sk, _ := benchRepo(t, filepath.Join(t.TempDir(), "fail"))
	_, err = backup.Run(context.Background(), backup.Options{Repo: r, Signing: sk,
		Sources: []source.Source{streamSource{&failingReader{strings.NewReader(string(data))}}}})
	if err == nil || !strings.Contains(err.Error(), "disk went away") {
		t.Fatalf("backup of a failing source: %v, want its error", err)
	}
	if n := tempFiles(t, tmp); n != 0 {
		t.Fatalf("%d pack files left open after a failed backup", n)
	}
}

// TestFullTempDirNamed: when the temporary files a backup writes its packs
// into cannot grow (TMPDIR full), the backup fails with an error that
// names the temporary file, not the source file being read. The folder
// source takes any *fs.PathError from WriteFile for a read error of its
// file, and the pack file's write error was one: a full TMPDIR was
// reported as `read "/data/big": no space left on device`. The file size
// limit (RLIMIT_FSIZE) gives the kernel's EFBIG on the same write, which
// ENOSPC takes (checked by hand on a 2 MB tmpfs).
func TestFullTempDirNamed(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	r, sk, st := benchRepo(t, filepath.Join(t.TempDir(), "repo"))
	srcDir := t.TempDir()
	data, err := io.ReadAll(benchutil.Stream(8<<20, 3, false)) // incompressible
	if err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(srcDir, "big")
	if err := os.WriteFile(big, data, 0o600); err != nil {
		t.Fatal(err)
	}
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	lim := old
	lim.Cur = 1 << 20 // the pack file stops at 1 MiB; no other file of the backup is written first
	if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &lim); err != nil {
		t.Fatal(err)
	}
	_, err = backup.Run(context.Background(), backup.Options{Repo: r, Signing: sk,
		Sources: []source.Source{&dir.Source{SourceName: "docs", Path: srcDir}}})
	if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	if err == nil {
		t.Fatal("backup succeeded with a pack file that cannot grow")
	}
	if strings.Contains(err.Error(), big) || !strings.Contains(err.Error(), "temporary") {
		t.Fatalf("backup error %q: want it to name the temporary pack file, not the source file", err)
	}
	n := 0
	if err := st.List(context.Background(), repo.SnapshotsPrefix, func(storage.ObjectInfo) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d snapshots published by a failed backup", n)
	}
}

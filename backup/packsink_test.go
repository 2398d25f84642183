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
	"github.com/cofferhq/coffer/internal/testing/benchutil"
	"github.com/cofferhq/coffer/source"
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

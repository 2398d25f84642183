package restore

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cofferhq/coffer/backup"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/internal/testing/testrepo"
	"github.com/cofferhq/coffer/source"
	dirkind "github.com/cofferhq/coffer/source/dir"
	"github.com/cofferhq/coffer/storage"
)

// entriesSource is a source that writes the given entries (what any code
// on the backup host, a thief of its key included, can make a backup
// store). Files hold their path as content.
type entriesSource []source.Entry

func (s entriesSource) Name() string { return "docs" }
func (s entriesSource) Kind() string { return "dir" }
func (s entriesSource) Backup(ctx context.Context, w source.Writer) error {
	for _, e := range s {
		var err error
		if e.Type == source.TypeFile {
			err = w.WriteFile(ctx, e, strings.NewReader(e.Path))
		} else {
			err = w.WriteEntry(ctx, e)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func snapshotOf(t *testing.T, src source.Source) *Source {
	t.Helper()
	tr := testrepo.New(t)
	res, err := backup.Run(context.Background(), backup.Options{Repo: tr.Host(t), Signing: tr.Signing,
		Sources: []source.Source{src}})
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	snap, err := Load(context.Background(), tr.Operator(t), res.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	s, err := snap.Source(src.Name())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (to mount a tmpfs or to chown); CI runs as root")
	}
}

// mountTmpfs mounts a tmpfs on dir until the test ends.
func mountTmpfs(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=4m"); err != nil {
		t.Skipf("cannot mount a tmpfs on %s: %v", dir, err)
	}
	// Unmount wherever the mount ended up (it moves with a renamed
	// parent): never leave one behind.
	root := filepath.Dir(dir)
	for strings.Count(root, "/") > 2 && !strings.HasPrefix(filepath.Base(root), "Test") {
		root = filepath.Dir(root)
	}
	t.Cleanup(func() {
		b, err := os.ReadFile("/proc/self/mountinfo")
		if err != nil {
			t.Error(err)
			return
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], root+"/")) {
				if err := unix.Unmount(f[4], unix.MNT_DETACH); err != nil {
					t.Errorf("unmount %s: %v", f[4], err)
				}
			}
		}
	})
}

func smallTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"a.txt", "sub/b.txt"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("content of "+f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestRestoreTargetSymlink: a target that is a symlink is refused as such,
// with or without force, and neither the link nor what it points to is
// touched.
func TestRestoreTargetSymlink(t *testing.T) {
	src := reviewSnapshot(t, smallTree(t))
	elsewhere := t.TempDir()
	if err := os.WriteFile(filepath.Join(elsewhere, "keep.txt"), []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(elsewhere, target); err != nil {
		t.Fatal(err)
	}
	for _, force := range []bool{false, true} {
		_, err := RestoreDir(context.Background(), src, target, DirOptions{Force: force})
		if !errors.Is(err, ErrTargetSymlink) {
			t.Fatalf("force=%v: err = %v, want ErrTargetSymlink", force, err)
		}
		if !strings.Contains(err.Error(), "target is a symlink: ") || !strings.Contains(err.Error(), elsewhere) {
			t.Errorf("error %q does not say the target is a symlink and where it points", err)
		}
		if l, err := os.Readlink(target); err != nil || l != elsewhere {
			t.Fatalf("the link changed: %q, %v", l, err)
		}
		if b, err := os.ReadFile(filepath.Join(elsewhere, "keep.txt")); err != nil || string(b) != "keep" {
			t.Fatalf("the folder the link points to changed: %q, %v", b, err)
		}
	}
}

// TestRestoreForceRefusesMount: a forced restore over a folder that holds
// a mount point is refused before anything is created or moved, and the
// mounted file system keeps its files. A target that is itself a mount
// point is refused too.
func TestRestoreForceRefusesMount(t *testing.T) {
	needRoot(t)
	src := reviewSnapshot(t, smallTree(t))
	parent := t.TempDir()
	target := filepath.Join(parent, "target")
	mnt := filepath.Join(target, "data", "mnt")
	mountTmpfs(t, mnt)
	if err := os.WriteFile(filepath.Join(mnt, "precious.txt"), []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := RestoreDir(context.Background(), src, target, DirOptions{Force: true})
	if !errors.Is(err, ErrTargetMount) || !strings.Contains(err.Error(), `"`+mnt+`" is mounted inside`) {
		t.Fatalf("err = %v, want ErrTargetMount naming %s", err, mnt)
	}
	if b, err := os.ReadFile(filepath.Join(mnt, "precious.txt")); err != nil || string(b) != "precious" {
		t.Fatalf("the mounted file system lost its file: %q, %v", b, err)
	}
	if des, _ := os.ReadDir(parent); len(des) != 1 {
		t.Fatalf("the restore left %d entries beside the target, want only the target", len(des))
	}

	// The target itself a mount point (empty): refused, not a rename
	// that fails half way.
	mp := filepath.Join(t.TempDir(), "mp")
	mountTmpfs(t, mp)
	_, err = RestoreDir(context.Background(), src, mp, DirOptions{})
	if !errors.Is(err, ErrTargetMount) || !strings.Contains(err.Error(), "is itself a mount point") {
		t.Fatalf("restore into a mount point: err = %v, want ErrTargetMount", err)
	}
}

// TestRemoveTreeStopsAtMounts: removing a replaced tree never crosses into
// another file system, even when the mount appeared after the checks.
func TestRemoveTreeStopsAtMounts(t *testing.T) {
	needRoot(t)
	parent := t.TempDir()
	old := filepath.Join(parent, "old")
	mnt := filepath.Join(old, "a", "mnt")
	mountTmpfs(t, mnt)
	for _, f := range []string{filepath.Join(old, "a", "x.txt"), filepath.Join(old, "y.txt"), filepath.Join(mnt, "precious.txt")} {
		if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pfd, err := unix.Open(parent, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pfd)
	kept, err := removeTree(pfd, "old")
	if err != nil {
		t.Fatal(err)
	}
	if len(kept) != 1 || kept[0] != "a/mnt" {
		t.Fatalf("kept %q, want [a/mnt]", kept)
	}
	if _, err := os.Stat(filepath.Join(mnt, "precious.txt")); err != nil {
		t.Fatalf("the mounted file system lost its file: %v", err)
	}
	for _, gone := range []string{filepath.Join(old, "a", "x.txt"), filepath.Join(old, "y.txt")} {
		if _, err := os.Lstat(gone); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s was not removed: %v", gone, err)
		}
	}
}

// swapStore runs hook before the first pack read once armed: then the
// restore has created every folder and at most one file.
type swapStore struct {
	storage.Store
	hook func() bool // reports whether it did its work
	done bool
}

func (s *swapStore) Stat(ctx context.Context, name string) (storage.ObjectInfo, error) {
	if !s.done && strings.HasPrefix(name, repo.DataPrefix) {
		s.done = s.hook()
	}
	return s.Store.Stat(ctx, name)
}

// TestRestoreParentSwappedForSymlink: a folder of the staging tree swapped
// for a symlink to another folder while the restore runs does not make
// the restore write there: it fails with ErrPathSwapped, and the other
// folder stays empty.
func TestRestoreParentSwappedForSymlink(t *testing.T) {
	for _, fallback := range []bool{false, true} {
		t.Run(map[bool]string{false: "openat2", true: "no-openat2"}[fallback], func(t *testing.T) {
			if fallback {
				noOpenat2.Store(true)
				defer noOpenat2.Store(false)
			}
			ctx := context.Background()
			tr := testrepo.New(t)
			res, err := backup.Run(ctx, backup.Options{Repo: tr.Host(t), Signing: tr.Signing,
				Sources: []source.Source{&dirkind.Source{SourceName: "docs", Path: smallTree(t)}}})
			if err != nil {
				t.Fatal(err)
			}
			outside := t.TempDir()
			parent := t.TempDir()
			target := filepath.Join(parent, "target")
			st := &swapStore{Store: tr.Store}
			st.hook = func() bool {
				subs, _ := filepath.Glob(filepath.Join(parent, ".coffer-restore-*", "sub"))
				if len(subs) != 1 {
					return false
				}
				if err := os.Rename(subs[0], subs[0]+".moved"); err != nil {
					t.Error(err)
				}
				if err := os.Symlink(outside, subs[0]); err != nil {
					t.Error(err)
				}
				return true
			}
			r, err := repo.Open(ctx, st, repo.OpenOptions{Owner: tr.Owner.Public(), Identities: tr.Identities})
			if err != nil {
				t.Fatal(err)
			}
			snap, err := Load(ctx, r, res.Manifest)
			if err != nil {
				t.Fatal(err)
			}
			src, err := snap.Source("docs")
			if err != nil {
				t.Fatal(err)
			}
			_, err = RestoreDir(ctx, src, target, DirOptions{Workers: 1})
			if !st.done {
				t.Fatal("the swap did not happen")
			}
			if !errors.Is(err, ErrPathSwapped) || !strings.Contains(err.Error(), `create "sub/b.txt"`) {
				t.Fatalf("err = %v, want ErrPathSwapped for sub/b.txt", err)
			}
			if des, _ := os.ReadDir(outside); len(des) != 0 {
				t.Fatalf("the restore wrote %s outside the target", des[0].Name())
			}
			if _, err := os.Lstat(target); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("target exists after a failed restore: %v", err)
			}
		})
	}
}

// TestRestoreOwnerAndSetuid: without PreserveOwner a restored setuid or
// setgid file loses those bits and belongs to the restoring user, the
// sticky bit stays; with it (as root) owners and bits come back.
func TestRestoreOwnerAndSetuid(t *testing.T) {
	mt := time.Unix(1_700_000_000, 0)
	src := snapshotOf(t, entriesSource{
		{Path: ".", Type: source.TypeDir, Mode: 0o755, ModTime: mt},
		{Path: "suid", Type: source.TypeFile, Mode: 0o755 | fs.ModeSetuid, ModTime: mt, UID: 0, GID: 0},
		{Path: "sgid", Type: source.TypeFile, Mode: 0o755 | fs.ModeSetgid, ModTime: mt, UID: 4242, GID: 4242},
		{Path: "tmp", Type: source.TypeDir, Mode: 0o777 | fs.ModeSticky | fs.ModeSetgid, ModTime: mt, UID: 4242, GID: 4242},
	})
	check := func(target, name string, wantMode fs.FileMode, wantUID int) {
		t.Helper()
		fi, err := os.Lstat(filepath.Join(target, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky); got != wantMode {
			t.Errorf("%s: mode %v, want %v", name, got, wantMode)
		}
		if uid := int(fi.Sys().(*syscall.Stat_t).Uid); uid != wantUID {
			t.Errorf("%s: owner %d, want %d", name, uid, wantUID)
		}
	}
	target := filepath.Join(t.TempDir(), "plain")
	res, err := RestoreDir(context.Background(), src, target, DirOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.OwnersRestored {
		t.Error("OwnersRestored without PreserveOwner")
	}
	me := os.Geteuid()
	check(target, "suid", 0o755, me)
	check(target, "sgid", 0o755, me)
	check(target, "tmp", 0o777|fs.ModeSticky, me)

	if me != 0 {
		t.Skip("restoring owners needs root; CI runs as root")
	}
	target = filepath.Join(t.TempDir(), "owners")
	if res, err = RestoreDir(context.Background(), src, target, DirOptions{PreserveOwner: true}); err != nil {
		t.Fatal(err)
	}
	if !res.OwnersRestored {
		t.Error("OwnersRestored is false with PreserveOwner as root")
	}
	check(target, "suid", 0o755|fs.ModeSetuid, 0)
	check(target, "sgid", 0o755|fs.ModeSetgid, 4242)
	check(target, "tmp", 0o777|fs.ModeSticky|fs.ModeSetgid, 4242)
}

// TestRestoreNonUTF8Names: names and link targets that are not UTF-8
// come back byte for byte, two of them in one folder included.
func TestRestoreNonUTF8Names(t *testing.T) {
	dir := t.TempDir()
	names := []string{"a\xff.txt", "a\xfe.txt", "\xe9t\xe9", "ok-ü.txt"}
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("file "+n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "d\x80"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "d\x80", "in\x81side"), []byte("inside"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("target-\xff", filepath.Join(dir, "link\xfe")); err != nil {
		t.Fatal(err)
	}
	src := reviewSnapshot(t, dir)
	if err := src.Catalog().CheckRestorable(); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(t.TempDir(), "out")
	if _, err := RestoreDir(context.Background(), src, target, DirOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, n := range append(names, "d\x80/in\x81side") {
		want, _ := os.ReadFile(filepath.Join(dir, n))
		got, err := os.ReadFile(filepath.Join(target, n))
		if err != nil || string(got) != string(want) {
			t.Errorf("%q: got %q, %v; want %q", n, got, err, want)
		}
	}
	if l, err := os.Readlink(filepath.Join(target, "link\xfe")); err != nil || l != "target-\xff" {
		t.Errorf("link: %q, %v", l, err)
	}
}

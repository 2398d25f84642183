package restore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cofferhq/coffer/backup"
	"github.com/cofferhq/coffer/internal/pathglob"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/internal/testing/testrepo"
	"github.com/cofferhq/coffer/source"
	dirkind "github.com/cofferhq/coffer/source/dir"
)

// modeTree is a source of files and folders of several modes.
func modeTree() entriesSource {
	mt := time.Unix(1_700_000_000, 0)
	return entriesSource{
		{Path: ".", Type: source.TypeDir, Mode: fs.ModeDir | 0o755, ModTime: mt},
		{Path: "rw", Type: source.TypeFile, Mode: 0o644, ModTime: mt},
		{Path: "all", Type: source.TypeFile, Mode: 0o777, ModTime: mt},
		{Path: "exec", Type: source.TypeFile, Mode: 0o755, ModTime: mt},
		{Path: "ro", Type: source.TypeFile, Mode: 0o444, ModTime: mt},
		{Path: "d", Type: source.TypeDir, Mode: fs.ModeDir | 0o775, ModTime: mt},
		{Path: "d/group", Type: source.TypeFile, Mode: 0o664, ModTime: mt},
		{Path: "d/own", Type: source.TypeFile, Mode: 0o600, ModTime: mt},
	}
}

func checkModes(t *testing.T, target string, src entriesSource) {
	t.Helper()
	for _, e := range src {
		st, err := os.Lstat(filepath.Join(target, e.Path))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != e.Mode.Perm() {
			t.Errorf("%s: mode %v, want %v", e.Path, st.Mode().Perm(), e.Mode.Perm())
		}
		if !st.ModTime().Equal(e.ModTime) {
			t.Errorf("%s: time %v, want %v", e.Path, st.ModTime(), e.ModTime)
		}
	}
}

// TestRestoreModesUnderUmask: files are created with their mode, and the
// umask must not take bits away from it (a restore probes what a create
// keeps and sets the mode explicitly where it would not be kept).
func TestRestoreModesUnderUmask(t *testing.T) {
	src := modeTree()
	s := snapshotOf(t, src)
	for _, mask := range []int{0o077, 0o022, 0o000, 0o777} {
		old := syscall.Umask(mask)
		target := filepath.Join(t.TempDir(), "restored")
		_, err := RestoreDir(context.Background(), s, target, DirOptions{})
		syscall.Umask(old)
		if err != nil {
			t.Fatal(err)
		}
		checkModes(t, target, src)
	}
}

// setDefaultACL gives dir a default ACL of user::rwx, group::perm,
// other::perm (as setfacl -d would), or skips the test where the file
// system has no ACLs.
func setDefaultACL(t *testing.T, dir string, group, other uint16) {
	t.Helper()
	const version = 2
	entry := func(b []byte, tag, perm uint16) []byte {
		b = binary.LittleEndian.AppendUint16(b, tag)
		b = binary.LittleEndian.AppendUint16(b, perm)
		return binary.LittleEndian.AppendUint32(b, 0xffffffff)
	}
	b := binary.LittleEndian.AppendUint32(nil, version)
	b = entry(b, 0x01, 7)     // ACL_USER_OBJ
	b = entry(b, 0x04, group) // ACL_GROUP_OBJ
	b = entry(b, 0x20, other) // ACL_OTHER
	if err := unix.Setxattr(dir, "system.posix_acl_default", b, 0); err != nil {
		t.Skipf("cannot set a default ACL on %s: %v", dir, err)
	}
}

// TestRestoreModesUnderDefaultACL: a default ACL on the target's folder
// (which replaces the umask for what is created below it) must not take
// bits away from a restored file's mode either.
func TestRestoreModesUnderDefaultACL(t *testing.T) {
	src := modeTree()
	s := snapshotOf(t, src)
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	for _, p := range [][2]uint16{{0, 0}, {4, 0}, {5, 5}, {7, 7}} {
		parent := t.TempDir()
		setDefaultACL(t, parent, p[0], p[1])
		// The ACL works here: a file created 0666 keeps only what it
		// allows.
		probe := filepath.Join(parent, "probe")
		if err := os.WriteFile(probe, nil, 0o666); err != nil {
			t.Fatal(err)
		}
		st, _ := os.Stat(probe)
		if want := fs.FileMode(0o600 | p[0]&6<<3 | p[1]&6); st.Mode().Perm() != want {
			t.Fatalf("the default ACL gave a new file %v, want %v", st.Mode().Perm(), want)
		}
		os.Remove(probe)
		target := filepath.Join(parent, "restored")
		if _, err := RestoreDir(context.Background(), s, target, DirOptions{}); err != nil {
			t.Fatal(err)
		}
		checkModes(t, target, src)
	}
}

// TestRestoreFailedLeavesNoParents: a restore into a folder whose parents
// do not exist creates them, and a restore that fails (here a catalog
// whose entry comes before its folder, found while files are being
// written in a single pass) removes the parents it created as well as its
// staging folder.
func TestRestoreFailedLeavesNoParents(t *testing.T) {
	f := newForged(t)
	root, a, d, dx := f.entry(t, "."), f.entry(t, "a.txt"), f.entry(t, "d"), f.entry(t, "d/x")
	for name, entries := range map[string][]repo.Entry{
		"child before its folder": {root, a, dx, d},
		"file listed twice":       {root, a, d, dx, a},
	} {
		t.Run(name, func(t *testing.T) {
			m := f.snapshot(t, entries, false)
			src, err := OpenSource(context.Background(), f.tr.Operator(t), m, "docs")
			if err != nil {
				t.Fatal(err)
			}
			parent := t.TempDir()
			target := filepath.Join(parent, "new", "deeper", "restored")
			if _, err := RestoreDir(context.Background(), src, target, DirOptions{}); err == nil {
				t.Fatal("restore succeeded")
			}
			if left, _ := os.ReadDir(parent); len(left) != 0 {
				t.Fatalf("the failed restore left %v in %s", left, parent)
			}
		})
	}
	// A folder that existed stays.
	m := f.snapshot(t, []repo.Entry{root, a, dx, d}, false)
	src, err := OpenSource(context.Background(), f.tr.Operator(t), m, "docs")
	if err != nil {
		t.Fatal(err)
	}
	parent := t.TempDir()
	if _, err := RestoreDir(context.Background(), src, filepath.Join(parent, "restored"), DirOptions{}); err == nil {
		t.Fatal("restore succeeded")
	}
	if _, err := os.Stat(parent); err != nil {
		t.Fatal(err)
	}
}

// TestRestoreFolderMovedAway: a folder of the staging tree moved away
// (renamed out of it by another process) while the restore runs does not
// make the restore write into it where it went: the files still to come
// are created by their paths beneath the staging folder, so the restore
// fails with ErrPathSwapped and the moved folder gets nothing.
func TestRestoreFolderMovedAway(t *testing.T) {
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
			elsewhere := filepath.Join(t.TempDir(), "moved")
			parent := t.TempDir()
			target := filepath.Join(parent, "target")
			st := &swapStore{Store: tr.Store}
			st.hook = func() bool {
				subs, _ := filepath.Glob(filepath.Join(parent, ".coffer-restore-*", "sub"))
				if len(subs) != 1 {
					return false
				}
				if err := os.Rename(subs[0], elsewhere); err != nil {
					t.Error(err)
				}
				return true
			}
			r, err := repo.Open(ctx, st, repo.OpenOptions{Owner: tr.Owner.Public(), Identities: tr.Identities})
			if err != nil {
				t.Fatal(err)
			}
			src, err := OpenSource(ctx, r, res.Manifest, "docs")
			if err != nil {
				t.Fatal(err)
			}
			_, err = RestoreDir(ctx, src, target, DirOptions{Workers: 1})
			if !st.done {
				t.Fatal("the move did not happen")
			}
			if !errors.Is(err, ErrPathSwapped) || !strings.Contains(err.Error(), `create "sub/b.txt"`) {
				t.Fatalf("err = %v, want ErrPathSwapped for sub/b.txt", err)
			}
			if des, _ := os.ReadDir(elsewhere); len(des) != 0 {
				t.Fatalf("the restore wrote %s into the folder moved out of the target", des[0].Name())
			}
			if _, err := os.Lstat(target); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("target exists after a failed restore: %v", err)
			}
		})
	}
}

// TestRestoreFolderSwappedAfterItsFiles: a folder replaced by a symlink
// after its files were written (before its mode and time are set, last)
// is not followed: the restore fails with ErrPathSwapped, and the folder
// the link points to keeps its mode and time.
func TestRestoreFolderSwappedAfterItsFiles(t *testing.T) {
	ctx := context.Background()
	tr := testrepo.New(t)
	tree := smallTree(t)
	os.Chmod(filepath.Join(tree, "sub"), 0o755)
	res, err := backup.Run(ctx, backup.Options{Repo: tr.Host(t), Signing: tr.Signing,
		Sources: []source.Source{&dirkind.Source{SourceName: "docs", Path: tree}}})
	if err != nil {
		t.Fatal(err)
	}
	outside := t.TempDir()
	mt := time.Unix(1_600_000_000, 0)
	if err := os.Chmod(outside, 0o711); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(outside, mt, mt)
	parent := t.TempDir()
	target := filepath.Join(parent, "target")
	swappedIt := false
	testHookFilesWritten = func() {
		subs, _ := filepath.Glob(filepath.Join(parent, ".coffer-restore-*", "sub"))
		if len(subs) != 1 {
			return
		}
		if _, err := os.Stat(filepath.Join(subs[0], "b.txt")); err != nil {
			t.Errorf("sub/b.txt was not written before the hook: %v", err)
		}
		if err := os.Rename(subs[0], subs[0]+".moved"); err != nil {
			t.Error(err)
		}
		if err := os.Symlink(outside, subs[0]); err != nil {
			t.Error(err)
		}
		swappedIt = true
	}
	defer func() { testHookFilesWritten = nil }()
	src, err := OpenSource(ctx, tr.Operator(t), res.Manifest, "docs")
	if err != nil {
		t.Fatal(err)
	}
	_, err = RestoreDir(ctx, src, target, DirOptions{})
	if !swappedIt {
		t.Fatal("the swap did not happen")
	}
	if !errors.Is(err, ErrPathSwapped) {
		t.Fatalf("err = %v, want ErrPathSwapped", err)
	}
	st, err := os.Stat(outside)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o711 || !st.ModTime().Equal(mt) {
		t.Fatalf("the folder the link points to is now %v, %v; want 0711, %v", st.Mode().Perm(), st.ModTime(), mt)
	}
	if des, _ := os.ReadDir(outside); len(des) != 0 {
		t.Fatalf("the restore wrote %s outside the target", des[0].Name())
	}
	if _, err := os.Lstat(target); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("target exists after a failed restore: %v", err)
	}
}

// TestRestoreReadsCatalogOnce: a folder restore without a filter or
// progress reads the snapshot's catalog once (OpenSource's read goes on
// into the restore); a filter needs a first pass, and reads it twice.
func TestRestoreReadsCatalogOnce(t *testing.T) {
	ctx := context.Background()
	cs, op, m, _ := packedTree(t, 300, 100, 2000, 64<<10)
	catalogReads := func() int {
		n := 0
		for _, c := range cs.Reads(repo.CatalogPrefix) {
			n += c
		}
		return n
	}
	for _, tc := range []struct {
		name   string
		filter *pathglob.Filter
		want   int
	}{
		{"whole", nil, 1},
		{"filtered", mustFilter(t, "d000/f0000*"), 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs.Reset()
			src, err := OpenSource(ctx, op, m, "docs")
			if err != nil {
				t.Fatal(err)
			}
			res, err := RestoreDir(ctx, src, filepath.Join(t.TempDir(), "restored"), DirOptions{Filter: tc.filter})
			if err != nil {
				t.Fatal(err)
			}
			if res.Files == 0 {
				t.Fatal("nothing restored")
			}
			if got := catalogReads(); got != tc.want {
				t.Fatalf("the catalog was read %d times, want %d", got, tc.want)
			}
		})
	}
}

func mustFilter(t *testing.T, include string) *pathglob.Filter {
	t.Helper()
	f, err := pathglob.NewFilter([]string{include}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestRestoreChecksChunksNotWholeFile: a restore relies on the keyed
// chunk ids of a signed catalog's chunks and leaves out the file's
// SHA-256, which verify --decrypt checks: an entry whose stated SHA-256
// is wrong (its chunks right) restores, and verify --decrypt reports it.
func TestRestoreChecksChunksNotWholeFile(t *testing.T) {
	f := newForged(t)
	root, a, d, dx := f.entry(t, "."), f.entry(t, "a.txt"), f.entry(t, "d"), f.entry(t, "d/x")
	a.SHA256 = strings.Repeat("0", 64)
	m := f.snapshot(t, []repo.Entry{root, a, d, dx}, false)
	op := f.tr.Operator(t)
	src, err := OpenSource(context.Background(), op, m, "docs")
	if err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(t.TempDir(), "restored")
	if _, err := RestoreDir(context.Background(), src, target, DirOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(target, "a.txt")); string(got) != "a.txt" {
		t.Fatalf("a.txt = %q", got)
	}
	rep, err := Verify(context.Background(), op, []string{m.ID}, Decrypt)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range rep.Problems {
		if strings.Contains(p.Error, `"a.txt": content does not match the catalog`) {
			found = true
		}
	}
	if !found {
		t.Fatalf("verify --decrypt did not report a.txt's SHA-256: %+v", rep.Problems)
	}
}

// TestRestoreMissingSubPathInOnePass: a restore of a path the source does
// not have, without a filter or progress (one pass: the path is found
// missing only after the whole catalog was read and checked), fails
// saying so, creates no target, leaves no staging folder, and leaves a
// target it was forced over as it was.
func TestRestoreMissingSubPathInOnePass(t *testing.T) {
	f := newForged(t)
	m := f.snapshot(t, []repo.Entry{f.entry(t, "."), f.entry(t, "a.txt"), f.entry(t, "d"), f.entry(t, "d/x")}, false)
	for _, force := range []bool{false, true} {
		src, err := OpenSource(context.Background(), f.tr.Operator(t), m, "docs")
		if err != nil {
			t.Fatal(err)
		}
		parent := t.TempDir()
		target := filepath.Join(parent, "restored")
		if force {
			if err := os.MkdirAll(target, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(target, "keep"), []byte("old"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		_, err = RestoreDir(context.Background(), src, target, DirOptions{SubPath: "nope", Force: force})
		if err == nil || !strings.Contains(err.Error(), `no such path "/nope"`) {
			t.Fatalf("force %v: err = %v, want no such path", force, err)
		}
		left, _ := os.ReadDir(parent)
		if !force && len(left) != 0 {
			t.Fatalf("the failed restore left %v in %s", left, parent)
		}
		if force {
			if len(left) != 1 {
				t.Fatalf("the failed restore left %v in %s", left, parent)
			}
			if got, err := os.ReadFile(filepath.Join(target, "keep")); err != nil || string(got) != "old" {
				t.Fatalf("the forced target changed: %q, %v", got, err)
			}
		}
	}
}

// TestRestoreModesUnderMaskedDefaultACL: with a default ACL that has a
// named user and a mask (the create mode's group bits become the mask),
// what the probe (a create asking 0777) finds kept still predicts what a
// create of any mode keeps: every restored file gets its mode, and the
// same access ACL as main's create 0600 and fchmod gave it.
func TestRestoreModesUnderMaskedDefaultACL(t *testing.T) {
	mt := time.Unix(1_700_000_000, 0)
	src := entriesSource{{Path: ".", Type: source.TypeDir, Mode: fs.ModeDir | 0o755, ModTime: mt}}
	for i, m := range []fs.FileMode{0o640, 0o755, 0o604, 0o777, 0o000, 0o710, 0o444, 0o070, 0o007, 0o755 | fs.ModeSticky} {
		src = append(src, source.Entry{Path: fmt.Sprintf("f%d", i), Type: source.TypeFile, Mode: m, ModTime: mt})
	}
	s := snapshotOf(t, src)
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	entry := func(b []byte, tag, perm uint16, id uint32) []byte {
		b = binary.LittleEndian.AppendUint16(b, tag)
		b = binary.LittleEndian.AppendUint16(b, perm)
		return binary.LittleEndian.AppendUint32(b, id)
	}
	// user::, group::, mask::, other:: (and user:1000:rwx).
	for _, p := range [][4]uint16{{7, 5, 7, 5}, {7, 5, 5, 0}, {5, 7, 6, 4}, {6, 0, 4, 0}, {7, 7, 0, 7}} {
		parent := t.TempDir()
		b := binary.LittleEndian.AppendUint32(nil, 2)
		b = entry(b, 0x01, p[0], 0xffffffff)
		b = entry(b, 0x02, 7, 1000)
		b = entry(b, 0x04, p[1], 0xffffffff)
		b = entry(b, 0x10, p[2], 0xffffffff)
		b = entry(b, 0x20, p[3], 0xffffffff)
		if err := unix.Setxattr(parent, "system.posix_acl_default", b, 0); err != nil {
			t.Skipf("cannot set a default ACL on %s: %v", parent, err)
		}
		target := filepath.Join(parent, "restored")
		if _, err := RestoreDir(context.Background(), s, target, DirOptions{}); err != nil {
			t.Fatal(err)
		}
		ref := filepath.Join(parent, "ref")
		if err := os.Mkdir(ref, 0o700); err != nil {
			t.Fatal(err)
		}
		acl := func(p string) []byte {
			buf := make([]byte, 256)
			n, err := unix.Getxattr(p, "system.posix_acl_access", buf)
			if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			return buf[:n]
		}
		for _, e := range src[1:] {
			got := filepath.Join(target, e.Path)
			st, err := os.Lstat(got)
			if err != nil {
				t.Fatal(err)
			}
			if want := e.Mode & (fs.ModePerm | fs.ModeSticky); st.Mode()&(fs.ModePerm|fs.ModeSticky) != want {
				t.Errorf("default ACL %v, %s: mode %v, want %v", p, e.Path, st.Mode(), want)
			}
			// What main did: create 0600, then fchmod.
			rp := filepath.Join(ref, e.Path)
			fd, err := unix.Open(rp, unix.O_CREAT|unix.O_WRONLY|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			unix.Fchmod(fd, posixMode(e.Mode))
			unix.Close(fd)
			if a, r := acl(got), acl(rp); !bytes.Equal(a, r) {
				t.Errorf("default ACL %v, %s: access ACL %x, main's %x", p, e.Path, a, r)
			}
		}
	}
}

// TestProbeKeepsRefusesAddedBits: a file system whose creates give a new
// file bits it did not ask for (a mode set by an inherited ACL whatever
// the create asks) must not let files skip their fchmod: a file asking
// 0600 there would keep 0644.
func TestProbeKeepsRefusesAddedBits(t *testing.T) {
	for _, tc := range []struct {
		name   string
		create func(uint32) uint32
		want   uint32
	}{
		{"umask 022", func(m uint32) uint32 { return m &^ 0o022 }, 0o755},
		{"default ACL, mask r-x", func(m uint32) uint32 { return m & 0o750 }, 0o750},
		{"mode fixed at 0644", func(uint32) uint32 { return 0o644 }, 0},
		{"other read added", func(m uint32) uint32 { return m&0o755 | 0o004 }, 0},
	} {
		got := probeKeeps(func(m uint32) (uint32, bool) { return tc.create(m), true })
		if got != tc.want {
			t.Errorf("%s: keeps %#o, want %#o", tc.name, got, tc.want)
		}
	}
	if got := probeKeeps(func(uint32) (uint32, bool) { return 0o777, false }); got != 0 {
		t.Errorf("a failed probe keeps %#o, want 0", got)
	}
}

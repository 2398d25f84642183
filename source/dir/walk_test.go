package dir

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cofferhq/coffer/source"
)

// recorder is a source.Writer and Skipper that records every call.
type recorder struct{ calls []string }

func (r *recorder) WriteFile(ctx context.Context, e source.Entry, rd io.Reader) error {
	h := sha256.New()
	if _, err := io.Copy(h, rd); err != nil {
		return err
	}
	r.calls = append(r.calls, fmt.Sprintf("file %+v %x", e, h.Sum(nil)))
	return nil
}

func (r *recorder) WriteEntry(ctx context.Context, e source.Entry) error {
	r.calls = append(r.calls, fmt.Sprintf("entry %+v", e))
	return nil
}

func (r *recorder) SetMeta(key string, v any) error { return nil }

func (r *recorder) Warn(format string, args ...any) error {
	r.calls = append(r.calls, "warn "+fmt.Sprintf(format, args...))
	return nil
}

func (r *recorder) Skip(path string, err error) error {
	r.calls = append(r.calls, fmt.Sprintf("skip %q %v", path, err))
	return nil
}

// walkReference is the folder walk as it was before walk: filepath.WalkDir
// with lstat, readlink and open by full path. walk must do what it did.
func walkReference(ctx context.Context, d *Source, w source.Writer) error {
	root, _ := filepath.Abs(d.Path)
	names := &ownerNames{users: map[int]string{}, groups: map[int]string{}}
	return filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if err != nil {
			return unreadable(w, rel, "read folder", err, pathError("read", p, err))
		}
		if rel != "." && d.excluded(rel) {
			if de.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := de.Info()
		if err != nil {
			return unreadable(w, rel, "stat", err, pathError("stat", p, err))
		}
		e := entryFromInfo(rel, info, names)
		switch {
		case info.IsDir():
			e.Type = source.TypeDir
			return w.WriteEntry(ctx, e)
		case info.Mode()&fs.ModeSymlink != 0:
			e.Type = source.TypeSymlink
			if e.Link, err = os.Readlink(p); err != nil {
				return unreadable(w, rel, "read link", err, pathError("read link", p, err))
			}
			return w.WriteEntry(ctx, e)
		case info.Mode().IsRegular():
			e.Type = source.TypeFile
			f, err := openFile(p, info.Size())
			if err != nil {
				return unreadable(w, e.Path, "open", err, pathError("read", p, err))
			}
			defer f.close()
			return w.WriteFile(ctx, e, f)
		default:
			return w.Warn("%q: skipped %s (not a file, folder or symlink)", rel, info.Mode().Type())
		}
	})
}

// mkdirDeep makes, under dir, folders nested until their paths are longer
// than PATH_MAX (through descriptors: by full path the kernel refuses
// them), with a file in each of the deepest ones, and returns how deep.
func mkdirDeep(t *testing.T, dir string) {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.Repeat("d", 200)
	n := len(dir)
	for n < pathMax+600 {
		if err := unix.Mkdirat(fd, name, 0o755); err != nil {
			t.Fatal(err)
		}
		ffd, err := unix.Openat(fd, "f.txt", unix.O_WRONLY|unix.O_CREAT, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		unix.Write(ffd, []byte(fmt.Sprintf("at %d", n)))
		unix.Close(ffd)
		if err := unix.Symlinkat("f.txt", fd, "ln"); err != nil {
			t.Fatal(err)
		}
		next, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(fd)
		fd = next
		n += 1 + len(name)
	}
	unix.Close(fd)
}

// TestWalkAsWalkDir: the walk through folder descriptors makes exactly the
// calls the walk by full paths made, in the same order: entries, files
// and their contents, symlinks (dangling ones too), special files warned
// about and skipped, excluded names, odd names, and paths longer than
// PATH_MAX, left out with the same errors (each deep folder twice: its
// stat, then its listing).
func TestWalkAsWalkDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tree")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"a", "a/b", "a/b/c", "a-b", "a.b", "empty", "skipme", "z/y/x", "ünï", "line\nbreak"} {
		must(os.MkdirAll(filepath.Join(dir, d), 0o750))
	}
	files := map[string]string{
		"a/1.txt": "one", "a/b/2.txt": "two two", "a/b/c/3.json": `{"n":3}`, "a-b/x": "", "a.b/y": "yy",
		"skipme/secret": "s", "z/y/x/deep.bin": strings.Repeat("x", 300_000), "top.log": "log",
		"ünï/ñame": "unicode", "line\nbreak/f\tab": "odd", "a/\xff\xfe": "not utf-8", "a/big": strings.Repeat("0123456789", 100_000),
	}
	for p, c := range files {
		must(os.WriteFile(filepath.Join(dir, p), []byte(c), 0o640))
	}
	must(os.Symlink("1.txt", filepath.Join(dir, "a/link")))
	must(os.Symlink("../nowhere", filepath.Join(dir, "a/dangling")))
	must(os.Symlink("a/b", filepath.Join(dir, "dirlink")))
	must(os.Symlink(strings.Repeat("long/", 60), filepath.Join(dir, "longlink")))
	must(syscall.Mkfifo(filepath.Join(dir, "a/fifo"), 0o600))
	l, err := net.Listen("unix", filepath.Join(dir, "sock"))
	must(err)
	defer l.Close()
	must(os.Chmod(filepath.Join(dir, "a/b"), 0o1755|fs.ModeSticky))
	old := time.Date(2020, 1, 2, 3, 4, 5, 6, time.UTC)
	must(os.Chtimes(filepath.Join(dir, "a/1.txt"), old, old))
	mkdirDeep(t, filepath.Join(dir, "z"))

	for _, exclude := range [][]string{nil, {"skipme", "*.log", "a/b/c"}} {
		d := &Source{SourceName: "docs", Path: dir, Exclude: exclude}
		var want, got recorder
		if err := walkReference(context.Background(), d, &want); err != nil {
			t.Fatal(err)
		}
		if err := d.Backup(context.Background(), &got); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.calls, want.calls) {
			t.Errorf("exclude %q: the walk made\n%s\nthe walk by full paths made\n%s", exclude,
				strings.Join(got.calls, "\n"), strings.Join(want.calls, "\n"))
		}
		skips := 0
		for _, c := range got.calls {
			if strings.HasPrefix(c, "skip ") {
				skips++
				if !strings.Contains(c, "file name too long") {
					t.Errorf("unexpected %s", c)
				}
			}
		}
		if skips == 0 {
			t.Errorf("exclude %q: no path longer than PATH_MAX left out", exclude)
		}
		if len(got.calls) < 20 {
			t.Errorf("exclude %q: only %d calls", exclude, len(got.calls))
		}
	}
}

// TestWalkDeeperThanDescriptorLimit: the walk holds a descriptor for each
// folder it is in, but a tree deeper than the process may open files is
// still backed up whole, as the walk by full paths did: past a depth the
// folders are read by full path, not left out for EMFILE.
func TestWalkDeeperThanDescriptorLimit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tree")
	p := dir
	for i := range 300 {
		p = filepath.Join(p, fmt.Sprintf("%c", 'a'+i%26))
	}
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p, "bottom.txt"), []byte("deep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("bottom.txt", filepath.Join(p, "ln")); err != nil {
		t.Fatal(err)
	}
	d := &Source{SourceName: "deep", Path: dir}
	var want, got recorder
	if err := walkReference(context.Background(), d, &want); err != nil {
		t.Fatal(err)
	}
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	lim := old
	lim.Cur = 128
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	err := d.Backup(context.Background(), &got)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.calls, want.calls) {
		var diff []string
		for _, c := range got.calls {
			if strings.HasPrefix(c, "skip ") {
				diff = append(diff, c)
			}
		}
		t.Fatalf("the walk made %d calls, the walk by full paths %d; skips: %q", len(got.calls), len(want.calls), diff)
	}
}

// TestWalkFolderSwappedForSymlink: a folder replaced by a symlink to /
// between its stat and its listing is not followed out of the tree (the
// walk by full paths followed it): it is left out.
func TestWalkFolderSwappedForSymlink(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tree")
	if err := os.MkdirAll(filepath.Join(dir, "a/b"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"a/in.txt", "a/b/deeper.txt"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, swap := range []string{"a", "a/b"} {
		t.Run(swap, func(t *testing.T) {
			w := &swapper{at: swap, do: func() {
				if err := os.Rename(filepath.Join(dir, swap), filepath.Join(dir, swap+".old")); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink("/", filepath.Join(dir, swap)); err != nil {
					t.Fatal(err)
				}
			}}
			defer func() {
				os.Remove(filepath.Join(dir, swap))
				os.Rename(filepath.Join(dir, swap+".old"), filepath.Join(dir, swap))
			}()
			if err := (&Source{SourceName: "s", Path: dir}).Backup(context.Background(), w); err != nil {
				t.Fatal(err)
			}
			for _, c := range w.calls {
				for _, outside := range []string{"/etc", "/proc", "/usr", "/tmp"} {
					if strings.Contains(c, "Path:"+swap+outside+" ") {
						t.Fatalf("followed the symlink out of the tree: %s", c)
					}
				}
			}
			skipped := false
			for _, c := range w.calls {
				skipped = skipped || strings.HasPrefix(c, fmt.Sprintf("skip %q", swap))
			}
			if !skipped {
				t.Fatalf("the swapped folder is not reported: %q", w.calls)
			}
		})
	}
}

// swapper is a recorder that calls do once the entry at is written.
type swapper struct {
	recorder
	at string
	do func()
}

func (s *swapper) WriteEntry(ctx context.Context, e source.Entry) error {
	if e.Path == s.at && s.do != nil {
		s.do()
		s.do = nil
	}
	return s.recorder.WriteEntry(ctx, e)
}

package e2e

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/internal/testing/fixture"
	"github.com/cofferhq/coffer/restore"
)

// TestE2ERestore covers partial restores, streaming single files and the
// rules for existing targets.
func TestE2ERestore(t *testing.T) {
	t.Parallel()
	e := localEnv(t)
	dir, st := tree(t, smallTree)
	id := e.backupDir(t, dir, false).Manifest.ID
	src := e.source(t, id)
	ctx := ctxT(t)

	t.Run("subpath folder", func(t *testing.T) {
		for _, sub := range []string{"tief-1", "/tief-1/tief-2/tief-3", "tief-1/tief-2/empty ✨"} {
			target := filepath.Join(t.TempDir(), "out")
			if _, err := restore.RestoreDir(ctx, src, target, restore.DirOptions{SubPath: sub}); err != nil {
				t.Fatalf("restore %s: %v", sub, err)
			}
			compareTrees(t, filepath.Join(dir, filepath.FromSlash(strings.TrimPrefix(sub, "/"))), target)
		}
	})
	t.Run("subpath file", func(t *testing.T) {
		for _, sub := range []string{"Rechnung-Müller.pdf", st.BigFile, "/請求書-001.txt", "empty.txt"} {
			target := filepath.Join(t.TempDir(), "out")
			res, err := restore.RestoreDir(ctx, src, target, restore.DirOptions{SubPath: sub})
			if err != nil {
				t.Fatalf("restore %s: %v", sub, err)
			}
			base := filepath.Base(sub)
			if got := names(t, target); !slices.Equal(got, []string{base}) || res.Files != 1 {
				t.Fatalf("restore of file %s gave %v (%d files), want [%s]", sub, got, res.Files, base)
			}
			sameFile(t, filepath.Join(dir, filepath.FromSlash(strings.TrimPrefix(sub, "/"))), filepath.Join(target, base))
		}
	})
	t.Run("subpath symlink", func(t *testing.T) {
		target := filepath.Join(t.TempDir(), "out")
		if _, err := restore.RestoreDir(ctx, src, target, restore.DirOptions{SubPath: "dangling-link"}); err != nil {
			t.Fatal(err)
		}
		if l, err := os.Readlink(filepath.Join(target, "dangling-link")); err != nil || l != "does/not/exist.txt" {
			t.Errorf("restored link: %q, %v", l, err)
		}
	})
	t.Run("subpath missing", func(t *testing.T) {
		target := filepath.Join(t.TempDir(), "out")
		for _, sub := range []string{"no/such/thing", "../../etc", "tief"} {
			if _, err := restore.RestoreDir(ctx, src, target, restore.DirOptions{SubPath: sub}); err == nil {
				t.Errorf("restore of missing %q succeeded", sub)
			}
			if _, err := os.Lstat(target); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("failed restore of %q created the target", sub)
			}
		}
	})
	t.Run("open streams the original", func(t *testing.T) {
		for _, p := range []string{st.BigFile, "/Rechnung-Müller.pdf", "empty.txt", "tief-1/tief-2/tief-3/tief-4/tief-5/deep-confidential-invoice.csv"} {
			want, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(strings.TrimPrefix(p, "/"))))
			if err != nil {
				t.Fatal(err)
			}
			rc, err := src.Open(ctx, p)
			if err != nil {
				t.Fatalf("Open %s: %v", p, err)
			}
			// An odd buffer size, so reads straddle chunk boundaries.
			var got bytes.Buffer
			if _, err := io.CopyBuffer(struct{ io.Writer }{&got}, struct{ io.Reader }{rc}, make([]byte, 7777)); err != nil {
				t.Fatalf("read %s: %v", p, err)
			}
			rc.Close()
			if !bytes.Equal(got.Bytes(), want) {
				t.Errorf("Open(%s) gave %d bytes (sha %x), want %d (sha %x)", p, got.Len(), sha256.Sum256(got.Bytes()), len(want), sha256.Sum256(want))
			}
		}
		for _, p := range []string{"tief-1", "link-to-file", "no-such-file"} {
			if rc, err := src.Open(ctx, p); err == nil {
				rc.Close()
				t.Errorf("Open(%s) succeeded; want an error (not a file)", p)
			}
		}
	})
	t.Run("target rules", func(t *testing.T) {
		parent := t.TempDir()
		target := filepath.Join(parent, "target")
		writeFile(t, filepath.Join(target, "old.txt"), "old\n")
		before := dirState(t, target)
		_, err := restore.RestoreDir(ctx, src, target, restore.DirOptions{})
		if !errors.Is(err, restore.ErrTargetNotEmpty) {
			t.Fatalf("restore into a non-empty folder: %v, want ErrTargetNotEmpty", err)
		}
		if dirState(t, target) != before {
			t.Fatal("refused restore changed the target")
		}
		if _, err := restore.RestoreDir(ctx, src, target, restore.DirOptions{Force: true}); err != nil {
			t.Fatalf("restore with Force: %v", err)
		}
		compareTrees(t, dir, target) // old.txt is gone
		if got := names(t, parent); !slices.Equal(got, []string{"target"}) {
			t.Errorf("restore left %v beside the target", got)
		}
		empty := filepath.Join(parent, "empty")
		if err := os.Mkdir(empty, 0o700); err != nil {
			t.Fatal(err)
		}
		if _, err := restore.RestoreDir(ctx, src, empty, restore.DirOptions{SubPath: "tief-1"}); err != nil {
			t.Fatalf("restore into an empty folder: %v", err)
		}
		compareTrees(t, filepath.Join(dir, "tief-1"), empty)
	})
}

// sameFile checks contents, mode and mtime of two files.
func sameFile(t *testing.T, want, got string) {
	t.Helper()
	a, err := os.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(got)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Errorf("%s: contents differ from %s", got, want)
	}
	fa, _ := os.Lstat(want)
	fb, _ := os.Lstat(got)
	if fa.Mode() != fb.Mode() || !fa.ModTime().Equal(fb.ModTime()) {
		t.Errorf("%s: mode %v mtime %v, want %v %v", got, fb.Mode(), fb.ModTime(), fa.Mode(), fa.ModTime())
	}
}

// TestE2ECatalogPathSafety: paths that could leave the target are refused
// by CheckPath, by Catalog.Validate, and by RestoreDir given a catalog that
// holds one (as a compromised backup host could write), before anything is
// written anywhere.
func TestE2ECatalogPathSafety(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"../evil", "..", "/etc/passwd", "a/../../evil", "a/../b", "a//b", "./a", "a/.", "a/", "", "a\x00b"} {
		if err := repo.CheckPath(p); err == nil {
			t.Errorf("CheckPath(%q) accepted it", p)
		}
	}
	for _, p := range []string{".", "a", "a/b", "Rechnung-Müller.pdf", "請求書/001.txt", "..a", "a..", "a/.b"} {
		if err := repo.CheckPath(p); err != nil {
			t.Errorf("CheckPath(%q): %v", p, err)
		}
	}

	e := localEnv(t)
	dir, err := os.MkdirTemp(t.TempDir(), "tree")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fixture.WriteTree(dir, fixture.TreeSpec{Files: 20, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	id := e.backupDir(t, dir, false).Manifest.ID
	ctx := ctxT(t)
	m, err := restore.Resolve(ctx, e.restoreRepo, id, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	const emptySHA = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	outside := t.TempDir()
	cases := []struct {
		name  string
		extra []repo.Entry
	}{
		{"dot-dot file", []repo.Entry{{Path: "../evil", Type: "file", Mode: 0o644, SHA256: emptySHA}}},
		{"nested dot-dot", []repo.Entry{{Path: "a/../../evil", Type: "file", Mode: 0o644, SHA256: emptySHA}}},
		{"absolute", []repo.Entry{{Path: filepath.Join(outside, "evil"), Type: "file", Mode: 0o644, SHA256: emptySHA}}},
		{"dot-dot symlink", []repo.Entry{{Path: "../evil-link", Type: "symlink", Link: "/etc/passwd"}}},
		// A valid path below a symlink entry must not be written through
		// the link: files are written before links exist, so the folder is
		// missing and the restore fails.
		{"file through a symlink", []repo.Entry{
			{Path: "escape", Type: "symlink", Link: outside},
			{Path: "escape/evil", Type: "file", Mode: 0o644, SHA256: emptySHA},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := restore.Load(ctx, e.restoreRepo, m)
			if err != nil {
				t.Fatal(err)
			}
			sc := &s.Catalog.Sources[0]
			sc.Entries = append(sc.Entries, c.extra...)
			if err := s.Catalog.Validate(); err == nil && c.name != "file through a symlink" {
				t.Errorf("Catalog.Validate accepted %q", c.extra[0].Path)
			}
			src, err := s.Source(sourceName)
			if err != nil {
				t.Fatal(err)
			}
			parent := t.TempDir()
			target := filepath.Join(parent, "target")
			_, err = restore.RestoreDir(ctx, src, target, restore.DirOptions{})
			if err == nil {
				t.Fatalf("restore of a catalog with %q succeeded", c.extra[len(c.extra)-1].Path)
			}
			t.Logf("refused: %v", err)
			if got := names(t, parent); len(got) != 0 {
				t.Errorf("refused restore left %v", got)
			}
			if got := names(t, outside); len(got) != 0 {
				t.Errorf("restore wrote outside the target: %v", got)
			}
			for _, p := range []string{filepath.Join(filepath.Dir(parent), "evil"), filepath.Join(filepath.Dir(parent), "evil-link")} {
				if _, err := os.Lstat(p); err == nil {
					t.Errorf("restore wrote %s", p)
				}
			}
		})
	}
}

package restore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/pathglob"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/internal/testing/countstore"
)

// manyPacks backs up a folder of incompressible files into a repository
// whose packs are small, so that the snapshot spans many packs, and opens
// it for reading through a store that counts reads.
func manyPacks(t *testing.T) (*countstore.Store, *Source, string) {
	t.Helper()
	ctx := context.Background()
	cs, op, m, src := backupCounted(t, 64<<10, func(src string) {
		rnd := rand.New(rand.NewPCG(7, 11))
		mtime := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
		for _, d := range []string{"a", "b", "b/deep", "c"} {
			if err := os.MkdirAll(filepath.Join(src, d), 0o750); err != nil {
				t.Fatal(err)
			}
		}
		for i := range 12 {
			data := make([]byte, 100<<10)
			for j := range data {
				data[j] = byte(rnd.Uint32())
			}
			name := filepath.Join(src, []string{"a", "b", "b/deep", "c"}[i%4], fmt.Sprintf("INV-%02d.pdf", i))
			if err := os.WriteFile(name, data, 0o640); err != nil {
				t.Fatal(err)
			}
			os.Chtimes(name, mtime, mtime)
		}
		for _, d := range []string{"b/deep", "a", "b", "c", "."} {
			os.Chtimes(filepath.Join(src, d), mtime, mtime)
		}
	})
	snap, err := Load(ctx, op, m)
	if err != nil {
		t.Fatal(err)
	}
	s, err := snap.Source("docs")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(snap.Catalog.Packs()); n < 8 {
		t.Fatalf("the snapshot's files span %d packs, want many", n)
	}
	return cs, s, src
}

func packsOf(s *Source, paths ...string) map[string]bool {
	out := map[string]bool{}
	for _, p := range paths {
		e, _ := s.Entry(p)
		for _, c := range e.Chunks {
			out[repo.PackName(c.Pack)] = true
		}
	}
	return out
}

func TestPartialRestoreReadsOnlyItsPacks(t *testing.T) {
	cs, s, src := manyPacks(t)
	ctx := context.Background()
	all := map[string]bool{}
	for p := range s.s.Catalog.Packs() {
		all[repo.PackName(p)] = true
	}
	want := packsOf(s, "b/deep/INV-06.pdf")

	cs.Reset()
	f, err := pathglob.NewFilter([]string{"INV-06.pdf"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "one")
	res, err := RestoreDir(ctx, s, out, DirOptions{Filter: f})
	if err != nil {
		t.Fatal(err)
	}
	read := cs.Reads(repo.DataPrefix)
	t.Logf("restoring 1 file of %d read %d of %d packs", len(s.sc.Entries), len(read), len(all))
	if len(read) == 0 {
		t.Fatal("the partial restore read no pack")
	}
	for name := range read {
		if !want[name] {
			t.Errorf("the partial restore read pack %s, which holds none of the file's chunks", name)
		}
	}
	if got, want := res.Files, 1; got != want {
		t.Errorf("restored %d files, want %d", got, want)
	}
	b, err := os.ReadFile(filepath.Join(out, "b/deep/INV-06.pdf"))
	if err != nil {
		t.Fatal(err)
	}
	orig, _ := os.ReadFile(filepath.Join(src, "b/deep/INV-06.pdf"))
	if !bytes.Equal(b, orig) {
		t.Error("restored file differs from the source")
	}

	// The tree holds exactly the file and the folders leading to it, with
	// the modes and times of a full restore.
	cs.Reset()
	full := filepath.Join(t.TempDir(), "full")
	if _, err := RestoreDir(ctx, s, full, DirOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := len(cs.Reads(repo.DataPrefix)); got != len(all) {
		t.Errorf("a full restore read %d packs, want all %d (is the counter counting?)", got, len(all))
	}
	var got []string
	err = filepath.WalkDir(out, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(out, p)
		got = append(got, rel)
		a, err := os.Lstat(p)
		if err != nil {
			return err
		}
		b, err := os.Lstat(filepath.Join(full, rel))
		if err != nil {
			return err
		}
		if a.Mode() != b.Mode() || !a.ModTime().Equal(b.ModTime()) {
			t.Errorf("%s: mode %v, mtime %v; a full restore gives %v, %v", rel, a.Mode(), a.ModTime(), b.Mode(), b.ModTime())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{".", "b", "b/deep", "b/deep/INV-06.pdf"}; !slices.Equal(got, want) {
		t.Errorf("restored tree %q, want %q", got, want)
	}
}

func TestPartialRestoreExclude(t *testing.T) {
	cs, s, _ := manyPacks(t)
	cs.Reset()
	// Everything in b but b/deep: the packs of b's three files at most.
	f, err := pathglob.NewFilter([]string{"/b"}, []string{"b/deep"})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "b")
	res, err := RestoreDir(context.Background(), s, out, DirOptions{Filter: f})
	if err != nil {
		t.Fatal(err)
	}
	if res.Files != 3 || res.Dirs != 2 {
		t.Errorf("restored %d files, %d folders; want 3, 2", res.Files, res.Dirs)
	}
	want := packsOf(s, "b/INV-01.pdf", "b/INV-05.pdf", "b/INV-09.pdf")
	for name := range cs.Reads(repo.DataPrefix) {
		if !want[name] {
			t.Errorf("read pack %s, which holds no selected file", name)
		}
	}
	if _, err := os.Lstat(filepath.Join(out, "deep")); !os.IsNotExist(err) {
		t.Errorf("b/deep was restored: %v", err)
	}
	// Nothing selected: an error, and no target.
	f, _ = pathglob.NewFilter([]string{"nothing"}, nil)
	none := filepath.Join(t.TempDir(), "none")
	if _, err := RestoreDir(context.Background(), s, none, DirOptions{Filter: f}); err == nil || !errors.Is(err, ErrNothingSelected) {
		t.Errorf("RestoreDir selecting nothing: %v, want ErrNothingSelected", err)
	}
	if _, err := os.Lstat(none); !os.IsNotExist(err) {
		t.Errorf("target created: %v", err)
	}
}

// TestPartialRestoreNeverReplaces: a forced restore replaces its target
// with what it restores; a partial one would leave the selected files
// alone in it ("put INV-05 back into the live folder" with --force would
// lose every other file there). It is refused, and the target is as it
// was.
func TestPartialRestoreNeverReplaces(t *testing.T) {
	_, s, _ := manyPacks(t)
	live := filepath.Join(t.TempDir(), "live")
	if err := os.MkdirAll(live, 0o750); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"INV-99.pdf", "notes.txt"} {
		if err := os.WriteFile(filepath.Join(live, name), []byte(name), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	f, err := pathglob.NewFilter([]string{"INV-05.pdf"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = RestoreDir(context.Background(), s, live, DirOptions{Filter: f, Force: true})
	if !errors.Is(err, ErrPartialReplace) {
		t.Errorf("forced partial restore into a non-empty folder: %v, want ErrPartialReplace", err)
	}
	names, _ := os.ReadDir(live)
	if len(names) != 2 || names[0].Name() != "INV-99.pdf" || names[1].Name() != "notes.txt" {
		t.Errorf("target holds %v after a refused restore, want INV-99.pdf and notes.txt", names)
	}
	// Into an empty folder it is no replacement: allowed.
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.Mkdir(empty, 0o700); err != nil {
		t.Fatal(err)
	}
	if res, err := RestoreDir(context.Background(), s, empty, DirOptions{Filter: f, Force: true}); err != nil || res.Files != 1 {
		t.Errorf("forced partial restore into an empty folder: %+v %v", res, err)
	}
}

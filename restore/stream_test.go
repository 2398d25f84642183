package restore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cofferhq/coffer/backup"
	"github.com/cofferhq/coffer/internal/progress"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/internal/testing/testrepo"
	"github.com/cofferhq/coffer/internal/testing/testutil"
	"github.com/cofferhq/coffer/source"
	"github.com/cofferhq/coffer/storage"
)

// forged is a repository with one good snapshot of a small tree, whose
// file contents a forged catalog can point at.
type forged struct {
	tr   *testrepo.Repo
	base *repo.Manifest
	good []repo.Entry
}

func newForged(t *testing.T) *forged {
	t.Helper()
	tr := testrepo.New(t)
	src := entriesSource{
		{Path: ".", Type: source.TypeDir, Mode: 0o755, ModTime: time.Unix(1e9, 0)},
		{Path: "a.txt", Type: source.TypeFile, Mode: 0o644, ModTime: time.Unix(1e9, 0)},
		{Path: "d", Type: source.TypeDir, Mode: 0o755, ModTime: time.Unix(1e9, 0)},
		{Path: "d/x", Type: source.TypeFile, Mode: 0o644, ModTime: time.Unix(1e9, 0)},
	}
	res, err := backup.Run(context.Background(), backup.Options{Repo: tr.Host(t), Signing: tr.Signing,
		Sources: []source.Source{src}})
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	c, err := tr.Operator(t).ReadCatalog(context.Background(), res.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	return &forged{tr: tr, base: res.Manifest, good: c.Sources[0].Entries}
}

// entry returns a copy of the good snapshot's entry at p.
func (f *forged) entry(t *testing.T, p string) repo.Entry {
	for _, e := range f.good {
		if e.Path == p {
			return e
		}
	}
	t.Fatalf("no entry %q", p)
	return repo.Entry{}
}

// snapshot stores a catalog of entries, signed by the backup host key as
// a thief of that host could, and returns its manifest. With badHash the
// source's SHA-256 is that of other entries.
func (f *forged) snapshot(t *testing.T, entries []repo.Entry, badHash bool) *repo.Manifest {
	t.Helper()
	ctx := context.Background()
	host := f.tr.Host(t)
	id := repo.NewID()
	var buf bytes.Buffer
	enc := repo.NewCatalogEncoder(&buf, id)
	if err := enc.Source("docs", "dir", nil); err != nil {
		t.Fatal(err)
	}
	for i := range entries {
		if err := enc.Entry(&entries[i]); err != nil {
			t.Fatal(err)
		}
	}
	srcs, sizes, err := enc.Close()
	if err != nil {
		t.Fatal(err)
	}
	plain := buf.Bytes()
	if badHash {
		sc := repo.SourceCatalog{Entries: entries}
		other := repo.SourceCatalog{Entries: entries[:len(entries)-1]}
		plain = bytes.Replace(plain, []byte(sc.Hash()), []byte(other.Hash()), 1)
	}
	idf, err := host.ChunkIDFunc(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rcpts, err := host.Recipients()
	if err != nil {
		t.Fatal(err)
	}
	pb := repo.NewPackBuilder(len(plain) + 4096)
	ic := pb.Add(idf(plain), plain, int64(len(plain)), false)
	ct, err := repo.Encrypt(pb.Finish(), rcpts...)
	if err != nil {
		t.Fatal(err)
	}
	sum := repo.HashHex(ct)
	if err := f.tr.Store.Put(ctx, repo.PackName(sum), bytes.NewReader(ct), int64(len(ct)), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	root := repo.CatalogRoot{Version: repo.Version, Snapshot: id, Size: int64(len(plain)), SHA256: repo.HashHex(plain),
		Chunks: []repo.ChunkRef{{ID: ic.ID, Pack: sum, Offset: ic.Offset, Length: ic.Length, Raw: ic.Raw}}}
	ref, err := repo.PutSealed(ctx, f.tr.Store, repo.CatalogPrefix, root, rcpts...)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := repo.PutPrivate(ctx, f.tr.Store, &repo.Private{Version: repo.Version, Snapshot: id, Host: "forged", Sources: sizes}, rcpts...)
	if err != nil {
		t.Fatal(err)
	}
	m := *f.base
	m.ID, m.Time, m.Catalog, m.Sources, m.Indexes, m.Private, m.Seen = id, time.Now().UTC(), ref, srcs, nil, priv, []string{f.base.ID}
	m.Packs = append(append([]repo.PackRef(nil), f.base.Packs...), repo.PackRef{SHA256: sum, Size: int64(len(ct))})
	sort.Slice(m.Packs, func(i, j int) bool { return m.Packs[i].SHA256 < m.Packs[j].SHA256 })
	if err := repo.WriteManifest(ctx, f.tr.Store, &m, f.tr.Signing); err != nil {
		t.Fatal(err)
	}
	return &m
}

// TestStreamedRestoreRefusesBadCatalogs: a folder restore that streams its
// catalog (OpenSource, what coffer restore --to uses) still refuses a
// catalog that lists a path twice, an entry before its folder, or
// entries that do not match the source's SHA-256, with an integrity
// error naming the problem, and leaves no target and no staging folder
// behind, even when the problem shows only after files were written.
func TestStreamedRestoreRefusesBadCatalogs(t *testing.T) {
	f := newForged(t)
	root, a, d, dx := f.entry(t, "."), f.entry(t, "a.txt"), f.entry(t, "d"), f.entry(t, "d/x")
	asDir := func(e repo.Entry) repo.Entry {
		e.Type, e.Size, e.SHA256, e.Chunks = "dir", 0, "", nil
		return e
	}
	dirAsFile := d
	dirAsFile.Path = "a.txt"
	cases := []struct {
		name    string
		entries []repo.Entry
		badHash bool
		want    string
	}{
		{"file listed twice", []repo.Entry{root, a, d, dx, a}, false, `"a.txt" is listed twice`},
		{"folder listed twice", []repo.Entry{root, a, d, dx, d}, false, `"d" is listed twice`},
		{"folder listed after a file of its name", []repo.Entry{root, a, asDir(a)}, false, `"a.txt" is listed twice`},
		{"file listed after a folder of its name", []repo.Entry{root, d, func() repo.Entry { e := a; e.Path = "d"; return e }()}, false, `"d" is listed twice`},
		{"child before its folder", []repo.Entry{root, a, dx, d}, false, `"d/x": its folder "d" is not a folder listed before it`},
		{"wrong per-source hash", []repo.Entry{root, a, d, dx}, true, `its entries do not match the source's SHA-256`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := f.snapshot(t, tc.entries, tc.badHash)
			op := f.tr.Operator(t)
			if _, err := op.ReadCatalog(context.Background(), m); tc.badHash && err == nil {
				t.Fatal("ReadCatalog accepted a catalog whose entries do not match the source's SHA-256")
			}
			src, err := OpenSource(context.Background(), op, m, "docs")
			if err != nil {
				t.Fatal(err)
			}
			parent := t.TempDir()
			target := filepath.Join(parent, "restored")
			_, err = RestoreDir(context.Background(), src, target, DirOptions{})
			if err == nil {
				t.Fatal("restore succeeded")
			}
			var ie *repo.IntegrityError
			if !errors.As(err, &ie) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("restore error %v, want an integrity error saying %s", err, tc.want)
			}
			left, _ := os.ReadDir(parent)
			if len(left) != 0 {
				t.Fatalf("the failed restore left %v in %s", left, parent)
			}
		})
	}
	// The good entries restore, streamed, so the cases above fail for
	// the reason they name.
	m := f.snapshot(t, []repo.Entry{root, a, d, dx}, false)
	src, err := OpenSource(context.Background(), f.tr.Operator(t), m, "docs")
	if err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(t.TempDir(), "restored")
	res, err := RestoreDir(context.Background(), src, target, DirOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(target, "d", "x")); err != nil || string(got) != "d/x" {
		t.Fatalf("restored d/x = %q, %v", got, err)
	}
	if res.Files != 2 || res.Dirs != 2 {
		t.Fatalf("restored %d files, %d folders; want 2, 2", res.Files, res.Dirs)
	}
}

// emptyFiles is a source of n empty files, 1,000 a folder (as gendata
// lays them out), so that a restore of it is all metadata.
type emptyFiles int

func (n emptyFiles) Name() string { return "docs" }
func (n emptyFiles) Kind() string { return "dir" }
func (n emptyFiles) Backup(ctx context.Context, w source.Writer) error {
	mt := time.Unix(1e9, 0)
	if err := w.WriteEntry(ctx, source.Entry{Path: ".", Type: source.TypeDir, Mode: 0o755, ModTime: mt}); err != nil {
		return err
	}
	for i := 0; i < int(n); i++ {
		dir := fmt.Sprintf("d%04d", i/1000)
		if i%1000 == 0 {
			if err := w.WriteEntry(ctx, source.Entry{Path: dir, Type: source.TypeDir, Mode: 0o755, ModTime: mt}); err != nil {
				return err
			}
		}
		e := source.Entry{Path: fmt.Sprintf("%s/invoice-%07d.json", dir, i), Type: source.TypeFile, Mode: 0o644, ModTime: mt}
		if err := w.WriteFile(ctx, e, strings.NewReader("")); err != nil {
			return err
		}
	}
	return nil
}

// liveAtLast is a progress reporter that, when the last of n files is
// restored, collects garbage and records the live heap: with the live
// heap before the restore subtracted, what the restore holds near its
// end.
type liveAtLast struct {
	n, done int64
	live    atomic.Uint64
}

func (l *liveAtLast) Start(string, progress.Counts) {}
func (l *liveAtLast) Finish(string)                 {}
func (l *liveAtLast) Add(_ string, c progress.Counts) {
	if c.Files > 0 && atomic.AddInt64(&l.done, c.Files) == l.n {
		l.live.Store(testutil.LiveHeap())
	}
}

// TestRestoreMemoryFlat (issue 12): the memory a folder restore holds does
// not grow with the number of files. It restores 1,000 and 10,000 empty
// files (one and ten folders), streamed as coffer restore --to does,
// and compares the live heap when the last file is done. Holding the
// entries (the decoded catalog, or the list of files) costs about 500
// bytes a file: 4.5 MB more for the larger tree.
func TestRestoreMemoryFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("restores 11,000 files")
	}
	live := map[int]int64{}
	for _, n := range []int{1000, 10000} {
		tr := testrepo.New(t)
		res, err := backup.Run(context.Background(), backup.Options{Repo: tr.Host(t), Signing: tr.Signing,
			Sources: []source.Source{emptyFiles(n)}})
		if err != nil {
			t.Fatalf("backup: %v", err)
		}
		// What the backup left (its zstd encoder's history grows with the
		// largest chunk it compressed: the catalog's) is not the restore's.
		op := tr.Operator(t)
		before := testutil.LiveHeap()
		src, err := OpenSource(context.Background(), op, res.Manifest, "docs")
		if err != nil {
			t.Fatal(err)
		}
		rep := &liveAtLast{n: int64(n)}
		src.SetProgress(rep)
		r, err := RestoreDir(context.Background(), src, filepath.Join(t.TempDir(), "r"), DirOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if r.Files != n {
			t.Fatalf("restored %d files, want %d", r.Files, n)
		}
		live[n] = int64(rep.live.Load()) - int64(before)
		t.Logf("%d files: the restore held %.2f MiB when the last file was restored (%.2f MiB live before it)",
			n, float64(live[n])/(1<<20), float64(before)/(1<<20))
	}
	grew := live[10000] - live[1000]
	if grew > 1<<20 {
		t.Fatalf("the live heap grew by %.2f MiB from 1,000 to 10,000 files (%d bytes a file): the restore holds its entries",
			float64(grew)/(1<<20), grew/9000)
	}
}

// TestStreamedSubPathRefusesFileAndFolderOfOneName: a catalog that lists
// a file and then a folder of the same name is refused by a restore of
// that path (--path), as by a whole restore. The streamed checker does not
// hold files' paths and counts on the second creation failing in the
// staging folder, but a restore of the path rebases the folder to the
// root and the file to its base name, so neither creation failed and the
// restore wrote both, as if the catalog were sound.
func TestStreamedSubPathRefusesFileAndFolderOfOneName(t *testing.T) {
	f := newForged(t)
	root, a, d, dx := f.entry(t, "."), f.entry(t, "a.txt"), f.entry(t, "d"), f.entry(t, "d/x")
	fileD := a
	fileD.Path = "d"
	m := f.snapshot(t, []repo.Entry{root, fileD, d, dx}, false)
	if _, err := f.tr.Operator(t).ReadCatalog(context.Background(), m); err != nil {
		t.Fatal(err) // the catalog's hashes are sound: only its entries are not
	}
	src, err := OpenSource(context.Background(), f.tr.Operator(t), m, "docs")
	if err != nil {
		t.Fatal(err)
	}
	parent := t.TempDir()
	target := filepath.Join(parent, "restored")
	_, err = RestoreDir(context.Background(), src, target, DirOptions{SubPath: "d"})
	var ie *repo.IntegrityError
	if !errors.As(err, &ie) || !strings.Contains(err.Error(), `"d" is listed twice`) {
		t.Fatalf("restore --path d error %v, want an integrity error saying \"d\" is listed twice", err)
	}
	if left, _ := os.ReadDir(parent); len(left) != 0 {
		t.Fatalf("the failed restore left %v in %s", left, parent)
	}
}

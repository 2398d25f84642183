package backup

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testing/testrepo"
	"github.com/cofferhq/coffer/internal/testing/testutil"
	"github.com/cofferhq/coffer/source"
)

// smallFiles is a source of n files of about 200 bytes, each different
// (one new chunk a file), 1,000 a folder, in walk order, that uses the
// change cache like a folder source and records the live heap over its last
// 500 files (the least of six samples).
type smallFiles struct {
	n    int
	live uint64
	// first changes the first file's content (and state), nothing else.
	first bool
}

func (s *smallFiles) Name() string      { return "docs" }
func (s *smallFiles) Kind() string      { return "dir" }
func (s *smallFiles) WalkOrdered() bool { return true }
func (s *smallFiles) Backup(ctx context.Context, w source.Writer) error {
	mt := time.Unix(1e9, 0)
	ct := w.(source.ChangeTracker)
	if err := w.WriteEntry(ctx, source.Entry{Path: ".", Type: source.TypeDir, Mode: 0o755, ModTime: mt}); err != nil {
		return err
	}
	for i := range s.n {
		dir := fmt.Sprintf("d%04d", i/1000)
		if i%1000 == 0 {
			if err := w.WriteEntry(ctx, source.Entry{Path: dir, Type: source.TypeDir, Mode: 0o755, ModTime: mt}); err != nil {
				return err
			}
		}
		body := fmt.Sprintf("{\"invoice\": %d, \"lines\": %q}\n", i, strings.Repeat(fmt.Sprint(i), 20))
		e := source.Entry{Path: fmt.Sprintf("%s/invoice-%07d.json", dir, i), Type: source.TypeFile, Mode: 0o644, ModTime: mt}
		st := source.FileState{Size: int64(len(body)), MTime: mt.UnixNano(), Ino: uint64(i + 1)}
		if i == 0 && s.first {
			body = "changed " + body
			st.Size, st.MTime = int64(len(body)), st.MTime+1
		}
		if i >= s.n-500 && i%100 == 0 {
			s.sample()
		}
		if ok, err := ct.Unchanged(e, st); err != nil || ok {
			if err != nil {
				return err
			}
			continue
		}
		if err := w.WriteFile(ctx, e, strings.NewReader(body)); err != nil {
			return err
		}
		ct.Remember(e.Path, st)
	}
	s.sample()
	return nil
}

// sample records the live heap, the least of its samples: what is in
// flight (a zstd encoder's history, a chunk buffer) comes and goes between
// samples, what the backup holds per file does not.
func (s *smallFiles) sample() {
	if l := testutil.LiveHeap(); s.live == 0 || l < s.live {
		s.live = l
	}
}

// TestBackupMemoryFlat (issue 12): the memory a backup holds does not grow
// with the number of files. It backs up 4,000 and 24,000 small files
// (each its own chunk) twice, the second time unchanged through the change
// cache, and compares the live heap over the last 500 files the source
// writes (below 4,000 files this backup's index has not yet grown its
// zstd encoder's full history, 4 MiB). Holding the index of known chunks
// in memory (about 80 bytes a chunk) and the set of paths (about 36 bytes
// a path) cost about 2 MiB more for the larger tree. A third backup
// changes only the first file: its one new small chunk, waiting in a batch
// never full, held every later record in memory (about 600 bytes a file).
// The index keeps its newest chunks in memory
// (knownMemMax, 32,768 of them); the test lowers that to 1,000, so that
// 24,000 files exercise its tables, and packs to 32 KiB: the open pack's
// list of chunks is bounded by the pack size, not by the files.
func TestBackupMemoryFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("backs up 80,000 files")
	}
	defer func(n int) { knownMemMax = n }(knownMemMax)
	knownMemMax = 1000
	// A first backup grows what lives on across backups (zstd's encoders
	// and their history): not any one backup's.
	warm := testrepo.New(t)
	if _, err := Run(context.Background(), Options{Repo: warm.Host(t), Signing: warm.Signing,
		Sources: []source.Source{&smallFiles{n: 24000}}}); err != nil {
		t.Fatal(err)
	}
	live := map[string]int64{}
	for _, n := range []int{4000, 24000} {
		tr := testrepo.New(t)
		cache := t.TempDir()
		for _, step := range []string{"first", "unchanged", "first changed"} {
			src := &smallFiles{n: n, first: step == "first changed"}
			before := testutil.LiveHeap()
			r := tr.Host(t)
			r.Config.Packs.TargetSize = 32 << 10
			res, err := Run(context.Background(), Options{Repo: r, Signing: tr.Signing, CacheDir: cache,
				Sources: []source.Source{src}})
			if err != nil {
				t.Fatalf("%s backup of %d files: %v", step, n, err)
			}
			if skipped := res.BytesSkipped > 0; skipped != (step != "first") {
				t.Fatalf("%s backup of %d files: %d bytes skipped by the change cache", step, n, res.BytesSkipped)
			}
			key := fmt.Sprint(step, n)
			live[key] = int64(src.live) - int64(before)
			t.Logf("%s backup of %d files: %.2f MiB held over the last files (%.2f MiB live before)",
				step, n, float64(live[key])/(1<<20), float64(before)/(1<<20))
		}
	}
	for _, step := range []string{"first", "unchanged", "first changed"} {
		grew := live[step+"24000"] - live[step+"4000"]
		if grew > 512<<10 {
			t.Errorf("%s backup: the live heap grew by %.2f MiB from 4,000 to 24,000 files (%d bytes a file)",
				step, float64(grew)/(1<<20), grew/20000)
		}
	}
}

package backup

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/progress"
	"github.com/cofferhq/coffer/internal/testing/testrepo"
	"github.com/cofferhq/coffer/source"
	"github.com/cofferhq/coffer/source/dir"
)

// walkCompare orders paths exactly as filepath.WalkDir visits them, names
// with bytes below '/' included ("a-b" and "a.b" sort before "a/..." by
// bytes, after it by walk).
func TestWalkCompareIsWalkOrder(t *testing.T) {
	root := t.TempDir()
	for _, p := range []string{"a/x", "a/y/z", "a-b/c", "a.b", "a0", "ab/c", "B", "a/y-1", "a/y.1/q", "é/1", "a b/c"} {
		full := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var walked []string
	filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(root, p)
		walked = append(walked, filepath.ToSlash(rel))
		return err
	})
	sorted := slices.Clone(walked)
	slices.SortFunc(sorted, walkCompare)
	if !slices.Equal(walked, sorted) {
		t.Fatalf("walk order %q, walkCompare order %q", walked, sorted)
	}
	if strings.Compare("a-b/c", "a/x") >= 0 || walkCompare("a-b/c", "a/x") <= 0 {
		t.Fatal("the test data no longer tells byte order from walk order")
	}
}

// The streamed change cache: an unchanged tree is read from it whole; a
// second source backed up on its own keeps the first source's entries; a
// damaged cache file means files are read, not a failed backup.
func TestChangeCacheStream(t *testing.T) {
	ctx := context.Background()
	tr := testrepo.New(t)
	mk := func(files int) (string, int64) {
		d := t.TempDir()
		var n int64
		for i := range files {
			sub := filepath.Join(d, string(rune('a'+i%3)))
			os.MkdirAll(sub, 0o755)
			if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("%s%02d", strings.Repeat("f", 1+i%5), i)),
				[]byte(strings.Repeat("invoice ", 100+i)), 0o644); err != nil {
				t.Fatal(err)
			}
			n += int64(len("invoice ") * (100 + i))
		}
		return d, n
	}
	cache := t.TempDir()
	docs, docsBytes := mk(40)
	mail, _ := mk(25)
	estimate := func(source string) progress.Counts {
		r := tr.Host(t)
		sec, err := r.Secrets(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return loadCache(cache, r.Config.ID, sec, nil, slog.New(slog.DiscardHandler)).estimate(source)
	}
	run := func(srcs ...source.Source) *Result {
		t.Helper()
		res, err := Run(ctx, Options{Repo: tr.Host(t), Signing: tr.Signing, CacheDir: cache, Sources: srcs})
		if err != nil {
			t.Fatalf("backup: %v", err)
		}
		return res
	}
	srcDocs := &dir.Source{SourceName: "docs", Path: docs}
	srcMail := &dir.Source{SourceName: "mail", Path: mail}
	first := run(srcDocs, srcMail)
	if first.BytesSkipped != 0 {
		t.Fatalf("first backup skipped %d bytes", first.BytesSkipped)
	}
	total := first.Private.Stats.BytesRead
	if res := run(srcDocs, srcMail); res.BytesSkipped != total || res.Private.Stats.BytesRead != 0 {
		t.Fatalf("unchanged: skipped %d of %d bytes, read %d", res.BytesSkipped, total, res.Private.Stats.BytesRead)
	}
	if n := estimate("docs"); n.Files != 40 || n.Bytes != docsBytes {
		t.Fatalf("estimate of docs: %+v, want 40 files, %d bytes", n, docsBytes)
	}
	// Only mail: docs' entries must survive the save.
	run(srcMail)
	if n := estimate("docs"); n.Files != 40 || n.Bytes != docsBytes {
		t.Fatalf("estimate of docs after a mail-only backup: %+v, want 40 files, %d bytes", n, docsBytes)
	}
	if res := run(srcDocs); res.Private.Stats.BytesRead != 0 {
		t.Fatalf("docs after a mail-only backup read %d bytes, want 0 (its cache entries were lost)", res.Private.Stats.BytesRead)
	}
	// A changed file is read again, its neighbours are not.
	p := filepath.Join(docs, "b", "ff01")
	if err := os.WriteFile(p, []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	if res := run(srcDocs); res.Private.Stats.BytesRead != int64(len("changed")) {
		t.Fatalf("one changed file: read %d bytes, want %d", res.Private.Stats.BytesRead, len("changed"))
	}
	// Damaged: the backup succeeds and reads everything.
	files, _ := filepath.Glob(filepath.Join(cache, "*", "changes.age"))
	if len(files) != 1 {
		t.Fatalf("cache files: %v", files)
	}
	if err := os.WriteFile(files[0], []byte("age-encryption.org/v1\ngarbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if res := run(srcDocs, srcMail); res.BytesSkipped != 0 {
		t.Fatalf("damaged cache: skipped %d bytes, want 0", res.BytesSkipped)
	}
	if res := run(srcDocs, srcMail); res.Private.Stats.BytesRead != 0 {
		t.Fatalf("after rewriting the damaged cache: read %d bytes, want 0", res.Private.Stats.BytesRead)
	}
}

// A cursor finds the entries of a source written in byte order (a
// bucket's keys) as well as in walk order, where the two orders differ,
// with an entry gone and a new path in between.
func TestCacheCursorOrders(t *testing.T) {
	cursor := func(paths ...string) *cacheCursor {
		cur := &cacheCursor{close: func() {}, cur: cacheEntry{Path: paths[0]}, ok: true}
		rest := paths[1:]
		cur.next = func() (cacheEntry, error) {
			if len(rest) == 0 {
				return cacheEntry{}, io.EOF
			}
			e := cacheEntry{Path: rest[0]}
			rest = rest[1:]
			return e, nil
		}
		return cur
	}
	log := slog.New(slog.DiscardHandler)
	for _, c := range []struct {
		name    string
		cache   []string // the previous backup's entries, in its order
		lookups []string // this backup's, in the same order
		hits    []string
	}{
		// "a-c" is gone, "a.new" is new: by walk order alone the cursor
		// would pass "a/b" and "a/c" looking for "a.new".
		{"bytes", []string{"a-c", "a/b", "a/c", "b"}, []string{"a.new", "a/b", "a/c", "b"}, []string{"a/b", "a/c", "b"}},
		// Nothing in the cache tells the order; the lookups do.
		{"bytes learnt from lookups", []string{"a/b", "b"}, []string{"a.new", "a/b", "b"}, []string{"a/b", "b"}},
		{"walk", []string{"a/b", "a/c", "a-c", "a.txt", "b"}, []string{"a/c", "a-c", "a.new", "a.txt", "b"}, []string{"a/c", "a-c", "a.txt", "b"}},
	} {
		cur := cursor(c.cache...)
		var hits []string
		for _, p := range c.lookups {
			if _, ok := cur.find(p, log); ok {
				hits = append(hits, p)
			}
		}
		if !slices.Equal(hits, c.hits) {
			t.Errorf("%s: found %q, want %q", c.name, hits, c.hits)
		}
	}
}

// A backup of an unchanged tree leaves the change cache file as it is (it
// would write the same entries); a file added, removed or touched since
// makes the backup write it again, so the next backup reads nothing.
func TestChangeCacheKeptWhenUnchanged(t *testing.T) {
	ctx := context.Background()
	tr := testrepo.New(t)
	cache := t.TempDir()
	docs, mail := t.TempDir(), t.TempDir()
	for i := range 30 {
		for _, d := range []string{docs, mail} {
			sub := filepath.Join(d, string(rune('a'+i%3)))
			os.MkdirAll(sub, 0o755)
			if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%02d", i)), []byte(strings.Repeat("invoice ", 50+i)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	srcDocs := &dir.Source{SourceName: "docs", Path: docs}
	srcMail := &dir.Source{SourceName: "mail", Path: mail}
	run := func(srcs ...source.Source) *Result {
		t.Helper()
		res, err := Run(ctx, Options{Repo: tr.Host(t), Signing: tr.Signing, CacheDir: cache, Sources: srcs})
		if err != nil {
			t.Fatalf("backup: %v", err)
		}
		return res
	}
	stat := func() os.FileInfo {
		t.Helper()
		files, _ := filepath.Glob(filepath.Join(cache, "*", "changes.age"))
		if len(files) != 1 {
			t.Fatalf("cache files: %v", files)
		}
		fi, err := os.Stat(files[0])
		if err != nil {
			t.Fatal(err)
		}
		return fi
	}
	estimate := func(source string) progress.Counts {
		r := tr.Host(t)
		sec, err := r.Secrets(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return loadCache(cache, r.Config.ID, sec, nil, slog.New(slog.DiscardHandler)).estimate(source)
	}
	readNothing := func(what string, srcs ...source.Source) {
		t.Helper()
		before := stat()
		if res := run(srcs...); res.Private.Stats.BytesRead != 0 {
			t.Fatalf("%s: read %d bytes, want 0", what, res.Private.Stats.BytesRead)
		}
		if !os.SameFile(before, stat()) {
			t.Fatalf("%s: the change cache was written again", what)
		}
	}
	written := func(what string, wantRead int64) {
		t.Helper()
		before := stat()
		if res := run(srcDocs, srcMail); res.Private.Stats.BytesRead != wantRead {
			t.Fatalf("%s: read %d bytes, want %d", what, res.Private.Stats.BytesRead, wantRead)
		}
		if os.SameFile(before, stat()) {
			t.Fatalf("%s: the change cache was not written", what)
		}
		readNothing("the backup after "+what, srcDocs, srcMail)
	}

	run(srcDocs, srcMail)
	readNothing("unchanged", srcDocs, srcMail)
	readNothing("unchanged, one source of two", srcMail)

	if err := os.WriteFile(filepath.Join(docs, "b", "new"), []byte("new invoice"), 0o644); err != nil {
		t.Fatal(err)
	}
	written("a file added", int64(len("new invoice")))
	if n := estimate("docs"); n.Files != 31 {
		t.Fatalf("docs after a file added: %d files, want 31", n.Files)
	}

	if err := os.Remove(filepath.Join(mail, "c", "f05")); err != nil {
		t.Fatal(err)
	}
	written("a file removed", 0)
	if n := estimate("mail"); n.Files != 29 {
		t.Fatalf("mail after a file removed: %d files, want 29", n.Files)
	}

	p := filepath.Join(docs, "a", "f03")
	future := time.Now().Add(time.Hour)
	if err := os.Chtimes(p, future, future); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	written("a file touched", fi.Size())
}

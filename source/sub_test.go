package source_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/internal/testing/memsource"
	"github.com/cofferhq/coffer/source"
)

// TestPrefixSub stores a part under a prefix and reads it back through
// Sub exactly as the part wrote it.
func TestPrefixSub(t *testing.T) {
	ctx := context.Background()
	snap := memsource.New("deploy", "airflow")
	w := source.Prefix(snap, "metadb")
	if err := w.WriteEntry(ctx, source.Entry{Path: ".", Type: source.TypeDir}); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFile(ctx, source.Entry{Path: "dump.sql", Type: source.TypeFile}, strings.NewReader("select 1;")); err != nil {
		t.Fatal(err)
	}
	if err := w.SetMeta("mysql", map[string]int{"format": 1}); err != nil {
		t.Fatal(err)
	}
	if err := snap.WriteFile(ctx, source.Entry{Path: "dags/a.py", Type: source.TypeFile}, strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	if _, ok := snap.Files["metadb/dump.sql"]; !ok {
		t.Fatalf("stored paths %v, want metadb/dump.sql", snap.Files)
	}

	r := source.Sub(snap, "metadb", "mysql")
	if got, want := r.Kind(), "mysql"; got != want {
		t.Errorf("Kind() = %q, want %q", got, want)
	}
	var paths []string
	for _, e := range r.Entries() {
		paths = append(paths, e.Path)
	}
	if got, want := strings.Join(paths, ","), ".,dump.sql"; got != want {
		t.Errorf("entries %s, want %s", got, want)
	}
	var m map[string]int
	if err := r.Meta("mysql", &m); err != nil || m["format"] != 1 {
		t.Errorf("Meta(mysql) = %v, %v", m, err)
	}
	rc, err := r.Open(ctx, "dump.sql")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	if got, want := string(b), "select 1;"; got != want {
		t.Errorf("Open(dump.sql) = %q, want %q", got, want)
	}
	if _, ok := source.Lookup(r, "a.py"); ok {
		t.Error("Sub shows an entry from outside its prefix")
	}
}

// TestPrefixWritesPartFolder: a part without a root entry (a database
// dump) gets a folder entry for its prefix before its first entry, so the
// composite source restores into a folder; a part with a root entry gets
// none more.
func TestPrefixWritesPartFolder(t *testing.T) {
	ctx := context.Background()
	snap := memsource.New("deploy", "airflow")
	w := source.Prefix(snap, "metadb")
	if err := w.WriteFile(ctx, source.Entry{Path: "dump.pgdump", Type: source.TypeFile}, strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFile(ctx, source.Entry{Path: "globals.sql", Type: source.TypeFile}, strings.NewReader("y")); err != nil {
		t.Fatal(err)
	}
	d := source.Prefix(snap, "dags")
	if err := d.WriteEntry(ctx, source.Entry{Path: ".", Type: source.TypeDir}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range snap.List {
		got = append(got, e.Path+":"+string(e.Type))
	}
	if got, want := strings.Join(got, ","), "metadb:dir,metadb/dump.pgdump:file,metadb/globals.sql:file,dags:dir"; got != want {
		t.Errorf("entries %s, want %s", got, want)
	}
}

type skipRecorder struct {
	*memsource.Snap
	skipped []string
}

func (s *skipRecorder) Skip(path string, err error) error {
	s.skipped = append(s.skipped, path+": "+err.Error())
	return nil
}

// TestPrefixSkip: a nested part's unreadable path is left out through the
// writer's Skipper, under the part's prefix; a writer without one fails
// the part.
func TestPrefixSkip(t *testing.T) {
	rec := &skipRecorder{Snap: memsource.New("deploy", "airflow")}
	s, ok := source.Prefix(rec, "dags").(source.Skipper)
	if !ok {
		t.Fatal("Prefix hides the writer's Skipper")
	}
	if err := s.Skip("x/secret.py", errors.New("open: permission denied")); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(rec.skipped, ";"), "dags/x/secret.py: open: permission denied"; got != want {
		t.Errorf("skipped %q, want %q", got, want)
	}
	plain := source.Prefix(memsource.New("deploy", "airflow"), "dags").(source.Skipper)
	if err := plain.Skip("x", errors.New("denied")); err == nil {
		t.Error("Skip through a writer without Skipper succeeded")
	}
}

// onlyReader hides every optional capability of a Reader.
type onlyReader struct{ source.Reader }

// TestSubRanges reads ranges of a part's file through Sub, when the
// snapshot's reader reads ranges, and only then.
func TestSubRanges(t *testing.T) {
	ctx := context.Background()
	snap := memsource.New("deploy", "airflow")
	w := source.Prefix(snap, "metadb")
	if err := w.WriteFile(ctx, source.Entry{Path: "dump.pgdump", Type: source.TypeFile}, strings.NewReader("0123456789")); err != nil {
		t.Fatal(err)
	}
	rr, ok := source.Sub(snap, "metadb", "postgres").(source.RangeReader)
	if !ok {
		t.Fatal("Sub of a RangeReader does not read ranges")
	}
	rc, err := rr.OpenRanges(ctx, "dump.pgdump", []source.Range{{Offset: 2, Length: 3}, {Offset: 8, Length: 2}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(rc)
	if err != nil || string(b) != "23489" {
		t.Errorf("ranges = %q, %v; want %q", b, err, "23489")
	}
	if _, ok := source.Sub(onlyReader{snap}, "metadb", "postgres").(source.RangeReader); ok {
		t.Error("Sub of a Reader that does not read ranges claims to")
	}
}

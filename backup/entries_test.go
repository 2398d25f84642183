package backup_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/backup"
	"github.com/cofferhq/coffer/internal/testing/testrepo"
	"github.com/cofferhq/coffer/source"
)

type entriesSource []source.Entry

func (s entriesSource) Name() string { return "docs" }
func (s entriesSource) Kind() string { return "dir" }
func (s entriesSource) Backup(ctx context.Context, w source.Writer) error {
	for _, e := range s {
		var err error
		if e.Type == source.TypeFile {
			err = w.WriteFile(ctx, e, strings.NewReader("x"))
		} else {
			err = w.WriteEntry(ctx, e)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// walkSource is an entriesSource that says it writes in walk order.
type walkSource struct{ entriesSource }

func (walkSource) WalkOrdered() bool { return true }

// TestWriterRefusesUnrestorableEntries: the writer never stores a source
// that a folder restore could not recreate: a path written twice (names
// are compared byte for byte), an entry whose folder was not written
// before it, a root that is not a folder; and so does a source that says
// it writes in walk order (checked against its open folders), which must
// also keep to that order.
func TestWriterRefusesUnrestorableEntries(t *testing.T) {
	tr := testrepo.New(t)
	mt := time.Unix(1_700_000_000, 0)
	dir := func(p string) source.Entry {
		return source.Entry{Path: p, Type: source.TypeDir, Mode: 0o755, ModTime: mt}
	}
	file := func(p string) source.Entry {
		return source.Entry{Path: p, Type: source.TypeFile, Mode: 0o644, ModTime: mt}
	}
	for _, tc := range []struct {
		name string
		src  entriesSource
		want string
	}{
		{"ok", entriesSource{dir("."), file("a\xfe"), file("a\xff"), dir("d"), file("d/b")}, ""},
		{"twice", entriesSource{dir("."), file("a\xff"), file("a\xff")}, `"a\xff": entry written twice`},
		{"no folder", entriesSource{dir("."), file("d/b")}, `"d/b": its folder "d" was not written before it`},
		{"folder is a file", entriesSource{file("d"), file("d/b")}, `its folder "d" was not written before it`},
		{"root a file", entriesSource{file(".")}, "the root of a source is a folder, not a file"},
		{"file then folder", entriesSource{dir("."), file("d"), dir("d")}, `"d": entry written twice`},
		{"twice apart", entriesSource{dir("."), file("a"), file("b"), file("a")}, `"a": `},
	} {
		for _, src := range []source.Source{tc.src, walkSource{tc.src}} {
			_, err := backup.Run(context.Background(), backup.Options{Repo: tr.Host(t), Signing: tr.Signing,
				Sources: []source.Source{src}})
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("%s (%T): %v", tc.name, src, err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("%s (%T): err = %v, want %q", tc.name, src, err, tc.want)
			}
		}
	}
	_, err := backup.Run(context.Background(), backup.Options{Repo: tr.Host(t), Signing: tr.Signing,
		Sources: []source.Source{walkSource{entriesSource{dir("."), file("b"), file("a")}}}})
	if want := `"a": written after "b", out of the order of a folder walk`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("out of walk order: err = %v, want %q", err, want)
	}
}

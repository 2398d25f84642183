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

// TestWriterRefusesUnrestorableEntries: the writer never stores a source
// that a folder restore could not recreate: a path written twice (names
// are compared byte for byte), an entry whose folder was not written
// before it, a root that is not a folder.
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
		{"ok", entriesSource{dir("."), file("a\xff"), file("a\xfe"), dir("d"), file("d/b")}, ""},
		{"twice", entriesSource{dir("."), file("a\xff"), file("a\xff")}, `"a\xff": entry written twice`},
		{"no folder", entriesSource{dir("."), file("d/b")}, `"d/b": its folder "d" was not written before it`},
		{"folder is a file", entriesSource{file("d"), file("d/b")}, `its folder "d" was not written before it`},
		{"root a file", entriesSource{file(".")}, "the root of a source is a folder, not a file"},
	} {
		_, err := backup.Run(context.Background(), backup.Options{Repo: tr.Host(t), Signing: tr.Signing,
			Sources: []source.Source{tc.src}})
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
}

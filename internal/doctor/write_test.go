package doctor

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/storage"
)

// appendOnly is a store whose credentials may write but not delete.
type appendOnly struct{ storage.Store }

func (appendOnly) Delete(ctx context.Context, name string) error {
	return fmt.Errorf("delete %s: %w", name, storage.ErrDeleteDenied)
}

// TestWriteProbe: with delete rights the probe leaves nothing behind, not
// even an empty folder (it used to leave doctor/ in a local repository);
// without them the check is still OK (append-only credentials are what a
// backup host should have), and runs after runs leave one probe, not one
// each.
func TestWriteProbe(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := storage.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	left := func() []string {
		var names []string
		if err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
			if p != dir {
				names = append(names, p)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return names
	}
	probes := func() []string {
		var names []string
		if err := st.List(ctx, ProbeName, func(o storage.ObjectInfo) error { names = append(names, o.Name); return nil }); err != nil {
			t.Fatal(err)
		}
		return names
	}
	if r := checkWrite(ctx, st); r.Status != OK || !strings.Contains(r.Message, "can write and delete") {
		t.Fatalf("with delete rights: %+v", r)
	}
	if n := probes(); len(n) != 0 {
		t.Fatalf("the probe stayed: %v", n)
	}
	if l := left(); len(l) != 0 {
		t.Fatalf("the probe left %v in the repository", l)
	}
	for range 3 {
		if r := checkWrite(ctx, appendOnly{st}); r.Status != OK || !strings.Contains(r.Message, "append-only") {
			t.Fatalf("without delete rights: %+v", r)
		}
	}
	if n := probes(); len(n) != 1 {
		t.Fatalf("three runs without delete rights left %d probes, want 1: %v", len(n), n)
	}
	// Deletes allowed again: the probe left earlier goes too.
	if r := checkWrite(ctx, st); r.Status != OK {
		t.Fatalf("with delete rights: %+v", r)
	}
	if n := probes(); len(n) != 0 {
		t.Fatalf("the probe stayed: %v", n)
	}
	if l := left(); len(l) != 0 {
		t.Fatalf("the probe left %v in the repository", l)
	}
}

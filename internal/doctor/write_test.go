package doctor

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/storage"
)

// appendOnly is a store whose credentials may write but not delete.
type appendOnly struct{ storage.Store }

func (appendOnly) Delete(ctx context.Context, name string) error {
	return fmt.Errorf("delete %s: %w", name, storage.ErrDeleteDenied)
}

// TestWriteProbe: with delete rights the probe leaves no object behind;
// without them the check is still OK (append-only credentials are what a
// backup host should have), and runs after runs leave one probe, not one
// each.
func TestWriteProbe(t *testing.T) {
	ctx := context.Background()
	st, err := storage.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	probes := func() []string {
		var names []string
		if err := st.List(ctx, ProbePrefix, func(o storage.ObjectInfo) error { names = append(names, o.Name); return nil }); err != nil {
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
}

package known

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/internal/testing/testrepo"
	"github.com/cofferhq/coffer/storage"
)

func TestDefaultDir(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"COFFER_STATE_DIR": "/s", "XDG_STATE_HOME": "/x", "HOME": "/h"}, "/s"},
		{map[string]string{"XDG_STATE_HOME": "/x", "HOME": "/h"}, "/x/coffer"},
		{map[string]string{"XDG_STATE_HOME": "relative", "HOME": "/h"}, "/h/.local/state/coffer"},
		{map[string]string{"HOME": "/h"}, "/h/.local/state/coffer"},
	} {
		got, err := DefaultDir(func(k string) string { return c.env[k] })
		if err != nil || got != c.want {
			t.Errorf("DefaultDir(%v) = %q, %v; want %q", c.env, got, err, c.want)
		}
	}
}

func TestRecords(t *testing.T) {
	s := &Store{Dir: filepath.Join(t.TempDir(), "state")}
	id := strings.Repeat("ab", 32)
	if r, err := s.Get(id); r != nil || err != nil {
		t.Fatalf("Get(unknown) = %v, %v", r, err)
	}
	if _, err := s.Get("../x"); err == nil {
		t.Error("Get(../x) = nil error")
	}
	want := &Record{Repository: id, Owner: "o", ConfigSeq: 3}
	if err := s.Put(want); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(id)
	if err != nil || got.Owner != "o" || got.ConfigSeq != 3 {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	for p, mode := range map[string]os.FileMode{s.Dir: 0o700, s.Path(id): 0o600} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, %v; want %04o", p, fi.Mode().Perm(), err, mode)
		}
	}
	// A record others may write is refused: it holds the pin.
	os.Chmod(s.Path(id), 0o666)
	if _, err := s.Get(id); err == nil || !strings.Contains(err.Error(), "writable by group or others") && !strings.Contains(err.Error(), "readable") {
		t.Errorf("Get(0666) = %v", err)
	}
	os.Chmod(s.Path(id), 0o600)
	os.WriteFile(s.Path(id), []byte("{"), 0o600)
	if _, err := s.Get(id); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("Get(damaged) = %v", err)
	}
}

// TestOpen: the first open needs a pin and remembers it; later opens use
// the remembered one, refuse another, and refuse a rolled-back config.
func TestOpen(t *testing.T) {
	ctx := context.Background()
	tr := testrepo.New(t)
	_, other, _, _ := testrepo.Keys(t, filepath.Join(t.TempDir(), "other"))
	s := &Store{Dir: filepath.Join(t.TempDir(), "state")}

	var ue *repo.UnpinnedError
	if _, err := s.Open(ctx, tr.Store, OpenOptions{}); !errors.As(err, &ue) {
		t.Fatalf("first open without a pin = %v, want *repo.UnpinnedError", err)
	}
	op, err := s.Open(ctx, tr.Store, OpenOptions{Pin: tr.Owner.Public(), PinSource: "identity.txt"})
	if err != nil {
		t.Fatal(err)
	}
	if op.PinSource != "identity.txt" || op.Record.ConfigSeq != 1 || op.Record.Owner != tr.Owner.Public().String() {
		t.Errorf("record = %+v (pin from %s)", op.Record, op.PinSource)
	}
	op, err = s.Open(ctx, tr.Store, OpenOptions{})
	if err != nil {
		t.Fatalf("open with the remembered pin: %v", err)
	}
	if op.PinSource != "the known-repositories store" {
		t.Errorf("pin from %q", op.PinSource)
	}
	var oc *OwnerChangedError
	if _, err := s.Open(ctx, tr.Store, OpenOptions{Pin: other.Public(), PinSource: "--owner-key"}); !errors.As(err, &oc) {
		t.Errorf("open with another pin = %v, want *OwnerChangedError", err)
	} else if !strings.Contains(err.Error(), "owner key changed") || !strings.Contains(err.Error(), "--owner-key names "+other.Public().Fingerprint()) {
		t.Errorf("error %q", err)
	}

	// A second config, seen; then removed: rollback.
	owner, err := s.Open(ctx, tr.Store, OpenOptions{OwnerKey: tr.Owner, Pin: tr.Owner.Public()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.UpdateConfig(ctx, owner.Repo, tr.Owner, func(*repo.Config) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := owner.Save(); err != nil {
		t.Fatal(err)
	}
	if err := tr.Store.Delete(ctx, repo.ConfigName(2)); err != nil {
		t.Fatal(err)
	}
	var rb *repo.RollbackError
	if _, err := s.Open(ctx, tr.Store, OpenOptions{}); !errors.As(err, &rb) {
		t.Errorf("open after rollback = %v, want *repo.RollbackError", err)
	}
}

// TestVanished: the newest snapshot seen is remembered; once its manifest
// is gone, Vanished names it, and keeps naming it.
func TestVanished(t *testing.T) {
	ctx := context.Background()
	tr := testrepo.New(t)
	s := &Store{Dir: filepath.Join(t.TempDir(), "state")}
	op, err := s.Open(ctx, tr.Store, OpenOptions{Pin: tr.Owner.Public()})
	if err != nil {
		t.Fatal(err)
	}
	ms := []*repo.Manifest{
		{ID: strings.Repeat("a", 64), Time: time.Unix(1000, 0).UTC()},
		{ID: strings.Repeat("b", 64), Time: time.Unix(2000, 0).UTC(), Seen: []string{strings.Repeat("a", 64)}},
	}
	for _, m := range ms {
		if err := tr.Store.Put(ctx, repo.SnapshotName(m.ID), strings.NewReader("x"), 1, storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := op.Remember(ms); err != nil {
		t.Fatal(err)
	}
	if len(op.Record.Snapshots) != 1 || op.Record.Snapshots[0].ID != ms[1].ID {
		t.Fatalf("remembered %+v, want the newest", op.Record.Snapshots)
	}
	if err := op.Vanished(ctx); err != nil {
		t.Fatalf("Vanished = %v", err)
	}
	tr.Store.Delete(ctx, repo.SnapshotName(ms[1].ID))
	op, err = s.Open(ctx, tr.Store, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var ve *VanishedError
	if err := op.Vanished(ctx); !errors.As(err, &ve) || len(ve.Snapshots) != 1 || ve.Snapshots[0].ID != ms[1].ID {
		t.Fatalf("Vanished = %v", err)
	} else if !strings.Contains(err.Error(), "bbbbbbbb") {
		t.Errorf("error %q does not name the snapshot", err)
	}
	// Remembering what is there now keeps the vanished one.
	if err := op.Remember(ms[:1]); err != nil {
		t.Fatal(err)
	}
	if err := op.Vanished(ctx); !errors.As(err, &ve) {
		t.Errorf("after Remember, Vanished = %v", err)
	}
	// A backup's own snapshot replaces the head it saw.
	c := &repo.Manifest{ID: strings.Repeat("c", 64), Time: time.Unix(3000, 0).UTC(), Seen: []string{strings.Repeat("a", 64)}}
	tr.Store.Put(ctx, repo.SnapshotName(c.ID), strings.NewReader("x"), 1, storage.PutOptions{})
	if err := op.Remember([]*repo.Manifest{c}); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range op.Record.Snapshots {
		ids = append(ids, s.ID[:1])
	}
	if got := strings.Join(ids, ","); got != "b,c" {
		t.Errorf("remembered %s, want b (vanished) and c", got)
	}
}

// TestConcurrentUpdates: two coffer processes open the same repository
// at once; each writes the record back. Neither loses the other's update:
// the config seq one saw (the rollback guard) and the snapshots each saw
// are all kept; many at once under the lock too.
func TestConcurrentUpdates(t *testing.T) {
	ctx := context.Background()
	tr := testrepo.New(t)
	s := &Store{Dir: filepath.Join(t.TempDir(), "state")}
	open := func(o OpenOptions) *Opened {
		t.Helper()
		o.Pin = tr.Owner.Public()
		op, err := s.Open(ctx, tr.Store, o)
		if err != nil {
			t.Fatal(err)
		}
		return op
	}
	owner, backup := open(OpenOptions{OwnerKey: tr.Owner}), open(OpenOptions{})
	if _, err := repo.UpdateConfig(ctx, owner.Repo, tr.Owner, func(*repo.Config) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := owner.Save(); err != nil {
		t.Fatal(err)
	}
	a := &repo.Manifest{ID: strings.Repeat("a", 64), Time: time.Unix(1000, 0).UTC()}
	if err := owner.Remember([]*repo.Manifest{a}); err != nil {
		t.Fatal(err)
	}
	b := &repo.Manifest{ID: strings.Repeat("b", 64), Time: time.Unix(2000, 0).UTC()}
	if err := backup.Remember([]*repo.Manifest{b}); err != nil {
		t.Fatal(err)
	}
	rec, err := s.Get(owner.Record.Repository)
	if err != nil {
		t.Fatal(err)
	}
	if rec.ConfigSeq != 2 || len(rec.Snapshots) != 2 {
		t.Fatalf("record after two processes: seq %d, snapshots %+v; want 2 and a, b", rec.ConfigSeq, rec.Snapshots)
	}
	// A manifest that names a snapshot as seen supersedes it.
	c := &repo.Manifest{ID: strings.Repeat("c", 64), Time: time.Unix(3000, 0).UTC(), Seen: []string{a.ID}}
	if err := open(OpenOptions{}).Remember([]*repo.Manifest{c}); err != nil {
		t.Fatal(err)
	}
	if rec, _ = s.Get(owner.Record.Repository); len(rec.Snapshots) != 2 || rec.Snapshots[0].ID != b.ID || rec.Snapshots[1].ID != c.ID {
		t.Fatalf("snapshots %+v, want b and c", rec.Snapshots)
	}

	ops := make([]*Opened, 8)
	for i := range ops {
		ops[i] = open(OpenOptions{})
	}
	errs := make(chan error, len(ops))
	for i, op := range ops {
		go func() {
			id := strings.Repeat(string(rune('d'+i)), 64)
			errs <- op.Remember([]*repo.Manifest{{ID: id, Time: time.Unix(4000, 0).UTC()}})
		}()
	}
	for range ops {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if rec, _ = s.Get(owner.Record.Repository); len(rec.Snapshots) != 2+len(ops) {
		t.Errorf("%d snapshots after %d processes at once, want %d", len(rec.Snapshots), len(ops), 2+len(ops))
	}
}

// TestDirMode: a store folder that group or others may write is refused
// (they could swap the pins in it), on read and on write.
func TestDirMode(t *testing.T) {
	ctx := context.Background()
	tr := testrepo.New(t)
	s := &Store{Dir: filepath.Join(t.TempDir(), "state")}
	if _, err := s.Open(ctx, tr.Store, OpenOptions{Pin: tr.Owner.Public()}); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(s.Dir, 0o777); err != nil {
		t.Fatal(err)
	}
	var de *DirModeError
	if _, err := s.Open(ctx, tr.Store, OpenOptions{}); !errors.As(err, &de) || !strings.Contains(err.Error(), "writable by group or others") {
		t.Errorf("open with a 0777 store folder = %v, want *DirModeError", err)
	}
	if err := s.Put(&Record{Repository: strings.Repeat("a", 64)}); !errors.As(err, &de) {
		t.Errorf("Put into a 0777 store folder = %v, want *DirModeError", err)
	}
	if err := os.Chmod(s.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Open(ctx, tr.Store, OpenOptions{}); err != nil {
		t.Errorf("open after chmod 700: %v", err)
	}
}

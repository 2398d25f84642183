package retention

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/storage"
)

// sameObjects fails unless got and want name the same objects.
func sameObjects(t *testing.T, when string, got, want map[string]int64) {
	t.Helper()
	var extra, missing []string
	for n := range got {
		if _, ok := want[n]; !ok {
			extra = append(extra, n)
		}
	}
	for n := range want {
		if _, ok := got[n]; !ok {
			missing = append(missing, n)
		}
	}
	if len(extra)+len(missing) > 0 {
		t.Fatalf("%s: objects not referenced by a kept snapshot: %v; referenced but missing: %v", when, extra, missing)
	}
}

// TestPruneReclaimsToLiveSize: after forget and prune, the repository
// holds exactly what the kept snapshots reference, and they verify to the
// last chunk.
func TestPruneReclaimsToLiveSize(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	a, b, c := e.tree(3, 400_000), e.tree(3, 400_000), e.tree(3, 400_000)
	e.backup(nil, false, "docs="+a)
	e.backup(nil, false, "docs="+b)
	e.backup(nil, false, "docs="+c, "more="+a)
	e.backup(nil, false, "docs="+c)
	before := objects(t, e.tr.Store, dataPrefixes...)
	host := e.tr.Host(t)
	if _, err := Forget(ctx, host, Policy{Last: 1}, ForgetOptions{}); err != nil {
		t.Fatal(err)
	}
	dry, err := Prune(ctx, e.tr.Host(t), PruneOptions{DryRun: true, Now: timeNowPlusHour(), GraceSet: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := objects(t, e.tr.Store, dataPrefixes...); len(got) != len(before) {
		t.Fatal("a dry run removed objects")
	}
	res := pruneNow(t, e.tr.Host(t))
	after := objects(t, e.tr.Store, dataPrefixes...)
	live := liveObjects(t, e.tr.Host(t))
	sameObjects(t, "after prune", after, live)
	if res.Before != total(before) || res.After != total(after) || dry.After != res.After {
		t.Fatalf("prune reports %d → %d bytes (dry run: %d), the store held %d → %d", res.Before, res.After, dry.After, total(before), total(after))
	}
	if total(before)-total(after) < 1_100_000 { // b's 1.2 MB of random data
		t.Fatalf("prune freed too little: %d → %d bytes", total(before), total(after))
	}
	t.Logf("forget --keep-last 1 + prune: %d → %d bytes (live %d)", total(before), total(after), total(live))
	e.mustVerify()
	if len(e.ids()) != 2 {
		t.Fatalf("snapshots after prune: %v, want the newest of each group", e.ids())
	}
}

// crashStore fails every Delete after the first n: a prune that dies
// there.
type crashStore struct {
	storage.Store
	n atomic.Int64
}

var errCrash = errors.New("simulated crash")

func (c *crashStore) Delete(ctx context.Context, name string) error {
	if c.n.Add(-1) < 0 {
		return errCrash
	}
	return c.Store.Delete(ctx, name)
}

// TestPruneCrashBetweenSteps stops prune after each of its deletions in
// turn (the process dying there): every time, the kept snapshots verify
// to the last chunk and no deletion is reported, and the next prune
// finishes the work.
func TestPruneCrashBetweenSteps(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	a, b := e.tree(2, 300_000), e.tree(2, 300_000)
	e.backup(nil, false, "docs="+a)
	e.backup(nil, false, "docs="+b)
	e.backup(nil, false, "docs="+a, "x="+b)
	e.backup(nil, false, "docs="+b)
	// An orphan of a killed backup.
	if err := repo.PutObject(ctx, e.tr.Store, repo.PackName(strings.Repeat("ab", 32)), []byte("orphan")); err != nil {
		t.Fatal(err)
	}
	if _, err := Forget(ctx, e.tr.Host(t), Policy{Last: 1}, ForgetOptions{}); err != nil {
		t.Fatal(err)
	}
	want := e.ids()
	crashes := 0
	for n := int64(0); ; n++ {
		cs := &crashStore{Store: e.tr.Store}
		cs.n.Store(n)
		r, err := repo.Open(ctx, cs, repo.OpenOptions{Owner: e.tr.Owner.Public(), Signing: e.tr.Signing})
		if err != nil {
			t.Fatal(err)
		}
		_, err = Prune(ctx, r, PruneOptions{Now: timeNowPlusHour(), GraceSet: true})
		if err == nil {
			break
		}
		if !errors.Is(err, errCrash) {
			t.Fatalf("prune: %v", err)
		}
		crashes++
		if got := e.ids(); !slices.Equal(got, want) {
			t.Fatalf("after a crash at deletion %d: snapshots %v, want %v", n+1, got, want)
		}
		e.mustVerify()
	}
	if crashes < 5 {
		t.Fatalf("prune crashed only %d times: too little to remove", crashes)
	}
	sameObjects(t, "after the last prune", objects(t, e.tr.Store, dataPrefixes...), liveObjects(t, e.tr.Host(t)))
	e.mustVerify()
}

// TestPruneDeleteDenied: a store that refuses deletes (here an immutable
// file, as root, or a read-only folder) stops prune with ErrDeleteDenied
// and loses nothing.
func TestPruneDeleteDenied(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.backup(nil, false, "docs="+e.tree(1, 1000))
	e.backup(nil, false, "docs="+e.tree(1, 1000))
	if _, err := Forget(ctx, e.tr.Host(t), Policy{Last: 1}, ForgetOptions{}); err != nil {
		t.Fatal(err)
	}
	// The first thing prune deletes is a pack.
	root := filepath.Join(e.tr.Dir, "repo")
	var locked []string
	err := filepath.WalkDir(filepath.Join(root, "data"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if os.Geteuid() == 0 {
			if out, err := exec.Command("chattr", "+i", p).CombinedOutput(); err != nil {
				return fmt.Errorf("chattr +i: %v: %s", err, out)
			}
			locked = append(locked, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, p := range locked {
			exec.Command("chattr", "-i", p).Run()
		}
		filepath.WalkDir(filepath.Join(root, "data"), func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				os.Chmod(p, 0o700)
			}
			return nil
		})
	})
	if os.Geteuid() != 0 {
		filepath.WalkDir(filepath.Join(root, "data"), func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() && p != filepath.Join(root, "data") {
				os.Chmod(p, 0o500)
			}
			return nil
		})
	}
	before := objects(t, e.tr.Store)
	_, err = Prune(ctx, e.tr.Host(t), PruneOptions{Now: timeNowPlusHour(), GraceSet: true})
	if !errors.Is(err, storage.ErrDeleteDenied) {
		t.Fatalf("prune on a store that refuses deletes: %v, want ErrDeleteDenied", err)
	}
	if !strings.Contains(err.Error(), "may not delete") {
		t.Errorf("error does not say why: %v", err)
	}
	if after := objects(t, e.tr.Store); len(after) != len(before) {
		t.Fatalf("objects %d → %d", len(before), len(after))
	}
	e.mustVerify()
}

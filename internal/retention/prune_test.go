package retention

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

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

// TestPruneRunningMarkerHostClockOff: a backup that has run for two hours
// on a host whose clock is 30 minutes off. Behind, its markers look expired
// by their own times; ahead, its start looks later than the packs it wrote.
// Either way prune must keep what it wrote: the store's write times of its
// markers say it runs and since when.
func TestPruneRunningMarkerHostClockOff(t *testing.T) {
	for _, off := range []time.Duration{-30 * time.Minute, 30 * time.Minute} {
		t.Run(off.String(), func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t)
			e.backup(nil, false, "docs="+e.tree(1, 1000))
			now := time.Now()
			host := func(real time.Time) time.Time { return real.Add(off).UTC() } // the backup host's clock
			start := now.Add(-2 * time.Hour)
			put := func(name string, b []byte, written time.Time) {
				t.Helper()
				if err := repo.PutObject(ctx, e.tr.Store, name, b); err != nil {
					t.Fatal(err)
				}
				if err := os.Chtimes(filepath.Join(e.tr.Dir, "repo", filepath.FromSlash(name)), written, written); err != nil {
					t.Fatal(err)
				}
			}
			marker := func(seq int, written time.Time) {
				b, _ := json.Marshal(repo.RunningRecord{Version: 1, Run: strings.Repeat("cd", 32), Started: host(start), Expires: host(written.Add(repo.RunningTTL))})
				put(fmt.Sprintf("%s%s-%06d", repo.RunningPrefix, strings.Repeat("cd", 32), seq), b, written)
			}
			marker(1, start)
			pack := repo.PackName(strings.Repeat("ef", 32))
			put(pack, []byte("a pack of the running backup"), start.Add(10*time.Minute))
			marker(40, now.Add(-time.Minute))

			res, err := Prune(ctx, e.tr.Host(t), PruneOptions{Now: now})
			if err != nil {
				t.Fatal(err)
			}
			if res.Running != 1 {
				t.Errorf("running = %d, want 1", res.Running)
			}
			if _, err := e.tr.Store.Stat(ctx, pack); err != nil {
				t.Fatalf("the running backup's pack (written %v ago): %v", now.Sub(start.Add(10*time.Minute)).Round(time.Minute), err)
			}
			if _, err := e.tr.Store.Stat(ctx, fmt.Sprintf("%s%s-%06d", repo.RunningPrefix, strings.Repeat("cd", 32), 1)); err != nil {
				t.Fatalf("the first marker of a running backup was removed: %v", err)
			}
		})
	}
}

// TestPruneTombstoneHostClockBehind: a backup runs; meanwhile a host whose
// clock is three hours behind forgets a snapshot the backup deduplicates
// against. Its tombstone says it was written before the backup started,
// the store says after: prune must keep the snapshot's data until the
// backup has ended.
func TestPruneTombstoneHostClockBehind(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	x := e.backup(nil, false, "docs="+e.tree(2, 100_000))
	e.backup(nil, false, "docs="+e.tree(2, 100_000))
	now := time.Now()
	run := strings.Repeat("cd", 32)
	b, _ := json.Marshal(repo.RunningRecord{Version: 1, Run: run, Started: now.Add(-10 * time.Minute).UTC(), Expires: now.Add(5 * time.Minute).UTC()})
	if err := repo.PutObject(ctx, e.tr.Store, repo.RunningPrefix+run+"-000003", b); err != nil {
		t.Fatal(err)
	}
	fr, err := Forget(ctx, e.tr.Host(t), Policy{Last: 1}, ForgetOptions{Now: now.Add(-3 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(fr.Forgotten, []string{x.ID}) {
		t.Fatalf("forgotten %v, want %v", fr.Forgotten, []string{x.ID})
	}
	res, err := Prune(ctx, e.tr.Host(t), PruneOptions{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Pending, []string{x.ID}) || len(res.Forgotten) != 0 {
		t.Fatalf("pending %v, forgotten %v: want %s pending (forgotten while a backup ran)", res.Pending, res.Forgotten, repo.ShortID(x.ID))
	}
	for _, ref := range x.Objects() {
		if _, err := e.tr.Store.Stat(ctx, ref.Name); err != nil {
			t.Fatalf("data of the snapshot the running backup may use: %v", err)
		}
	}
}

// TestPruneForgedDoneMarker: anyone who may write to the bucket can write
// a "done" marker for a backup that still runs (the run ids are in the
// listing). It must not make prune remove what that backup wrote: one
// under another name ends nothing, and the backup's marker was renewed
// after the one under its done name. (A forgery newer than the backup's
// last renewal still ends the run until the next renewal, at most
// RunningTTL/3: the markers are not signed.)
func TestPruneForgedDoneMarker(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.backup(nil, false, "docs="+e.tree(1, 1000))
	now := time.Now()
	start := now.Add(-2 * time.Hour)
	run := strings.Repeat("cd", 32)
	put := func(name string, rec any, written time.Time) {
		t.Helper()
		b, _ := json.Marshal(rec)
		if err := repo.PutObject(ctx, e.tr.Store, name, b); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(filepath.Join(e.tr.Dir, "repo", filepath.FromSlash(name)), written, written); err != nil {
			t.Fatal(err)
		}
	}
	put(repo.RunningPrefix+run+"-000001", repo.RunningRecord{Version: 1, Run: run, Started: start.UTC(), Expires: start.Add(10 * time.Minute).UTC()}, start)
	pack := repo.PackName(strings.Repeat("ef", 32))
	put(pack, "a pack of the running backup", start.Add(10*time.Minute))
	// The forgeries: under the run's done name and another name, both
	// followed by a renewal of the backup's marker.
	put(repo.RunningPrefix+run+"-999999", repo.RunningRecord{Version: 1, Run: run, Started: start.UTC(), Expires: now.UTC(), Done: true}, now.Add(-2*time.Minute))
	put(repo.RunningPrefix+strings.Repeat("ab", 32)+"-999999", repo.RunningRecord{Version: 1, Run: run, Started: start.UTC(), Expires: now.UTC(), Done: true}, now)
	put(repo.RunningPrefix+run+"-000040", repo.RunningRecord{Version: 1, Run: run, Started: start.UTC(), Expires: now.Add(9 * time.Minute).UTC()}, now.Add(-time.Minute))

	res, err := Prune(ctx, e.tr.Host(t), PruneOptions{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if res.Running != 1 || res.Cutoff.After(start) {
		t.Errorf("running %d, cutoff %v: want 1, before the running backup's start %v", res.Running, res.Cutoff, start)
	}
	if _, err := e.tr.Store.Stat(ctx, pack); err != nil {
		t.Fatalf("the running backup's pack: %v", err)
	}
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/keys"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/internal/retention"
	"github.com/cofferhq/coffer/storage"
)

// openHost opens e's repository in this process as the maintenance host:
// the owner pin and the host's signing key.
func (e *crashEnv) openHost(t *testing.T) *repo.Repository {
	t.Helper()
	sk, err := keys.LoadSigningKey(filepath.Join(e.dir, "keys", keys.HostDir, keys.SigningKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	ok, err := keys.LoadOwnerKey(filepath.Join(e.dir, "keys", keys.OwnerDir, keys.OwnerKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	st, err := storage.NewLocal(e.local)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(context.Background(), st, repo.OpenOptions{Owner: ok.Public(), Signing: sk})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// dirBytes sums the sizes of the files under root whose names do not
// contain skip (when skip is not empty).
func dirBytes(t *testing.T, root, skip string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || (skip != "" && strings.Contains(d.Name(), skip)) {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		n += fi.Size()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// randomTree writes n files of size random bytes.
func randomTree(t *testing.T, seed byte, n, size int) string {
	t.Helper()
	dir := t.TempDir()
	rnd := rand.NewChaCha8([32]byte{seed, 7, 7})
	for i := range n {
		b := make([]byte, size)
		rnd.Read(b)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("r%02d.bin", i)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestPruneWhileBackupRuns runs prune, again and again, while a real
// coffer backup runs: the backup deduplicates against a snapshot that is
// forgotten while it runs, and writes new packs that no manifest
// references until it ends. Both finish; prune removed the data of a
// snapshot forgotten before the backup started; verify passes and the new
// snapshot restores identical.
func TestPruneWhileBackupRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds coffer and backs up 80 MB")
	}
	t.Parallel()
	ctx := context.Background()
	e := newCrashEnv(t, "")
	big := makeBigTree(t)
	c, b, d := randomTree(t, 1, 4, 1<<20), randomTree(t, 2, 4, 1<<20), randomTree(t, 3, 6, 3<<20)
	s0 := e.backup("data=dir:" + c)
	s1 := e.backup("data=dir:" + big)
	e.backup("data=dir:" + b)
	e.mustRun("forget", "--keep-last", "2") // forgets s0
	time.Sleep(20 * time.Millisecond)

	// The backup, with a fresh change cache so that it reads (and
	// deduplicates) every chunk of big against s1's packs.
	// The earlier backups left their markers: wait for one of this run.
	before, _ := repoFiles(e.local, "running")
	cmd := e.command("--json", "backup", "data=dir:"+big, "new=dir:"+d)
	cmd.Env = append(cmd.Env, "XDG_CACHE_HOME="+t.TempDir())
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		if objs, _ := repoFiles(e.local, "running"); len(objs) > len(before) {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("the backup ended before it announced itself: %v\n%s", err, errOut.String())
		case <-time.After(time.Millisecond):
		}
	}
	// Forget s1 while the backup, which deduplicates against it, runs.
	e.mustRun("forget", "--keep-last", "1")

	var prunes, whileRunning int
	var removed int64
	var backupErr error
loop:
	for {
		select {
		case backupErr = <-done:
			break loop
		default:
		}
		res, err := retention.Prune(ctx, e.openHost(t), retention.PruneOptions{GraceSet: true, Skew: time.Millisecond})
		if err != nil {
			t.Fatalf("prune while the backup runs: %v", err)
		}
		prunes++
		if res.Running > 0 {
			whileRunning++
		}
		removed += res.RemovedBytes()
	}
	if backupErr != nil {
		t.Fatalf("backup: %v\n%s", backupErr, errOut.String())
	}
	t.Logf("%d prunes ran while the backup ran (%d saw its marker), removing %d bytes", prunes, whileRunning, removed)
	if whileRunning == 0 {
		t.Fatal("no prune ran while the backup was announced")
	}
	if removed < 4<<20 {
		t.Fatalf("prune removed %d bytes, want at least s0's 4 MiB", removed)
	}
	for _, id := range []string{s0, s1} {
		if _, err := os.Stat(filepath.Join(e.local, "tombstones", id)); err != nil {
			t.Fatalf("no tombstone for %s: %v", id[:8], err)
		}
	}
	e.verify()
	// backup --json writes events; the snapshot is in the end event.
	var id string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var ev struct {
			Event  string `json:"event"`
			Result struct {
				Snapshot string `json:"snapshot"`
			} `json:"result"`
		}
		if json.Unmarshal([]byte(line), &ev) == nil && ev.Event == "end" {
			id = ev.Result.Snapshot
		}
	}
	if len(id) != 64 {
		t.Fatalf("backup --json: no end event with a snapshot in %q", out.String())
	}
	e.restoreAndCompare(id, "data", big)
	e.restoreAndCompare(id, "new", d)

	// Later, s1's data is pruned too, but for what the new snapshot
	// shares with it.
	if _, err := retention.Prune(ctx, e.openHost(t), retention.PruneOptions{GraceSet: true, Now: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	e.verify("--decrypt")
	e.restoreAndCompare(id, "data", big)
}

// TestPruneAfterKilledBackups kills three real backups with SIGKILL while
// they upload packs; prune then returns the repository to the size of its
// live data, to the byte.
func TestPruneAfterKilledBackups(t *testing.T) {
	if testing.Short() {
		t.Skip("builds coffer and backs up 60 MB three times")
	}
	t.Parallel()
	ctx := context.Background()
	e := newCrashEnv(t, "")
	big := makeBigTree(t)
	e.backup("docs=dir:" + randomTree(t, 9, 3, 1<<20))
	// The live data: everything but the finished backup's running
	// markers, which prune removes.
	live := dirBytes(t, e.local, "") - dirBytes(t, filepath.Join(e.local, "running"), "")
	for i := range 3 {
		before := map[string]bool{}
		objs, _ := repoFiles(e.local, "data")
		for _, o := range objs {
			before[o] = true
		}
		// Kill once two new packs are stored.
		_, finished := e.killBackup(t, syscall.SIGKILL, func(e *crashEnv, _ time.Time) bool {
			objs, _ := repoFiles(e.local, "data")
			n := 0
			for _, o := range objs {
				if !before[o] {
					n++
				}
			}
			return n >= 2
		}, fmt.Sprintf("big%d=dir:%s", i, big))
		if finished {
			t.Fatal("the backup finished before it was killed")
		}
	}
	withOrphans := dirBytes(t, e.local, "")
	if withOrphans < live+3*30<<20 {
		t.Fatalf("three killed backups left %d bytes over %d: too little to test", withOrphans-live, live)
	}
	// An hour later (the killed backups' markers have expired).
	res, err := retention.Prune(ctx, e.openHost(t), retention.PruneOptions{GraceSet: true, Now: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	after := dirBytes(t, e.local, "")
	t.Logf("live %d bytes; after 3 killed backups %d bytes; after prune %d bytes (removed %+v, %d stale temporary files)",
		live, withOrphans, after, res.Removed, res.StaleUploads)
	if after != live {
		t.Fatalf("after prune the repository holds %d bytes, its live data %d", after, live)
	}
	e.verify("--decrypt")
	if ids := e.snapshots(); len(ids) != 1 {
		t.Fatalf("snapshots after prune: %v", ids)
	}
}

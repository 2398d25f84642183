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

// openFull opens e's repository in this process as a maintenance host that
// repacks: the owner pin, the host's signing key and the identity.
func (e *crashEnv) openFull(t *testing.T) *repo.Repository {
	t.Helper()
	r := e.openHost(t)
	ids, err := keys.LoadIdentities(filepath.Join(e.dir, "keys", keys.RestoreDir, keys.IdentityFile))
	if err != nil {
		t.Fatal(err)
	}
	full, err := repo.Open(context.Background(), r.Store, repo.OpenOptions{Owner: r.Owner(), Signing: r.Host(), Identities: ids})
	if err != nil {
		t.Fatal(err)
	}
	return full
}

// TestPruneRepackWhileBackupRuns repacks, again and again, while a real
// coffer backup runs that deduplicates against every chunk of a partly
// used pack, the chunks no kept snapshot uses included (a repair record's
// index lists them, and the backup loaded it before the repack record
// existed). The prune that repacks keeps
// the old pack; later prunes keep it too while the backup runs, and after
// it, because the new snapshot uses chunks the record does not hold. Both
// finish, verify --decrypt passes and both snapshots restore identical.
func TestPruneRepackWhileBackupRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds coffer and backs up 60 MB")
	}
	t.Parallel()
	ctx := context.Background()
	e := newCrashEnv(t, "")
	big := makeBigTree(t)
	a := randomTree(t, 4, 8, 1<<20)
	one := t.TempDir()
	b, err := os.ReadFile(filepath.Join(a, "r00.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(one, "r00.bin"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	e.backup("a=dir:" + a)
	s1 := e.backup("a=dir:" + one) // uses one file of eight of the first pack
	e.mustRun("forget", "--keep-last", "1")
	// A repair record's index lists every chunk of every pack, those no
	// kept snapshot uses included: backups deduplicate against them.
	e.mustRun("repair")
	time.Sleep(20 * time.Millisecond)
	packsBefore := map[string]bool{}
	objs, _ := repoFiles(e.local, "data")
	for _, o := range objs {
		packsBefore[o] = true
	}

	// The big tree first, so that the backup runs for a while after it
	// loaded its index; then all of a, deduplicated against the old pack.
	cmd := e.command("--json", "backup", "data=dir:"+big, "a=dir:"+a)
	cmd.Env = append(cmd.Env, "XDG_CACHE_HOME="+t.TempDir())
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// Wait for its first new pack: by then it has loaded its index.
	for waiting := true; waiting; {
		objs, _ := repoFiles(e.local, "data")
		for _, o := range objs {
			if !packsBefore[o] {
				waiting = false
			}
		}
		select {
		case err := <-done:
			t.Fatalf("the backup ended before it stored a pack: %v\n%s", err, errOut.String())
		case <-time.After(time.Millisecond):
		}
	}
	var prunes, records int
	var backupErr error
loop:
	for {
		select {
		case backupErr = <-done:
			break loop
		default:
		}
		res, err := retention.Prune(ctx, e.openFull(t), retention.PruneOptions{GraceSet: true, Skew: time.Millisecond, Repack: true})
		if err != nil {
			t.Fatalf("prune while the backup runs: %v", err)
		}
		prunes++
		if res.Repack.Record != "" {
			records++
		}
		if res.Repack.Replaced.Objects > 0 {
			t.Fatalf("a prune removed a repacked pack while a backup that started before the repack ran: %+v", res.Repack)
		}
	}
	if backupErr != nil {
		t.Fatalf("backup: %v\n%s", backupErr, errOut.String())
	}
	t.Logf("%d prunes ran while the backup ran, %d repacked", prunes, records)
	if records != 1 {
		t.Fatalf("%d repack records written while the backup ran, want 1", records)
	}
	var id string
	if err := json.Unmarshal(endResult(out.String()), &struct{ Snapshot *string }{&id}); err != nil || len(id) != 64 {
		t.Fatalf("backup --json: no snapshot in %q: %v", out.String(), err)
	}
	// The new snapshot deduplicated against the old pack's other chunks.
	rks, _, err := e.openHost(t).Repacks(ctx)
	if err != nil || len(rks) != 1 {
		t.Fatalf("repack records: %v, %d", err, len(rks))
	}
	m, err := e.openHost(t).ReadManifest(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	old := rks[0].Replaces[0]
	usesOld := false
	for _, p := range m.Packs {
		usesOld = usesOld || p.SHA256 == old.SHA256
	}
	if !usesOld {
		t.Fatalf("the backup did not deduplicate against the repacked pack: the test did not race")
	}
	// An hour later: the record is older than any running backup, but the
	// new snapshot uses chunks of the old pack that it does not hold.
	res, err := retention.Prune(ctx, e.openFull(t), retention.PruneOptions{GraceSet: true, Now: time.Now().Add(time.Hour), Repack: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(e.local, old.Name())); err != nil {
		t.Fatalf("the old pack, which the new snapshot uses, was removed: %v (%+v)", err, res.Repack)
	}
	e.verify("--decrypt")
	e.restoreAndCompare(id, "data", big)
	e.restoreAndCompare(id, "a", a)
	e.restoreAndCompare(s1, "a", one)
}

// TestPruneCommandRepacks: coffer prune with the identity and the signing
// key (the environment's) reports, then repacks, a pack the kept snapshot
// uses for one file of eight; the old pack stays for a later prune; with
// --repack=false it only reports. The snapshot still verifies and
// restores.
func TestPruneCommandRepacks(t *testing.T) {
	if testing.Short() {
		t.Skip("builds coffer")
	}
	t.Parallel()
	e := newCrashEnv(t, "")
	a := randomTree(t, 5, 8, 1<<20)
	one := t.TempDir()
	b, err := os.ReadFile(filepath.Join(a, "r00.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(one, "r00.bin"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	e.backup("a=dir:" + a)
	s1 := e.backup("a=dir:" + one)
	e.mustRun("forget", "--keep-last", "1")
	// An hour later, as far as the forgotten snapshot is concerned: its
	// data goes, but for the file the kept one shares.
	if _, err := retention.Prune(context.Background(), e.openHost(t), retention.PruneOptions{GraceSet: true, Now: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}

	out := e.mustRun("prune", "--dry-run")
	if !strings.Contains(out, "1 partly used pack(s)") || !strings.Contains(out, "repacking would free") {
		t.Fatalf("prune --dry-run does not report the partly used pack:\n%s", out)
	}
	out = e.mustRun("prune", "--grace", "0s", "--repack=false")
	if !strings.Contains(out, "not repacked: repacking is off") {
		t.Fatalf("prune --repack=false:\n%s", out)
	}
	out = e.mustRun("prune", "--grace", "0s")
	if !strings.Contains(out, "repacked 1 partly used pack(s)") {
		t.Fatalf("prune with the identity and signing key did not repack:\n%s", out)
	}
	if _, errOut, code := e.run("prune", "--repack-threshold", "0"); code != 2 || !strings.Contains(errOut, "--repack-threshold") {
		t.Fatalf("prune --repack-threshold 0: exit %d, want 2 naming the flag: %s", code, errOut)
	}
	out = e.mustRun("prune", "--grace", "0s")
	if !strings.Contains(out, "kept 1 repacked pack(s)") {
		t.Fatalf("a prune right after the repack must keep the old pack, and say so:\n%s", out)
	}
	e.verify("--decrypt")
	e.restoreAndCompare(s1, "a", one)
}

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/keys"
	"github.com/cofferhq/coffer/internal/testing/testutil"
)

// The tests here kill a real coffer process (built once, without the race
// detector, so that its timing is that of a release build) in the middle
// of a backup, and check the promise of the format: a snapshot exists if
// and only if its manifest does, so an interrupted backup publishes
// nothing, leaves the repository verifiable, and the next backup succeeds.

// crashEnv is one repository, its keys and the environment to run coffer
// with.
type crashEnv struct {
	t    *testing.T
	bin  string
	dir  string
	repo string // as given to --repo
	// local is the repository folder for a local repository, else "".
	local string
	env   []string
}

func newCrashEnv(t *testing.T, repoURL string, extraEnv ...string) *crashEnv {
	t.Helper()
	dir := t.TempDir()
	gen, err := keys.Generate(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	e := &crashEnv{t: t, bin: testutil.CofferBinary(t), dir: dir, repo: repoURL}
	if repoURL == "" {
		e.local = filepath.Join(dir, "repo")
		e.repo = e.local
	}
	e.env = append([]string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + filepath.Join(dir, "home"),
		"XDG_CACHE_HOME=" + filepath.Join(dir, "cache"),
		"TZ=UTC",
		"COFFER_REPO=" + e.repo,
		"COFFER_STATE_DIR=" + filepath.Join(dir, "state"),
		"COFFER_SIGNING_KEY=" + gen.SigningKey,
		"COFFER_IDENTITY=" + gen.Identity,
	}, extraEnv...)
	e.mustRun("init", "--owner-key", gen.OwnerKey, "-R", gen.Recipients, "--host", gen.SigningPub)
	return e
}

func (e *crashEnv) command(args ...string) *exec.Cmd {
	cmd := exec.Command(e.bin, args...)
	cmd.Env = e.env
	cmd.Dir = e.dir
	return cmd
}

// run runs coffer and returns its stdout, stderr and exit code.
func (e *crashEnv) run(args ...string) (stdout, stderr string, code int) {
	e.t.Helper()
	cmd := e.command(args...)
	var o, s bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &s
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		e.t.Fatalf("coffer %s: %v", strings.Join(args, " "), err)
	}
	return o.String(), s.String(), code
}

func (e *crashEnv) mustRun(args ...string) string {
	e.t.Helper()
	out, errOut, code := e.run(args...)
	if code != 0 {
		e.t.Fatalf("coffer %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// backup runs a backup and returns the snapshot id.
func (e *crashEnv) backup(sources ...string) string {
	e.t.Helper()
	out := e.mustRun(append([]string{"--json", "backup"}, sources...)...)
	var r struct{ Snapshot string }
	if err := json.Unmarshal(endResult(out), &r); err != nil || r.Snapshot == "" {
		e.t.Fatalf("backup --json: %v: %q", err, out)
	}
	return r.Snapshot
}

// endResult returns the result of the end event of a --json backup,
// restore or verify (nil when there is none).
func endResult(out string) []byte {
	for _, l := range strings.Split(out, "\n") {
		var ev struct {
			Event  string
			Result json.RawMessage
		}
		if json.Unmarshal([]byte(l), &ev) == nil && ev.Event == "end" {
			return ev.Result
		}
	}
	return nil
}

// snapshots lists the snapshot ids, sorted.
func (e *crashEnv) snapshots() []string {
	e.t.Helper()
	out, errOut, code := e.run("--json", "snapshots")
	if code != 0 {
		e.t.Fatalf("snapshots: exit %d: %s", code, errOut)
	}
	if strings.Contains(errOut, "run coffer verify") {
		e.t.Errorf("snapshots warns about damaged manifests:\n%s", errOut)
	}
	var list []struct{ ID string }
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		e.t.Fatalf("snapshots --json: %v: %q", err, out)
	}
	var ids []string
	for _, s := range list {
		ids = append(ids, s.ID)
	}
	slices.Sort(ids)
	return ids
}

// verify checks that verify passes.
func (e *crashEnv) verify(args ...string) {
	e.t.Helper()
	out, errOut, code := e.run(append([]string{"verify"}, args...)...)
	if code != 0 {
		e.t.Fatalf("verify %s: exit %d, want 0\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
}

// restoreAndCompare restores snapshot:source and compares it with want.
func (e *crashEnv) restoreAndCompare(snapshot, source, want string) {
	e.t.Helper()
	to := filepath.Join(e.dir, "restored-"+snapshot[:8]+"-"+source)
	e.mustRun("restore", snapshot+":"+source, "--to", to)
	if err := compareTrees(want, to); err != nil {
		e.t.Fatalf("restored %s:%s differs from %s: %v", snapshot[:8], source, want, err)
	}
	os.RemoveAll(to)
}

// removeShared removes what the tests of this package share through the
// system temp folder; TestMain calls it.
func removeShared() {
	testutil.RemoveCofferBinary()
	if bigTree.dir != "" {
		os.RemoveAll(bigTree.dir)
	}
}

// bigTree writes about 60 MB of random data (incompressible, so that
// several 16 MiB packs are written) in nested folders, with a few small
// and special files.
var bigTree struct {
	once sync.Once
	dir  string
	err  error
}

func makeBigTree(t *testing.T) string {
	t.Helper()
	bigTree.once.Do(func() {
		dir, err := os.MkdirTemp("", "coffer-crash-src-")
		if err != nil {
			bigTree.err = err
			return
		}
		bigTree.dir = dir
		rnd := rand.NewChaCha8([32]byte{1, 2, 3})
		for i := range 12 {
			p := filepath.Join(dir, fmt.Sprintf("d%d", i%3), fmt.Sprintf("sub%d", i%2), fmt.Sprintf("f%02d.bin", i))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				bigTree.err = err
				return
			}
			b := make([]byte, 5_000_000+i*1000)
			rnd.Read(b)
			if err := os.WriteFile(p, b, 0o644); err != nil {
				bigTree.err = err
				return
			}
		}
		if err := makeTree(filepath.Join(dir, "small")); err != nil {
			bigTree.err = err
		}
	})
	if bigTree.err != nil {
		t.Fatal(bigTree.err)
	}
	return bigTree.dir
}

// repoFiles returns the names, relative to the repository, of the objects
// under prefix (a top-level folder such as "data"), and of the temporary
// files a write in progress leaves.
func repoFiles(root, prefix string) (objects, temps []string) {
	filepath.WalkDir(filepath.Join(root, prefix), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		if strings.Contains(d.Name(), ".tmp-") {
			temps = append(temps, rel)
		} else {
			objects = append(objects, rel)
		}
		return nil
	})
	return objects, temps
}

// A trigger decides when to kill the backup; it is polled about every
// millisecond from the start of the backup.
type trigger struct {
	name string
	// strict: the trigger fires long before the manifest can be written,
	// so no new snapshot may be visible afterwards at all.
	strict bool
	fire   func(e *crashEnv, start time.Time) bool
}

func newObject(prefix string, before map[string]bool) func(e *crashEnv, _ time.Time) bool {
	return func(e *crashEnv, _ time.Time) bool {
		objs, _ := repoFiles(e.local, prefix)
		for _, o := range objs {
			if !before[o] {
				return true
			}
		}
		return false
	}
}

func after(d time.Duration) func(*crashEnv, time.Time) bool {
	return func(_ *crashEnv, start time.Time) bool { return time.Since(start) >= d }
}

// TestBackupKilled kills backups to a local repository at several points
// with SIGKILL.
func TestBackupKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("builds coffer and backs up 60 MB several times")
	}
	t.Parallel()
	big := makeBigTree(t)
	triggers := []trigger{
		{name: "first-pack-being-written", strict: true, fire: func(e *crashEnv, _ time.Time) bool {
			_, temps := repoFiles(e.local, "data")
			return len(temps) > 0
		}},
		{name: "first-pack-written", strict: true},
		{name: "index-written"},
		{name: "catalog-written"},
		{name: "after-150ms", fire: after(150 * time.Millisecond)},
		{name: "after-400ms", fire: after(400 * time.Millisecond)},
	}
	for _, tr := range triggers {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			e := newCrashEnv(t, "")
			small := filepath.Join(e.dir, "small")
			if err := makeTree(small); err != nil {
				t.Fatal(err)
			}
			first := e.backup("small=dir:" + small)
			objs := map[string]bool{}
			for _, prefix := range []string{"data", "index", "catalogs"} {
				names, _ := repoFiles(e.local, prefix)
				for _, n := range names {
					objs[n] = true
				}
			}
			switch tr.name {
			case "first-pack-written":
				tr.fire = newObject("data", objs)
			case "index-written":
				tr.fire = newObject("index", objs)
			case "catalog-written":
				tr.fire = newObject("catalogs", objs)
			}
			_, finished := e.killBackup(t, syscall.SIGKILL, tr.fire, "big=dir:"+big)
			e.checkAfterInterrupt(t, first, finished, tr.strict, big)
		})
	}
}

// killBackup starts a backup of sources, sends sig when fire says so, and
// waits for the process. It returns how long after the start the signal
// was sent, and whether the backup had finished on its own first.
func (e *crashEnv) killBackup(t *testing.T, sig os.Signal, fire func(*crashEnv, time.Time) bool, sources ...string) (time.Duration, bool) {
	t.Helper()
	cmd := e.command(append([]string{"backup"}, sources...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var killedAt time.Duration
poll:
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("backup failed before the signal: %v\n%s", err, stderr.String())
			}
			t.Logf("the backup finished (in %s) before the trigger fired", time.Since(start).Round(time.Millisecond))
			return time.Since(start), true
		default:
		}
		if fire(e, start) {
			killedAt = time.Since(start)
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatalf("signal: %v", err)
			}
			break poll
		}
		if time.Since(start) > time.Minute {
			cmd.Process.Kill()
			<-done
			t.Fatal("trigger did not fire within a minute")
		}
		time.Sleep(time.Millisecond)
	}
	err := <-done
	var ee *exec.ExitError
	switch {
	case err == nil:
		t.Logf("signal %q sent after %s, but the backup had already succeeded", sig, killedAt.Round(time.Millisecond))
		return killedAt, true
	case !errors.As(err, &ee):
		t.Fatalf("wait: %v", err)
	case sig == syscall.SIGKILL:
		if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			if ee.ExitCode() == 0 {
				return killedAt, true
			}
			t.Fatalf("backup ended with %v, want killed by SIGKILL\n%s", err, stderr.String())
		}
	case sig == os.Interrupt:
		if got, want := ee.ExitCode(), exitInterrupted; got != want {
			t.Fatalf("interrupted backup exited with %d, want %d\n%s", got, want, stderr.String())
		}
		if msg := checkErrorOutput(stderr.String()); msg != "" {
			t.Errorf("stderr of the interrupted backup: %s\n%s", msg, stderr.String())
		}
		if !strings.Contains(stderr.String(), "coffer: error: interrupted; no snapshot was published") {
			t.Errorf("stderr of the interrupted backup = %q, want the interrupted error", stderr.String())
		}
	}
	if e.local != "" {
		packs, _ := repoFiles(e.local, "data")
		indexes, _ := repoFiles(e.local, "index")
		catalogs, _ := repoFiles(e.local, "catalogs")
		_, temps := repoFiles(e.local, "")
		t.Logf("%v %s after the start; left behind: %d packs, %d indexes, %d catalogs (the first backup's included), %d temporary files",
			sig, killedAt.Round(time.Millisecond), len(packs), len(indexes), len(catalogs), len(temps))
	} else {
		t.Logf("%v %s after the start", sig, killedAt.Round(time.Millisecond))
	}
	return killedAt, false
}

// checkAfterInterrupt checks the repository after an interrupted backup:
// only the first snapshot is visible (or, if the manifest was written before
// the signal landed, also a complete snapshot of big), verify passes, and
// the next backup succeeds and restores identical.
func (e *crashEnv) checkAfterInterrupt(t *testing.T, first string, finished, strict bool, big string) {
	t.Helper()
	ids := e.snapshots()
	var extra []string
	for _, id := range ids {
		if id != first {
			extra = append(extra, id)
		}
	}
	if !slices.Contains(ids, first) {
		t.Fatalf("snapshots = %v, lost the first snapshot %s", ids, first)
	}
	switch {
	case len(extra) > 1:
		t.Fatalf("snapshots = %v, want at most one besides %s", ids, first)
	case len(extra) == 1 && !finished && strict:
		t.Fatalf("a snapshot %s became visible although the backup was killed before its index and catalog were written", extra[0])
	case len(extra) == 1:
		// The manifest was written just before the signal landed (or the
		// backup finished): the snapshot must then be complete.
		t.Logf("snapshot %s was published before the signal landed; checking it is complete", extra[0][:8])
		e.verify("--decrypt")
		e.restoreAndCompare(extra[0], "big", big)
	}
	e.verify()
	e.verify("--quick")
	e.restoreAndCompare(first, "small", filepath.Join(e.dir, "small"))

	next := e.backup("big=dir:" + big)
	e.verify()
	e.restoreAndCompare(next, "big", big)
	if got := e.snapshots(); len(got) != len(ids)+1 {
		t.Fatalf("after the next backup: %d snapshots, want %d", len(got), len(ids)+1)
	}
}

// TestBackupInterrupted sends SIGINT (as Ctrl-C does) during a backup:
// exit 130, "no snapshot was published", and the repository stays usable.
func TestBackupInterrupted(t *testing.T) {
	if testing.Short() {
		t.Skip("builds coffer and backs up 60 MB")
	}
	t.Parallel()
	big := makeBigTree(t)
	e := newCrashEnv(t, "")
	small := filepath.Join(e.dir, "small")
	if err := makeTree(small); err != nil {
		t.Fatal(err)
	}
	first := e.backup("small=dir:" + small)
	_, finished := e.killBackup(t, os.Interrupt, func(e *crashEnv, _ time.Time) bool {
		_, temps := repoFiles(e.local, "data")
		return len(temps) > 0
	}, "big=dir:"+big)
	if finished {
		t.Fatal("the backup finished before it could be interrupted")
	}
	// An interrupted backup cleans up after itself: no temporary files.
	if _, temps := repoFiles(e.local, ""); len(temps) > 0 {
		t.Errorf("an interrupted backup left temporary files: %v", temps)
	}
	e.checkAfterInterrupt(t, first, false, true, big)
}

// TestBackupKilledS3 kills backups to an S3 repository (versitygw) at
// random points: multipart uploads are cut off.
func TestBackupKilledS3(t *testing.T) {
	if testing.Short() {
		t.Skip("builds coffer and backs up 60 MB")
	}
	t.Parallel()
	big := makeBigTree(t)
	cfg := testutil.StartS3(t)
	for _, d := range []time.Duration{300 * time.Millisecond} {
		t.Run(d.String(), func(t *testing.T) {
			e := newCrashEnv(t, fmt.Sprintf("s3://%s/kill-%s", cfg.Bucket, d),
				"COFFER_S3_ENDPOINT=http://"+cfg.Endpoint, "AWS_ACCESS_KEY_ID="+cfg.AccessKey,
				"AWS_SECRET_ACCESS_KEY="+cfg.SecretKey, "AWS_REGION="+cfg.Region)
			small := filepath.Join(e.dir, "small")
			if err := makeTree(small); err != nil {
				t.Fatal(err)
			}
			first := e.backup("small=dir:" + small)
			_, finished := e.killBackup(t, syscall.SIGKILL, after(d), "big=dir:"+big)
			e.checkAfterInterrupt(t, first, finished, false, big)
		})
	}
}

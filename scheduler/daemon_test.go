package scheduler_test

// Acceptance tests: real coffer daemon processes, versitygw and
// PostgreSQL. The coffer binary is built once for the package.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testing/testutil"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testutil.RemoveCofferBinary()
	os.Exit(code)
}

// env is a repository with keys, a config file and the environment the
// daemons and CLI runs share.
type env struct {
	t    *testing.T
	dir  string
	bin  string
	repo string
	s3   *testutil.S3Server
	vars []string
}

// newEnv makes keys and a repository: on a fresh versitygw when s3,
// else in a folder.
func newEnv(t *testing.T, s3 bool) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), bin: testutil.CofferBinary(t)}
	e.vars = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + filepath.Join(e.dir, "home"),
		"COFFER_STATE_DIR=" + filepath.Join(e.dir, "state"), "XDG_CACHE_HOME=" + filepath.Join(e.dir, "cache")}
	if s3 {
		e.s3 = testutil.StartS3Server(t)
		c := e.s3.Config
		e.repo = "s3://" + c.Bucket + "/repo"
		e.vars = append(e.vars, "COFFER_S3_ENDPOINT=http://"+c.Endpoint, "AWS_ACCESS_KEY_ID="+c.AccessKey, "AWS_SECRET_ACCESS_KEY="+c.SecretKey)
	} else {
		e.repo = filepath.Join(e.dir, "repo")
	}
	e.must("keygen", "--out", e.path("keys"))
	e.must("init", "--repo", e.repo, "--owner-key", e.path("keys/owner/owner.key"), "-R", e.path("keys/recipients.txt"), "--host", e.path("keys/signing.pub"))
	return e
}

func (e *env) path(p string) string { return filepath.Join(e.dir, p) }

// run runs coffer and returns its stdout, stderr and exit code.
func (e *env) run(args ...string) (string, string, int) {
	e.t.Helper()
	cmd := exec.Command(e.bin, args...)
	cmd.Env, cmd.Dir = e.vars, e.dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

func (e *env) must(args ...string) string {
	e.t.Helper()
	out, errs, code := e.run(args...)
	if code != 0 {
		e.t.Fatalf("coffer %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// writeConfig writes the config file: the repository and keys, then body.
func (e *env) writeConfig(body string) string {
	e.t.Helper()
	p := e.path("coffer.yaml")
	head := fmt.Sprintf("repository: %s\nsigning_key: %s\nowner_key: %s\ncache_dir: %s\n",
		e.repo, e.path("keys/host/signing.key"), e.path("keys/owner.pub"), e.path("cache"))
	if err := os.WriteFile(p+".tmp", []byte(head+body), 0o600); err != nil {
		e.t.Fatal(err)
	}
	if err := os.Rename(p+".tmp", p); err != nil {
		e.t.Fatal(err)
	}
	return p
}

type snapshot struct {
	ID         string    `json:"id"`
	Time       time.Time `json:"time"`
	Tags       []string  `json:"tags"`
	Incomplete bool      `json:"incomplete"`
}

// snapshots lists the repository's snapshots with their tags.
func (e *env) snapshots() []snapshot {
	e.t.Helper()
	out := e.must("--repo", e.repo, "--owner-key", e.path("keys/owner.pub"), "--identity", e.path("keys/restore/identity.txt"), "snapshots", "--json")
	var s []snapshot
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		e.t.Fatalf("snapshots --json: %v\n%s", err, out)
	}
	return s
}

// runOf returns the scheduled run a snapshot's tag names, or "".
func (s snapshot) runOf() string {
	for _, t := range s.Tags {
		if r, ok := strings.CutPrefix(t, "coffer-run="); ok {
			return r
		}
	}
	return ""
}

// daemon is a coffer daemon process.
type daemon struct {
	t    *testing.T
	cmd  *exec.Cmd
	log  *logBuffer
	done chan struct{}
	err  error
}

type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startDaemon starts coffer daemon with the config file, in a process
// group of its own (so that a kill takes its hooks too).
func (e *env) startDaemon(name string) *daemon {
	e.t.Helper()
	d := &daemon{t: e.t, log: &logBuffer{}, done: make(chan struct{})}
	d.cmd = exec.Command(e.bin, "--config", e.path("coffer.yaml"), "daemon")
	d.cmd.Env, d.cmd.Dir = e.vars, e.dir
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() { d.err = d.cmd.Wait(); close(d.done) }()
	e.t.Cleanup(func() {
		d.kill()
		if e.t.Failed() {
			e.t.Logf("daemon %s log:\n%s", name, d.log.String())
		}
	})
	return d
}

// kill kills the daemon and its children at once (SIGKILL).
func (d *daemon) kill() {
	syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
	<-d.done
}

func (d *daemon) signal(s syscall.Signal) { d.cmd.Process.Signal(s) }

// waitLog waits until the daemon's log matches re, and returns the match.
func (d *daemon) waitLog(re string, timeout time.Duration) []string {
	d.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(timeout)
	for {
		if m := rx.FindStringSubmatch(d.log.String()); m != nil {
			return m
		}
		select {
		case <-d.done:
			d.t.Fatalf("daemon exited (%v) before its log matched %q:\n%s", d.err, re, d.log.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("daemon log did not match %q within %s:\n%s", re, timeout, d.log.String())
		}
	}
}

func (d *daemon) count(re string) int {
	return len(regexp.MustCompile(re).FindAllString(d.log.String(), -1))
}

// metricsAddr is where the daemon serves metrics (daemon.metrics is
// 127.0.0.1:0 in these tests).
func (d *daemon) metricsAddr() string {
	return d.waitLog(`daemon started.*metrics"?[=:]"?(127\.0\.0\.1:\d+)`, 30*time.Second)[1]
}

// scrape returns the value of a metric line (name with labels) or -1.
func scrape(t *testing.T, addr, metric string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), metric+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	return -1
}

// writeData writes n bytes of random data into dir/name.
func writeData(t *testing.T, dir, name string, n int64) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.Reader, n); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestOutageDuringBackup (first: it is the longest, and the others run
// beside it): versitygw is killed for 60 s in the middle of a
// large backup and started again on the same port and data folder: the
// backup rides the outage out, completes and verifies.
func TestOutageDuringBackup(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true)
	size := int64(outageSize)
	writeData(t, e.path("data"), "big.bin", size)
	e.writeConfig(fmt.Sprintf(`s3:
  retry_budget: 3m
daemon:
  metrics: 127.0.0.1:0
  retries: 0
sources:
  files: dir:%s
backups:
  yearly:
    schedule: "0 0 1 1 *"
`, e.path("data")))
	d := e.startDaemon("a")
	addr := d.metricsAddr()
	d.waitLog(`msg="run started"`, 30*time.Second)
	time.Sleep(3 * time.Second)
	if strings.Contains(d.log.String(), `msg="run finished"`) {
		t.Fatal("the backup finished before the outage: make it larger")
	}
	e.s3.Stop()
	down := time.Now()
	time.Sleep(60 * time.Second)
	if strings.Contains(d.log.String(), `msg="run failed"`) {
		t.Fatalf("the backup failed during the outage:\n%s", d.log.String())
	}
	if err := e.s3.Start(); err != nil {
		t.Fatal(err)
	}
	t.Logf("S3 down for %s", time.Since(down).Round(time.Second))
	d.waitLog(`msg="run finished"`, 5*time.Minute)
	if got := scrape(t, addr, `coffer_job_last_bytes{job="yearly",kind="read"}`); got < float64(size) {
		t.Errorf("bytes read %v, want %d", got, size)
	}
	d.signal(syscall.SIGTERM)
	<-d.done
	if n := len(e.snapshots()); n != 1 {
		t.Fatalf("%d snapshots, want 1", n)
	}
	e.must("--repo", e.repo, "--owner-key", e.path("keys/owner.pub"), "verify")
}

// TestDaemonSchedulesAndServesMetrics: a daemon on a seconds schedule
// backs up a folder and a PostgreSQL database at each run, and its
// metrics change with each run.
func TestDaemonSchedulesAndServesMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true)
	dsn := pgDSN(t)
	writeData(t, e.path("data"), "a.bin", 64<<10)
	e.writeConfig(fmt.Sprintf(`daemon:
  metrics: 127.0.0.1:0
  log_format: json
sources:
  files: dir:%s
  db: postgres:%s
backups:
  often:
    schedule: "*/2 * * * * *"
    sources: [files, db]
    tags: [scheduled]
`, e.path("data"), dsn))
	d := e.startDaemon("a")
	addr := d.metricsAddr()
	d.waitLog(`"msg":"run finished".*"job":"often"`, 60*time.Second)
	// The repository is measured after the run's end line.
	waitFor(t, "the repository's metrics", 30*time.Second, func() bool { return scrape(t, addr, `coffer_repository_snapshots`) >= 1 })
	runs1 := scrape(t, addr, `coffer_job_runs_total{job="often"}`)
	succ1 := scrape(t, addr, `coffer_job_last_success_timestamp_seconds{job="often"}`)
	snaps1 := scrape(t, addr, `coffer_repository_snapshots`)
	if runs1 < 1 || succ1 <= 0 || snaps1 < 1 {
		t.Fatalf("after a run: runs %v, last success %v, snapshots %v", runs1, succ1, snaps1)
	}
	if got := scrape(t, addr, `coffer_job_last_bytes{job="often",kind="read"}`); got < 64<<10 {
		t.Errorf("bytes read = %v, want at least the folder's 64 KiB", got)
	}
	writeData(t, e.path("data"), "b.bin", 32<<10)
	waitFor(t, "two more runs", 60*time.Second, func() bool { return scrape(t, addr, `coffer_job_runs_total{job="often"}`) >= runs1+2 })
	if succ2 := scrape(t, addr, `coffer_job_last_success_timestamp_seconds{job="often"}`); succ2 <= succ1 {
		t.Errorf("last success did not move: %v then %v", succ1, succ2)
	}
	if snaps2 := scrape(t, addr, `coffer_repository_snapshots`); snaps2 <= snaps1 {
		t.Errorf("snapshot count did not grow: %v then %v", snaps1, snaps2)
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get("http://" + addr + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s = %d, want 200", p, resp.StatusCode)
		}
	}
	// Every run logged a start and an end line with its ids and figures.
	d.signal(syscall.SIGTERM)
	<-d.done
	if d.err != nil {
		t.Fatalf("daemon exit: %v", d.err)
	}
	if d.count(`"msg":"run started"`) < 3 || !strings.Contains(d.log.String(), `"bytes_stored"`) {
		t.Errorf("log lacks the run lines:\n%s", d.log.String())
	}
	snaps := e.snapshots()
	for _, s := range snaps {
		if s.runOf() == "" || !strings.Contains(strings.Join(s.Tags, ","), "scheduled") {
			t.Errorf("snapshot %s tags %v, want the job's and the run's", s.ID, s.Tags)
		}
	}
	// The repository verifies and restores the database's dump.
	e.must("--repo", e.repo, "--owner-key", e.path("keys/owner.pub"), "--identity", e.path("keys/restore/identity.txt"), "verify", "--decrypt")
}

// TestTwoDaemonsRunEachRunOnce: two daemons with one configuration and one
// S3 repository: over 20 scheduled runs, each run makes one snapshot.
func TestTwoDaemonsRunEachRunOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true)
	writeData(t, e.path("data"), "a.bin", 16<<10)
	e.writeConfig(fmt.Sprintf(`daemon:
  metrics: 127.0.0.1:0
  lease_ttl: 5s
  retries: 0
sources:
  files: dir:%s
backups:
  often:
    schedule: "* * * * * *"
`, e.path("data")))
	a, b := e.startDaemon("a"), e.startDaemon("b")
	const runs = 21
	waitFor(t, fmt.Sprintf("%d runs", runs), 150*time.Second, func() bool {
		return a.count(`msg="run finished"`)+b.count(`msg="run finished"`) >= runs
	})
	a.signal(syscall.SIGTERM)
	b.signal(syscall.SIGTERM)
	<-a.done
	<-b.done
	if a.err != nil || b.err != nil {
		t.Fatalf("daemons exited %v, %v", a.err, b.err)
	}
	snaps := e.snapshots()
	seen := map[string]int{}
	var first, last time.Time
	for _, s := range snaps {
		r := s.runOf()
		if r == "" {
			t.Errorf("snapshot %s has no run tag: %v", s.ID, s.Tags)
			continue
		}
		seen[r]++
		ts, err := time.Parse(time.RFC3339, strings.TrimPrefix(r, "often@"))
		if err != nil {
			t.Fatal(err)
		}
		if first.IsZero() || ts.Before(first) {
			first = ts
		}
		if ts.After(last) {
			last = ts
		}
	}
	for r, n := range seen {
		if n != 1 {
			t.Errorf("run %s made %d snapshots, want 1", r, n)
		}
	}
	if len(seen) < runs {
		t.Errorf("%d distinct runs, want at least %d", len(seen), runs)
	}
	// Both daemons took part: the lease is taken by whoever is first.
	ra, rb := a.count(`msg="run finished"`), b.count(`msg="run finished"`)
	// Runs the schedule had but neither daemon ran: a run that overran
	// the next slot on a loaded machine skips it (a job never overlaps
	// itself); they are counted, not failed.
	slots := int(last.Sub(first)/time.Second) + 1
	t.Logf("runs: %d distinct of %d scheduled from %s to %s; daemon a ran %d, daemon b %d", len(seen), slots, first.Format(time.TimeOnly), last.Format(time.TimeOnly), ra, rb)
	if ra+rb != len(snaps) {
		t.Errorf("daemons finished %d runs but the repository has %d snapshots", ra+rb, len(snaps))
	}
}

// TestKillLeaseHolderMidRun: the daemon that holds a run's lease is
// killed mid-run; the other takes the run over after the lease expires,
// and the repository never shows a partial snapshot.
func TestKillLeaseHolderMidRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true)
	writeData(t, e.path("data"), "a.bin", 8<<20)
	// The pre hook records who runs and makes the run last 6 s.
	e.writeConfig(fmt.Sprintf(`daemon:
  metrics: 127.0.0.1:0
  lease_ttl: 3s
  retries: 0
sources:
  files: dir:%s
backups:
  yearly:
    schedule: "0 0 1 1 *"
    sources: [files]
    hooks:
      pre: ["echo $PPID >> %s; sleep 6"]
`, e.path("data"), e.path("runs.log")))
	a := e.startDaemon("a")
	a.waitLog(`msg="run started"`, 30*time.Second)
	b := e.startDaemon("b")
	b.waitLog(`msg="daemon started"`, 30*time.Second)
	time.Sleep(time.Second)
	killed := time.Now()
	a.kill()
	if n := len(e.snapshots()); n != 0 {
		t.Fatalf("%d snapshots after the holder was killed mid-run, want 0", n)
	}
	b.waitLog(`msg="run finished"`, 60*time.Second)
	took := time.Since(killed)
	run := b.waitLog(`msg="run finished".* run=(yearly@\S+)`, time.Second)[1]
	if !strings.Contains(a.log.String(), run) {
		t.Errorf("daemon b ran %s, which is not the run daemon a held:\n%s", run, a.log.String())
	}
	snaps := e.snapshots()
	if len(snaps) != 1 || snaps[0].runOf() != run {
		t.Fatalf("snapshots %+v, want one of run %s", snaps, run)
	}
	if took < 2*time.Second {
		t.Errorf("b took over %s after the kill, before the 3s lease could expire", took)
	}
	e.must("--repo", e.repo, "--owner-key", e.path("keys/owner.pub"), "verify")
	b.signal(syscall.SIGTERM)
	<-b.done
}

// TestSIGTERMDuringBackup: SIGTERM while a run goes on. A run that ends
// before the stop deadline finishes and publishes its snapshot; a backup
// still uploading at the deadline is cancelled and publishes nothing. The
// daemon exits 0 either way.
func TestSIGTERMDuringBackup(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true)
	writeData(t, e.path("small"), "a.bin", 64<<10)
	writeData(t, e.path("big"), "big.bin", 256<<20)
	conf := `daemon:
  metrics: 127.0.0.1:0
  stop_deadline: %s
sources:
  small: dir:%s
  big: dir:%s
backups:
  %s:
    schedule: "0 0 1 1 *"
    sources: [%s]
    hooks:
      pre: ["sleep %s"]
`
	stop := func(d *daemon, limit time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		d.signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(limit):
			t.Fatalf("daemon still running %s after SIGTERM:\n%s", limit, d.log.String())
		}
		if d.err != nil {
			t.Fatalf("daemon exit after SIGTERM: %v, want 0\n%s", d.err, d.log.String())
		}
		return time.Since(start)
	}

	// Within the deadline: the run (a 2 s pre hook, then a small backup)
	// finishes.
	e.writeConfig(fmt.Sprintf(conf, "30s", e.path("small"), e.path("big"), "first", "small", "2"))
	d := e.startDaemon("finishing")
	d.waitLog(`msg="run started"`, 30*time.Second)
	stop(d, 30*time.Second)
	if !strings.Contains(d.log.String(), `msg="run finished"`) {
		t.Fatalf("the run did not finish within the deadline:\n%s", d.log.String())
	}
	if n := len(e.snapshots()); n != 1 {
		t.Fatalf("%d snapshots after a run that finished, want 1", n)
	}

	// Past the deadline: the 256 MiB backup is cancelled mid-upload (a
	// job of another name, which has never run, so it catches up at
	// start).
	e.writeConfig(fmt.Sprintf(conf, "300ms", e.path("small"), e.path("big"), "second", "big", "0"))
	d = e.startDaemon("cancelled")
	d.waitLog(`msg="run started"`, 30*time.Second)
	time.Sleep(700 * time.Millisecond)
	if el := stop(d, 20*time.Second); el > 10*time.Second {
		t.Errorf("daemon took %s to exit with a 300ms stop deadline", el)
	}
	if strings.Contains(d.log.String(), `msg="run finished"`) {
		t.Fatalf("the 256 MiB backup finished within 1 s: the test cannot cancel it mid-upload:\n%s", d.log.String())
	}
	if !strings.Contains(d.log.String(), "stop deadline reached") {
		t.Errorf("log does not say the run was cancelled:\n%s", d.log.String())
	}
	if n := len(e.snapshots()); n != 1 {
		t.Errorf("%d snapshots after a cancelled backup, want still 1", n)
	}
	e.must("--repo", e.repo, "--owner-key", e.path("keys/owner.pub"), "verify")
}

// TestSIGHUPBrokenConfigKeepsOld: a reload with an invalid configuration
// is refused with its problem and line; the daemon goes on with the old
// one. A valid one is taken.
func TestSIGHUPBrokenConfigKeepsOld(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	writeData(t, e.path("data"), "a.bin", 4<<10)
	good := fmt.Sprintf(`daemon:
  metrics: 127.0.0.1:0
sources:
  files: dir:%s
backups:
  often:
    schedule: "*/1 * * * * *"
    tags: [%%s]
`, e.path("data"))
	e.writeConfig(fmt.Sprintf(good, "first"))
	d := e.startDaemon("a")
	d.waitLog(`msg="run finished"`, 30*time.Second)
	e.writeConfig(strings.Replace(fmt.Sprintf(good, "second"), `"*/1 * * * * *"`, `"61 * * * *"`, 1))
	d.signal(syscall.SIGHUP)
	m := d.waitLog(`msg="reload refused.*`, 10*time.Second)
	if !strings.Contains(m[0], "line 11: backups.often.schedule: invalid schedule") {
		t.Errorf("refusal %q does not name the key and line", m[1])
	}
	n := d.count(`msg="run finished"`)
	waitFor(t, "runs after the refused reload", 20*time.Second, func() bool { return d.count(`msg="run finished"`) >= n+2 })
	e.writeConfig(fmt.Sprintf(good, "second"))
	d.signal(syscall.SIGHUP)
	d.waitLog(`msg="configuration reloaded"`, 10*time.Second)
	n = d.count(`msg="run finished"`)
	waitFor(t, "runs after the reload", 20*time.Second, func() bool { return d.count(`msg="run finished"`) >= n+2 })
	d.signal(syscall.SIGTERM)
	<-d.done
	var first, second int
	for _, s := range e.snapshots() {
		switch tags := strings.Join(s.Tags, ","); {
		case strings.Contains(tags, "first"):
			first++
		case strings.Contains(tags, "second"):
			second++
		}
	}
	if first < 3 || second < 1 {
		t.Errorf("snapshots tagged first: %d, second: %d; want the old config's runs to go on and the new one's to follow", first, second)
	}
}

// TestAlerts: a webhook receiver gets a failure alert, then a recovery
// alert, then a missed-schedule alert while runs are blocked (another
// daemon holds the job's lease); a webhook URL's secret is never logged.
func TestAlerts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	writeData(t, e.path("data"), "a.bin", 4<<10)
	var mu sync.Mutex
	var got []map[string]any
	srv := newReceiver(t, func(m map[string]any) { mu.Lock(); got = append(got, m); mu.Unlock() })
	events := func() []string {
		mu.Lock()
		defer mu.Unlock()
		var out []string
		for _, m := range got {
			out = append(out, fmt.Sprint(m["event"]))
		}
		return out
	}
	const secret = "T0KEN-s3cr3t-9f8e7d"
	e.writeConfig(fmt.Sprintf(`daemon:
  metrics: 127.0.0.1:0
  retries: 0
sources:
  files: dir:%s
backups:
  often:
    schedule: "*/2 * * * * *"
    hooks:
      pre: ["test ! -e %s"]
alerts:
  - url: %s/hook
  - url: http://user:pw-%s@127.0.0.1:1/services/%s?token=%s
    format: slack
`, e.path("data"), e.path("FAIL"), srv, secret, secret, secret))
	os.WriteFile(e.path("FAIL"), nil, 0o600)
	d := e.startDaemon("a")
	waitFor(t, "a failure alert", 30*time.Second, func() bool { return strings.Contains(strings.Join(events(), ","), "failure") })
	os.Remove(e.path("FAIL"))
	waitFor(t, "a recovery alert", 30*time.Second, func() bool { return strings.Contains(strings.Join(events(), ","), "recovery") })
	// Block the runs: a lease held by another daemon, far from expiry.
	blockLease(t, e.path("repo"), "often")
	waitFor(t, "a missed-schedule alert", 30*time.Second, func() bool {
		ev := events()
		return len(ev) > 0 && ev[len(ev)-1] == "missed"
	})
	ev := events()
	fi, ri, mi := index(ev, "failure"), index(ev, "recovery"), lastIndex(ev, "missed")
	if !(fi < ri && ri < mi) {
		t.Errorf("alerts %v, want failure, then recovery, then missed", ev)
	}
	mu.Lock()
	if got[fi]["job"] != "often" || got[fi]["message"] == "" {
		t.Errorf("failure alert %v lacks the job or message", got[fi])
	}
	mu.Unlock()
	// The unreachable webhook's failures were logged, without its secret.
	d.waitLog(`alert not delivered`, 30*time.Second)
	d.signal(syscall.SIGTERM)
	<-d.done
	if strings.Contains(d.log.String(), secret) || strings.Contains(d.log.String(), "pw-") {
		t.Errorf("the daemon logged a webhook's secret:\n%s", d.log.String())
	}
}

func index(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

func lastIndex(s []string, v string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == v {
			return i
		}
	}
	return -1
}

// blockLease writes the next generation of a job's lease in a local
// repository as another daemon would: running, for an hour.
func blockLease(t *testing.T, repoDir, job string) {
	t.Helper()
	dir := filepath.Join(repoDir, "daemon", "leases", job)
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) == 0 {
		t.Fatalf("no lease of %s: %v", job, err)
	}
	var gen uint64
	fmt.Sscan(strings.TrimLeft(ents[len(ents)-1].Name(), "0"), &gen)
	gen++
	rec := map[string]any{"job": job, "generation": gen, "owner": "elsewhere:1", "state": "running",
		"run": time.Now().Add(time.Hour).UTC(), "expires": time.Now().Add(time.Hour).UTC()}
	b, _ := json.Marshal(rec)
	if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%020d", gen)), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// newReceiver serves a webhook receiver and returns its URL.
func newReceiver(t *testing.T, fn func(map[string]any)) string {
	t.Helper()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		if err := json.NewDecoder(r.Body).Decode(&m); err == nil {
			fn(m)
		}
	})}
	ln, err := netListen()
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	return "http://" + ln.Addr().String()
}

// TestDaemonAppliesRetention: after each successful run the job's
// retention policy forgets what it does not keep, and prune frees the
// space; the repository still verifies.
func TestDaemonAppliesRetention(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	writeData(t, e.path("data"), "a.bin", 16<<10)
	e.writeConfig(fmt.Sprintf(`daemon:
  metrics: 127.0.0.1:0
  retries: 0
sources:
  files: dir:%s
backups:
  often:
    schedule: "* * * * * *"
    retention: {keep_last: 2, prune: true}
`, e.path("data")))
	d := e.startDaemon("a")
	waitFor(t, "five runs", 60*time.Second, func() bool {
		writeData(t, e.path("data"), "changing.bin", 4<<10) // new data each run, for prune to free
		return d.count(`msg="run finished"`) >= 5
	})
	d.signal(syscall.SIGTERM)
	<-d.done
	if strings.Contains(d.log.String(), "retention failed") {
		t.Fatalf("retention failed:\n%s", d.log.String())
	}
	if !regexp.MustCompile(`msg="run finished".* forgotten=[1-9]`).MatchString(d.log.String()) {
		t.Errorf("no run says it forgot a snapshot:\n%s", d.log.String())
	}
	if n := len(e.snapshots()); n != 2 {
		t.Errorf("%d snapshots after keep_last: 2, want 2\n%s", n, d.log.String())
	}
	e.must("--repo", e.repo, "--owner-key", e.path("keys/owner.pub"), "--identity", e.path("keys/restore/identity.txt"), "verify", "--decrypt")
}

// TestDaemonRunsDrills: a drill job on a seconds schedule drills the
// newest snapshot, exports its figures as metrics and keeps its evidence
// in the repository (coffer drills lists it without a key).
func TestDaemonRunsDrills(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	writeData(t, e.path("data"), "a.bin", 64<<10)
	e.must("--repo", e.repo, "--signing-key", e.path("keys/host/signing.key"), "--owner-key", e.path("keys/owner.pub"),
		"backup", "files=dir:"+e.path("data"))
	e.writeConfig(fmt.Sprintf(`identity: %s
daemon:
  metrics: 127.0.0.1:0
  retries: 0
drill:
  temp_dir: %s
drills:
  nightly:
    schedule: "*/2 * * * * *"
`, e.path("keys/restore/identity.txt"), e.path("scratch")))
	if err := os.MkdirAll(e.path("scratch"), 0o700); err != nil {
		t.Fatal(err)
	}
	d := e.startDaemon("a")
	addr := d.metricsAddr()
	d.waitLog(`msg="run finished".*job=nightly`, 60*time.Second)
	waitFor(t, "the drill's metrics", 30*time.Second, func() bool {
		return scrape(t, addr, `coffer_drill_last_success_timestamp_seconds{drill="nightly"}`) > 0
	})
	if rto := scrape(t, addr, `coffer_drill_rto_seconds{drill="nightly"}`); rto <= 0 {
		t.Errorf("drill RTO metric = %v, want > 0", rto)
	}
	d.signal(syscall.SIGTERM)
	<-d.done
	if strings.Contains(d.log.String(), "run failed") {
		t.Fatalf("a drill failed:\n%s", d.log.String())
	}
	out := e.must("--repo", e.repo, "--owner-key", e.path("keys/owner.pub"), "drills", "--json")
	var hist []map[string]any
	if err := json.Unmarshal([]byte(out), &hist); err != nil || len(hist) == 0 {
		t.Fatalf("coffer drills after the daemon's drills: %v\n%s", err, out)
	}
	if ents, _ := os.ReadDir(e.path("scratch")); len(ents) != 0 {
		t.Errorf("the scratch folder holds %d leftovers", len(ents))
	}
}

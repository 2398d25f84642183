package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer/drill"
	"github.com/cofferhq/coffer/internal/testing/fixture"
)

// The tests here run the real coffer binary's drill and interrupt it in the
// middle of a restore: with SIGKILL (the next drill removes what it left),
// and with SIGINT and SIGTERM (it removes its scratch environment itself).

// drillEnv is a repository with one snapshot of an invoice database.
type drillEnv struct {
	*crashEnv
	temp string // the drills' temporary folder
}

func newDrillEnv(t *testing.T) *drillEnv {
	t.Helper()
	pg := fixture.NewPostgresDB(t)
	if err := fixture.CreatePostgres(t.Context(), pg, fixture.Size{Vendors: 50, Invoices: 100000, LinesPerInvoice: 4}, 1); err != nil {
		t.Fatal(err)
	}
	e := &drillEnv{crashEnv: newCrashEnv(t, "")}
	e.backup("invoices=postgres:" + pg)
	temp, err := os.MkdirTemp("", "coffer-drilltest-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(temp, 0o711) // the ephemeral cluster's server user must reach it
	t.Cleanup(func() { os.RemoveAll(temp) })
	e.temp = temp
	return e
}

// start starts a drill and returns it once its restore runs: its scratch
// folder exists and, with a drill server, its scratch database, else the
// ephemeral cluster's server.
func (e *drillEnv) start(t *testing.T, args ...string) (proc *os.Process, id string, wait func() int, stderr *syncBuf) {
	t.Helper()
	cmd := e.command(append([]string{"drill", "--temp-dir", e.temp}, args...)...)
	stderr = &syncBuf{}
	cmd.Stdout, cmd.Stderr = &bytes.Buffer{}, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan int, 1)
	go func() {
		cmd.Wait()
		done <- cmd.ProcessState.ExitCode()
	}()
	wait = func() int {
		select {
		case c := <-done:
			return c
		case <-time.After(2 * time.Minute):
			cmd.Process.Kill()
			t.Fatal("drill did not end")
			return -1
		}
	}
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case c := <-done:
			t.Fatalf("drill ended (exit %d) before it could be interrupted:\n%s", c, stderr.String())
		default:
		}
		dirs, _ := filepath.Glob(filepath.Join(e.temp, "coffer-drill-*"))
		if len(dirs) == 1 && strings.Contains(stderr.String(), "restoring invoices") {
			id = strings.TrimPrefix(filepath.Base(dirs[0]), "coffer-drill-")
			running := false
			if slicesContains(args, "--pg-server") {
				running = len(pgScratch(t, drill.DatabasePrefix+id)) > 0
			} else {
				pids, _ := filepath.Glob(filepath.Join(dirs[0], "coffer-pg-*", "data", "postmaster.pid"))
				running = len(pids) > 0 && len(pgScratch(t, drill.DatabasePrefix+id)) == 0
			}
			if running {
				time.Sleep(200 * time.Millisecond) // into pg_restore
				return cmd.Process, id, wait, stderr
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Kill()
	t.Fatalf("the drill's restore did not start:\n%s", stderr.String())
	return nil, "", nil, nil
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

type syncBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// pgScratch lists the databases on the test server whose names start with
// prefix.
func pgScratch(t *testing.T, prefix string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, fixture.AdminDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, _ := conn.Query(ctx, "select datname from pg_database where starts_with(datname, $1)", prefix)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// postmasters returns the pids of processes that run in (or name) dir.
func postmasters(dir string) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cwd, _ := os.Readlink("/proc/" + e.Name() + "/cwd")
		cmd, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if strings.HasPrefix(cwd, dir) || strings.Contains(string(cmd), dir) {
			out = append(out, pid)
		}
	}
	return out
}

// noLeftovers checks that drill id left no folder, process or database.
func (e *drillEnv) noLeftovers(t *testing.T, id string) {
	t.Helper()
	dir := filepath.Join(e.temp, "coffer-drill-"+id)
	if _, err := os.Lstat(dir); err == nil {
		t.Errorf("scratch folder %s survived", dir)
	}
	if p := postmasters(dir); len(p) > 0 {
		t.Errorf("processes %v of drill %s survived", p, id)
	}
	if dbs := pgScratch(t, drill.DatabasePrefix+id); len(dbs) > 0 {
		t.Errorf("scratch databases %v survived", dbs)
	}
}

func TestDrillKilledLeftoversRemovedByNextDrill(t *testing.T) {
	e := newDrillEnv(t)
	for _, mode := range []string{"ephemeral", "server"} {
		t.Run(mode, func(t *testing.T) {
			var args []string
			if mode == "server" {
				args = []string{"--pg-server", fixture.AdminDSN()}
			}
			proc, id, wait, _ := e.start(t, args...)
			proc.Signal(syscall.SIGKILL)
			wait()
			dir := filepath.Join(e.temp, "coffer-drill-"+id)
			if _, err := os.Stat(filepath.Join(dir, "coffer-drill.json")); err != nil {
				t.Fatalf("the killed drill left no marker: %v", err)
			}
			switch mode {
			case "ephemeral":
				if len(postmasters(dir)) == 0 {
					t.Fatal("the killed drill's cluster is not running: nothing to prove")
				}
			case "server":
				if len(pgScratch(t, drill.DatabasePrefix+id)) == 0 {
					t.Fatal("the killed drill left no database: nothing to prove")
				}
			}
			t.Cleanup(func() { e.noLeftovers(t, id) })
			out, errOut, code := e.run(append([]string{"drill", "--temp-dir", e.temp, "--report-dir", filepath.Join(e.dir, "reports")}, args...)...)
			if code != 0 {
				t.Fatalf("next drill: exit %d\n%s", code, errOut)
			}
			if !strings.Contains(errOut, "removed the leftovers of drill "+id) {
				t.Errorf("the next drill did not say it removed drill %s's leftovers:\n%s", id, errOut)
			}
			if !strings.Contains(out, ": PASS: ") {
				t.Errorf("next drill did not pass:\n%s", out)
			}
			reps, _ := filepath.Glob(filepath.Join(e.dir, "reports", "drill-*.json"))
			if len(reps) != 1 {
				t.Fatalf("reports %v", reps)
			}
			b, err := os.ReadFile(reps[0])
			if err != nil {
				t.Fatal(err)
			}
			os.Remove(reps[0])
			var rep drill.Report
			if err := json.Unmarshal(b, &rep); err != nil {
				t.Fatal(err)
			}
			if rep.Result != drill.Pass && rep.Result != drill.Warn {
				t.Errorf("next drill: %s", rep.Result)
			}
			e.noLeftovers(t, id)
			e.noLeftovers(t, rep.ID)
		})
	}
}

func TestDrillInterruptedRemovesScratch(t *testing.T) {
	e := newDrillEnv(t)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		for _, mode := range []string{"ephemeral", "server"} {
			t.Run(sig.String()+"-"+mode, func(t *testing.T) {
				var args []string
				if mode == "server" {
					args = []string{"--pg-server", fixture.AdminDSN()}
				}
				proc, id, wait, stderr := e.start(t, args...)
				proc.Signal(sig)
				if code := wait(); code != exitInterrupted {
					t.Errorf("exit %d, want %d\n%s", code, exitInterrupted, stderr.String())
				}
				e.noLeftovers(t, id)
				if ents, _ := os.ReadDir(e.temp); len(ents) != 0 {
					t.Errorf("temporary folder holds %v", ents)
				}
			})
		}
	}
}

// TestDrillExitCodes: 0 when every check passes, 3 when a user check of
// the config file fails (naming it), 1 when the drill cannot run, 2 for
// bad arguments; each with a message that says what to do.
func TestDrillExitCodes(t *testing.T) {
	pg := fixture.NewPostgresDB(t)
	if err := fixture.CreatePostgres(t.Context(), pg, fixture.Size{Vendors: 4, Invoices: 100, LinesPerInvoice: 2}, 1); err != nil {
		t.Fatal(err)
	}
	e := newCrashEnv(t, "")
	snap := e.backup("invoices=postgres:" + pg)
	good := filepath.Join(e.dir, "good.yaml")
	bad := filepath.Join(e.dir, "bad.yaml")
	for file, want := range map[string]string{good: "4", bad: "5"} {
		os.WriteFile(file, []byte("drill:\n  checks:\n    - source: invoices\n      name: vendors\n      query: select count(*) from vendor\n      expect: "+want+"\n"), 0o600)
	}
	args := []string{"--pg-server", fixture.AdminDSN()}
	for _, tc := range []struct {
		args   []string
		code   int
		stdout string
		stderr []string
	}{
		{args: append([]string{"--config", good, "drill"}, args...), code: 0, stdout: "ok    invoices/user:vendors: result [4] as expected"},
		{args: append([]string{"--config", bad, "drill", snap[:8]}, args...), code: 3, stdout: "FAIL  invoices/user:vendors: got [4], expected [5]\n"},
		{args: append([]string{"drill", "--source", "nope"}, args...), code: 1,
			stderr: []string{`coffer: error: no such source in the snapshot: "nope" (it has: invoices)`, "coffer: hint: run coffer snapshots"}},
		{args: []string{"drill", "deadbeef"}, code: 1, stderr: []string{`no such snapshot "deadbeef"`}},
		{args: []string{"drill", "--random", snap}, code: 2, stderr: []string{"give a SNAPSHOT or --random, not both"}},
		{args: []string{"drill", "a", "b"}, code: 2, stderr: []string{"drill takes at most one SNAPSHOT argument, not 2"}},
		{args: []string{"--identity", "", "drill"}, code: 1, stderr: []string{"no identity"}},
	} {
		cmdArgs := tc.args
		if tc.args[0] == "--identity" {
			// No identity at all.
			old := e.env
			e.env = nil
			for _, kv := range old {
				if !strings.HasPrefix(kv, "COFFER_IDENTITY=") {
					e.env = append(e.env, kv)
				}
			}
			cmdArgs = tc.args[2:]
			defer func() { e.env = old }()
		}
		out, errOut, code := e.run(cmdArgs...)
		if code != tc.code {
			t.Errorf("coffer %s: exit %d, want %d\n%s%s", strings.Join(tc.args, " "), code, tc.code, out, errOut)
			continue
		}
		if tc.stdout != "" && !strings.Contains(out, tc.stdout) {
			t.Errorf("coffer %s: stdout lacks %q:\n%s", strings.Join(tc.args, " "), tc.stdout, out)
		}
		for _, s := range tc.stderr {
			if !strings.Contains(errOut, s) {
				t.Errorf("coffer %s: stderr lacks %q:\n%s", strings.Join(tc.args, " "), s, errOut)
			}
		}
	}
}

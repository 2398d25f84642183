package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/mariadbcluster"
	"github.com/cofferhq/coffer/internal/testing/fixture"
	"github.com/cofferhq/coffer/internal/testing/testutil"
)

// mariadbds returns the pids of the live mariadbd processes whose data
// directory is under dir.
func mariadbds(dir string) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, _ := os.ReadFile("/proc/" + e.Name() + "/stat")
		if i := strings.LastIndexByte(string(st), ')'); i < 0 || i+2 >= len(st) || st[i+2] == 'Z' {
			continue
		}
		cmd, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		args := strings.Split(string(cmd), "\x00")
		if filepath.Base(args[0]) != "mariadbd" {
			continue
		}
		for _, a := range args[1:] {
			if strings.HasPrefix(a, "--datadir="+dir+"/") {
				out = append(out, pid)
			}
		}
	}
	return out
}

// A drill of a MySQL source without --mysql-server runs an ephemeral
// mariadbd in its scratch folder; killed with SIGKILL, it leaves that
// server running, and the next drill stops it, removes the folder, and
// passes on an ephemeral server of its own.
func TestDrillKilledMariaDBStoppedByNextDrill(t *testing.T) {
	if _, _, err := mariadbcluster.FindBinaries(); err != nil {
		testutil.Missing(t, "MariaDB server binaries: %v", err)
	}
	my := fixture.NewMySQLDB(t)
	if err := fixture.CreateMySQL(t.Context(), my, fixture.Size{Vendors: 5, Invoices: 3000, LinesPerInvoice: 3}, 1); err != nil {
		t.Fatal(err)
	}
	e := &drillEnv{crashEnv: newCrashEnv(t, "")}
	e.backup("ledger=mysql:" + my)
	temp, err := os.MkdirTemp("", "coffer-drilltest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(temp) })
	e.temp = temp

	cmd := e.command("drill", "--temp-dir", e.temp)
	stderr := &syncBuf{}
	cmd.Stdout, cmd.Stderr = &bytes.Buffer{}, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var dir string
	deadline := time.Now().Add(90 * time.Second)
	for dir == "" && time.Now().Before(deadline) {
		if dirs, _ := filepath.Glob(filepath.Join(e.temp, "coffer-drill-*")); len(dirs) == 1 && len(mariadbds(dirs[0])) > 0 {
			dir = dirs[0]
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if dir == "" {
		t.Fatalf("the drill's mariadbd did not start:\n%s", stderr.String())
	}
	id := strings.TrimPrefix(filepath.Base(dir), "coffer-drill-")
	// Whatever happens, stop what the killed drill left.
	t.Cleanup(func() {
		for _, pid := range mariadbds(dir) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	time.Sleep(300 * time.Millisecond)
	left := mariadbds(dir)
	if len(left) == 0 {
		t.Fatalf("the killed drill's mariadbd is not running: nothing to prove\n%s", stderr.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "coffer-drill.json")); err != nil {
		t.Fatalf("the killed drill left no marker: %v", err)
	}

	out, errOut, code := e.run("drill", "--temp-dir", e.temp)
	if code != 0 {
		t.Fatalf("next drill: exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "removed the leftovers of drill "+id) {
		t.Errorf("the next drill did not say it removed drill %s's leftovers:\n%s", id, errOut)
	}
	if !strings.Contains(out, ": PASS: ") {
		t.Errorf("next drill did not pass:\n%s", out)
	}
	if p := mariadbds(e.temp); len(p) > 0 {
		t.Errorf("mariadbd %v survived (the killed drill's was %v)", p, left)
	}
	for _, pid := range left {
		if err := syscall.Kill(pid, 0); err == nil {
			if st, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); !bytes.Contains(st, []byte(") Z")) {
				t.Errorf("the killed drill's mariadbd %d still runs", pid)
			}
		}
	}
	if ents, _ := os.ReadDir(e.temp); len(ents) != 0 {
		t.Errorf("temporary folder holds %v", ents)
	}
}

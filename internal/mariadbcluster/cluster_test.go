package mariadbcluster_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	_ "github.com/go-sql-driver/mysql"

	"github.com/cofferhq/coffer/internal/mariadbcluster"
	"github.com/cofferhq/coffer/internal/testing/testutil"
)

func start(t *testing.T) *mariadbcluster.Cluster {
	t.Helper()
	if _, _, err := mariadbcluster.FindBinaries(); errors.Is(err, mariadbcluster.ErrNotFound) {
		testutil.Missing(t, "MariaDB server binaries: %v", err)
	}
	c, err := mariadbcluster.Start(t.Context(), mariadbcluster.Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop(context.Background()) })
	return c
}

// servers returns the pids of the processes whose command line names dir.
func servers(dir string) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		st, _ := os.ReadFile("/proc/" + e.Name() + "/stat")
		if i := strings.LastIndexByte(string(st), ')'); i >= 0 && i+2 < len(st) && st[i+2] == 'Z' {
			continue
		}
		if strings.Contains(string(cmd), "--datadir="+dir) {
			out = append(out, pid)
		}
	}
	return out
}

func TestStartQueryStop(t *testing.T) {
	c := start(t)
	if !strings.Contains(c.Version, "MariaDB") {
		t.Errorf("version %q", c.Version)
	}
	fi, err := os.Stat(c.Dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("folder %v mode %v, want 0700", err, fi.Mode())
	}
	db, err := sql.Open("mysql", c.DSN(""))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{"create database t1", "create table t1.x (a int primary key)", "insert into t1.x values (1), (2)"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	var n int
	if err := db.QueryRow("select count(*) from t1.x").Scan(&n); err != nil || n != 2 {
		t.Fatalf("count %d, %v", n, err)
	}
	// No TCP port: the server listens on its socket only.
	var skip string
	if err := db.QueryRow("select @@skip_networking").Scan(&skip); err != nil || skip != "1" {
		t.Errorf("skip_networking %q, %v", skip, err)
	}
	db.Close()
	if len(servers(c.DataDir)) != 1 {
		t.Fatalf("servers running on %s: %v", c.DataDir, servers(c.DataDir))
	}
	if err := c.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if p := servers(c.DataDir); len(p) != 0 {
		t.Errorf("mariadbd %v survived Stop", p)
	}
	if _, err := os.Stat(c.Dir); !os.IsNotExist(err) {
		t.Errorf("folder survived Stop: %v", err)
	}
	if err := c.Stop(t.Context()); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

// StopLeftover stops a server found by its data directory (its owner gone),
// and leaves a folder without a server alone.
func TestStopLeftover(t *testing.T) {
	c := start(t)
	dirs := mariadbcluster.DataDirs(filepath.Dir(c.Dir))
	if len(dirs) != 1 || dirs[0] != c.DataDir {
		t.Fatalf("DataDirs %v, want [%s]", dirs, c.DataDir)
	}
	if err := mariadbcluster.StopLeftover(t.Context(), c.DataDir); err != nil {
		t.Fatal(err)
	}
	if p := servers(c.DataDir); len(p) != 0 {
		t.Errorf("mariadbd %v survived StopLeftover", p)
	}
	if _, err := os.Stat(c.DataDir); err != nil {
		t.Errorf("StopLeftover removed the data: %v", err)
	}
	if err := mariadbcluster.StopLeftover(t.Context(), c.DataDir); err != nil {
		t.Errorf("again: %v", err)
	}
	if err := mariadbcluster.StopLeftover(t.Context(), filepath.Join(t.TempDir(), "data")); err != nil {
		t.Errorf("no server: %v", err)
	}
}

// A start that fails says why, with the error log, and leaves nothing.
func TestStartFailsCleanly(t *testing.T) {
	if _, _, err := mariadbcluster.FindBinaries(); err != nil {
		testutil.Missing(t, "MariaDB server binaries: %v", err)
	}
	parent := t.TempDir()
	long := filepath.Join(parent, strings.Repeat("x", 100))
	if err := os.Mkdir(long, 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := mariadbcluster.Start(t.Context(), mariadbcluster.Options{TempDir: long})
	if err == nil || !strings.Contains(err.Error(), "too long for a unix socket") {
		t.Errorf("long path: %v", err)
	}
	if ents, _ := os.ReadDir(long); len(ents) != 0 {
		t.Errorf("left %v", ents)
	}
}

func TestFindBinariesMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, _, err := mariadbcluster.FindBinaries()
	// /usr/sbin and /usr/bin are searched too: only where they lack the
	// binaries is ErrNotFound expected.
	_, e1 := os.Stat("/usr/sbin/mariadbd")
	_, e2 := os.Stat("/usr/bin/mariadbd")
	if e1 != nil && e2 != nil && !errors.Is(err, mariadbcluster.ErrNotFound) {
		t.Errorf("err %v, want ErrNotFound", err)
	}
	if (e1 == nil || e2 == nil) && err != nil {
		t.Errorf("found not in /usr/sbin or /usr/bin: %v", err)
	}
}

package drill_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer/backup"
	"github.com/cofferhq/coffer/drill"
	"github.com/cofferhq/coffer/internal/fingerprint"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/internal/testing/airflowfixture"
	"github.com/cofferhq/coffer/internal/testing/fixture"
	"github.com/cofferhq/coffer/internal/testing/testrepo"
	"github.com/cofferhq/coffer/source"
	"github.com/cofferhq/coffer/source/registry"
)

// env is a repository with one snapshot of the given sources.
type env struct {
	tr      *testrepo.Repo
	r       *repo.Repository // operator
	snap    string
	tempDir string // the drills' temporary folder
}

type spec struct {
	name string
	spec source.Spec
}

func newEnv(t *testing.T, specs ...spec) *env {
	t.Helper()
	tr := testrepo.New(t)
	e := &env{tr: tr, tempDir: tempDir(t)}
	e.snap = e.backup(t, specs...)
	e.r = tr.Operator(t)
	return e
}

// tempDir is a temporary folder that the ephemeral cluster's server user
// can reach (t.TempDir's parent is private to root).
func tempDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "coffer-drilltest-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d, 0o711); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func (e *env) backup(t *testing.T, specs ...spec) string {
	t.Helper()
	var srcs []source.Source
	for _, s := range specs {
		src, err := registry.New(s.name, s.spec)
		if err != nil {
			t.Fatal(err)
		}
		srcs = append(srcs, src)
	}
	registry.BackupOrder(srcs)
	res, err := backup.Run(t.Context(), backup.Options{Repo: e.tr.Host(t), Signing: e.tr.Signing, Sources: srcs, Host: "drill-test"})
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	return res.Manifest.ID
}

func (e *env) run(t *testing.T, o drill.Options) *drill.Report {
	t.Helper()
	o.Repo = e.r
	if o.TempDir == "" {
		o.TempDir = e.tempDir
	}
	o.Progress = func(f string, a ...any) { t.Logf("drill: "+f, a...) }
	rep, err := drill.Run(t.Context(), o)
	if rep == nil {
		t.Fatalf("no report (err %v)", err)
	}
	t.Cleanup(func() { assertNoLeftovers(t, o, rep.ID) })
	b, _ := json.MarshalIndent(rep, "", "  ")
	t.Logf("report: %s", b)
	if err != nil && rep.Result != drill.Error {
		t.Errorf("error %v with result %s", err, rep.Result)
	}
	return rep
}

// assertNoLeftovers checks that the drill with this id left no scratch
// folder, no cluster process and no scratch database.
func assertNoLeftovers(t *testing.T, o drill.Options, id string) {
	t.Helper()
	if id == "" {
		return
	}
	id = drill.ScratchID(id)
	dir := filepath.Join(o.TempDir, "coffer-drill-"+id)
	if _, err := os.Lstat(dir); err == nil {
		t.Errorf("scratch folder %s survived the drill", dir)
	}
	if pids := processesIn(dir); len(pids) > 0 {
		t.Errorf("processes %v still run in %s", pids, dir)
	}
	prefix := drill.DatabasePrefix + id
	if names := pgDatabases(t, prefix); len(names) > 0 {
		t.Errorf("scratch databases survived on PostgreSQL: %v", names)
	}
	if o.MySQLServer != "" {
		if names := mysqlDatabases(t, prefix); len(names) > 0 {
			t.Errorf("scratch databases survived on MySQL: %v", names)
		}
	}
}

// processesIn returns the pids whose working directory or command line is
// inside dir.
func processesIn(dir string) []int {
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

func pgDatabases(t *testing.T, prefix string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, fixture.AdminDSN())
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "select datname from pg_database where starts_with(datname, $1)", prefix)
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func mysqlDatabases(t *testing.T, prefix string) []string {
	t.Helper()
	db, err := sql.Open("mysql", fixture.MySQLAdminDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE ?", strings.ReplaceAll(prefix, "_", `\_`)+"%")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		rows.Scan(&n)
		out = append(out, n)
	}
	return out
}

// check returns the named check of source src ("" for snapshot-wide).
func check(t *testing.T, rep *drill.Report, src, name string) drill.Check {
	t.Helper()
	checks := rep.Checks
	if src != "" {
		checks = nil
		for _, s := range rep.Sources {
			if s.Name == src {
				checks = s.Checks
			}
		}
	}
	for _, c := range checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no check %q for source %q", name, src)
	return drill.Check{}
}

func wantPass(t *testing.T, rep *drill.Report) {
	t.Helper()
	if rep.Result != drill.Pass && rep.Result != drill.Warn {
		srcs, cs := rep.Failed()
		t.Fatalf("drill result %s (error %q), failed: %v %v", rep.Result, rep.Error, srcs, cs)
	}
}

// allKinds backs up a folder, a PostgreSQL, a MySQL and a SQLite invoice
// database, and an Airflow deployment on PostgreSQL.
func allKinds(t *testing.T) *env {
	t.Helper()
	ctx := t.Context()
	dir := t.TempDir()
	if _, err := fixture.WriteTree(dir, fixture.TreeSpec{Files: 40, Seed: 7}); err != nil {
		t.Fatal(err)
	}
	pg := fixture.NewPostgresDB(t)
	if err := fixture.CreatePostgres(ctx, pg, fixture.Size{Vendors: 5, Invoices: 300, LinesPerInvoice: 3}, 1); err != nil {
		t.Fatal(err)
	}
	my := fixture.NewMySQLDB(t)
	if err := fixture.CreateMySQL(ctx, my, fixture.Size{Vendors: 5, Invoices: 200, LinesPerInvoice: 3}, 2); err != nil {
		t.Fatal(err)
	}
	lite := filepath.Join(t.TempDir(), "invoices.sqlite")
	if err := fixture.CreateSQLite(ctx, lite, fixture.Size{Vendors: 5, Invoices: 200, LinesPerInvoice: 3}, 3); err != nil {
		t.Fatal(err)
	}
	af := airflowfixture.New(t, "postgres", airflowfixture.Options{Runs: 3})
	paid := []fingerprint.Check{{Name: "paid", Query: "select count(*) from invoice where status = 'paid'"}}
	return newEnv(t,
		spec{"docs", source.Spec{Kind: "dir", Location: dir}},
		spec{"invoices", source.Spec{Kind: "postgres", Location: pg, Checks: paid}},
		spec{"ledger", source.Spec{Kind: "mysql", Location: my}},
		spec{"archive", source.Spec{Kind: "sqlite", Location: lite, Checks: paid}},
		spec{"airflow", source.Spec{Kind: "airflow", Location: af.Home, Airflow: source.AirflowSpec{Config: af.ConfigPath, EnvFile: af.EnvFile}}},
	)
}

func TestDrillAllKinds(t *testing.T) {
	e := allKinds(t)
	checks := map[string][]source.UserCheck{
		"invoices": {{Name: "paid", Query: "select count(*) from invoice where status = 'paid'", SameAsBackup: true},
			{Name: "vendors", Query: "select count(*) from vendor", Expect: []string{"5"}}},
	}
	for _, mode := range []string{"ephemeral", "server"} {
		t.Run(mode, func(t *testing.T) {
			o := drill.Options{MySQLServer: fixture.MySQLAdminDSN(), Checks: checks}
			if mode == "server" {
				o.PostgresServer = fixture.AdminDSN()
			}
			rep := e.run(t, o)
			wantPass(t, rep)
			if rep.Snapshot != e.snap || len(rep.Sources) != 5 {
				t.Fatalf("snapshot %s, %d sources", rep.Snapshot, len(rep.Sources))
			}
			for _, s := range rep.Sources {
				if c := check(t, rep, s.Name, "restored"); c.Result != drill.Pass {
					t.Errorf("%s: restored %s: %s", s.Name, c.Result, c.Detail)
				}
				if s.Timings.Total <= 0 || s.BytesRead <= 0 {
					t.Errorf("%s: timings %+v, %d bytes read", s.Name, s.Timings, s.BytesRead)
				}
			}
			for _, n := range []string{"invoices", "ledger", "archive", "airflow"} {
				if c := check(t, rep, n, "fingerprints"); c.Result != drill.Pass {
					t.Errorf("%s fingerprints: %s %s", n, c.Result, c.Detail)
				}
			}
			for _, c := range []struct{ src, name string }{{"", "integrity"}, {"docs", "files"}, {"archive", "engine"}, {"ledger", "engine"},
				{"invoices", "user:paid"}, {"invoices", "user:vendors"},
				{"airflow", "alembic"}, {"airflow", "fernet"}, {"airflow", "dag-files"}, {"airflow", "git-head"}, {"airflow", "owner-writes"}, {"airflow", "config"}} {
				if got := check(t, rep, c.src, c.name); got.Result != drill.Pass {
					t.Errorf("%s %s: %s %s", c.src, c.name, got.Result, got.Detail)
				}
			}
			if rep.RTO <= 0 || rep.RPO <= 0 || rep.BytesRead <= 0 {
				t.Errorf("RTO %v RPO %v bytes %d", rep.RTO, rep.RPO, rep.BytesRead)
			}
		})
	}
}

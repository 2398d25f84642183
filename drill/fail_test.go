package drill_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer/drill"
	"github.com/cofferhq/coffer/internal/fingerprint"
	"github.com/cofferhq/coffer/internal/mariadbcluster"
	"github.com/cofferhq/coffer/internal/progress"
	"github.com/cofferhq/coffer/internal/testing/airflowfixture"
	"github.com/cofferhq/coffer/internal/testing/fixture"
	"github.com/cofferhq/coffer/internal/testing/pgclustertest"
	"github.com/cofferhq/coffer/internal/testing/testutil"
	"github.com/cofferhq/coffer/source"
	"github.com/cofferhq/coffer/source/airflow/fernet"
)

func wantFail(t *testing.T, rep *drill.Report, src, name, detail string) {
	t.Helper()
	if rep.Result != drill.Fail {
		t.Errorf("drill result %s (error %q), want fail", rep.Result, rep.Error)
	}
	c := check(t, rep, src, name)
	if c.Result != drill.Fail || !strings.Contains(c.Detail, detail) {
		t.Errorf("check %s of %q: %s %q, want fail with %q", name, src, c.Result, c.Detail, detail)
	}
}

func invoiceDB(t *testing.T, invoices int) string {
	t.Helper()
	dsn := fixture.NewPostgresDB(t)
	if err := fixture.CreatePostgres(t.Context(), dsn, fixture.Size{Vendors: 5, Invoices: invoices, LinesPerInvoice: 3}, 1); err != nil {
		t.Fatal(err)
	}
	return dsn
}

func TestDrillCorruptPack(t *testing.T) {
	e := newEnv(t, spec{"invoices", source.Spec{Kind: "postgres", Location: invoiceDB(t, 2000)}})
	packs, _ := filepath.Glob(filepath.Join(e.tr.Dir, "repo", "data", "*", "*"))
	if len(packs) == 0 {
		t.Fatal("no packs")
	}
	// The largest pack holds the dump.
	big, size := "", int64(0)
	for _, p := range packs {
		if fi, err := os.Stat(p); err == nil && fi.Size() > size {
			big, size = p, fi.Size()
		}
	}
	for _, p := range []string{big} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 0x55
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tracker := progress.NewTracker()
	rep := e.run(t, drill.Options{Reporter: tracker})
	wantFail(t, rep, "", "integrity", "problems")
	// The source that did not come back is not reported done.
	for _, p := range tracker.Parts() {
		if p.Name == "invoices" && !p.Finished.IsZero() && rep.Sources[0].Result == drill.Fail {
			t.Errorf("progress: the failed source %s was finished", p.Name)
		}
	}
	wantFail(t, rep, "invoices", "restored", "")
}

func TestDrillUserCheckWrong(t *testing.T) {
	paid := []fingerprint.Check{{Name: "paid", Query: "select count(*) from invoice where status = 'paid'"}}
	e := newEnv(t, spec{"invoices", source.Spec{Kind: "postgres", Location: invoiceDB(t, 300), Checks: paid}})
	rep := e.run(t, drill.Options{Checks: map[string][]source.UserCheck{"invoices": {
		{Name: "paid", Query: paid[0].Query, SameAsBackup: true},
		{Name: "vendors", Query: "select count(*) from vendor", Expect: []string{"6"}},
	}, "nope": {{Name: "x", Query: "select 1", Expect: []string{"1"}}}}})
	if c := check(t, rep, "", "user:x"); c.Result != drill.Warn || !strings.Contains(c.Detail, `no source "nope"`) {
		t.Errorf("user:x of a source not in the snapshot: %s %s", c.Result, c.Detail)
	}
	wantFail(t, rep, "invoices", "user:vendors", "got [5], expected [6]")
	if c := check(t, rep, "invoices", "user:paid"); c.Result != drill.Pass {
		t.Errorf("user:paid %s %s", c.Result, c.Detail)
	}
}

func TestDrillFernetKeyWrong(t *testing.T) {
	// The deployment's key is not the one its values were encrypted with:
	// the backup saves the snapshot (and says it is unrestorable); the
	// drill proves it.
	af := airflowfixture.New(t, "sqlite", airflowfixture.Options{Runs: 2, NoGit: true,
		FernetKeys: []string{fernet.GenerateKey()}, EncryptKeys: []string{fernet.GenerateKey()}})
	e := newEnv(t, spec{"airflow", source.Spec{Kind: "airflow", Location: af.Home, Airflow: source.AirflowSpec{Config: af.ConfigPath, EnvFile: af.EnvFile}}})
	rep := e.run(t, drill.Options{})
	wantFail(t, rep, "airflow", "fernet", "do not decrypt 9 of 9 encrypted values")
}

func TestDrillDAGFileMissing(t *testing.T) {
	af := airflowfixture.New(t, "postgres", airflowfixture.Options{Runs: 2})
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, fixture.WithDatabase(fixture.AdminDSN(), dbOf(t, af.URL)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "update dag set fileloc = $1 where dag_id = (select min(dag_id) from dag)", filepath.Join(af.Home, "dags", "gone", "vanished.py")); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	e := newEnv(t, spec{"airflow", source.Spec{Kind: "airflow", Location: af.Home, Airflow: source.AirflowSpec{Config: af.ConfigPath, EnvFile: af.EnvFile}}})
	rep := e.run(t, drill.Options{})
	wantFail(t, rep, "airflow", "dag-files", "gone/vanished.py")
}

func dbOf(t *testing.T, sqlalchemyURL string) string {
	t.Helper()
	i := strings.LastIndexByte(sqlalchemyURL, '/')
	db, _, _ := strings.Cut(sqlalchemyURL[i+1:], "?")
	return db
}

// A snapshot taken while a writer changes the invoice database restores
// with exactly the fingerprints taken in the dump's snapshot.
func TestDrillWhileWriting(t *testing.T) {
	dsn := invoiceDB(t, 3000)
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	writes := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := int64(1); ctx.Err() == nil; i++ {
			if err := fixture.MutatePostgres(ctx, dsn, 0.02, i); err != nil {
				if ctx.Err() == nil {
					t.Errorf("writer: %v", err)
				}
				return
			}
			writes++
		}
	}()
	time.Sleep(200 * time.Millisecond)
	paid := []fingerprint.Check{{Name: "paid", Query: "select count(*), sum(total) from invoice where status = 'paid'"}}
	e := newEnv(t, spec{"invoices", source.Spec{Kind: "postgres", Location: dsn, Checks: paid}})
	time.Sleep(200 * time.Millisecond)
	cancel()
	wg.Wait()
	if writes < 2 {
		t.Fatalf("only %d writes during the backup", writes)
	}
	rep := e.run(t, drill.Options{Checks: map[string][]source.UserCheck{"invoices": {{Name: "paid", Query: paid[0].Query, SameAsBackup: true}}}})
	wantPass(t, rep)
	if c := check(t, rep, "invoices", "user:paid"); c.Result != drill.Pass {
		t.Errorf("user:paid %s %s", c.Result, c.Detail)
	}
	// The database moved on: its paid total is no longer the snapshot's.
	var now string
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	if err := conn.QueryRow(t.Context(), "select count(*)::text || '|' || sum(total)::text from invoice where status = 'paid'").Scan(&now); err != nil {
		t.Fatal(err)
	}
	if c := check(t, rep, "invoices", "user:paid"); strings.Contains(c.Detail, "["+now+"]") {
		t.Errorf("the writer changed nothing after the snapshot (%s)", now)
	}
}

// No production connection: the source's server is gone when the drill
// runs, and the drill passes.
func TestDrillSourceServerStopped(t *testing.T) {
	c := pgclustertest.Start(t)
	ctx := t.Context()
	admin, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, "create database invoices"); err != nil {
		t.Fatal(err)
	}
	admin.Close(ctx)
	if err := fixture.CreatePostgres(ctx, c.DSN("invoices"), fixture.Size{Vendors: 3, Invoices: 200, LinesPerInvoice: 2}, 5); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, spec{"invoices", source.Spec{Kind: "postgres", Location: c.DSN("invoices")}})
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	rep := e.run(t, drill.Options{})
	wantPass(t, rep)
}

// A cancelled drill (SIGINT, SIGTERM in the CLI) removes its scratch
// environment and reports an error.
func TestDrillCancelled(t *testing.T) {
	e := newEnv(t, spec{"invoices", source.Spec{Kind: "postgres", Location: invoiceDB(t, 3000)}})
	ctx, cancel := context.WithCancel(t.Context())
	o := drill.Options{Repo: e.r, TempDir: e.tempDir, Progress: func(f string, a ...any) {
		if strings.HasPrefix(f, "restoring") {
			go func() { time.Sleep(300 * time.Millisecond); cancel() }()
		}
	}}
	rep, err := drill.Run(ctx, o)
	if err == nil || rep.Result != drill.Error {
		t.Fatalf("cancelled drill: %v, result %s", err, rep.Result)
	}
	assertNoLeftovers(t, o, rep.ID)
	if ents, _ := os.ReadDir(e.tempDir); len(ents) != 0 {
		t.Errorf("temporary folder holds %v", ents)
	}
}

// Airflow deployments on MySQL and SQLite drill too (PostgreSQL is in
// TestDrillAllKinds).
func TestDrillAirflowEngines(t *testing.T) {
	for _, engine := range []string{"mysql", "sqlite"} {
		t.Run(engine, func(t *testing.T) {
			af := airflowfixture.New(t, engine, airflowfixture.Options{Runs: 2})
			e := newEnv(t, spec{"airflow", source.Spec{Kind: "airflow", Location: af.Home, Airflow: source.AirflowSpec{Config: af.ConfigPath, EnvFile: af.EnvFile}}})
			rep := e.run(t, drill.Options{MySQLServer: fixture.MySQLAdminDSN()})
			wantPass(t, rep)
			for _, n := range []string{"restored", "fingerprints", "engine", "alembic", "fernet", "dag-files", "git-head", "config"} {
				if c := check(t, rep, "airflow", n); c.Result != drill.Pass {
					t.Errorf("%s: %s %s", n, c.Result, c.Detail)
				}
			}
		})
	}
}

// A MySQL source without a MySQL drill server, on a machine without the
// MariaDB server binaries, cannot be drilled: the drill says so and could
// not run (no check decided).
func TestDrillNoMySQLServer(t *testing.T) {
	my := fixture.NewMySQLDB(t)
	if err := fixture.CreateMySQL(t.Context(), my, fixture.Size{Vendors: 2, Invoices: 20, LinesPerInvoice: 2}, 2); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, spec{"ledger", source.Spec{Kind: "mysql", Location: my}})
	drill.WithoutMariaDB(t)
	rep := e.run(t, drill.Options{})
	if rep.Result != drill.Error || !strings.Contains(rep.Error, "no mysql drill server configured") || !strings.Contains(rep.Error, "mariadbd") {
		t.Errorf("result %s, error %q", rep.Result, rep.Error)
	}
}

// A MySQL source without a MySQL drill server, where mariadbd is
// installed, is drilled on an ephemeral MariaDB server in the drill's
// scratch folder, which is stopped and removed afterwards.
func TestDrillMySQLEphemeral(t *testing.T) {
	if _, _, err := mariadbcluster.FindBinaries(); err != nil {
		testutil.Missing(t, "MariaDB server binaries: %v", err)
	}
	my := fixture.NewMySQLDB(t)
	if err := fixture.CreateMySQL(t.Context(), my, fixture.Size{Vendors: 3, Invoices: 200, LinesPerInvoice: 3}, 2); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, spec{"ledger", source.Spec{Kind: "mysql", Location: my}})
	// Watch the process table for the drill's mariadbd while it runs.
	seenc, stop := make(chan []int, 1), make(chan struct{})
	go func() {
		var seen []int
		for {
			if p := mariadbds(filepath.Join(e.tempDir, "coffer-drill-")); len(p) > len(seen) {
				seen = p
			}
			select {
			case <-stop:
				seenc <- seen
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	o := drill.Options{Repo: e.r, TempDir: e.tempDir, Progress: func(f string, a ...any) { t.Logf("drill: "+f, a...) }}
	rep, err := drill.Run(t.Context(), o)
	close(stop)
	seen := <-seenc
	if err != nil {
		t.Fatal(err)
	}
	assertNoLeftovers(t, o, rep.ID)
	wantPass(t, rep)
	for _, n := range []string{"restored", "fingerprints", "engine"} {
		if c := check(t, rep, "ledger", n); c.Result != drill.Pass {
			t.Errorf("%s: %s %s", n, c.Result, c.Detail)
		}
	}
	if s := rep.Sources[0].Scratch; !strings.Contains(s, "ephemeral MariaDB server") || !strings.Contains(s, "coffer_drill_") {
		t.Errorf("scratch %q, want a database on the ephemeral MariaDB server", s)
	}
	if len(seen) == 0 {
		t.Error("no mariadbd ran in the drill's folder during the drill")
	}
	dir := filepath.Join(e.tempDir, "coffer-drill-"+drill.ScratchID(rep.ID))
	if p := mariadbds(dir + "/"); len(p) > 0 {
		t.Errorf("mariadbd %v survived the drill", p)
	}
	if _, err := os.Lstat(dir); !os.IsNotExist(err) {
		t.Errorf("scratch folder %s survived: %v", dir, err)
	}
}

// mariadbds returns the pids of the live mariadbd processes whose data
// directory starts with prefix.
func mariadbds(prefix string) []int {
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
		if len(args) == 0 || filepath.Base(args[0]) != "mariadbd" {
			continue
		}
		for _, a := range args[1:] {
			if strings.HasPrefix(a, "--datadir="+prefix) {
				out = append(out, pid)
			}
		}
	}
	return out
}

// A damaged catalog: nothing can be restored, and the integrity check
// fails (not an error: the drill ran and found the damage).
func TestDrillCorruptCatalog(t *testing.T) {
	e := newEnv(t, spec{"invoices", source.Spec{Kind: "postgres", Location: invoiceDB(t, 50)}})
	objs, _ := filepath.Glob(filepath.Join(e.tr.Dir, "repo", "data", "*", "*"))
	for _, p := range objs {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)-20] ^= 0x55
		os.WriteFile(p, b, 0o600)
	}
	rep := e.run(t, drill.Options{})
	wantFail(t, rep, "", "integrity", "catalog cannot be read")
}

// A drill holds its snapshot while it runs (forget and prune leave it
// alone) and releases the hold when it ends.
func TestDrillHoldsItsSnapshot(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "INV-1.pdf"), []byte("invoice"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, spec{"docs", source.Spec{Kind: "dir", Location: dir}})
	var during map[string]time.Time
	o := drill.Options{Repo: e.r, TempDir: e.tempDir, Progress: func(f string, a ...any) {
		if during == nil {
			held, err := e.r.Held(t.Context(), time.Now())
			if err != nil {
				t.Error(err)
			}
			during = held
		}
	}}
	rep, err := drill.Run(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	wantPass(t, rep)
	if _, ok := during[rep.Snapshot]; !ok || len(during) != 1 {
		t.Fatalf("held during the drill: %v, want only %s", during, rep.Snapshot)
	}
	after, err := e.r.Held(t.Context(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != 0 {
		t.Fatalf("still held after the drill: %v", after)
	}
}

package airflow

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer/backup"
	"github.com/cofferhq/coffer/internal/testing/fixture"
	"github.com/cofferhq/coffer/internal/testing/testrepo"
	"github.com/cofferhq/coffer/restore"
	"github.com/cofferhq/coffer/source"
	"github.com/cofferhq/coffer/source/airflow/fernet"
	"github.com/cofferhq/coffer/source/mysql"
	"github.com/cofferhq/coffer/source/sqlite"
)

// A small Airflow 2.10 deployment for restore tests: the tables a restore
// touches or a test checks (alembic_version, dag, dag_run, connection,
// variable, trigger), Fernet-encrypted values under a rotated key list, a
// DAG repository with two branches and uncommitted work, plugins, logs
// and the configuration files, with an owner role distinct from the
// restoring user.

var afSchema = map[string]string{
	"postgres": `
create table alembic_version (version_num varchar(32) primary key);
create table dag (dag_id varchar(250) primary key, is_paused boolean, is_active boolean, fileloc varchar(2000), owners varchar(2000));
create table dag_run (id serial primary key, dag_id varchar(250) not null, run_id varchar(250) not null, state varchar(50),
  execution_date timestamp with time zone not null, unique (dag_id, run_id));
create table connection (id serial primary key, conn_id varchar(250) not null unique, conn_type varchar(500) not null,
  host varchar(500), login text, password text, port integer, is_encrypted boolean, is_extra_encrypted boolean, extra text);
create table variable (id serial primary key, key varchar(250) unique, val text, description text, is_encrypted boolean);
create table trigger (id serial primary key, classpath varchar(1000) not null, kwargs text not null, created_date timestamp with time zone not null);
`,
	"mysql": `
CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY);
CREATE TABLE dag (dag_id VARCHAR(250) PRIMARY KEY, is_paused BOOL, is_active BOOL, fileloc VARCHAR(2000), owners VARCHAR(2000));
CREATE TABLE dag_run (id INT AUTO_INCREMENT PRIMARY KEY, dag_id VARCHAR(250) NOT NULL, run_id VARCHAR(250) NOT NULL, state VARCHAR(50),
  execution_date TIMESTAMP(6) NOT NULL, UNIQUE (dag_id, run_id));
CREATE TABLE connection (id INT AUTO_INCREMENT PRIMARY KEY, conn_id VARCHAR(250) NOT NULL UNIQUE, conn_type VARCHAR(500) NOT NULL,
  host VARCHAR(500), login TEXT, password TEXT, port INT, is_encrypted BOOL, is_extra_encrypted BOOL, extra TEXT);
CREATE TABLE variable (id INT AUTO_INCREMENT PRIMARY KEY, ` + "`key`" + ` VARCHAR(250) UNIQUE, val MEDIUMTEXT, description TEXT, is_encrypted BOOL);
CREATE TABLE ` + "`trigger`" + ` (id INT AUTO_INCREMENT PRIMARY KEY, classpath VARCHAR(1000) NOT NULL, kwargs TEXT NOT NULL, created_date TIMESTAMP(6) NOT NULL);
`,
	"sqlite": `
create table alembic_version (version_num varchar(32) primary key);
create table dag (dag_id varchar(250) primary key, is_paused boolean, is_active boolean, fileloc varchar(2000), owners varchar(2000));
create table dag_run (id integer primary key, dag_id varchar(250) not null, run_id varchar(250) not null, state varchar(50),
  execution_date timestamp not null, unique (dag_id, run_id));
create table connection (id integer primary key, conn_id varchar(250) not null unique, conn_type varchar(500) not null,
  host varchar(500), login text, password text, port integer, is_encrypted boolean, is_extra_encrypted boolean, extra text);
create table variable (id integer primary key, key varchar(250) unique, val text, description text, is_encrypted boolean);
create table "trigger" (id integer primary key, classpath varchar(1000) not null, kwargs text not null, created_date timestamp not null);
`,
}

// afTables are the fixture's tables, and the column each is ordered by.
var afTables = map[string]string{"alembic_version": "version_num", "dag": "dag_id", "dag_run": "id", "connection": "id", "variable": "id", "trigger": "id"}

// plaintexts are the values the fixture encrypts, by where they are.
var plaintexts = map[string]string{
	"connection invoice_db password": "inv-db-pw-Zq81",
	"connection invoice_db extra":    `{"sslmode": "require"}`,
	"connection vendor_api password": "vendor-api-pw-old-key",
	"variable payment_api_token":     "tok-7f3a9c",
	"trigger 1 kwargs":               `{"moment": "2026-01-01T00:00:00+00:00"}`,
}

type afDeployment struct {
	kind     string
	home     string
	dsn      string // the source database as the test reaches it (a file for SQLite)
	dbName   string // its name on the server, or its file
	owner    string // role or account the deployment connects as ("" for SQLite)
	keys     string // AIRFLOW__CORE__FERNET_KEY: new key first, old key second
	webKey   string // [webserver] secret_key, in airflow.cfg
	gitState map[string]string
	schema   string // PostgreSQL: the schema Airflow's tables are in ("" for public)
}

func randName(prefix string) string {
	var b [4]byte
	rand.Read(b[:])
	return prefix + "_" + hex.EncodeToString(b[:])
}

// newDeployment makes a deployment whose metadata database is of kind.
func newDeployment(t *testing.T, kind string) *afDeployment {
	t.Helper()
	return newDeploymentIn(t, kind, "")
}

// newDeploymentIn is newDeployment with Airflow's tables in a PostgreSQL
// schema of their own ([database] sql_alchemy_schema).
func newDeploymentIn(t *testing.T, kind, schema string) *afDeployment {
	t.Helper()
	ctx := context.Background()
	d := &afDeployment{kind: kind, home: filepath.Join(t.TempDir(), "prod-home"), schema: schema}
	for _, sub := range []string{"dags", "plugins", "logs/dag_id=invoice_ingest", "config"} {
		if err := os.MkdirAll(filepath.Join(d.home, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	newKey, oldKey := fernet.GenerateKey(), fernet.GenerateKey()
	d.keys = newKey + "," + oldKey
	d.webKey = "web-" + randName("secret")

	var conn string // sql_alchemy_conn as airflow.cfg names it
	switch kind {
	case "postgres":
		d.owner = randName("coffer_af_owner")
		pgAdminExec(t, "create role "+d.owner+" login")
		t.Cleanup(func() { pgAdminExecNoFail("drop role if exists " + d.owner) })
		d.dsn = fixture.NewPostgresDB(t)
		d.dbName = pgDBName(t, d.dsn)
		pgExec(t, d.dsn, "alter database "+d.dbName+" owner to "+d.owner)
		ownerDSN := withPgUser(t, d.dsn, d.owner)
		if schema != "" {
			pgExec(t, ownerDSN, "create schema "+schema)
			ownerDSN += "&search_path=" + schema
		}
		pgExec(t, ownerDSN, afSchema["postgres"])
		d.dsn = ownerDSN
		conn = fmt.Sprintf("postgresql+psycopg2://%s@127.0.0.1:5432/%s?sslmode=disable", d.owner, d.dbName)
	case "mysql":
		d.owner = randName("coffer_af_owner")
		admin := fixture.MySQLAdmin(t)
		if _, err := admin.Exec("CREATE USER '" + d.owner + "'@'%'"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { admin.Exec("DROP USER IF EXISTS '" + d.owner + "'@'%'") })
		d.dsn = fixture.NewMySQLDB(t)
		cfg, _ := gomysql.ParseDSN(d.dsn)
		d.dbName = cfg.DBName
		if _, err := admin.Exec("GRANT ALL PRIVILEGES ON `" + d.dbName + "`.* TO '" + d.owner + "'@'%'"); err != nil {
			t.Fatal(err)
		}
		cfg.User, cfg.Passwd = d.owner, ""
		cfg.MultiStatements = true
		d.dsn = cfg.FormatDSN()
		sqlExec(t, "mysql", d.dsn, afSchema["mysql"])
		conn = fmt.Sprintf("mysql+mysqldb://%s@127.0.0.1:3306/%s?charset=utf8mb4", d.owner, d.dbName)
	case "sqlite":
		d.dsn = filepath.Join(d.home, "airflow.db")
		d.dbName = d.dsn
		write(t, d.dsn, "") // an empty file is an empty database
		sqlExec(t, "sqlite", d.dsn, afSchema["sqlite"])
		conn = "sqlite:///" + d.dsn
	}
	d.fill(t, ctx, newKey, oldKey)
	d.files(t, conn)
	return d
}

// fill writes the rows: four DAGs (one paused), runs, connections and
// variables encrypted with the new key and one with the old key, a trigger.
func (d *afDeployment) fill(t *testing.T, ctx context.Context, newKey, oldKey string) {
	t.Helper()
	nk, err := fernet.ParseKey(newKey)
	if err != nil {
		t.Fatal(err)
	}
	ok, err := fernet.ParseKey(oldKey)
	if err != nil {
		t.Fatal(err)
	}
	enc := func(k fernet.Key, what string) string { return k.Encrypt([]byte(plaintexts[what]), time.Now()) }
	key, trig := "key", "trigger"
	if d.kind == "mysql" {
		key, trig = "`key`", "`trigger`"
	}
	stmts := []string{
		"insert into alembic_version values ('5f2621c13b39')",
		"insert into dag values ('invoice_ingest', false, true, '/opt/airflow/dags/invoice_ingest.py', 'finance'), " +
			"('invoice_validate', false, true, '/opt/airflow/dags/invoice_validate.py', 'finance'), " +
			"('payment_run', true, true, '/opt/airflow/dags/payment_run.py', 'treasury'), " +
			"('vendor_sync', false, true, '/opt/airflow/dags/vendor_sync.py', 'procurement')",
		"insert into dag_run (dag_id, run_id, state, execution_date) values ('invoice_ingest', 'scheduled__2026-01-01', 'success', '2026-01-01 00:00:00'), " +
			"('payment_run', 'manual__2026-01-02', 'failed', '2026-01-02 06:00:00')",
		fmt.Sprintf("insert into connection (conn_id, conn_type, host, login, password, port, is_encrypted, is_extra_encrypted, extra) values "+
			"('invoice_db', 'postgres', 'invoices.internal', 'loader', '%s', 5432, true, true, '%s'), "+
			"('vendor_api', 'http', 'vendors.example', 'svc', '%s', 443, true, false, null), "+
			"('plain_http', 'http', 'example.org', null, null, null, false, false, '{}')",
			enc(nk, "connection invoice_db password"), enc(nk, "connection invoice_db extra"), enc(ok, "connection vendor_api password")),
		fmt.Sprintf("insert into variable (%s, val, is_encrypted) values ('payment_api_token', '%s', true), ('batch_size', '500', false)",
			key, enc(nk, "variable payment_api_token")),
		fmt.Sprintf("insert into %s (classpath, kwargs, created_date) values ('airflow.triggers.temporal.DateTimeTrigger', '%s', '2026-01-01 00:00:00')",
			trig, enc(nk, "trigger 1 kwargs")),
	}
	switch d.kind {
	case "postgres":
		pgExec(t, d.dsn, stmts...)
	default:
		sqlExec(t, d.kind, d.dsn, stmts...)
	}
}

// files writes airflow.cfg and the other configuration files, plugins,
// logs, and the DAG repository.
func (d *afDeployment) files(t *testing.T, conn string) {
	t.Helper()
	cfg := fmt.Sprintf(`[core]
dags_folder = %[1]s/dags
plugins_folder = %[1]s/plugins
executor = CeleryExecutor
load_examples = False
default_timezone = utc

[database]
sql_alchemy_conn = %[2]s
sql_alchemy_pool_size = 5
%[4]s

[logging]
base_log_folder = %[1]s/logs
remote_logging = False

[webserver]
secret_key = %[3]s
base_url = https://airflow.prod.example

[celery]
broker_url = redis://redis.prod.example:6379/0
result_backend = db+%[2]s
worker_concurrency = 16
`, d.home, conn, d.webKey, map[bool]string{true: "sql_alchemy_schema = " + d.schema}[d.schema != ""])
	write(t, filepath.Join(d.home, "airflow.cfg"), cfg)
	write(t, filepath.Join(d.home, "webserver_config.py"), "AUTH_TYPE = 1  # AUTH_DB\n")
	write(t, filepath.Join(d.home, "config", "airflow_local_settings.py"), "def policy(task):\n    pass\n")
	write(t, filepath.Join(d.home, "plugins", "invoice_hooks.py"), "class InvoiceHook:\n    pass\n")
	write(t, filepath.Join(d.home, "logs", "dag_id=invoice_ingest", "attempt=1.log"), "[2026-01-01] INFO - loaded 120 invoices\n")

	dags := filepath.Join(d.home, "dags")
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", dags}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.org", "GIT_COMMITTER_NAME=t",
			"GIT_COMMITTER_EMAIL=t@example.org", "GIT_AUTHOR_DATE=2026-01-01T00:00:00Z", "GIT_COMMITTER_DATE=2026-01-01T00:00:00Z",
			"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_SYSTEM=/dev/null")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	git("init", "-q", "-b", "main")
	for _, dag := range []string{"invoice_ingest", "invoice_validate", "payment_run", "vendor_sync"} {
		write(t, filepath.Join(dags, dag+".py"), fmt.Sprintf("from airflow import DAG\n\ndag = DAG(%q)\n", dag))
	}
	git("add", ".")
	git("commit", "-q", "-m", "four DAGs")
	git("checkout", "-q", "-b", "feature/retry")
	write(t, filepath.Join(dags, "payment_run.py"), "from airflow import DAG\n\ndag = DAG('payment_run', default_args={'retries': 3})\n")
	git("commit", "-q", "-am", "retries")
	git("checkout", "-q", "main")
	write(t, filepath.Join(dags, "vendor_sync.py"), "# work in progress\n")
	write(t, filepath.Join(dags, "untracked_dag.py"), "# not yet added\n")
	d.gitState = gitSummary(t, dags)
}

// gitSummary is what a DAG repository must bring back: commits and refs,
// the branch checked out, and the working state.
func gitSummary(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for name, args := range map[string][]string{
		"log":    {"log", "--all", "--format=%H %P %s %D"},
		"branch": {"branch", "--list", "--format=%(refname) %(objectname)"},
		"head":   {"symbolic-ref", "HEAD"},
		"status": {"status", "--porcelain=v1", "--untracked-files=all"},
		"diff":   {"diff"},
	} {
		cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_SYSTEM=/dev/null")
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v in %s: %v\n%s", args, dir, err, b)
		}
		out[name] = string(b)
	}
	return out
}

func write(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func pgAdminExec(t *testing.T, stmts ...string) {
	t.Helper()
	pgExec(t, fixture.AdminDSN(), stmts...)
}

func pgAdminExecNoFail(stmt string) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, fixture.AdminDSN())
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	conn.Exec(ctx, stmt)
}

func pgExec(t *testing.T, dsn string, stmts ...string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func pgDBName(t *testing.T, dsn string) string {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Database
}

func withPgUser(t *testing.T, dsn, user string) string {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", user, cfg.Host, cfg.Port, cfg.Database)
}

func openSQL(t *testing.T, kind, dsn string) *sql.DB {
	t.Helper()
	var db *sql.DB
	var err error
	switch kind {
	case "mysql":
		var cfg *gomysql.Config
		if cfg, err = mysql.ParseDSN(dsn); err == nil {
			db, err = mysql.Open(context.Background(), cfg)
		}
	case "sqlite":
		db, err = sqlite.Open(dsn, false)
	default:
		t.Fatalf("openSQL %s", kind)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func sqlExec(t *testing.T, kind, dsn string, stmts ...string) {
	t.Helper()
	db := openSQL(t, kind, dsn)
	for _, s := range stmts {
		for _, one := range strings.Split(s, ";\n") {
			if strings.TrimSpace(one) == "" {
				continue
			}
			if _, err := db.Exec(one); err != nil {
				t.Fatalf("%s: %v", one, err)
			}
		}
	}
}

// rows returns every row of q, each as its columns' text joined by "|".
func rows(t *testing.T, kind, dsn, q string) []string {
	t.Helper()
	var out []string
	if kind == "postgres" {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		rs, err := conn.Query(ctx, q, pgx.QueryExecModeSimpleProtocol)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		defer rs.Close()
		for rs.Next() {
			var cols []string
			for _, v := range rs.RawValues() {
				if v == nil {
					cols = append(cols, "NULL")
				} else {
					cols = append(cols, string(v))
				}
			}
			out = append(out, strings.Join(cols, "|"))
		}
		if err := rs.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	rs, err := openSQL(t, kind, dsn).Query(q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rs.Close()
	cols, _ := rs.Columns()
	for rs.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rs.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		var row []string
		for _, v := range vals {
			if v.Valid {
				row = append(row, v.String)
			} else {
				row = append(row, "NULL")
			}
		}
		out = append(out, strings.Join(row, "|"))
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func quoteTable(kind, name string) string {
	if kind == "mysql" {
		return "`" + name + "`"
	}
	return `"` + name + `"`
}

// tableRows returns every table's rows in order.
func tableRows(t *testing.T, kind, dsn string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for tab, order := range afTables {
		out[tab] = rows(t, kind, dsn, "select * from "+quoteTable(kind, tab)+" order by "+order)
	}
	return out
}

// snapshotOf backs the deployment up through the real pipeline into a new
// repository and opens its airflow source for reading.
func snapshotOf(t *testing.T, d *afDeployment) *restore.Source {
	t.Helper()
	ctx := context.Background()
	tr := testrepo.New(t)
	src := &Source{SourceName: "deploy", IncludeLogs: true, Options: Options{Home: d.home,
		Environ: []string{"PATH=" + os.Getenv("PATH"), "AIRFLOW__CORE__FERNET_KEY=" + d.keys}}}
	res, err := backup.Run(ctx, backup.Options{Repo: tr.Host(t), Signing: tr.Signing, Sources: []source.Source{src}})
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	if r := src.Report(); len(r.Unrestorable) > 0 {
		t.Fatalf("backup reports the deployment unrestorable: %v", r.Unrestorable)
	}
	snap, err := restore.Load(ctx, tr.Operator(t), res.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	s, err := snap.Source("deploy")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// target returns a new database target of kind (dropped when the test
// ends), its name, and the admin DSN to check it with.
func target(t *testing.T, kind, home string) (dsn, name string) {
	t.Helper()
	switch kind {
	case "postgres":
		name = randName("coffer_af_restored")
		t.Cleanup(func() { fixture.DropPostgresDB(t, name) })
		return strings.Replace(fixture.WithDatabase(fixture.AdminDSN(), name), "127.0.0.1", "localhost", 1), name
	case "mysql":
		name = randName("coffer_af_restored")
		admin := fixture.MySQLAdmin(t)
		t.Cleanup(func() { admin.Exec("DROP DATABASE IF EXISTS `" + name + "`") })
		cfg, _ := gomysql.ParseDSN(fixture.MySQLAdminDSN())
		cfg.DBName = name
		cfg.Addr = strings.Replace(cfg.Addr, "127.0.0.1", "localhost", 1)
		return cfg.FormatDSN(), name
	}
	p := filepath.Join(home, "airflow.db")
	return p, p
}

func dbExists(t *testing.T, kind, name string) bool {
	t.Helper()
	switch kind {
	case "postgres":
		return fixture.PostgresDatabaseExists(t, name)
	case "mysql":
		var n int
		fixture.MySQLAdmin(t).QueryRow("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", name).Scan(&n)
		return n > 0
	}
	_, err := os.Stat(name)
	return err == nil
}

// asOwner returns dsn connecting as the deployment's owner.
func asOwner(t *testing.T, kind, dsn, owner string) string {
	t.Helper()
	switch kind {
	case "postgres":
		return withPgUser(t, dsn, owner)
	case "mysql":
		cfg, _ := gomysql.ParseDSN(dsn)
		cfg.User, cfg.Passwd = owner, ""
		return cfg.FormatDSN()
	}
	return dsn
}

func TestRestoreDeployment(t *testing.T) {
	for _, kind := range []string{"postgres", "mysql", "sqlite"} {
		t.Run(kind, func(t *testing.T) { testRestoreDeployment(t, kind) })
	}
}

func testRestoreDeployment(t *testing.T, kind string) {
	ctx := context.Background()
	d := newDeployment(t, kind)
	wantTables := tableRows(t, kind, d.dsn)
	// Readable by all at the source: the restore must narrow it when the
	// rewritten file holds a password.
	if err := os.Chmod(filepath.Join(d.home, "airflow.cfg"), 0o644); err != nil {
		t.Fatal(err)
	}
	src := snapshotOf(t, d)

	home := filepath.Join(t.TempDir(), "scratch", "airflow")
	dsn, name := target(t, kind, home)
	res, err := Restore(ctx, src, RestoreOptions{Home: home, DatabaseKind: kind, Database: dsn,
		RewriteConfig: true, Paused: true, WithSecrets: true})
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	restored := res.Restored()
	text := strings.Join(append(append([]string{}, restored.Lines...), restored.NextSteps...), "\n")
	t.Logf("restore said:\n%s", text)

	// Tables equal, but for the DAGs now paused.
	gotTables := tableRows(t, kind, dsn)
	for tab, want := range wantTables {
		got := gotTables[tab]
		if tab == "dag" {
			if n := len(rows(t, kind, dsn, "select dag_id from dag where is_paused is null or not is_paused")); n != 0 {
				t.Errorf("%d DAGs not paused", n)
			}
			if res.DAGs != 4 || res.Paused != 3 || !strings.Contains(text, "DAGs: 4, all paused (3 were not)") {
				t.Errorf("DAGs %d, paused %d; output:\n%s", res.DAGs, res.Paused, text)
			}
			got = rows(t, kind, dsn, "select dag_id, is_active, fileloc, owners from dag order by dag_id")
			want = rows(t, kind, d.dsn, "select dag_id, is_active, fileloc, owners from dag order by dag_id")
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("table %s:\n got %q\nwant %q", tab, got, want)
		}
	}

	// Every encrypted value decrypts with the keys in secrets.env.
	env := readEnvFile(t, filepath.Join(home, "secrets.env"))
	if fi, err := os.Stat(filepath.Join(home, "secrets.env")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("secrets.env: %v, mode %v", err, fi.Mode())
	}
	if env["AIRFLOW__CORE__FERNET_KEY"] != d.keys || env["AIRFLOW__WEBSERVER__SECRET_KEY"] != d.webKey {
		t.Errorf("secrets.env holds %d variables, not the deployment's keys", len(env))
	}
	keys, err := fernet.ParseKeys(env["AIRFLOW__CORE__FERNET_KEY"])
	if err != nil {
		t.Fatal(err)
	}
	trig := quoteTable(kind, "trigger")
	for what, q := range map[string]string{
		"connection invoice_db password": "select password from connection where conn_id = 'invoice_db'",
		"connection invoice_db extra":    "select extra from connection where conn_id = 'invoice_db'",
		"connection vendor_api password": "select password from connection where conn_id = 'vendor_api'",
		"variable payment_api_token":     "select val from variable where id = 1",
		"trigger 1 kwargs":               "select kwargs from " + trig + " where id = 1",
	} {
		r := rows(t, kind, dsn, q)
		if len(r) != 1 {
			t.Fatalf("%s: %d rows", what, len(r))
		}
		plain, err := fernet.Decrypt(keys, r[0])
		if err != nil || string(plain) != plaintexts[what] {
			t.Errorf("%s: decrypts to %q, %v", what, plain, err)
		}
	}

	// The original owner can write every table and alter one.
	if kind != "sqlite" {
		owner := asOwner(t, kind, dsn, d.owner)
		var stmts []string
		for tab, order := range afTables {
			stmts = append(stmts, fmt.Sprintf("update %s set %s = %s", quoteTable(kind, tab), order, order))
		}
		stmts = append(stmts, "insert into variable (description) values ('owner can insert')", "alter table dag_run add column note text")
		if kind == "postgres" {
			pgExec(t, owner, stmts...)
		} else {
			sqlExec(t, kind, owner, stmts...)
		}
		if !strings.Contains(text, d.owner) {
			t.Errorf("the output does not name the owner %s:\n%s", d.owner, text)
		}
	}

	// The DAG repository comes back with its commits, branches and
	// uncommitted work.
	got := gitSummary(t, filepath.Join(home, "dags"))
	for k, want := range d.gitState {
		if got[k] != want {
			t.Errorf("git %s:\n got %q\nwant %q", k, got[k], want)
		}
	}
	for _, f := range []string{"plugins/invoice_hooks.py", "logs/dag_id=invoice_ingest/attempt=1.log", "webserver_config.py",
		"config/airflow_local_settings.py", "dags/untracked_dag.py"} {
		want, _ := os.ReadFile(filepath.Join(d.home, f))
		got, err := os.ReadFile(filepath.Join(home, f))
		if err != nil || string(got) != string(want) {
			t.Errorf("%s: %q, %v; want %q", f, got, err, want)
		}
	}

	// airflow.cfg: equal but for the rewritten keys, and naming nothing
	// of the source.
	srcCfg, _ := os.ReadFile(filepath.Join(d.home, "airflow.cfg"))
	gotCfg, err := os.ReadFile(filepath.Join(home, "airflow.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	changed := map[string]bool{}
	for _, c := range res.ConfigChanges {
		sec, rest, _ := strings.Cut(c, " ")
		key, _, _ := strings.Cut(rest, ":")
		changed[strings.Trim(sec, "[]")+"."+key] = true
	}
	before, after := cfgValues(srcCfg), cfgValues(gotCfg)
	for k, v := range before {
		if !changed[k] && after[k] != v {
			t.Errorf("airflow.cfg %s = %q, want %q (not a rewritten key)", k, after[k], v)
		}
	}
	if got, want := after["core.dags_folder"], home+"/dags"; got != want {
		t.Errorf("dags_folder = %q, want %q", got, want)
	}
	conn := after["database.sql_alchemy_conn"]
	switch kind {
	case "postgres":
		if !strings.HasPrefix(conn, "postgresql+psycopg2://"+d.owner+"@localhost:5432/"+name) {
			t.Errorf("sql_alchemy_conn = %q", conn)
		}
	case "mysql":
		if !strings.HasPrefix(conn, "mysql+mysqldb://"+d.owner+"@localhost:3306/"+name) {
			t.Errorf("sql_alchemy_conn = %q", conn)
		}
	case "sqlite":
		if conn != "sqlite:///"+home+"/airflow.db" {
			t.Errorf("sql_alchemy_conn = %q", conn)
		}
	}
	for _, bad := range []string{d.home, d.dbName, "127.0.0.1", "prod.example", d.webKey} {
		if strings.Contains(string(gotCfg), bad) {
			t.Errorf("restored airflow.cfg names the source's %q:\n%s", bad, gotCfg)
		}
	}
	// Secrets appear nowhere but secrets.env.
	for _, s := range append(strings.Split(d.keys, ","), d.webKey) {
		if strings.Contains(string(gotCfg), s) || strings.Contains(text, s) || strings.Contains(fmt.Sprint(restored.Facts), s) {
			t.Errorf("a secret appears in airflow.cfg or the output")
		}
	}
	if !strings.Contains(text, "Alembic revision 5f2621c13b39 (Airflow 2.10.3)") {
		t.Errorf("the output does not show the schema version:\n%s", text)
	}
	if !strings.Contains(text, "export AIRFLOW_HOME="+home) {
		t.Errorf("no next steps:\n%s", text)
	}
	// The source took its Fernet key from the environment: the next steps
	// unset it (by name), so that shell's settings do not override the
	// restored airflow.cfg.
	if !strings.Contains(strings.Join(restored.NextSteps, "\n"), "unset AIRFLOW__CORE__FERNET_KEY ") {
		t.Errorf("next steps do not unset the environment's settings:\n%s", strings.Join(restored.NextSteps, "\n"))
	}
	// --paused: DAGs new to the restored database start paused too.
	if got := after["core.dags_are_paused_at_creation"]; got != "True" {
		t.Errorf("dags_are_paused_at_creation = %q, want True", got)
	}
	// airflow.cfg holding the restored database's password is 0600.
	fi, err := os.Stat(filepath.Join(home, "airflow.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case connHasPassword(conn) && fi.Mode().Perm() != 0o600:
		t.Errorf("airflow.cfg holds a password, mode %v", fi.Mode().Perm())
	case !connHasPassword(conn) && fi.Mode().Perm() != 0o644:
		t.Errorf("airflow.cfg without a password, mode %v, want the source's 0644", fi.Mode().Perm())
	}
}

func readEnvFile(t *testing.T, p string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && !strings.HasPrefix(l, "#") {
			out[k] = strings.Trim(v, "'")
		}
	}
	return out
}

// cfgValues maps "section.key" to its value.
func cfgValues(b []byte) map[string]string {
	out := map[string]string{}
	for _, c := range parseCfgLines(b) {
		if c.key != "" {
			out[c.section+"."+c.key] = c.value()
		}
	}
	return out
}

// TestRestorePausesInSchema: Airflow's tables in a schema of their own are
// found when the DAGs are paused.
func TestRestorePausesInSchema(t *testing.T) {
	d := newDeploymentIn(t, "postgres", "airflow_meta")
	src := snapshotOf(t, d)
	home := filepath.Join(t.TempDir(), "airflow")
	dsn, _ := target(t, "postgres", home)
	res, err := Restore(context.Background(), src, RestoreOptions{Home: home, DatabaseKind: "postgres", Database: dsn, Paused: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.DAGs != 4 || res.Paused != 3 {
		t.Errorf("DAGs %d, paused %d; want 4, 3", res.DAGs, res.Paused)
	}
	if n := len(rows(t, "postgres", dsn, "select dag_id from airflow_meta.dag where not is_paused")); n != 0 {
		t.Errorf("%d DAGs not paused", n)
	}
}

// failingTree fails restoring one folder part, after the database was
// restored.
type failingTree struct{ *restore.Source }

func (f failingTree) RestoreTree(ctx context.Context, dir, target string) (int, int64, error) {
	if dir == PartPlugins {
		return 0, 0, errors.New("disk full (test)")
	}
	return f.Source.RestoreTree(ctx, dir, target)
}

// TestRestoreAllOrNothing: a failing database leaves no folder; failing
// files leave no database; refusals happen before anything is made.
func TestRestoreAllOrNothing(t *testing.T) {
	ctx := context.Background()
	d := newDeployment(t, "postgres")
	src := snapshotOf(t, d)

	t.Run("files fail", func(t *testing.T) {
		home := filepath.Join(t.TempDir(), "airflow")
		dsn, name := target(t, "postgres", home)
		_, err := Restore(ctx, failingTree{src}, RestoreOptions{Home: home, DatabaseKind: "postgres", Database: dsn, Paused: true})
		if err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Fatalf("err = %v", err)
		}
		if dbExists(t, "postgres", name) {
			t.Error("the database is left after the files failed")
		}
		assertNothingIn(t, filepath.Dir(home))
	})

	t.Run("database fails", func(t *testing.T) {
		home := filepath.Join(t.TempDir(), "airflow")
		dsn, name := target(t, "postgres", home)
		pgAdminExec(t, "create database "+name)
		_, err := Restore(ctx, src, RestoreOptions{Home: home, DatabaseKind: "postgres", Database: dsn})
		if !errors.Is(err, source.ErrTargetExists) {
			t.Fatalf("err = %v, want ErrTargetExists", err)
		}
		assertNothingIn(t, filepath.Dir(home))
	})

	t.Run("refusals", func(t *testing.T) {
		home := filepath.Join(t.TempDir(), "airflow")
		dsn, name := target(t, "postgres", home)
		for _, tc := range []struct {
			o    RestoreOptions
			want string
		}{
			{RestoreOptions{DatabaseKind: "postgres", Database: dsn, AirflowVersion: "3.0.0"}, "Airflow 3.0.0 expects 29ce7909c52b"},
			{RestoreOptions{DatabaseKind: "mysql", Database: "root@tcp(127.0.0.1:3306)/x"}, "metadata database is postgres, not mysql"},
			{RestoreOptions{Database: dsn}, "give a postgres target"},
			{RestoreOptions{DatabaseKind: "postgres", Database: dsn, Owner: "coffer_no_such_role"}, "no such role"},
		} {
			tc.o.Home = home
			_, err := Restore(ctx, src, tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%+v: err = %v, want %q", tc.o, err, tc.want)
			}
			if dbExists(t, "postgres", name) {
				t.Fatalf("%+v left the database", tc.o)
			}
			assertNothingIn(t, filepath.Dir(home))
		}
		if _, err := Restore(ctx, src, RestoreOptions{Home: home, DatabaseKind: "postgres", Database: dsn, AirflowVersion: "2.10"}); err != nil {
			t.Errorf("2.10 (2.10.3's head): %v", err)
		}
	})

	t.Run("home not empty", func(t *testing.T) {
		home := t.TempDir()
		write(t, filepath.Join(home, "keep"), "x")
		dsn, name := target(t, "postgres", home)
		_, err := Restore(ctx, src, RestoreOptions{Home: home, DatabaseKind: "postgres", Database: dsn})
		if !errors.Is(err, ErrHomeNotEmpty) || dbExists(t, "postgres", name) {
			t.Errorf("err = %v", err)
		}
	})
}

func assertNothingIn(t *testing.T, dir string) {
	t.Helper()
	des, _ := os.ReadDir(dir)
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	sort.Strings(names)
	if len(names) > 0 {
		t.Errorf("%s holds %v after a failed restore", dir, names)
	}
}

// cancellingTree is Ctrl-C pressed while the folders are restored.
type cancellingTree struct {
	*restore.Source
	cancel context.CancelFunc
}

func (f cancellingTree) RestoreTree(ctx context.Context, dir, target string) (int, int64, error) {
	if dir == PartPlugins {
		f.cancel()
		return 0, 0, ctx.Err()
	}
	return f.Source.RestoreTree(ctx, dir, target)
}

// TestRestoreCancelledUndoesDatabase: a restore cancelled after its
// database was made drops that database, although ctx is cancelled.
func TestRestoreCancelledUndoesDatabase(t *testing.T) {
	for _, kind := range []string{"mysql", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			d := newDeployment(t, kind)
			src := snapshotOf(t, d)
			home := filepath.Join(t.TempDir(), "airflow")
			dsn, name := target(t, kind, home)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			_, err := Restore(ctx, cancellingTree{src, cancel}, RestoreOptions{Home: home, DatabaseKind: kind, Database: dsn, Paused: true})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v", err)
			}
			if dbExists(t, kind, name) {
				t.Errorf("the cancelled restore left database %s", name)
			}
		})
	}
}

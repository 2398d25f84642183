// Package airflowfixture generates a realistic invoice-processing Apache
// Airflow deployment for tests: an AIRFLOW_HOME (airflow.cfg,
// webserver_config.py, config/airflow_local_settings.py, a DAG git
// repository with branches and an uncommitted change, plugins, task logs,
// an env file) and its metadata database on PostgreSQL, MariaDB/MySQL or
// SQLite, in Airflow 2.10's schema or a 3.x variant, with the DAGs
// invoice_ingest, invoice_validate, payment_run and vendor_sync, their
// runs and task instances, and Fernet-encrypted connections, variables and
// trigger kwargs. The database is owned by (PostgreSQL) or granted to
// (MySQL) a role of its own, distinct from the admin account that builds
// and restores it.
//
// Airflow itself cannot be installed here, so the schema is a faithful
// slice of the real one (../../../../shared/AIRFLOW.md), built from SQL.
// The rows are deterministic for a seed; the committed inputs (DAG files,
// plugins, the webserver and local settings) are in testdata/home.
//
// cmd/mkairflow writes a deployment into a folder; with -demo it writes
// the SQLite variant that make demo backs up (testdata/airflow-demo).
package airflowfixture

import (
	"bytes"
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/template"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/cofferhq/coffer/source/airflow/fernet"
)

//go:embed all:testdata/home
var inputs embed.FS

// Options of a generated deployment.
type Options struct {
	// Engine is "postgres", "mysql" or "sqlite".
	Engine string
	// Version is "2.10" (default) or "3.0".
	Version string
	// Home is the AIRFLOW_HOME to write; it must not exist or be empty.
	Home string
	// DSN names an existing, empty database (postgres, mysql) and an
	// account that may create roles (PostgreSQL) or users (MySQL).
	DSN string
	// Owner is the role (PostgreSQL) that owns the database and every
	// object in it, or the user (MySQL) granted all privileges on it;
	// airflow.cfg connects as Owner with OwnerPassword. It is created
	// when missing. Default "coffer_airflow".
	Owner, OwnerPassword string
	// FernetKeys is the deployment's fernet_key list, first key first;
	// default one new key.
	FernetKeys []string
	// EncryptKeys are the keys the values are encrypted with, in turn
	// (a rotation in progress encrypts some with an old key); default
	// the first of FernetKeys.
	EncryptKeys []string
	// KeyIn is where the deployment keeps its Fernet key: "cfg" (default,
	// [core] fernet_key), "env" (AIRFLOW__CORE__FERNET_KEY in the env
	// file), "cmd" (AIRFLOW__CORE__FERNET_KEY_CMD in the env file, reading
	// a key file), "cfg_cmd" ([core] fernet_key_cmd) or "none".
	KeyIn string
	// ConnIn is where sql_alchemy_conn is: "cfg" (default, [database]),
	// "core" (the legacy [core]) or "env" (the env file).
	ConnIn string
	// Portable writes {AIRFLOW_HOME} instead of the home's path into
	// airflow.cfg, so that the folder can be copied.
	Portable bool
	// NoGit leaves the DAGs folder a plain folder.
	NoGit bool
	// Runs per DAG (default 12); Seed for the rows; Now is the time the
	// deployment is at (default 2026-11-30T09:00:00Z).
	Runs int
	Seed uint64
	Now  time.Time
}

// Deployment is a generated deployment.
type Deployment struct {
	Engine, Version string
	Home            string
	ConfigPath      string
	// EnvFile holds the AIRFLOW__... variables the options put there (it
	// always exists; it may be empty).
	EnvFile string
	// URL is sql_alchemy_conn, a SQLAlchemy URL with the owner's password.
	URL string
	// DBPath is the SQLite database file.
	DBPath string
	Owner  string
	// Revision is the schema's Alembic head.
	Revision   string
	FernetKeys []string
	// KeyFile holds the key list for KeyIn "cmd" and "cfg_cmd".
	KeyFile                                     string
	WebserverSecretKey, APISecretKey, JWTSecret string
	// Plain maps every encrypted value ("connection \"erp_api\" extra") to
	// its plaintext.
	Plain map[string]string
	// Secrets lists every secret string of the deployment: keys,
	// passwords, secret keys and the plaintexts of encrypted values. Tests
	// grep for them.
	Secrets []string
	// Git is the DAG repository's state (empty with NoGit).
	Git Git
	// SQL is the script that built the database, statement by statement.
	SQL []string
}

// Git describes the DAG repository.
type Git struct {
	Head, Branch string
	Branches     []string
	// Dirty: invoice_validate.py is changed and notes.md untracked.
	Dirty bool
}

// DefaultNow is the time a generated deployment is at.
var DefaultNow = time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)

// Generate writes the deployment and builds its metadata database.
func Generate(ctx context.Context, o Options) (*Deployment, error) {
	if o.Version == "" {
		o.Version = "2.10"
	}
	if o.Version != "2.10" && o.Version != "3.0" {
		return nil, fmt.Errorf("version %q: use 2.10 or 3.0", o.Version)
	}
	if o.Runs <= 0 {
		o.Runs = 12
	}
	if o.Now.IsZero() {
		o.Now = DefaultNow
	}
	if o.Owner == "" {
		o.Owner = "coffer_airflow"
	}
	rng := rand.New(rand.NewPCG(o.Seed, 0x41a1f10))
	if o.OwnerPassword == "" {
		o.OwnerPassword = fmt.Sprintf("owner-pw-%016x", rng.Uint64())
	}
	if len(o.FernetKeys) == 0 {
		o.FernetKeys = []string{fernet.GenerateKey()}
	}
	if len(o.EncryptKeys) == 0 {
		o.EncryptKeys = o.FernetKeys[:1]
	}
	home, err := filepath.Abs(o.Home)
	if err != nil {
		return nil, err
	}
	if des, err := os.ReadDir(home); err == nil && len(des) > 0 {
		return nil, fmt.Errorf("%s is not empty", home)
	}
	d := &Deployment{Engine: o.Engine, Version: o.Version, Home: home, ConfigPath: filepath.Join(home, "airflow.cfg"),
		EnvFile: filepath.Join(home, ".env"), Owner: o.Owner, FernetKeys: o.FernetKeys, Revision: Revision210}
	if o.Version == "3.0" {
		d.Revision = Revision30
	}
	d.WebserverSecretKey = fmt.Sprintf("ws-secret-%016x", rng.Uint64())
	d.APISecretKey = fmt.Sprintf("api-secret-%016x", rng.Uint64())
	d.JWTSecret = fmt.Sprintf("jwt-secret-%016x", rng.Uint64())
	d.Secrets = append(d.Secrets, o.OwnerPassword, d.WebserverSecretKey)
	if o.Version == "3.0" {
		d.Secrets = append(d.Secrets, d.APISecretKey, d.JWTSecret)
	}
	d.Secrets = append(d.Secrets, o.FernetKeys...)

	if err := writeInputs(home); err != nil {
		return nil, err
	}
	var enc []fernet.Key
	for _, k := range o.EncryptKeys {
		fk, err := fernet.ParseKey(k)
		if err != nil {
			return nil, fmt.Errorf("encrypt key: %w", err)
		}
		enc = append(enc, fk)
	}
	// The metadata database names the DAG files by path; a portable
	// deployment's rows say where it runs in production.
	rowsHome := home
	if o.Portable {
		rowsHome = "/opt/airflow"
	}
	dt := &data{engine: o.Engine, version: o.Version, rng: rng, enc: enc, home: rowsHome, now: o.Now, plain: map[string]string{}}
	sources := map[string]string{}
	for _, g := range dags {
		b, err := os.ReadFile(filepath.Join(home, "dags", g.file))
		if err != nil {
			return nil, err
		}
		sources[g.file] = string(b)
	}
	rs := dt.build(o.Runs, sources)
	d.Plain = dt.plain
	d.Secrets = append(d.Secrets, dt.secrets...)
	d.SQL = append(ddl(o.Engine, schema(o.Version)), inserts(o.Engine, rs)...)

	switch o.Engine {
	case "sqlite":
		d.DBPath = filepath.Join(home, "airflow.db")
		d.URL = "sqlite:///" + d.DBPath
		if err := buildSQLite(ctx, d.DBPath, d.SQL); err != nil {
			return nil, err
		}
	case "postgres":
		if d.URL, err = buildPostgres(ctx, o, d); err != nil {
			return nil, err
		}
	case "mysql":
		if d.URL, err = buildMySQL(ctx, o, d); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("engine %q: use postgres, mysql or sqlite", o.Engine)
	}
	if err := writeConfig(o, d); err != nil {
		return nil, err
	}
	if err := writeLogs(home, o.Now); err != nil {
		return nil, err
	}
	if !o.NoGit {
		if d.Git, err = makeRepo(ctx, filepath.Join(home, "dags"), o.Now); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// writeInputs copies testdata/home into home.
func writeInputs(home string) error {
	return fs.WalkDir(inputs, "testdata/home", func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p, "testdata/home"), "/")
		dst := filepath.Join(home, rel)
		if de.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := inputs.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
}

var cfgTemplate = template.Must(template.New("airflow.cfg").Parse(`# airflow.cfg of the invoice-processing deployment (generated by coffer's test fixture)
[core]
dags_folder = {{.Home}}/dags
hostname_callable = airflow.utils.net.getfqdn
default_timezone = utc
executor = LocalExecutor
parallelism = 32
max_active_tasks_per_dag = 16
dags_are_paused_at_creation = True
load_examples = False
plugins_folder = {AIRFLOW_HOME}/plugins
{{- if eq .KeyIn "cfg"}}
fernet_key = {{.FernetKey}}
{{- else if eq .KeyIn "cfg_cmd"}}
fernet_key_cmd = cat {{.KeyFile}}
{{- else}}
fernet_key =
{{- end}}
{{- if eq .ConnIn "core"}}
sql_alchemy_conn = {{.URL}}
{{- end}}
default_task_retries = 0

[database]
{{- if eq .ConnIn "cfg"}}
sql_alchemy_conn = {{.URL}}
{{- end}}
sql_engine_encoding = utf-8
sql_alchemy_pool_enabled = True
load_default_connections = False

[logging]
base_log_folder = {{.Home}}/logs
remote_logging = False
logging_level = INFO
log_format = [%%(asctime)s] {%%(filename)s:%%(lineno)d} %%(levelname)s - %%(message)s
simple_log_format = %%(asctime)s %%(levelname)s - %%(message)s
dag_processor_manager_log_location = %(base_log_folder)s/dag_processor_manager/dag_processor_manager.log
{{if .V3}}
[api]
base_url = http://localhost:8080
secret_key = {{.APISecret}}

[api_auth]
jwt_secret = {{.JWTSecret}}

[webserver]
config_file = {AIRFLOW_HOME}/webserver_config.py
{{- else}}
[webserver]
base_url = http://localhost:8080
web_server_port = 8080
secret_key = {{.WebserverSecret}}
config_file = {AIRFLOW_HOME}/webserver_config.py
{{- end}}

[scheduler]
job_heartbeat_sec = 5
scheduler_heartbeat_sec = 5
min_file_process_interval = 30

[smtp]
smtp_host = smtp.internal
smtp_mail_from = airflow@invoices.example
`))

// writeConfig writes airflow.cfg and the env file.
func writeConfig(o Options, d *Deployment) error {
	homeRef, url := d.Home, d.URL
	if o.Portable {
		homeRef = "{AIRFLOW_HOME}"
		if o.Engine == "sqlite" {
			url = "sqlite:///{AIRFLOW_HOME}/airflow.db"
		}
	}
	keys := strings.Join(o.FernetKeys, ",")
	if o.KeyIn == "cmd" || o.KeyIn == "cfg_cmd" {
		d.KeyFile = filepath.Join(d.Home, ".secrets", "fernet_key")
		if err := os.MkdirAll(filepath.Dir(d.KeyFile), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(d.KeyFile, []byte(keys+"\n"), 0o600); err != nil {
			return err
		}
	}
	keyIn, connIn := o.KeyIn, o.ConnIn
	if keyIn == "" {
		keyIn = "cfg"
	}
	if connIn == "" {
		connIn = "cfg"
	}
	var cfg bytes.Buffer
	err := cfgTemplate.Execute(&cfg, map[string]any{
		"Home": homeRef, "KeyIn": keyIn, "ConnIn": connIn, "FernetKey": keys, "KeyFile": d.KeyFile, "URL": url,
		"V3": o.Version == "3.0", "APISecret": d.APISecretKey, "JWTSecret": d.JWTSecret, "WebserverSecret": d.WebserverSecretKey,
	})
	if err != nil {
		return err
	}
	if err := os.WriteFile(d.ConfigPath, cfg.Bytes(), 0o640); err != nil {
		return err
	}
	var env strings.Builder
	env.WriteString("# The deployment's environment (docker compose env_file)\nAIRFLOW__CORE__LOAD_EXAMPLES=False\n")
	switch keyIn {
	case "env":
		fmt.Fprintf(&env, "AIRFLOW__CORE__FERNET_KEY=%s\n", keys)
	case "cmd":
		fmt.Fprintf(&env, "AIRFLOW__CORE__FERNET_KEY_CMD=cat %s\n", d.KeyFile)
	}
	if connIn == "env" {
		fmt.Fprintf(&env, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=%s\n", url)
	}
	return os.WriteFile(d.EnvFile, []byte(env.String()), 0o600)
}

// writeLogs writes task logs of the last runs.
func writeLogs(home string, now time.Time) error {
	for _, g := range dags {
		for i := 2; i >= 1; i-- {
			start := now.Truncate(g.every).Add(-time.Duration(i) * g.every)
			rid := "scheduled__" + start.Format("2006-01-02T15:04:05+00:00")
			for _, task := range g.tasks {
				dir := filepath.Join(home, "logs", "dag_id="+g.id, "run_id="+rid, "task_id="+task)
				if err := os.MkdirAll(dir, 0o755); err != nil {
					return err
				}
				text := fmt.Sprintf("[%s] {taskinstance.py:2612} INFO - Dependencies all met for <TaskInstance: %s.%s %s [queued]>\n"+
					"[%s] {taskinstance.py:2865} INFO - Starting attempt 1 of 3\n[%s] {taskinstance.py:1206} INFO - Marking task as SUCCESS.\n",
					start.Format(time.DateTime), g.id, task, rid, start.Format(time.DateTime), start.Format(time.DateTime))
				if err := os.WriteFile(filepath.Join(dir, "attempt=1.log"), []byte(text), 0o644); err != nil {
					return err
				}
			}
		}
	}
	return os.MkdirAll(filepath.Join(home, "logs", "scheduler"), 0o755)
}

// makeRepo makes the DAGs folder a git repository: main with two commits,
// a feature branch and a hotfix branch with a commit each, and on main an
// uncommitted change and an untracked file.
func makeRepo(ctx context.Context, dir string, now time.Time) (Git, error) {
	var g Git
	step := 0
	git := func(args ...string) (string, error) {
		step++
		when := now.AddDate(0, 0, -30).Add(time.Duration(step) * time.Hour).Format(time.RFC3339)
		cmd := exec.CommandContext(ctx, "git", append([]string{"-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false", "-C", dir}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
			"GIT_AUTHOR_NAME=Fiona Finance", "GIT_AUTHOR_EMAIL=fiona@invoices.example", "GIT_AUTHOR_DATE="+when,
			"GIT_COMMITTER_NAME=Fiona Finance", "GIT_COMMITTER_EMAIL=fiona@invoices.example", "GIT_COMMITTER_DATE="+when)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out)), nil
	}
	edit := func(name, line string) error {
		f, err := os.OpenFile(filepath.Join(dir, name), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = f.WriteString(line)
		return err
	}
	steps := []func() error{
		func() error { _, err := git("init", "-q"); return err },
		func() error {
			_, err := git("add", ".airflowignore", "lib", "invoice_ingest.py", "invoice_validate.py", "payment_run.py")
			return err
		},
		func() error { _, err := git("commit", "-q", "-m", "Add the invoice and payment DAGs"); return err },
		func() error { _, err := git("add", "vendor_sync.py"); return err },
		func() error { _, err := git("commit", "-q", "-m", "Add vendor_sync"); return err },
		func() error { _, err := git("checkout", "-q", "-b", "feature/vendor-sync-v2"); return err },
		func() error { return edit("vendor_sync.py", "\n# v2: page through /api/v2/vendors 500 at a time\n") },
		func() error {
			_, err := git("commit", "-q", "-am", "vendor_sync: page through the ERP API")
			return err
		},
		func() error { _, err := git("checkout", "-q", "-b", "hotfix/payment-timeout", "main"); return err },
		func() error {
			return edit("payment_run.py", "\n# hotfix: the bank gateway answers within 20 minutes\n")
		},
		func() error { _, err := git("commit", "-q", "-am", "payment_run: shorter bank timeout"); return err },
		func() error { _, err := git("checkout", "-q", "main"); return err },
		func() error {
			return edit("invoice_validate.py", "\n# TODO: tolerate rounding differences of one cent\n")
		},
		func() error {
			return os.WriteFile(filepath.Join(dir, "notes.md"), []byte("Ideas for the next sprint.\n"), 0o644)
		},
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return g, err
		}
	}
	var err error
	if g.Head, err = git("rev-parse", "HEAD"); err != nil {
		return g, err
	}
	g.Branch = "main"
	br, err := git("for-each-ref", "--format=%(refname:short)", "refs/heads")
	if err != nil {
		return g, err
	}
	g.Branches = strings.Split(br, "\n")
	g.Dirty = true
	return g, nil
}

func buildSQLite(ctx context.Context, path string, stmts []string) error {
	db, err := sql.Open("sqlite", path)
	if err != nil {
		return err
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("sqlite: %w: %.200s", err, s)
		}
	}
	return nil
}

// buildPostgres creates the owner role when missing, gives it the
// database, and builds the schema as that role so that it owns every
// object.
func buildPostgres(ctx context.Context, o Options, d *Deployment) (string, error) {
	conn, err := pgx.Connect(ctx, o.DSN)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	role := pgx.Identifier{o.Owner}.Sanitize()
	var exists bool
	if err := conn.QueryRow(ctx, "select exists (select 1 from pg_roles where rolname = $1)", o.Owner).Scan(&exists); err != nil {
		return "", err
	}
	if !exists {
		// A role shared by every deployment made on this server keeps the
		// password of the first (with trust authentication, as in coffer's
		// tests, any password is accepted).
		if _, err := conn.Exec(ctx, "create role "+role+" login password '"+strings.ReplaceAll(o.OwnerPassword, "'", "''")+"'"); err != nil {
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || (pe.Code != "42710" && pe.Code != "23505") {
				return "", fmt.Errorf("create role: %w", err)
			}
		}
	}
	cfg := conn.Config()
	for _, s := range []string{
		"alter database " + pgx.Identifier{cfg.Database}.Sanitize() + " owner to " + role,
		"set role " + role,
	} {
		if _, err := conn.Exec(ctx, s); err != nil {
			return "", fmt.Errorf("%s: %w", s, err)
		}
	}
	for _, s := range d.SQL {
		if _, err := conn.Exec(ctx, s); err != nil {
			return "", fmt.Errorf("postgres: %w: %.200s", err, s)
		}
	}
	for _, t := range serialTables(d.Version) {
		if _, err := conn.Exec(ctx, fmt.Sprintf("select setval(pg_get_serial_sequence('%s', 'id'), coalesce((select max(id) from %s), 0) + 1, false)",
			pgx.Identifier{t}.Sanitize(), pgx.Identifier{t}.Sanitize())); err != nil {
			return "", fmt.Errorf("sequence of %s: %w", t, err)
		}
	}
	if _, err := conn.Exec(ctx, "reset role"); err != nil {
		return "", err
	}
	host := cfg.Host
	if strings.HasPrefix(host, "/") {
		return fmt.Sprintf("postgresql+psycopg2://%s:%s@/%s?host=%s", o.Owner, o.OwnerPassword, cfg.Database, host), nil
	}
	return fmt.Sprintf("postgresql+psycopg2://%s:%s@%s/%s?sslmode=disable", o.Owner, o.OwnerPassword,
		net.JoinHostPort(host, fmt.Sprint(cfg.Port)), cfg.Database), nil
}

// buildMySQL creates the owner user when missing (with OwnerPassword),
// grants it the database, and builds the schema.
func buildMySQL(ctx context.Context, o Options, d *Deployment) (string, error) {
	cfg, err := gomysql.ParseDSN(o.DSN)
	if err != nil {
		return "", err
	}
	cfg.Logger = &gomysql.NopLogger{}
	c, err := gomysql.NewConnector(cfg)
	if err != nil {
		return "", err
	}
	db := sql.OpenDB(c)
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	user := "'" + strings.ReplaceAll(o.Owner, "'", "''") + "'@'%'"
	for _, s := range []string{
		"create user if not exists " + user + " identified by '" + strings.ReplaceAll(o.OwnerPassword, "'", "''") + "'",
		"grant all privileges on `" + cfg.DBName + "`.* to " + user,
		"set session time_zone = '+00:00'",
		"set session sql_mode = 'STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION'",
	} {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			return "", fmt.Errorf("mysql: %w", err)
		}
	}
	for _, s := range d.SQL {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			return "", fmt.Errorf("mysql: %w: %.200s", err, s)
		}
	}
	host, port, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		host, port = cfg.Addr, "3306"
	}
	return fmt.Sprintf("mysql+mysqldb://%s:%s@%s:%s/%s?charset=utf8mb4", o.Owner, o.OwnerPassword, host, port, cfg.DBName), nil
}

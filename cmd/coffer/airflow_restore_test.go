package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer/internal/testing/airflowfixture"
	"github.com/cofferhq/coffer/internal/testing/fixture"
	"github.com/cofferhq/coffer/source/airflow/fernet"
)

// TestAirflowRestoreCommand is the acceptance test of the restore
// side, for each metadata database engine: a generated deployment (Fernet
// keys rotated, the key only in the deployment's env file) is backed up
// with the airflow kind and restored whole in one command with
// --rewrite-config --paused --with-secrets. The tables, the DAG
// repository and the configuration come back equal (but for the paused
// DAGs and the rewritten keys), every encrypted value decrypts with the
// restored keys, the original owner can write every table, the restored
// airflow.cfg names nothing of the source, and no secret appears in any
// output.
func TestAirflowRestoreCommand(t *testing.T) {
	for _, tc := range []struct{ engine, version string }{
		{"postgres", "2.10"}, {"mysql", "2.10"}, {"sqlite", "2.10"}, {"sqlite", "3.0"},
	} {
		t.Run(tc.engine+"-"+tc.version, func(t *testing.T) { testAirflowRestore(t, tc.engine, tc.version) })
	}
}

// coffer runs the command in-process and returns its exit code, stdout and
// stderr.
func coffer(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(append([]string{"coffer"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func mustCoffer(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errs := coffer(t, args...)
	if code != 0 {
		t.Fatalf("coffer %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
	}
	return out + errs
}

func testAirflowRestore(t *testing.T, engine, version string) {
	k1, k2 := fernet.GenerateKey(), fernet.GenerateKey()
	d := airflowfixture.New(t, engine, airflowfixture.Options{Version: version, KeyIn: "env",
		FernetKeys: []string{k1, k2}, EncryptKeys: []string{k1, k2}})
	work := t.TempDir()
	keys := filepath.Join(work, "keys")
	mustCoffer(t, "keygen", "--out", keys)
	repoDir := filepath.Join(work, "repo")
	mustCoffer(t, "init", "--repo", repoDir, "--recipients-file", filepath.Join(keys, "recipients.txt"), "--signing-key", filepath.Join(keys, "signing.key"))
	// An invoice store beside the deployment, in the same snapshot.
	invoices := filepath.Join(work, "invoices.db")
	inv, err := sql.Open("sqlite", invoices)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := inv.Exec("create table invoice (id integer primary key, total numeric); insert into invoice values (1, 99.5)"); err != nil {
		t.Fatal(err)
	}
	inv.Close()
	conf := filepath.Join(work, "coffer.yaml")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`repository: %s
sources:
  deploy:
    kind: airflow
    location: %s
    airflow:
      env_file: %s
      include_logs: true
  invoices: sqlite:%s
`, repoDir, d.Home, d.EnvFile, invoices)), 0o600); err != nil {
		t.Fatal(err)
	}
	var outputs []string
	outputs = append(outputs, mustCoffer(t, "--config", conf, "backup", "--signing-key", filepath.Join(keys, "signing.key")))
	// A newer snapshot without the deployment: latest:deploy still finds
	// it.
	outputs = append(outputs, mustCoffer(t, "--config", conf, "backup", "--signing-key", filepath.Join(keys, "signing.key"), "invoices"))
	read := []string{"--config", conf, "--identity", filepath.Join(keys, "identity.txt"), "--signing-key", filepath.Join(keys, "signing.pub")}

	// The version shows before a restore, and the wrong one is refused.
	snaps := mustCoffer(t, append(read, "snapshots")...)
	t.Logf("snapshots:\n%s", snaps)
	outputs = append(outputs, snaps)
	wantVersion := map[string]string{"2.10": "Alembic revision " + airflowfixture.Revision210 + " (Airflow 2.10.3)",
		"3.0": "Alembic revision " + airflowfixture.Revision30 + " (Airflow 3.0.0)"}[version]
	if !strings.Contains(snaps, "deploy: "+wantVersion) || !regexp.MustCompile(`consistent points: deploy/metadb at [0-9:.]+.*; invoices \+[0-9.]+s; skew [0-9.]+s`).MatchString(snaps) {
		t.Errorf("snapshots does not show the Airflow version and consistent points:\n%s", snaps)
	}
	home := filepath.Join(work, "restored", "airflow")
	target, targetName := restoreTarget(t, engine, home)
	wrong := map[string]string{"2.10": "3.0.0", "3.0": "2.10.3"}[version]
	code, out, errs := coffer(t, append(read, "restore", "latest:deploy", "--to", home, "--to-"+engine, target, "--airflow-version", wrong)...)
	if code != 1 || !strings.Contains(errs, "migrating it forward") {
		t.Errorf("restore --airflow-version %s: exit %d\n%s%s", wrong, code, out, errs)
	}
	if _, err := os.Stat(filepath.Dir(home)); err == nil {
		t.Errorf("a refused restore made %s", filepath.Dir(home))
	}

	// Usage: a folder and a database target, of the snapshot's kind.
	for _, tc := range []struct {
		code       int
		args       []string
		want, hint string
	}{
		{2, []string{"--to", home}, "an airflow source restores whole: give --to DIR", ""},
		{2, []string{"--to", home, "--to-" + engine, target, "--replace"}, "--replace and --force do not apply", ""},
		{1, []string{"--to", home, "--to-" + map[string]string{"postgres": "mysql", "mysql": "sqlite", "sqlite": "postgres"}[engine], "x"},
			"the snapshot's metadata database is " + engine, "--to-" + engine},
	} {
		code, out, errs := coffer(t, append(append(read, "restore", "latest:deploy"), tc.args...)...)
		if code != tc.code || !strings.Contains(errs, tc.want) || !strings.Contains(errs, tc.hint) {
			t.Errorf("restore %v: exit %d, want %d with %q and hint %q\n%s%s", tc.args, code, tc.code, tc.want, tc.hint, out, errs)
		}
	}

	// One command restores the whole deployment.
	restored := mustCoffer(t, append(read, "--verbose", "restore", "latest:deploy", "--to", home, "--to-"+engine, target,
		"--rewrite-config", "--paused", "--with-secrets")...)
	outputs = append(outputs, restored)
	t.Logf("restore:\n%s", restored)
	for _, want := range []string{wantVersion, "all paused", "next steps:", "export AIRFLOW_HOME=" + home, "secrets.env (mode 0600)"} {
		if !strings.Contains(restored, want) {
			t.Errorf("restore output lacks %q", want)
		}
	}
	if engine != "sqlite" && !strings.Contains(restored, d.Owner) {
		t.Errorf("restore output does not name the owner %s", d.Owner)
	}

	// Tables equal, every DAG paused.
	srcDB, dstDB := openDB(t, engine, d, ""), openDB(t, engine, d, target)
	want, got := tableContents(t, engine, srcDB), tableContents(t, engine, dstDB)
	if len(want) < 10 {
		t.Fatalf("the source has only %d tables", len(want))
	}
	for tab, w := range want {
		if got[tab] != w {
			t.Errorf("table %s differs after the restore", tab)
		}
	}
	if _, active := dstDB.query(t, "select dag_id from dag where is_paused is null or not is_paused"); len(active) != 0 {
		t.Errorf("%d DAGs not paused", len(active))
	}

	// Every encrypted value decrypts with the restored keys.
	env := map[string]string{}
	b, err := os.ReadFile(filepath.Join(home, "secrets.env"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && !strings.HasPrefix(k, "#") {
			env[k] = v
		}
	}
	if fi, _ := os.Stat(filepath.Join(home, "secrets.env")); fi.Mode().Perm() != 0o600 {
		t.Errorf("secrets.env has mode %v", fi.Mode().Perm())
	}
	fkeys, err := fernet.ParseKeys(env["AIRFLOW__CORE__FERNET_KEY"])
	if err != nil || len(fkeys) != 2 {
		t.Fatalf("secrets.env's Fernet keys: %d, %v", len(fkeys), err)
	}
	plain := map[string]bool{}
	for _, q := range []string{
		"select password from connection where is_encrypted",
		"select extra from connection where is_extra_encrypted",
		"select val from variable where is_encrypted",
		"select kwargs from " + quoteIdent(engine, "trigger"),
	} {
		_, rows := dstDB.query(t, q)
		for _, r := range rows {
			tok := r[0]
			if !tok.Valid || !fernet.LooksLikeToken(tok.String) {
				continue
			}
			p, err := fernet.Decrypt(fkeys, tok.String)
			if err != nil {
				t.Errorf("%s: a value does not decrypt with the restored keys", q)
			}
			plain[string(p)] = true
		}
	}
	for what, p := range d.Plain {
		if !plain[p] {
			t.Errorf("%s: not among the restored values", what)
		}
	}

	// The original owner can write every table and alter one.
	if engine != "sqlite" {
		owner := openDB(t, engine, d, ownerDSN(t, engine, d, target))
		for tab := range want {
			cols, _ := owner.query(t, "select * from "+quoteIdent(engine, tab)+" where 1 = 0")
			col := quoteIdent(engine, cols[0])
			if err := owner.exec("update " + quoteIdent(engine, tab) + " set " + col + " = " + col); err != nil {
				t.Errorf("owner %s cannot write table %s: %v", d.Owner, tab, err)
			}
		}
		if err := owner.exec("alter table dag_run add column coffer_note text"); err != nil {
			t.Errorf("owner %s cannot alter dag_run: %v", d.Owner, err)
		}
	}

	// The DAG repository: commits, branches and working state.
	if g, w := gitState(t, filepath.Join(home, "dags")), gitState(t, filepath.Join(d.Home, "dags")); g != w {
		t.Errorf("restored DAG repository:\n%s\nwant\n%s", g, w)
	}

	// The configuration: equal but for the rewritten keys, naming nothing
	// of the source.
	srcCfg, _ := os.ReadFile(d.ConfigPath)
	gotCfg, err := os.ReadFile(filepath.Join(home, "airflow.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	before, after := iniValues(string(srcCfg)), iniValues(string(gotCfg))
	rewritten := map[string]bool{}
	for _, l := range strings.Split(restored, "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "[") {
			sec, rest, _ := strings.Cut(l, " ")
			key, _, _ := strings.Cut(rest, ":")
			rewritten[strings.Trim(sec, "[]")+"."+key] = true
		}
	}
	for k, v := range before {
		if !rewritten[k] && after[k] != v {
			t.Errorf("airflow.cfg %s = %q, want %q (not a rewritten key)", k, after[k], v)
		}
	}
	if !rewritten["database.sql_alchemy_conn"] || !strings.Contains(after["database.sql_alchemy_conn"], targetName) {
		t.Errorf("sql_alchemy_conn = %q, want the restored database %s", after["database.sql_alchemy_conn"], targetName)
	}
	for _, bad := range append([]string{d.Home, sourceDBName(t, engine, d), "127.0.0.1"}, d.Secrets...) {
		if bad != "" && strings.Contains(string(gotCfg), bad) {
			t.Errorf("the restored airflow.cfg names the source's %.12q...", bad)
		}
	}
	for _, f := range []string{"webserver_config.py", "config/airflow_local_settings.py", "plugins/invoice_macros.py"} {
		w, _ := os.ReadFile(filepath.Join(d.Home, f))
		g, err := os.ReadFile(filepath.Join(home, f))
		if err != nil || !bytes.Equal(g, w) {
			t.Errorf("%s differs after the restore (%v)", f, err)
		}
	}

	// No secret in any output, nor in any object of the repository.
	for _, o := range outputs {
		for _, s := range d.Secrets {
			if strings.Contains(o, s) {
				t.Errorf("an output holds a secret of the deployment (%.6s...)", s)
			}
		}
	}
	filepath.WalkDir(repoDir, func(p string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		b, _ := os.ReadFile(p)
		for _, s := range d.Secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("repository object %s holds a secret in plaintext", p)
			}
		}
		return nil
	})
}

// restoreTarget is a new database for the restore (by the name localhost,
// while the source's airflow.cfg says 127.0.0.1), dropped when the test
// ends, and its name.
func restoreTarget(t *testing.T, engine, home string) (string, string) {
	t.Helper()
	switch engine {
	case "postgres":
		name := "coffer_af_restored_" + strings.ToLower(randomHex(4))
		t.Cleanup(func() { fixture.DropPostgresDB(t, name) })
		return strings.Replace(fixture.WithDatabase(fixture.AdminDSN(), name), "127.0.0.1", "localhost", 1), name
	case "mysql":
		name := "coffer_af_restored_" + strings.ToLower(randomHex(4))
		admin := fixture.MySQLAdmin(t)
		t.Cleanup(func() { admin.Exec("DROP DATABASE IF EXISTS `" + name + "`") })
		cfg, _ := gomysql.ParseDSN(fixture.MySQLAdminDSN())
		cfg.DBName, cfg.Addr = name, strings.Replace(cfg.Addr, "127.0.0.1", "localhost", 1)
		return cfg.FormatDSN(), name
	}
	return filepath.Join(home, "airflow.db"), "airflow.db"
}

func randomHex(n int) string {
	b := make([]byte, n)
	f, _ := os.Open("/dev/urandom")
	f.Read(b)
	f.Close()
	return fmt.Sprintf("%x", b)
}

// testDB is a database a test reads: PostgreSQL through pgx, the others
// through database/sql.
type testDB interface {
	// query returns the column names and the rows, every value as text.
	query(t *testing.T, q string) ([]string, [][]sql.NullString)
	exec(q string) error
}

type sqlDB struct{ db *sql.DB }

func (s sqlDB) exec(q string) error { _, err := s.db.Exec(q); return err }

func (s sqlDB) query(t *testing.T, q string) ([]string, [][]sql.NullString) {
	t.Helper()
	rs, err := s.db.Query(q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rs.Close()
	cols, _ := rs.Columns()
	var out [][]sql.NullString
	for rs.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rs.Scan(ptrs...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		out = append(out, vals)
	}
	if err := rs.Err(); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return cols, out
}

type pgDB struct{ conn *pgx.Conn }

func (p pgDB) exec(q string) error { _, err := p.conn.Exec(context.Background(), q); return err }

func (p pgDB) query(t *testing.T, q string) ([]string, [][]sql.NullString) {
	t.Helper()
	rs, err := p.conn.Query(context.Background(), q, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rs.Close()
	var cols []string
	for _, f := range rs.FieldDescriptions() {
		cols = append(cols, f.Name)
	}
	var out [][]sql.NullString
	for rs.Next() {
		var row []sql.NullString
		for _, v := range rs.RawValues() {
			row = append(row, sql.NullString{String: string(v), Valid: v != nil})
		}
		out = append(out, row)
	}
	if err := rs.Err(); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return cols, out
}

// openDB opens the deployment's database (target "") or the restored one.
func openDB(t *testing.T, engine string, d *airflowfixture.Deployment, target string) testDB {
	t.Helper()
	var dsn string
	switch engine {
	case "postgres":
		dsn = target
		if dsn == "" {
			dsn = strings.Replace(d.URL, "postgresql+psycopg2://", "postgres://", 1)
		}
		conn, err := pgx.Connect(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close(context.Background()) })
		return pgDB{conn}
	case "mysql":
		dsn = target
		if dsn == "" {
			u, _ := url.Parse(d.URL)
			pw, _ := u.User.Password()
			cfg := gomysql.NewConfig()
			cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = u.User.Username(), pw, "tcp", u.Host, strings.TrimPrefix(u.Path, "/")
			dsn = cfg.FormatDSN()
		}
	default:
		dsn = target
		if dsn == "" {
			dsn = d.DBPath
		}
	}
	db, err := sql.Open(engine, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return sqlDB{db}
}

// ownerDSN connects to the restored database as the deployment's owner.
func ownerDSN(t *testing.T, engine string, d *airflowfixture.Deployment, target string) string {
	t.Helper()
	u, _ := url.Parse(d.URL)
	pw, _ := u.User.Password()
	if engine == "postgres" {
		tu, err := url.Parse(target)
		if err != nil {
			t.Fatal(err)
		}
		tu.User = url.UserPassword(d.Owner, pw)
		return tu.String()
	}
	cfg, _ := gomysql.ParseDSN(target)
	cfg.User, cfg.Passwd = d.Owner, pw
	return cfg.FormatDSN()
}

func sourceDBName(t *testing.T, engine string, d *airflowfixture.Deployment) string {
	if engine == "sqlite" {
		return d.DBPath
	}
	u, err := url.Parse(d.URL)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(u.Path, "/")
}

func quoteIdent(engine, s string) string {
	if engine == "mysql" {
		return "`" + s + "`"
	}
	return `"` + s + `"`
}

// tableContents returns, for every table, its rows as sorted text; the
// DAGs' is_paused column is left out.
func tableContents(t *testing.T, engine string, db testDB) map[string]string {
	t.Helper()
	q := map[string]string{
		"postgres": "select table_name from information_schema.tables where table_schema = 'public' and table_type = 'BASE TABLE'",
		"mysql":    "select table_name from information_schema.tables where table_schema = database() and table_type = 'BASE TABLE'",
		"sqlite":   "select name from sqlite_master where type = 'table' and name not like 'sqlite_%'",
	}[engine]
	_, tables := db.query(t, q)
	out := map[string]string{}
	for _, tr := range tables {
		tab := tr[0].String
		cols, rows := db.query(t, "select * from "+quoteIdent(engine, tab))
		var lines []string
		for _, vals := range rows {
			var row []string
			for i, v := range vals {
				if tab == "dag" && cols[i] == "is_paused" {
					continue
				}
				row = append(row, fmt.Sprintf("%v:%q", v.Valid, v.String))
			}
			lines = append(lines, strings.Join(row, "|"))
		}
		sort.Strings(lines)
		out[tab] = strings.Join(lines, "\n")
	}
	return out
}

// gitState is what a DAG repository must bring back.
func gitState(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	for _, args := range [][]string{
		{"log", "--all", "--format=%H %P %an %s %D"},
		{"branch", "--list", "--format=%(refname) %(objectname)"},
		{"symbolic-ref", "HEAD"},
		{"status", "--porcelain=v1", "--untracked-files=all"},
		{"diff"},
	} {
		cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v in %s: %v\n%s", args, dir, err, out)
		}
		fmt.Fprintf(&b, "$ git %s\n%s", strings.Join(args, " "), out)
	}
	return b.String()
}

// iniValues maps "section.key" to its value (continuation lines joined).
func iniValues(s string) map[string]string {
	out := map[string]string{}
	section, last := "", ""
	for _, l := range strings.Split(s, "\n") {
		trim := strings.TrimSpace(l)
		switch {
		case trim == "" || strings.HasPrefix(trim, "#") || strings.HasPrefix(trim, ";"):
		case strings.HasPrefix(l, "["):
			section = strings.ToLower(strings.Trim(trim, "[]"))
		case (l[0] == ' ' || l[0] == '\t') && last != "":
			out[last] += "\n" + trim
		default:
			k, v, ok := strings.Cut(l, "=")
			if !ok {
				continue
			}
			last = section + "." + strings.ToLower(strings.TrimSpace(k))
			out[last] = strings.TrimSpace(v)
		}
	}
	return out
}

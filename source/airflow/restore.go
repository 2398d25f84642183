package airflow

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sys/unix"

	"github.com/cofferhq/coffer/internal/units"
	"github.com/cofferhq/coffer/source"
	"github.com/cofferhq/coffer/source/mysql"
	"github.com/cofferhq/coffer/source/postgres"
	"github.com/cofferhq/coffer/source/sqlite"
)

// Restore of a whole deployment
//
// Restore brings an airflow source back as a scratch deployment in one
// step, all or nothing: first the metadata database, through source.Sub
// and the database kind's own Restore (a new database, verified against
// the backup's fingerprints, owned by the original owner or
// RestoreOptions.Owner), with every DAG paused when asked; then
// AIRFLOW_HOME (DAGs with their .git, plugins, logs, configuration files,
// and secrets.env when asked) into a private staging folder beside the
// target folder, renamed into place last. If the database fails, the
// folder is never created; if the files fail, the new database is dropped.

// secretValues lists every secret value, each Fernet key on its own.
func secretValues(s Secrets) []string {
	var out []string
	for _, k := range strings.Split(s.FernetKey, ",") {
		if k = strings.TrimSpace(k); k != "" {
			out = append(out, k)
		}
	}
	for _, v := range []string{s.WebserverSecretKey, s.APISecretKey, s.JWTSecret} {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

// RestoreOptions control Restore.
type RestoreOptions struct {
	// Home is the restored AIRFLOW_HOME: a new or empty folder.
	Home string
	// DatabaseKind ("postgres", "mysql", "sqlite") must be the snapshot's
	// metadata database kind; Database is that kind's target: a DSN
	// naming a new database, or a new SQLite file (inside Home or not).
	DatabaseKind, Database string
	// Owner is the role (PostgreSQL) or account (MySQL) to own the
	// restored database; by default its original owner, when it exists.
	Owner string
	// RewriteConfig makes the restored airflow.cfg name the restored
	// database and folders and nothing of the source (see rewrite.go).
	RewriteConfig bool
	// Paused pauses every DAG in the restored database.
	Paused bool
	// WithSecrets writes Home/secrets.env (mode 0600) with the Fernet
	// key(s) and secret keys, as AIRFLOW__... variables.
	WithSecrets bool
	// AirflowVersion, when set, refuses a snapshot whose Alembic revision
	// is not that version's head.
	AirflowVersion string
	// Jobs and MemoryBudget tune a PostgreSQL restore.
	Jobs         int
	MemoryBudget int64
}

// Result describes a restored deployment. It holds no secret.
type Result struct {
	Home            string
	DatabaseKind    string
	Connection      string // SQLAlchemy URL of the restored database, password masked
	Owner           string // the role or account that owns or may use it ("" for SQLite)
	OwnerLine       string // says who owns it and why
	OwnerNotes      []string
	AlembicRevision string
	AirflowVersion  string
	DAGs, Paused    int // DAGs in the database, and how many the restore paused
	PausedAll       bool
	Parts           []string // restored parts of AIRFLOW_HOME
	Files           int
	Bytes           int64
	ConfigRewritten bool
	ConfigChanges   []string // "[section] key: what", never a value
	SecretsFile     string   // Home/secrets.env, when written
	SecretNames     []string // what secrets.env holds, by name
	HasSecrets      bool     // the snapshot holds secrets
	NextSteps       []string
	meta            Meta
}

// ErrHomeNotEmpty is wrapped when the target folder exists and is not an
// empty folder.
var ErrHomeNotEmpty = errors.New("target folder is not empty")

// ErrNoSecrets is wrapped when secrets are asked for but the snapshot holds
// none.
var ErrNoSecrets = errors.New("the snapshot holds no secrets")

// DatabaseKindError says that the restore's database target is not of the
// snapshot's metadata database kind.
type DatabaseKindError struct {
	Need, Got string
}

func (e *DatabaseKindError) Error() string {
	if e.Got == "" {
		return fmt.Sprintf("the snapshot's metadata database is %s: give a %s target for it", e.Need, e.Need)
	}
	return fmt.Sprintf("the snapshot's metadata database is %s, not %s: give a %s target for it", e.Need, e.Got, e.Need)
}

// restoreKind is the registry's restore of kind airflow: target is the new
// AIRFLOW_HOME.
func restoreKind(ctx context.Context, src source.Reader, target string, o source.RestoreOptions) (*source.Restored, error) {
	res, err := Restore(ctx, src, RestoreOptions{Home: target, DatabaseKind: o.DatabaseKind, Database: o.Database,
		Owner: o.Owner, RewriteConfig: o.RewriteConfig, Paused: o.Paused, WithSecrets: o.WithSecrets,
		AirflowVersion: o.AirflowVersion, Jobs: o.Jobs, MemoryBudget: o.MemoryBudget})
	if err != nil {
		return nil, err
	}
	return res.Restored(), nil
}

// Restore restores the airflow source src as a whole deployment, as
// described above.
func Restore(ctx context.Context, src source.Reader, o RestoreOptions) (_ *Result, err error) {
	var info Meta
	if err := src.Meta(MetaKey, &info); err != nil {
		return nil, fmt.Errorf("source %s is not an airflow snapshot: %w", src.Name(), err)
	}
	if info.MetaDBKind == "" {
		return nil, fmt.Errorf("source %s records no metadata database kind", src.Name())
	}
	if o.DatabaseKind != info.MetaDBKind {
		return nil, &DatabaseKindError{Need: info.MetaDBKind, Got: o.DatabaseKind}
	}
	if o.Database == "" {
		return nil, &DatabaseKindError{Need: info.MetaDBKind}
	}
	if o.AirflowVersion != "" {
		if err := checkVersion(o.AirflowVersion, info.AlembicRevision); err != nil {
			return nil, err
		}
	}
	if o.Owner != "" && info.MetaDBKind == "sqlite" {
		return nil, errors.New("a SQLite metadata database has no owner to set")
	}
	tr, ok := src.(source.TreeRestorer)
	if !ok {
		return nil, fmt.Errorf("source %s: this reader cannot restore folders", src.Name())
	}
	var secrets Secrets
	err = src.Meta(SecretsMetaKey, &secrets)
	hasSecrets := err == nil
	if err != nil && !errors.Is(err, source.ErrNoMeta) {
		return nil, fmt.Errorf("source %s: secrets: %w", src.Name(), err)
	}
	if o.WithSecrets && (!hasSecrets || len(secretValues(secrets)) == 0) {
		return nil, fmt.Errorf("source %s: %w", src.Name(), ErrNoSecrets)
	}
	home, err := filepath.Abs(o.Home)
	if err != nil {
		return nil, err
	}
	if err := checkHome(home); err != nil {
		return nil, err
	}
	parent := filepath.Dir(home)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, err
	}
	staging := filepath.Join(parent, ".coffer-airflow-"+randomHex())
	if err := os.Mkdir(staging, 0o700); err != nil {
		return nil, fmt.Errorf("create staging folder: %w", err)
	}
	res := &Result{Home: home, DatabaseKind: info.MetaDBKind, AlembicRevision: info.AlembicRevision,
		AirflowVersion: info.AirflowVersion, HasSecrets: hasSecrets, meta: info}
	if res.AirflowVersion == "" {
		res.AirflowVersion = AirflowVersion(info.AlembicRevision)
	}
	var undo func() error
	done := false
	defer func() {
		if done {
			return
		}
		if undo != nil {
			if uerr := undo(); uerr != nil && err != nil {
				err = fmt.Errorf("%w; undoing the metadata database restore failed, remove it by hand: %v", err, uerr)
			}
		}
		os.RemoveAll(staging)
	}()

	// 1. The metadata database.
	db, err := restoreMetadb(ctx, src, info, o, home, staging)
	if err != nil {
		return nil, err
	}
	undo = db.undo
	res.Owner, res.OwnerLine, res.OwnerNotes = db.owner, db.ownerLine, db.ownerNotes
	res.Connection = redactURL(db.conn)
	dag := "dag"
	if info.MetaDBKind == "postgres" && info.MetaDBSchema != "" {
		dag = pgx.Identifier{info.MetaDBSchema, "dag"}.Sanitize()
	}
	if o.Paused {
		if res.DAGs, res.Paused, err = pauseDAGs(ctx, info.MetaDBKind, db.target, dag); err != nil {
			return nil, fmt.Errorf("pause the DAGs of the restored database: %w", err)
		}
		res.PausedAll = true
	} else if res.DAGs, err = countDAGs(ctx, info.MetaDBKind, db.target, dag); err != nil {
		return nil, fmt.Errorf("count the DAGs of the restored database: %w", err)
	}

	// 2. AIRFLOW_HOME, in the staging folder.
	for _, part := range []string{PartDags, PartPlugins, PartLogs} {
		e, ok := source.Lookup(src, part)
		if !ok {
			continue
		}
		if e.Type != source.TypeDir {
			return nil, fmt.Errorf("source %s: %s is a %s, not a folder", src.Name(), part, e.Type)
		}
		n, b, err := tr.RestoreTree(ctx, part, filepath.Join(staging, part))
		if err != nil {
			return nil, fmt.Errorf("restore %s: %w", part, err)
		}
		res.Parts = append(res.Parts, part)
		res.Files += n
		res.Bytes += b
	}
	if err := restoreConfigFiles(ctx, src, info, o, db, home, staging, secrets, res); err != nil {
		return nil, err
	}
	if o.WithSecrets {
		names, err := writeSecrets(filepath.Join(staging, "secrets.env"), secrets)
		if err != nil {
			return nil, err
		}
		res.SecretsFile, res.SecretNames = filepath.Join(home, "secrets.env"), names
	}

	// 3. The folder becomes the target.
	if err := syncTree(staging); err != nil {
		return nil, fmt.Errorf("sync restored files: %w", err)
	}
	if err := os.Rename(staging, home); err != nil {
		return nil, fmt.Errorf("move the restored deployment into place: %w", err)
	}
	if d, err := os.Open(parent); err == nil {
		d.Sync()
		d.Close()
	}
	done = true
	res.NextSteps = nextSteps(res, o, db)
	return res, nil
}

// checkHome accepts a missing folder or an empty one.
func checkHome(home string) error {
	fi, err := os.Lstat(home)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%w: %s", ErrHomeNotEmpty, home)
	}
	des, err := os.ReadDir(home)
	if err != nil {
		return err
	}
	if len(des) > 0 {
		return fmt.Errorf("%w: %s", ErrHomeNotEmpty, home)
	}
	return nil
}

// metadb is a restored metadata database.
type metadb struct {
	target     string // DSN, or the SQLite file where it is now (maybe in staging)
	final      string // the SQLite file's final path
	conn       string // SQLAlchemy URL, for airflow.cfg
	connUser   string // the user conn connects as
	passwordOK bool   // conn carries the target's password (or needs none)
	owner      string
	ownerLine  string
	ownerNotes []string
	sourceDB   string // the database's name at the source
	undo       func() error
}

func restoreMetadb(ctx context.Context, src source.Reader, info Meta, o RestoreOptions, home, staging string) (*metadb, error) {
	sub := source.Sub(src, PartMetaDB, info.MetaDBKind)
	db := &metadb{target: o.Database}
	switch info.MetaDBKind {
	case "postgres":
		var pi postgres.Info
		if err := sub.Meta(postgres.MetaKey, &pi); err == nil {
			db.sourceDB = pi.Database
		}
		r, err := postgres.Restore(ctx, sub, o.Database, postgres.Options{Owner: o.Owner, Jobs: o.Jobs, MemoryBudget: o.MemoryBudget})
		if err != nil {
			return nil, fmt.Errorf("restore the metadata database: %w", err)
		}
		db.undo = func() error {
			uctx, cancel := undoContext(ctx)
			defer cancel()
			return postgres.DropDatabase(uctx, o.Database)
		}
		if r.Owner != nil {
			db.owner, db.ownerLine, db.ownerNotes = r.Owner.Role, r.Owner.String(), r.Owner.Notes()
		}
		if db.conn, err = postgres.SQLAlchemyURL(o.Database, db.owner); err != nil {
			return nil, err
		}
	case "mysql":
		var mi mysql.Info
		if err := sub.Meta(mysql.MetaKey, &mi); err == nil {
			db.sourceDB = mi.Database
		}
		r, err := mysql.Restore(ctx, sub, o.Database, mysql.Options{Owner: o.Owner})
		if err != nil {
			return nil, fmt.Errorf("restore the metadata database: %w", err)
		}
		db.undo = func() error {
			uctx, cancel := undoContext(ctx)
			defer cancel()
			return mysql.DropDatabase(uctx, o.Database, r.Grants)
		}
		user := ""
		if r.Grants != nil {
			db.ownerLine = r.Grants.String()
			if acc := r.Grants.Owner(); acc != "" {
				db.owner = acc
				user, _, _ = mysql.ParseAccount(acc)
			}
		}
		if db.conn, err = mysql.SQLAlchemyURL(o.Database, user); err != nil {
			return nil, err
		}
	case "sqlite":
		final, err := filepath.Abs(o.Database)
		if err != nil {
			return nil, err
		}
		db.final, db.target = final, final
		if rel, err := filepath.Rel(home, final); err == nil && rel != "." && !strings.HasPrefix(rel, "..") {
			// Inside the new home: restored into the staging folder,
			// which becomes home.
			db.target = filepath.Join(staging, rel)
			if err := os.MkdirAll(filepath.Dir(db.target), 0o700); err != nil {
				return nil, err
			}
		}
		if err := sqlite.Restore(ctx, sub, db.target, false); err != nil {
			return nil, fmt.Errorf("restore the metadata database: %w", err)
		}
		if db.target == final {
			db.undo = func() error { return os.Remove(final) }
		}
		db.conn = "sqlite:///" + final
		db.passwordOK = true
		return db, nil
	default:
		return nil, fmt.Errorf("metadata database kind %q is not one coffer restores", info.MetaDBKind)
	}
	if u, err := url.Parse(db.conn); err == nil && u.User != nil {
		db.connUser = u.User.Username()
		_, db.passwordOK = u.User.Password()
	}
	return db, nil
}

// pauseDAGs pauses every DAG of the restored database (its table dag,
// schema-qualified when Airflow uses a schema of its own) and returns how
// many there are and how many it paused. The statement is the same on
// PostgreSQL, MySQL and SQLite.
func pauseDAGs(ctx context.Context, kind, target, dag string) (total, paused int, err error) {
	err = withDB(ctx, kind, target, func(exec func(string) (int64, error), count func(string) (int, error)) error {
		n, err := exec("UPDATE " + dag + " SET is_paused = TRUE WHERE is_paused IS NULL OR NOT is_paused")
		if err != nil {
			return err
		}
		paused = int(n)
		total, err = count("SELECT COUNT(*) FROM " + dag)
		return err
	})
	return total, paused, err
}

func countDAGs(ctx context.Context, kind, target, dag string) (total int, err error) {
	err = withDB(ctx, kind, target, func(_ func(string) (int64, error), count func(string) (int, error)) error {
		total, err = count("SELECT COUNT(*) FROM " + dag)
		return err
	})
	return total, err
}

// withSQL hands f a statement runner and a counter over db.
func withSQL(ctx context.Context, db *sql.DB, f func(exec func(string) (int64, error), count func(string) (int, error)) error) error {
	return f(func(q string) (int64, error) {
		r, err := db.ExecContext(ctx, q)
		if err != nil {
			return 0, err
		}
		return r.RowsAffected()
	}, func(q string) (int, error) {
		var n int
		err := db.QueryRowContext(ctx, q).Scan(&n)
		return n, err
	})
}

// withDB connects to the restored database and hands f a statement runner
// and a counter.
func withDB(ctx context.Context, kind, target string, f func(exec func(string) (int64, error), count func(string) (int, error)) error) error {
	switch kind {
	case "postgres":
		conn, err := postgres.Connect(ctx, target)
		if err != nil {
			return err
		}
		defer conn.Close(context.WithoutCancel(ctx))
		return f(func(q string) (int64, error) {
			tag, err := conn.Exec(ctx, q)
			return tag.RowsAffected(), err
		}, func(q string) (int, error) {
			var n int
			err := conn.QueryRow(ctx, q).Scan(&n)
			return n, err
		})
	case "mysql":
		cfg, err := mysql.ParseDSN(target)
		if err != nil {
			return err
		}
		db, err := mysql.Open(ctx, cfg)
		if err != nil {
			return err
		}
		defer db.Close()
		return withSQL(ctx, db, f)
	case "sqlite":
		db, err := sqlite.Open(target, false)
		if err != nil {
			return err
		}
		defer db.Close()
		return withSQL(ctx, db, f)
	}
	return fmt.Errorf("unknown database kind %q", kind)
}

// configFiles maps the snapshot's config/ files to their place in
// AIRFLOW_HOME; other files under config/ go to AIRFLOW_HOME itself.
var configFiles = map[string]string{
	CfgAirflow:       "airflow.cfg",
	CfgWebserver:     "webserver_config.py",
	CfgLocalSettings: "config/airflow_local_settings.py",
}

func restoreConfigFiles(ctx context.Context, src source.Reader, info Meta, o RestoreOptions, db *metadb, home, staging string, secrets Secrets, res *Result) error {
	var files []source.Entry
	for _, e := range src.Entries() {
		if e.Type == source.TypeFile && strings.HasPrefix(e.Path, PartConfig+"/") {
			files = append(files, e)
		}
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	for _, e := range files {
		name := strings.TrimPrefix(e.Path, PartConfig+"/")
		rel, ok := configFiles[name]
		if !ok {
			rel = name
		}
		if rel == "" {
			continue
		}
		if !filepath.IsLocal(rel) {
			return fmt.Errorf("source %s: %s is not a path inside AIRFLOW_HOME", src.Name(), e.Path)
		}
		data, err := readAll(ctx, src, e.Path)
		if err != nil {
			return err
		}
		if name == CfgAirflow && o.RewriteConfig {
			rw := rewriteFor(data, info, db, home, secrets)
			rw.pausedAtCreation = o.Paused
			data, res.ConfigChanges = rewriteConfig(data, rw)
			res.ConfigRewritten = true
		}
		dst := filepath.Join(staging, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			return err
		}
		mode := e.Mode.Perm()
		if mode == 0 {
			mode = 0o600
		}
		if name == CfgAirflow && o.RewriteConfig && connHasPassword(db.conn) {
			mode &^= 0o077 // the restored database's password is in it
		}
		if err := writeFileExcl(dst, data, mode); err != nil {
			return err
		}
		res.Parts = append(res.Parts, rel)
		res.Files++
		res.Bytes += int64(len(data))
	}
	return nil
}

func readAll(ctx context.Context, src source.Reader, p string) ([]byte, error) {
	rc, err := src.Open(ctx, p)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	return b, nil
}

func writeFileExcl(p string, data []byte, mode fs.FileMode) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// undoContext is the context an undo runs in: not cancelled with ctx (a
// Ctrl-C must not leave a half-restored database), bounded by a timeout.
func undoContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
}

// connHasPassword reports whether a SQLAlchemy URL holds a password.
func connHasPassword(conn string) bool {
	u, err := source.ParseSQLAlchemyURL(conn)
	return err != nil || u.Password != "" || u.Redacted() != u.String()
}

// rewriteFor gathers what rewriteConfig must replace and remove.
func rewriteFor(cfg []byte, info Meta, db *metadb, home string, secrets Secrets) cfgRewrite {
	rw := cfgRewrite{home: home, conn: db.conn, executor: "LocalExecutor"}
	if info.MetaDBKind == "sqlite" && !strings.HasPrefix(AirflowVersion(info.AlembicRevision)+info.AirflowVersion, "3") {
		rw.executor = "SequentialExecutor"
	}
	for _, p := range []string{info.Home, info.DagsFolder, info.PluginsFolder, info.LogFolder} {
		if p = strings.TrimRight(p, "/"); p != "" {
			rw.sourcePaths = append(rw.sourcePaths, p)
		}
	}
	if info.ConfigPath != "" {
		if d := filepath.Dir(info.ConfigPath); d != "/" && d != "." {
			rw.sourcePaths = append(rw.sourcePaths, d)
		}
	}
	// Longest first, so that /opt/airflow/dags is rebased before
	// /opt/airflow.
	sort.Slice(rw.sourcePaths, func(i, j int) bool { return len(rw.sourcePaths[i]) > len(rw.sourcePaths[j]) })
	if db.sourceDB != "" {
		rw.sourceDBs = append(rw.sourceDBs, db.sourceDB)
	}
	rw.sourceSecret = secretValues(secrets)
	for _, c := range parseCfgLines(cfg) {
		if c.key == "" {
			continue
		}
		if contains(secretKeys[c.section], c.key) {
			if v := c.value(); v != "" {
				rw.sourceSecret = append(rw.sourceSecret, v)
			}
		}
		if c.key == "sql_alchemy_conn" && (c.section == "database" || c.section == "core") {
			host, name, pw, file := parseSQLAlchemyURL(c.value())
			if host != "" && !loopback[strings.ToLower(host)] {
				rw.sourceHosts = append(rw.sourceHosts, host)
			}
			if name != "" {
				rw.sourceDBs = append(rw.sourceDBs, name)
			}
			if pw != "" {
				rw.sourceSecret = append(rw.sourceSecret, pw)
			}
			if file != "" {
				rw.sourcePaths = append(rw.sourcePaths, file)
			}
		}
	}
	return rw
}

var loopback = map[string]bool{"localhost": true, "127.0.0.1": true, "::1": true, "[::1]": true}

// parseSQLAlchemyURL picks the host, database, password and (SQLite) file
// out of a SQLAlchemy URL; what it cannot parse it leaves empty.
func parseSQLAlchemyURL(s string) (host, db, password, file string) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "sqlite:") {
		file = strings.TrimPrefix(strings.TrimPrefix(s, "sqlite:"), "///")
		file, _, _ = strings.Cut(file, "?")
		return "", "", "", file
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", "", "", ""
	}
	if u.User != nil {
		password, _ = u.User.Password()
	}
	return u.Hostname(), strings.TrimPrefix(u.Path, "/"), password, ""
}

// redactURL masks the password of a URL.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

var envSafe = regexp.MustCompile(`^[A-Za-z0-9_=+/.,:@%-]*$`)

// writeSecrets writes the secrets as AIRFLOW__ environment variables, one
// per line, in a new file of mode 0600; it returns their names.
func writeSecrets(p string, s Secrets) ([]string, error) {
	var b strings.Builder
	b.WriteString("# Airflow secrets restored by coffer. Keep this file private; load it with: set -a; . ./secrets.env; set +a\n")
	var names []string
	for _, kv := range [][2]string{
		{"AIRFLOW__CORE__FERNET_KEY", s.FernetKey},
		{"AIRFLOW__WEBSERVER__SECRET_KEY", s.WebserverSecretKey},
		{"AIRFLOW__API__SECRET_KEY", s.APISecretKey},
		{"AIRFLOW__API_AUTH__JWT_SECRET", s.JWTSecret},
	} {
		if kv[1] == "" {
			continue
		}
		v := kv[1]
		if !envSafe.MatchString(v) {
			v = "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
		}
		fmt.Fprintf(&b, "%s=%s\n", kv[0], v)
		names = append(names, kv[0])
	}
	if err := writeFileExcl(p, []byte(b.String()), 0o600); err != nil {
		return nil, fmt.Errorf("write secrets: %w", err)
	}
	return names, nil
}

func randomHex() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// syncTree makes the restored files durable before the rename.
func syncTree(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Syncfs(int(f.Fd()))
}

// Restored says what the restore did, for the command line.
func (r *Result) Restored() *source.Restored {
	out := &source.Restored{NextSteps: r.NextSteps}
	out.Lines = append(out.Lines, fmt.Sprintf("metadata database (%s): %s; fingerprints match the backup", r.DatabaseKind, r.Connection))
	if r.OwnerLine != "" {
		out.Lines = append(out.Lines, "  "+r.OwnerLine)
	}
	for _, n := range r.OwnerNotes {
		out.Lines = append(out.Lines, "  "+n)
	}
	out.Lines = append(out.Lines, "schema: "+describeVersion(r.AlembicRevision, r.AirflowVersion))
	if r.PausedAll {
		out.Lines = append(out.Lines, fmt.Sprintf("DAGs: %d, all paused (%d were not)", r.DAGs, r.Paused))
	} else {
		out.Lines = append(out.Lines, fmt.Sprintf("DAGs: %d, paused or not as at backup time", r.DAGs))
	}
	parts := strings.Join(r.Parts, ", ")
	if g := r.meta.DagsGit; g != nil && g.Head != "" {
		state := "clean"
		if g.Dirty {
			state = "with uncommitted changes"
		}
		parts = strings.Replace(parts, PartDags, fmt.Sprintf("dags (git %s on %s, %s)", short(g.Head), orUnknown(g.Branch), state), 1)
	}
	out.Lines = append(out.Lines, fmt.Sprintf("AIRFLOW_HOME %s: %s; %d files, %s", r.Home, parts, r.Files, units.Bytes(r.Bytes)))
	if r.ConfigRewritten {
		out.Lines = append(out.Lines, "airflow.cfg rewritten for this restore:")
		for _, c := range r.ConfigChanges {
			out.Lines = append(out.Lines, "  "+c)
		}
	}
	if r.SecretsFile != "" {
		out.Lines = append(out.Lines, fmt.Sprintf("secrets: %s (mode 0600): %s", r.SecretsFile, strings.Join(r.SecretNames, ", ")))
	}
	out.Facts = map[string]any{
		"home": r.Home, "database_kind": r.DatabaseKind, "database": r.Connection, "owner": r.Owner,
		"alembic_revision": r.AlembicRevision, "airflow_version": r.AirflowVersion, "dags": r.DAGs,
		"paused": r.Paused, "all_paused": r.PausedAll, "parts": r.Parts, "files": r.Files, "bytes": r.Bytes,
		"config_rewritten": r.ConfigRewritten, "config_changes": r.ConfigChanges, "secrets_file": r.SecretsFile,
		"secrets": r.SecretNames,
	}
	return out
}

func describeVersion(rev, version string) string {
	if rev == "" {
		return "Alembic revision not recorded"
	}
	if version == "" {
		return "Alembic revision " + rev + " (an Airflow version coffer does not know)"
	}
	return "Alembic revision " + rev + " (Airflow " + version + ")"
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

// nextSteps says how to start Airflow on the restored state. It names
// Airflow's commands, never coffer's flags.
func nextSteps(r *Result, o RestoreOptions, db *metadb) []string {
	var s []string
	s = append(s, "export AIRFLOW_HOME="+shellQuote(r.Home))
	if r.meta.ConfigPath != "" && r.meta.ConfigPath != path.Join(r.meta.Home, "airflow.cfg") {
		s = append(s, "unset AIRFLOW_CONFIG   # the restored airflow.cfg is in AIRFLOW_HOME")
	}
	if names := envSettings(r.meta.Origins); len(names) > 0 {
		s = append(s, "unset "+strings.Join(names, " ")+"   # the source took these settings from its environment; they would override the restored airflow.cfg")
	}
	switch {
	case r.SecretsFile != "":
		s = append(s, "set -a; . "+shellQuote(r.SecretsFile)+"; set +a   # the Fernet key(s) and secret keys")
	case r.HasSecrets:
		s = append(s, "provide the source's Fernet key(s) as AIRFLOW__CORE__FERNET_KEY: the restored connections and variables are encrypted with them")
	}
	if !o.RewriteConfig {
		s = append(s, "check "+shellQuote(filepath.Join(r.Home, "airflow.cfg"))+" first: it still names the source's database, folders and services")
	} else if !db.passwordOK && db.connUser != "" {
		s = append(s, fmt.Sprintf("sql_alchemy_conn connects as %s without a password: add it, or set AIRFLOW__DATABASE__SQL_ALCHEMY_CONN, if the server asks for one", db.connUser))
	}
	s = append(s, "airflow db check   # reaches the restored database")
	if r.AirflowVersion != "" {
		s = append(s, fmt.Sprintf("run Airflow %s: the schema is at its Alembic revision %s, and airflow db migrate with a newer Airflow changes it irreversibly", r.AirflowVersion, r.AlembicRevision))
	}
	if strings.HasPrefix(r.AirflowVersion, "3") {
		s = append(s, "airflow api-server; airflow scheduler; airflow dag-processor   # each in its own terminal")
	} else {
		s = append(s, "airflow scheduler; airflow webserver   # each in its own terminal")
	}
	if r.PausedAll {
		s = append(s, "every DAG is paused: airflow dags unpause DAG_ID to run one")
	}
	return s
}

var airflowEnvName = regexp.MustCompile(`^AIRFLOW__[A-Za-z0-9_]+$`)

// envSettings names, sorted, the AIRFLOW__ variables the source's
// discovery took from the process environment (not from its env file).
func envSettings(origins map[string]Origin) []string {
	var names []string
	for _, o := range origins {
		name, ok := strings.CutPrefix(string(o), "env ")
		if !ok {
			continue
		}
		if f := strings.Fields(name); len(f) > 0 && airflowEnvName.MatchString(f[0]) {
			names = append(names, f[0])
		}
	}
	return dedupSorted(names)
}

func shellQuote(s string) string {
	if envSafe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

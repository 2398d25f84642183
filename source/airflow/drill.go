package airflow

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer/source"
	"github.com/cofferhq/coffer/source/airflow/fernet"
	"github.com/cofferhq/coffer/source/mysql"
	"github.com/cofferhq/coffer/source/postgres"
	"github.com/cofferhq/coffer/source/sqlite"
)

// Drill runs a restore drill's Airflow checks on the deployment Restore
// restored into home (with RewriteConfig and Paused), its metadata
// database at o.Database:
//
//   - the metadata database's own checks (its kind's Drill: the engine's
//     check, the user checks);
//   - "alembic": the Alembic revision maps to a known Airflow version and
//     is the restored database's;
//   - "fernet": the snapshot's Fernet keys decrypt every encrypted value
//     of the restored database;
//   - "dag-files": every DAG file the database references (dag.fileloc,
//     relative to the recorded dags_folder) exists in the restored DAGs
//     folder;
//   - "git-head": the restored DAG repository's HEAD is the recorded one;
//   - "owner-writes": the role the deployment connected as may write every
//     restored table (PostgreSQL);
//   - "config": the restored airflow.cfg names the restored database and
//     folders, and every DAG is paused.
func Drill(ctx context.Context, src source.Reader, home string, o source.DrillOptions) []source.DrillCheck {
	var info Meta
	if err := src.Meta(MetaKey, &info); err != nil {
		return []source.DrillCheck{{Name: "airflow", Result: source.DrillFail, Detail: "not an airflow snapshot: " + err.Error()}}
	}
	var out []source.DrillCheck
	add := func(name string, r source.DrillResult, format string, args ...any) {
		out = append(out, source.DrillCheck{Name: name, Result: r, Detail: fmt.Sprintf(format, args...)})
	}
	sub := source.Sub(src, PartMetaDB, info.MetaDBKind)
	switch info.MetaDBKind {
	case "postgres":
		out = append(out, postgres.Drill(ctx, sub, o.Database, o)...)
	case "mysql":
		out = append(out, mysql.Drill(ctx, sub, o.Database, o)...)
	case "sqlite":
		out = append(out, sqlite.Drill(ctx, sub, o.Database, o)...)
	}

	q, closeQ, err := openQuerier(ctx, info, o.Database)
	if err != nil {
		add("metadb", source.DrillFail, "connect to the restored metadata database: %v", err)
		return out
	}
	defer closeQ()

	// Alembic revision and version.
	db, err := inspectDB(ctx, q, nil)
	switch {
	case err != nil:
		add("alembic", source.DrillFail, "read the restored database: %v", err)
	case db.alembic != info.AlembicRevision:
		add("alembic", source.DrillFail, "restored database has Alembic revision %q, the snapshot recorded %q", db.alembic, info.AlembicRevision)
	case AirflowVersion(info.AlembicRevision) == "":
		add("alembic", source.DrillFail, "Alembic revision %q maps to no Airflow version coffer knows", info.AlembicRevision)
	default:
		add("alembic", source.DrillPass, "Alembic revision %s is Airflow %s", info.AlembicRevision, AirflowVersion(info.AlembicRevision))
	}

	// Fernet keys against the restored values.
	var secrets Secrets
	if err := src.Meta(SecretsMetaKey, &secrets); err != nil && !errors.Is(err, source.ErrNoMeta) {
		add("fernet", source.DrillFail, "read the snapshot's secrets: %v", err)
	} else {
		out = append(out, fernetCheck(ctx, q, secrets))
	}

	out = append(out, dagFiles(ctx, q, info, home))
	out = append(out, gitHead(ctx, info, home))
	if c, ok := ownerWrites(ctx, info, o.Database); ok {
		out = append(out, c)
	}
	out = append(out, configCheck(ctx, q, info, home, o.Database))
	return out
}

func fernetCheck(ctx context.Context, q querier, secrets Secrets) source.DrillCheck {
	c := source.DrillCheck{Name: "fernet"}
	var keys []fernet.Key
	if secrets.FernetKey != "" {
		var err error
		if keys, err = fernet.ParseKeys(secrets.FernetKey); err != nil {
			c.Result, c.Detail = source.DrillFail, "the snapshot's Fernet key does not parse: "+err.Error()
			return c
		}
	}
	db, err := inspectDB(ctx, q, keys)
	fc := db.fernet
	switch {
	case err != nil:
		c.Result, c.Detail = source.DrillFail, "read the encrypted values: "+err.Error()
	case fc.Encrypted == 0:
		c.Result, c.Detail = source.DrillPass, "no encrypted values in the restored database"
	case len(keys) == 0:
		c.Result, c.Detail = source.DrillFail, fmt.Sprintf("the snapshot holds no Fernet key, and %d values are encrypted", fc.Encrypted)
	case fc.Failed > 0:
		c.Result, c.Detail = source.DrillFail, fmt.Sprintf("the snapshot's Fernet key(s) do not decrypt %d of %d encrypted values: %s",
			fc.Failed, fc.Encrypted, strings.Join(fc.Failures, ", "))
	default:
		c.Result, c.Detail = source.DrillPass, fmt.Sprintf("%d Fernet key(s) decrypt all %d encrypted values", len(keys), fc.Encrypted)
	}
	return c
}

// dagFiles checks that every dag.fileloc under the recorded dags_folder
// exists, relative to it, in HOME/dags.
func dagFiles(ctx context.Context, q querier, info Meta, home string) source.DrillCheck {
	c := source.DrillCheck{Name: "dag-files"}
	rows, err := q.rows(ctx, "select dag_id, fileloc from "+q.ident("dag")+" order by dag_id")
	if err != nil {
		c.Result, c.Detail = source.DrillFail, "read dag.fileloc: "+err.Error()
		return c
	}
	dags := filepath.Join(home, PartDags)
	from := filepath.Clean(info.DagsFolder)
	seen := map[string]bool{}
	var missing, outside []string
	for _, r := range rows {
		if r[1] == nil || *r[1] == "" {
			continue
		}
		loc := filepath.Clean(*r[1])
		if seen[loc] {
			continue
		}
		seen[loc] = true
		rel, err := filepath.Rel(from, loc)
		if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
			outside = append(outside, str(r[0]))
			continue
		}
		if fi, err := os.Stat(filepath.Join(dags, rel)); err != nil || !fi.Mode().IsRegular() {
			missing = append(missing, rel)
		}
	}
	// DAG files recorded outside dags_folder: the deployment moved (or
	// the files live elsewhere). Compare them relative to their common
	// folder.
	moved := ""
	if len(outside) > 0 {
		moved = commonDir(outsideLocs(rows, from))
		for _, loc := range outsideLocs(rows, from) {
			rel, err := filepath.Rel(moved, loc)
			if err != nil || strings.HasPrefix(rel, "..") {
				continue
			}
			if fi, err := os.Stat(filepath.Join(dags, rel)); err != nil || !fi.Mode().IsRegular() {
				missing = append(missing, loc)
			}
		}
	}
	switch {
	case len(missing) > 0:
		c.Result, c.Detail = source.DrillFail, fmt.Sprintf("%d of %d DAG files the database references are missing from the restored DAGs folder: %s",
			len(missing), len(seen), strings.Join(first(missing, 10), ", "))
	case len(outside) > 0:
		c.Result, c.Detail = source.DrillWarn, fmt.Sprintf("all %d DAG files the database references are in the restored DAGs folder, but %d DAGs (%s) are recorded under %s, not under dags_folder %s (the deployment moved?)",
			len(seen), len(outside), strings.Join(first(outside, 5), ", "), moved, info.DagsFolder)
	default:
		c.Result, c.Detail = source.DrillPass, fmt.Sprintf("all %d DAG files the database references are in the restored DAGs folder", len(seen))
	}
	return c
}

// outsideLocs returns the distinct DAG file locations of rows that are not
// under dir.
func outsideLocs(rows [][]*string, dir string) []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range rows {
		if r[1] == nil || *r[1] == "" {
			continue
		}
		loc := filepath.Clean(*r[1])
		if rel, err := filepath.Rel(dir, loc); err == nil && rel != "." && !strings.HasPrefix(rel, "..") {
			continue
		}
		if !seen[loc] {
			seen[loc] = true
			out = append(out, loc)
		}
	}
	return out
}

// commonDir is the deepest folder that holds every path.
func commonDir(paths []string) string {
	if len(paths) == 0 {
		return ""
	}
	dir := filepath.Dir(paths[0])
	for _, p := range paths[1:] {
		for dir != "/" && dir != "." {
			if rel, err := filepath.Rel(dir, p); err == nil && !strings.HasPrefix(rel, "..") {
				break
			}
			dir = filepath.Dir(dir)
		}
	}
	return dir
}

func first(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], fmt.Sprintf("and %d more", len(s)-n))
	}
	return s
}

func gitHead(ctx context.Context, info Meta, home string) source.DrillCheck {
	c := source.DrillCheck{Name: "git-head"}
	if info.DagsGit == nil {
		c.Result, c.Detail = source.DrillPass, "the DAGs folder was not a git repository at backup time: nothing to compare"
		return c
	}
	if info.DagsGit.Toplevel != "" {
		c.Result, c.Detail = source.DrillWarn, "the DAGs folder's git repository is "+info.DagsGit.Toplevel+", outside the snapshot: HEAD not compared"
		return c
	}
	cmd := exec.CommandContext(ctx, "git", "-c", "safe.directory=*", "rev-parse", "HEAD")
	cmd.Dir = filepath.Join(home, PartDags)
	cmd.Env = gitEnv()
	b, err := cmd.Output()
	if err != nil {
		c.Result, c.Detail = source.DrillFail, "git rev-parse HEAD in the restored DAGs folder failed: "+err.Error()
		return c
	}
	got := strings.TrimSpace(string(b))
	if got != info.DagsGit.Head {
		c.Result, c.Detail = source.DrillFail, fmt.Sprintf("restored HEAD %s, recorded %s", short(got), short(info.DagsGit.Head))
		return c
	}
	c.Result, c.Detail = source.DrillPass, "HEAD "+short(got)+" as recorded"
	return c
}

// ownerWrites checks, on PostgreSQL, that the role the deployment
// connected as may write every restored table.
func ownerWrites(ctx context.Context, info Meta, dsn string) (source.DrillCheck, bool) {
	c := source.DrillCheck{Name: "owner-writes"}
	switch info.MetaDBKind {
	case "postgres":
	case "mysql":
		c.Result, c.Detail = source.DrillWarn, "not checked for MySQL: grants are restored to the accounts that exist on the drill server"
		return c, true
	default:
		return c, false
	}
	role := info.Owner.DBUser
	if role == "" {
		c.Result, c.Detail = source.DrillWarn, "the snapshot does not record which role the deployment connects as"
		return c, true
	}
	n, denied, err := postgres.CanWrite(ctx, dsn, role)
	switch {
	case errors.Is(err, postgres.ErrNoSuchRole):
		c.Result, c.Detail = source.DrillWarn, fmt.Sprintf("role %s does not exist on the drill server: not checked", role)
	case err != nil:
		c.Result, c.Detail = source.DrillFail, err.Error()
	case len(denied) > 0:
		c.Result, c.Detail = source.DrillFail, fmt.Sprintf("role %s may not write %d of %d tables: %s", role, len(denied), n, strings.Join(first(denied, 10), ", "))
	default:
		c.Result, c.Detail = source.DrillPass, fmt.Sprintf("role %s may insert, update and delete in all %d tables", role, n)
	}
	return c, true
}

// configCheck checks that the restored airflow.cfg connects to the
// restored database and keeps its folders inside HOME, and that every DAG
// is paused.
func configCheck(ctx context.Context, q querier, info Meta, home, database string) source.DrillCheck {
	c := source.DrillCheck{Name: "config"}
	b, err := os.ReadFile(filepath.Join(home, "airflow.cfg"))
	if err != nil {
		c.Result, c.Detail = source.DrillFail, "read the restored airflow.cfg: "+err.Error()
		return c
	}
	var problems []string
	var conn string
	for _, l := range parseCfgLines(b) {
		switch {
		case l.key == "sql_alchemy_conn" && (l.section == "database" || l.section == "core"):
			conn = l.value()
		case l.key == "dags_folder" || l.key == "plugins_folder" || l.key == "base_log_folder":
			if v := l.value(); v != "" && !within(home, v) {
				problems = append(problems, fmt.Sprintf("[%s] %s is outside the restored AIRFLOW_HOME", l.section, l.key))
			}
		}
	}
	host, db, _, file := parseSQLAlchemyURL(conn)
	wantHost, wantDB, _, wantFile := targetOf(info.MetaDBKind, database)
	switch {
	case conn == "":
		problems = append(problems, "sql_alchemy_conn is not set")
	case file != "" || wantFile != "":
		if filepath.Clean(file) != filepath.Clean(wantFile) {
			problems = append(problems, "sql_alchemy_conn names another SQLite file than the restored one")
		}
	case host != wantHost || db != wantDB:
		problems = append(problems, "sql_alchemy_conn names another database than the restored one")
	}
	var unpaused int
	if rows, err := q.rows(ctx, "select count(*) from "+q.ident("dag")+" where is_paused is null or not is_paused"); err != nil {
		problems = append(problems, "count unpaused DAGs: "+err.Error())
	} else if len(rows) == 1 && rows[0][0] != nil && *rows[0][0] != "0" {
		fmt.Sscan(*rows[0][0], &unpaused)
		problems = append(problems, fmt.Sprintf("%d DAGs are not paused", unpaused))
	}
	if len(problems) > 0 {
		c.Result, c.Detail = source.DrillFail, strings.Join(problems, "; ")
		return c
	}
	c.Result, c.Detail = source.DrillPass, "airflow.cfg names only the restored database and folders; every DAG is paused"
	return c
}

func within(home, p string) bool {
	rel, err := filepath.Rel(home, p)
	return err == nil && !strings.HasPrefix(rel, "..")
}

// targetOf returns the host, database and SQLite file a restore target
// names.
func targetOf(kind, target string) (host, db, password, file string) {
	switch kind {
	case "postgres":
		cfg, err := pgx.ParseConfig(target)
		if err != nil {
			return "", "", "", ""
		}
		return cfg.Host, cfg.Database, "", ""
	case "mysql":
		cfg, err := mysql.ParseDSN(target)
		if err != nil {
			return "", "", "", ""
		}
		h, _, _ := strings.Cut(cfg.Addr, ":")
		return h, cfg.DBName, "", ""
	}
	return "", "", "", target
}

// openQuerier connects to a restored metadata database.
func openQuerier(ctx context.Context, info Meta, target string) (querier, func(), error) {
	switch info.MetaDBKind {
	case "postgres":
		conn, err := postgres.Connect(ctx, target)
		if err != nil {
			return nil, nil, err
		}
		tx, err := conn.Begin(ctx)
		if err != nil {
			conn.Close(context.WithoutCancel(ctx))
			return nil, nil, err
		}
		return pgQuerier{tx: tx, schema: info.MetaDBSchema}, func() {
			tx.Rollback(context.WithoutCancel(ctx))
			conn.Close(context.WithoutCancel(ctx))
		}, nil
	case "mysql":
		cfg, err := mysql.ParseDSN(target)
		if err != nil {
			return nil, nil, err
		}
		db, err := mysql.Open(ctx, cfg)
		if err != nil {
			return nil, nil, err
		}
		return sqlQuerier{q: db, mysql: true}, func() { db.Close() }, nil
	case "sqlite":
		db, err := sqlite.Open(target, true)
		if err != nil {
			return nil, nil, err
		}
		return sqlQuerier{q: db}, func() { db.Close() }, nil
	}
	return nil, nil, fmt.Errorf("metadata database kind %q is not one coffer restores", info.MetaDBKind)
}

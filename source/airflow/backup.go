package airflow

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer/source"
	"github.com/cofferhq/coffer/source/airflow/fernet"
	"github.com/cofferhq/coffer/source/dir"
	"github.com/cofferhq/coffer/source/mysql"
	"github.com/cofferhq/coffer/source/postgres"
	"github.com/cofferhq/coffer/source/sqlite"
)

// Backup implements source.Source: the metadata database first, then the
// folders and files, then the metadata keys airflow and airflow.secrets.
func (s *Source) Backup(ctx context.Context, w source.Writer) error {
	s.report = source.Report{}
	d, err := Discover(ctx, s.Options)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(d.DagsFolder); err != nil || !fi.IsDir() {
		why := "not a folder"
		if err != nil {
			why = unwrapPath(err).Error()
		}
		return fmt.Errorf("DAGs folder %s (core.dags_folder from %s): %s", d.DagsFolder, d.Origins["core.dags_folder"], why)
	}
	m := &Meta{Version: MetaVersion, Home: d.Home, ConfigPath: d.ConfigPath, EnvFile: d.EnvFile,
		ConfigFiles: map[string]string{}, MetaDBKind: d.MetaDB.Kind, MetaDBURL: d.MetaDB.Redacted,
		MetaDBUser: d.MetaDB.User, MetaDBSchema: d.MetaDB.Schema, DagsFolder: d.DagsFolder,
		PluginsFolder: d.PluginsFolder, LogFolder: d.LogFolder, RemoteLogging: d.RemoteLogging,
		Consistent: map[string]source.ConsistentPoint{}, Owner: Owner{DBUser: d.MetaDB.User}, Origins: d.Origins}

	// 1. The metadata database, first: see doc/design.md, "Consistency".
	info, checkErr, err := s.backupMetaDB(ctx, w, d, m)
	if err != nil {
		return err
	}
	m.Parts = append(m.Parts, PartMetaDB)
	m.AlembicRevision, m.AlembicRevisionFAB = info.alembic, info.alembicFAB
	m.AirflowVersion = AirflowVersion(info.alembic)
	m.Fernet = info.fernet
	if checkErr != nil {
		m.Fernet.Error = scrubSecrets(d, checkErr.Error())
	}
	if err := s.judgeFernet(w, d, m.Fernet, checkErr); err != nil {
		return err
	}

	// 2. The DAGs folder, .git included, with the repository's state read
	// first.
	git, err := gitState(ctx, d.DagsFolder)
	if err != nil {
		if werr := w.Warn("DAGs git state not recorded: %v", err); werr != nil {
			return werr
		}
	}
	if git != nil && git.Toplevel != "" {
		if werr := w.Warn("the DAGs folder is inside the git repository at %s, whose .git is not backed up", git.Toplevel); werr != nil {
			return werr
		}
	}
	m.DagsGit = git
	if err := s.folder(ctx, w, m, PartDags, d.DagsFolder); err != nil {
		return err
	}

	// 3. Plugins, when there are any.
	if fi, err := os.Stat(d.PluginsFolder); err == nil && fi.IsDir() {
		if err := s.folder(ctx, w, m, PartPlugins, d.PluginsFolder); err != nil {
			return err
		}
	}

	// 4. Configuration files.
	if err := s.configFiles(ctx, w, d, m); err != nil {
		return err
	}

	// 5. Task logs, when asked.
	if s.IncludeLogs {
		if d.RemoteLogging {
			if err := w.Warn("remote logging is on: only the local log folder %s is backed up", d.LogFolder); err != nil {
				return err
			}
		}
		if fi, err := os.Stat(d.LogFolder); err == nil && fi.IsDir() {
			if err := s.folder(ctx, w, m, PartLogs, d.LogFolder); err != nil {
				return err
			}
			m.Logs = true
		} else if err := w.Warn("no task logs: log folder %s does not exist", d.LogFolder); err != nil {
			return err
		}
	}

	if err := w.SetMeta(SecretsMetaKey, d.Secrets); err != nil {
		return err
	}
	return w.SetMeta(MetaKey, m)
}

// backupMetaDB dumps the metadata database through its own kind under
// metadb/, reading the Alembic revisions and checking the Fernet keys
// inside the dump's snapshot. checkErr is a failure of the check alone,
// which does not fail the backup.
func (s *Source) backupMetaDB(ctx context.Context, w source.Writer, d *Deployment, m *Meta) (info dbInfo, checkErr error, err error) {
	var keys []fernet.Key
	if d.FernetKeyErr == nil && d.Secrets.FernetKey != "" {
		keys, _ = fernet.ParseKeys(d.Secrets.FernetKey)
	}
	inspect := func(ctx context.Context, q querier) {
		info, checkErr = inspectDB(ctx, q, keys)
	}
	name := s.SourceName + "/" + PartMetaDB
	var db source.Source
	switch d.MetaDB.Kind {
	case "postgres":
		dsn, err := postgres.DSN(d.MetaDB.Location)
		if err != nil {
			return info, nil, err
		}
		db = &postgres.Source{SourceName: name, DSN: dsn, InSnapshot: func(ctx context.Context, tx pgx.Tx) error {
			// A savepoint, so that a failing query leaves the snapshot's
			// transaction usable.
			sp, err := tx.Begin(ctx)
			if err != nil {
				checkErr = err
				return nil
			}
			inspect(ctx, pgQuerier{tx: sp, schema: d.MetaDB.Schema})
			if checkErr != nil {
				return sp.Rollback(ctx)
			}
			return sp.Commit(ctx)
		}}
	case "mysql":
		db = &mysql.Source{SourceName: name, DSN: d.MetaDB.Location, InSnapshot: func(ctx context.Context, conn *sql.Conn) error {
			inspect(ctx, sqlQuerier{q: conn, mysql: true})
			return nil
		}}
	case "sqlite":
		db = &sqlite.Source{SourceName: name, Path: d.MetaDB.Location, InSnapshot: func(ctx context.Context, db *sql.DB) error {
			inspect(ctx, sqlQuerier{q: db})
			return nil
		}}
	default:
		return info, nil, fmt.Errorf("metadata database kind %q", d.MetaDB.Kind)
	}
	cw := capture(source.Prefix(w, PartMetaDB))
	if err := db.Backup(ctx, cw); err != nil {
		return info, nil, fmt.Errorf("metadata database (%s): %w", d.MetaDB.Redacted, err)
	}
	if p := cw.point(); p != nil {
		m.Consistent[PartMetaDB] = *p
	}
	return info, checkErr, nil
}

// scrubSecrets masks in s every secret of d: the Fernet keys, the other
// secret keys, and the metadata database's password.
func scrubSecrets(d *Deployment, s string) string {
	secrets := []string{d.Secrets.FernetKey, d.Secrets.WebserverSecretKey, d.Secrets.APISecretKey, d.Secrets.JWTSecret}
	secrets = append(secrets, strings.Split(d.Secrets.FernetKey, ",")...)
	if u, err := url.Parse(d.MetaDB.URL); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok {
			secrets = append(secrets, p, url.QueryEscape(p), url.PathEscape(p))
		}
	}
	for _, x := range secrets {
		if x = strings.TrimSpace(x); x != "" {
			s = strings.ReplaceAll(s, x, "***")
		}
	}
	return s
}

// judgeFernet turns the check into the report and, for anything that
// leaves the deployment unrestorable, a warning.
func (s *Source) judgeFernet(w source.Writer, d *Deployment, fc FernetCheck, checkErr error) error {
	var problems []string
	switch {
	case checkErr != nil:
		problems = append(problems, fmt.Sprintf("the Fernet key could not be checked against the metadata database: %s", scrubSecrets(d, checkErr.Error())))
	case strings.TrimSpace(d.Secrets.FernetKey) == "":
		problems = append(problems, fmt.Sprintf("no Fernet key found (looked at AIRFLOW__CORE__FERNET_KEY, its _CMD, and [core] fernet_key and fernet_key_cmd in %s): "+
			"the %d encrypted value(s) in the metadata database cannot be read by a restored Airflow", d.ConfigPath, fc.Encrypted))
	case d.FernetKeyErr != nil:
		problems = append(problems, fmt.Sprintf("the Fernet key from %s does not parse (%v): the %d encrypted value(s) cannot be read by a restored Airflow",
			d.Origins["core.fernet_key"], d.FernetKeyErr, fc.Encrypted))
	case fc.Failed > 0:
		problems = append(problems, fmt.Sprintf("%d of %d encrypted value(s) do not decrypt with the %d Fernet key(s) from %s (%s): a restored Airflow cannot read them",
			fc.Failed, fc.Checked, fc.Keys, d.Origins["core.fernet_key"], strings.Join(fc.Failures, ", ")))
	default:
		s.report.Notes = append(s.report.Notes, fmt.Sprintf("%s: snapshot holds the Fernet key(s): %d values checked", s.SourceName, fc.Checked))
	}
	for _, p := range problems {
		s.report.Unrestorable = append(s.report.Unrestorable, s.SourceName+": "+p)
		if err := w.Warn("%s", p); err != nil {
			return err
		}
	}
	return nil
}

// folder backs up a folder under prefix with the dir kind.
func (s *Source) folder(ctx context.Context, w source.Writer, m *Meta, prefix, path string) error {
	cw := capture(source.Prefix(w, prefix))
	src := &dir.Source{SourceName: s.SourceName + "/" + prefix, Path: path}
	if err := src.Backup(ctx, cw); err != nil {
		return fmt.Errorf("%s: %w", prefix, err)
	}
	if p := cw.point(); p != nil {
		m.Consistent[prefix] = *p
	}
	m.Parts = append(m.Parts, prefix)
	return nil
}

// configFiles stores airflow.cfg, webserver_config.py and
// airflow_local_settings.py under config/, following symlinks (a
// Kubernetes ConfigMap mounts its files as links).
func (s *Source) configFiles(ctx context.Context, w source.Writer, d *Deployment, m *Meta) error {
	pw := source.Prefix(w, PartConfig)
	now := time.Now()
	if err := pw.WriteEntry(ctx, source.Entry{Path: ".", Type: source.TypeDir, Mode: 0o755, ModTime: now}); err != nil {
		return err
	}
	for _, name := range []string{CfgAirflow, CfgWebserver, CfgLocalSettings} {
		p, ok := d.ConfigFiles[name]
		if !ok {
			continue
		}
		if err := writeFile(ctx, pw, name, p); err != nil {
			return fmt.Errorf("%s: %w", PartConfig, err)
		}
		m.ConfigFiles[name] = p
	}
	end := time.Now().UTC()
	m.Consistent[PartConfig] = source.ConsistentPoint{Time: now.UTC(), End: &end}
	m.Parts = append(m.Parts, PartConfig)
	return nil
}

func writeFile(ctx context.Context, w source.Writer, name, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	e := source.Entry{Path: name, Type: source.TypeFile, Mode: fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky),
		ModTime: fi.ModTime(), Size: fi.Size()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		e.UID, e.GID = int(st.Uid), int(st.Gid)
	}
	if err := w.WriteFile(ctx, e, f); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return nil
}

// errForeignRepo is gitState's error for a repository that belongs to
// another user: git would read that user's configuration, which can name
// commands (core.fsmonitor, filter drivers), so coffer does not run it there.
var errForeignRepo = errors.New("git state not recorded (repository owned by another user)")

// gitState reads the DAGs folder's repository state with the git binary:
// nil without error when the folder is in no repository.
//
// Whoever can write the repository's .git/config can make git run commands
// (core.fsmonitor, hooks, filter.<driver>.clean/process, external diff and
// textconv). So gitState runs git only in repositories owned by the current
// user (no safe.directory override), turns fsmonitor and hooks off, and uses
// only commands that never read file contents: worktree changes are found by
// comparing the index's stat data with lstat, never by hashing (which would
// run clean filters).
func gitState(ctx context.Context, dagsFolder string) (*GitState, error) {
	gitBin, err := exec.LookPath("git")
	if err != nil {
		if _, serr := os.Stat(filepath.Join(dagsFolder, ".git")); serr == nil {
			return nil, errors.New("git is not installed")
		}
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	git := func(args ...string) (string, error) {
		// Optional locks off so that nothing is written to the repository.
		cmd := exec.CommandContext(ctx, gitBin, append([]string{
			"-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null",
			"-c", "core.untrackedCache=false", "-c", "diff.external=",
			"-C", dagsFolder}, args...)...)
		cmd.Env = append(gitEnv(), "GIT_OPTIONAL_LOCKS=0", "LC_ALL=C", "GIT_TERMINAL_PROMPT=0",
			"GIT_EXTERNAL_DIFF=", "GIT_CONFIG_NOSYSTEM=1")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil && strings.Contains(stderr.String(), "dubious ownership") {
			err = errForeignRepo
		}
		return strings.TrimRight(string(out), "\n"), err
	}
	top, err := git("rev-parse", "--show-toplevel")
	if errors.Is(err, errForeignRepo) {
		return nil, err
	}
	if err != nil {
		return nil, nil // not a repository
	}
	g := &GitState{}
	if real, err := filepath.EvalSymlinks(dagsFolder); err == nil && filepath.Clean(top) != filepath.Clean(real) {
		g.Toplevel = top
	}
	if g.Head, err = git("rev-parse", "--verify", "-q", "HEAD"); err != nil {
		g.Head = "" // a repository without commits
	}
	g.Branch, _ = git("symbolic-ref", "--short", "-q", "HEAD")
	changed := map[string]bool{}
	// Staged: the index against HEAD, object ids only.
	if g.Head != "" {
		out, err := git("diff-index", "--cached", "--name-only", "--no-renames", "--no-ext-diff", "--no-textconv", "-z", "HEAD", "--")
		if err != nil {
			return nil, fmt.Errorf("git diff-index: %w", err)
		}
		for _, p := range splitNUL(out) {
			changed[p] = true
		}
	}
	// Unstaged: the index's stat data against lstat.
	idx, err := git("ls-files", "--stage", "--debug", "-z")
	if err != nil {
		return nil, fmt.Errorf("git ls-files: %w", err)
	}
	for _, e := range parseIndexDebug(idx) {
		if g.Head == "" || e.modified(top) {
			changed[e.path] = true
		}
	}
	// Untracked, without the ignored files.
	out, err := git("ls-files", "--others", "--exclude-standard", "--directory", "-z")
	if err != nil {
		return nil, fmt.Errorf("git ls-files: %w", err)
	}
	for _, p := range splitNUL(out) {
		changed[p] = true
	}
	if len(changed) > 0 {
		g.Changes = len(changed)
		g.Dirty = true
	}
	return g, nil
}

func splitNUL(s string) []string {
	var out []string
	for _, p := range strings.Split(s, "\x00") {
		if p = strings.TrimPrefix(p, "\n"); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// indexEntry is one entry of git ls-files --stage --debug -z.
type indexEntry struct {
	path           string
	mode           uint32
	mtime, mtimeNs int64
	ino, size      uint64
}

// parseIndexDebug reads "mode oid stage\tpath\0" followed by the debug lines
// ("  ctime: s:ns\n  mtime: s:ns\n  dev: d\tino: i\n  uid: u\tgid: g\n
// size: n\tflags: f\n") for each entry.
func parseIndexDebug(s string) []indexEntry {
	var out []indexEntry
	for s != "" {
		head, rest, ok := strings.Cut(s, "\x00")
		if !ok {
			break
		}
		var e indexEntry
		meta, path, _ := strings.Cut(head, "\t")
		e.path = path
		if f := strings.Fields(meta); len(f) > 0 {
			if m, err := strconv.ParseUint(f[0], 8, 32); err == nil {
				e.mode = uint32(m)
			}
		}
		// Five debug lines follow.
		for i := 0; i < 5; i++ {
			line, r, _ := strings.Cut(rest, "\n")
			rest = r
			for _, field := range strings.Split(strings.TrimSpace(line), "\t") {
				k, v, _ := strings.Cut(field, ": ")
				switch k {
				case "mtime":
					sec, ns, _ := strings.Cut(v, ":")
					e.mtime, _ = strconv.ParseInt(sec, 10, 64)
					e.mtimeNs, _ = strconv.ParseInt(ns, 10, 64)
				case "ino":
					e.ino, _ = strconv.ParseUint(v, 10, 64)
				case "size":
					e.size, _ = strconv.ParseUint(v, 10, 64)
				}
			}
		}
		out = append(out, e)
		s = rest
	}
	return out
}

// modified reports whether the worktree file differs from its index stat
// data (as git's own stat check would, without ever hashing the file).
func (e indexEntry) modified(top string) bool {
	if e.mode == 0o160000 {
		return false // a submodule
	}
	fi, err := os.Lstat(filepath.Join(top, filepath.FromSlash(e.path)))
	if err != nil {
		return true
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return true
	}
	switch e.mode &^ 0o777 {
	case 0o120000:
		if fi.Mode()&fs.ModeSymlink == 0 {
			return true
		}
	case 0o100000:
		if !fi.Mode().IsRegular() || (e.mode&0o100 != 0) != (fi.Mode()&0o100 != 0) {
			return true
		}
	}
	mt := fi.ModTime()
	if uint64(fi.Size())&0xffffffff != e.size&0xffffffff || mt.Unix()&0xffffffff != e.mtime&0xffffffff {
		return true
	}
	if e.mtimeNs != 0 && int64(mt.Nanosecond()) != e.mtimeNs {
		return true
	}
	if e.ino != 0 && uint64(st.Ino)&0xffffffff != e.ino&0xffffffff {
		return true
	}
	return false
}

// gitEnv is the process environment without the variables that point git
// at another repository.
func gitEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_CEILING_DIRECTORIES", "GIT_OBJECT_DIRECTORY":
			continue
		}
		out = append(out, kv)
	}
	return out
}

// captured is a Writer that notes the consistent point its part records.
type captured interface {
	source.Writer
	point() *source.ConsistentPoint
}

func capture(w source.Writer) captured {
	c := &captureWriter{Writer: w}
	if ct, ok := w.(source.ChangeTracker); ok {
		return &captureTracker{captureWriter: c, ChangeTracker: ct}
	}
	return c
}

type captureWriter struct {
	source.Writer
	p *source.ConsistentPoint
}

func (c *captureWriter) SetMeta(key string, v any) error {
	if p, ok := v.(source.ConsistentPoint); ok && key == source.ConsistentKey {
		c.p = &p
	}
	return c.Writer.SetMeta(key, v)
}

func (c *captureWriter) point() *source.ConsistentPoint { return c.p }

// Skip passes on what a part could not read (source.Skipper), so that a
// folder part leaves it out as it would unnested.
func (c *captureWriter) Skip(path string, err error) error {
	if s, ok := c.Writer.(source.Skipper); ok {
		return s.Skip(path, err)
	}
	return fmt.Errorf("%q: %w", path, err)
}

type captureTracker struct {
	*captureWriter
	source.ChangeTracker
}

package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cofferhq/coffer/internal/fingerprint"
	"github.com/cofferhq/coffer/source"
)

// MetaKey is the catalog metadata key of a PostgreSQL source's
// Info.
const MetaKey = "postgres"

// Names of the entries a PostgreSQL source writes.
const (
	DumpPath    = "dump.pgdump" // pg_dump -Fc -Z0
	GlobalsPath = "globals.sql" // pg_dumpall --globals-only, when asked for
)

// Info describes the database a PostgreSQL snapshot came from.
type Info struct {
	ServerVersion    string              `json:"server_version"`     // "15.20"
	ServerVersionNum int                 `json:"server_version_num"` // 150020
	Database         string              `json:"database"`
	SystemIdentifier string              `json:"system_identifier"` // pg_control_system(); identifies the cluster
	PgDumpVersion    string              `json:"pg_dump_version"`   // "15.20"
	Checks           []fingerprint.Check `json:"checks,omitempty"`  // the check queries, re-run on restore
	Globals          bool                `json:"globals,omitempty"`
	Owners           *Owners             `json:"owners,omitempty"` // see owners.go
}

// Source backs up one PostgreSQL database with pg_dump. The dump and
// the fingerprints come from one snapshot: coffer opens a REPEATABLE READ
// READ ONLY transaction, exports its snapshot to pg_dump --snapshot and
// counts rows and runs the checks inside the same transaction.
type Source struct {
	SourceName string
	DSN        string // URL or keyword/value DSN; libpq environment variables apply
	Checks     []fingerprint.Check
	Globals    bool   // also store roles and tablespaces (pg_dumpall --globals-only)
	PgDump     string // pg_dump binary; found on PATH or under /usr/lib/postgresql when empty
	// InSnapshot, when set, runs inside the dump's snapshot transaction
	// after the fingerprints (a composite kind reads what it checks from
	// the very state the dump holds). Its error fails the backup.
	InSnapshot func(ctx context.Context, tx pgx.Tx) error
}

var _ source.Source = (*Source)(nil)

func (s *Source) Name() string { return s.SourceName }
func (s *Source) Kind() string { return "postgres" }

// Backup implements source.Source.
func (s *Source) Backup(ctx context.Context, w source.Writer) error {
	conn, err := Connect(ctx, s.DSN)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	info, err := ServerInfo(ctx, conn)
	if err != nil {
		return err
	}
	info.Checks, info.Globals = s.Checks, s.Globals
	pgDump, dumpVersion, err := FindTool("pg_dump", s.PgDump, info.ServerVersion)
	if err != nil {
		return err
	}
	info.PgDumpVersion = dumpVersion
	env, err := CommandEnv(s.DSN, "")
	if err != nil {
		return err
	}

	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("postgres %s: begin: %w", info.Database, err)
	}
	// The exported snapshot lives as long as this transaction: it is rolled
	// back only after pg_dump has exited.
	defer tx.Rollback(context.WithoutCancel(ctx))
	var snapshot string
	if err := tx.QueryRow(ctx, "select pg_export_snapshot()").Scan(&snapshot); err != nil {
		return fmt.Errorf("postgres %s: export snapshot: %w", info.Database, err)
	}
	point, err := consistentPoint(ctx, tx)
	if err != nil {
		return fmt.Errorf("postgres %s: %w", info.Database, err)
	}
	if info.Owners, err = readOwners(ctx, tx); err != nil {
		return fmt.Errorf("postgres %s: %w", info.Database, err)
	}

	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	dump := startTool(dctx, pgDump, env.Env,
		"--format=custom", "--compress=0", "--snapshot="+snapshot, "--no-password", "--dbname="+env.ConnString)

	// Fingerprints are computed on the transaction's connection while the
	// dump streams; a failing check stops pg_dump.
	var (
		fp    fingerprint.Fingerprints
		fpErr error
		wg    sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		fp, fpErr = Fingerprints(ctx, tx, s.Checks)
		if fpErr != nil {
			fpErr = fmt.Errorf("fingerprints: %w", fpErr)
		} else if s.InSnapshot != nil {
			fpErr = s.InSnapshot(ctx, tx)
		}
		if fpErr != nil {
			cancel()
		}
	}()
	werr := dump.err
	blocks := newPgBlockRecorder(dump)
	if werr == nil {
		werr = w.WriteFile(ctx, source.Entry{Path: DumpPath, Type: source.TypeFile, Mode: 0o600, Size: -1, ModTime: time.Now()}, blocks)
	}
	if werr != nil {
		cancel()
	}
	dumpErr := dump.wait()
	wg.Wait()
	switch {
	case fpErr != nil:
		return fmt.Errorf("postgres %s: %w", info.Database, fpErr)
	case werr != nil && !dump.readFailed:
		return fmt.Errorf("postgres %s: store dump: %w", info.Database, werr)
	case dumpErr != nil:
		return fmt.Errorf("postgres %s: %w", info.Database, dumpErr)
	case werr != nil:
		return fmt.Errorf("postgres %s: store dump: %w", info.Database, werr)
	}

	if s.Globals {
		dumpall := filepath.Join(filepath.Dir(pgDump), "pg_dumpall")
		g := startTool(ctx, dumpall, env.Env, "--globals-only", "--no-role-passwords", "--no-password", "--dbname="+env.ConnString)
		werr := g.err
		if werr == nil {
			werr = w.WriteFile(ctx, source.Entry{Path: GlobalsPath, Type: source.TypeFile, Mode: 0o600, Size: -1, ModTime: time.Now()}, g)
		}
		if gerr := g.wait(); gerr != nil {
			return fmt.Errorf("postgres %s: globals: %w", info.Database, gerr)
		}
		if werr != nil {
			return fmt.Errorf("postgres %s: store globals: %w", info.Database, werr)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres %s: end snapshot transaction: %w", info.Database, err)
	}
	if err := w.SetMeta(fingerprint.MetaKey, fp); err != nil {
		return err
	}
	if err := w.SetMeta(source.ConsistentKey, point); err != nil {
		return err
	}
	// A dump whose blocks could not be followed is stored all the same,
	// without the list: its restore reads it whole.
	if b, ok := blocks.result(); ok {
		if err := w.SetMeta(BlocksMetaKey, b); err != nil {
			return err
		}
	}
	return w.SetMeta(MetaKey, info)
}

// consistentPoint reads the time and the WAL position right after the
// dump's snapshot was taken, in its transaction: every transaction the
// dump holds committed before that LSN. A standby reports the WAL position
// it has replayed.
func consistentPoint(ctx context.Context, tx pgx.Tx) (source.ConsistentPoint, error) {
	var p source.ConsistentPoint
	var lsn *string
	err := tx.QueryRow(ctx, `select clock_timestamp(),
		(case when pg_is_in_recovery() then pg_last_wal_replay_lsn() else pg_current_wal_lsn() end)::text`).Scan(&p.Time, &lsn)
	if err != nil {
		return p, fmt.Errorf("read WAL position: %w", err)
	}
	p.Time = p.Time.UTC()
	if lsn != nil {
		p.LSN = *lsn
	}
	return p, nil
}

// Connect connects to the database dsn names. Its error is one line
// naming the server and the database, never the password.
func Connect(ctx context.Context, dsn string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		var pe *pgconn.ParseConfigError
		if errors.As(err, &pe) {
			// Its text masks passwords; the wrapped cause may not.
			return nil, fmt.Errorf("postgres: invalid DSN: %s", pe.Error())
		}
		return nil, errors.New("postgres: invalid DSN")
	}
	return ConnectConfig(ctx, cfg)
}

// ConnectConfig is Connect for a parsed configuration.
func ConnectConfig(ctx context.Context, cfg *pgx.ConnConfig) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, &ConnectError{Addr: postgresAddr(cfg), Database: cfg.Database, Err: connectCause(err)}
	}
	return conn, nil
}

// ConnectError is a failed connection to a PostgreSQL server.
type ConnectError struct {
	Addr     string // "127.0.0.1:5432" or a socket directory
	Database string
	Err      error // a *pgconn.PgError, a network error, or the driver's error
}

func (e *ConnectError) Error() string {
	return fmt.Sprintf("connect to postgres %s database %q: %v", e.Addr, e.Database, e.Err)
}

func (e *ConnectError) Unwrap() error { return e.Err }

// SQLState returns the server's error code ("3D000" for a missing database,
// "28P01" for a wrong password), or "".
func (e *ConnectError) SQLState() string {
	var pe *pgconn.PgError
	if errors.As(e.Err, &pe) {
		return pe.Code
	}
	return ""
}

func postgresAddr(cfg *pgx.ConnConfig) string {
	if strings.HasPrefix(cfg.Host, "/") {
		return cfg.Host
	}
	return net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
}

// connectCause digs the server's or the network's error out of pgconn's
// wrapping, whose text repeats the user and database.
func connectCause(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) && ce.Unwrap() != nil {
		return ce.Unwrap()
	}
	return err
}

// ServerInfo returns the server version, the current database and
// the cluster's system identifier.
func ServerInfo(ctx context.Context, conn *pgx.Conn) (Info, error) {
	var info Info
	err := conn.QueryRow(ctx, "select current_setting('server_version'), current_setting('server_version_num')::int, current_database()").
		Scan(&info.ServerVersion, &info.ServerVersionNum, &info.Database)
	if err != nil {
		return info, fmt.Errorf("postgres: server version: %w", err)
	}
	info.ServerVersion, _, _ = strings.Cut(info.ServerVersion, " ") // "15.20 (Debian 15.20-0+deb12u1)"
	// Readable by everyone by default; a server that revokes it only loses
	// the restore-over-source check.
	var id int64
	if err := conn.QueryRow(ctx, "select system_identifier from pg_control_system()").Scan(&id); err == nil {
		info.SystemIdentifier = strconv.FormatInt(id, 10)
	}
	return info, nil
}

// Querier runs queries: a *pgx.Conn or a pgx.Tx.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// postgresTablesQuery lists ordinary tables, partitions included, outside the
// system schemas.
const postgresTablesQuery = `
select n.nspname, c.relname
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where c.relkind = 'r'
  and n.nspname not in ('pg_catalog', 'information_schema')
  and n.nspname not like 'pg\_toast%'
  and n.nspname not like 'pg\_temp\_%'
order by 1, 2`

// Fingerprints counts the rows of every table and runs checks, on q.
// For a fingerprint of one instant, q is a REPEATABLE READ transaction.
// Check results are rendered by the server as text; NULL is "NULL".
func Fingerprints(ctx context.Context, q Querier, checks []fingerprint.Check) (fingerprint.Fingerprints, error) {
	fp := fingerprint.Fingerprints{Tables: map[string]int64{}}
	rows, err := q.Query(ctx, postgresTablesQuery)
	if err != nil {
		return fp, fmt.Errorf("list tables: %w", err)
	}
	var tables [][2]string
	for rows.Next() {
		var t [2]string
		if err := rows.Scan(&t[0], &t[1]); err != nil {
			rows.Close()
			return fp, fmt.Errorf("list tables: %w", err)
		}
		tables = append(tables, t)
	}
	if err := rows.Err(); err != nil {
		return fp, fmt.Errorf("list tables: %w", err)
	}
	for _, t := range tables {
		name := t[0] + "." + t[1]
		rs, err := queryText(ctx, q, "select count(*) from only "+pgx.Identifier{t[0], t[1]}.Sanitize())
		if err != nil {
			return fp, fmt.Errorf("count %s: %w", name, err)
		}
		n, err := strconv.ParseInt(rs[0], 10, 64)
		if err != nil {
			return fp, fmt.Errorf("count %s: %w", name, err)
		}
		fp.Tables[name] = n
	}
	fp.Checks, err = fingerprint.RunChecks(checks, func(sql string) ([]string, error) { return queryText(ctx, q, sql) })
	return fp, err
}

// queryText runs sql with the simple protocol, so that the server renders
// every value as text, and returns one string per row, columns joined by "|".
func queryText(ctx context.Context, q Querier, sql string) ([]string, error) {
	rows, err := q.Query(ctx, sql, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		raw := rows.RawValues()
		cols := make([]string, len(raw))
		for i, v := range raw {
			if v == nil {
				cols[i] = "NULL"
			} else {
				cols[i] = string(v)
			}
		}
		out = append(out, strings.Join(cols, "|"))
	}
	return out, rows.Err()
}

// ErrToolNotFound is returned when no pg_dump (pg_restore, ...) binary is found.
var ErrToolNotFound = errors.New("not found")

// ToolVersionError says that a PostgreSQL client binary is older than the
// server (or the archive) it must work with.
type ToolVersionError struct {
	Tool, ToolVersion, ServerVersion string
}

func (e *ToolVersionError) Error() string {
	return fmt.Sprintf("%s %s is older than server %s; install postgresql-client-%s",
		e.Tool, e.ToolVersion, e.ServerVersion, majorString(e.ServerVersion))
}

// postgresBinDirs is where Debian and Ubuntu install each major version's
// client binaries.
var postgresBinDirs = "/usr/lib/postgresql/*/bin"

var versionRE = regexp.MustCompile(`\(PostgreSQL\) (\d+(?:\.\d+)*)`)

// FindTool finds the PostgreSQL client binary name (pg_dump,
// pg_restore) to use with a server of version serverVersion ("15.20"):
// explicit when set, else the one with the lowest major version not older
// than the server among PATH and /usr/lib/postgresql/*/bin. It returns the
// path and the binary's version.
func FindTool(name, explicit, serverVersion string) (path, version string, err error) {
	want := majorNum(serverVersion)
	var candidates []string
	if explicit != "" {
		candidates = []string{explicit}
	} else {
		if p, err := exec.LookPath(name); err == nil {
			candidates = append(candidates, p)
		}
		dirs, _ := filepath.Glob(filepath.Join(postgresBinDirs, name))
		candidates = append(candidates, dirs...)
	}
	type found struct {
		path, version string
		major         int
	}
	var ok, old []found
	var firstErr error
	for _, c := range candidates {
		v, err := toolVersion(c)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		f := found{c, v, majorNum(v)}
		if f.major >= want {
			ok = append(ok, f)
		} else {
			old = append(old, f)
		}
	}
	if len(ok) > 0 {
		sort.SliceStable(ok, func(i, j int) bool { return ok[i].major < ok[j].major })
		return ok[0].path, ok[0].version, nil
	}
	if len(old) > 0 {
		sort.SliceStable(old, func(i, j int) bool { return old[i].major > old[j].major })
		return "", "", &ToolVersionError{Tool: name, ToolVersion: old[0].version, ServerVersion: serverVersion}
	}
	if explicit != "" && firstErr != nil {
		return "", "", fmt.Errorf("%s %w", name, firstErr)
	}
	return "", "", fmt.Errorf("%s %w on PATH or in %s; install postgresql-client-%s",
		name, ErrToolNotFound, postgresBinDirs, majorString(serverVersion))
}

func toolVersion(path string) (string, error) {
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("%s: %w", path, ErrToolNotFound)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%s: read its version: %w", path, err)
	}
	m := versionRE.FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("%s: unexpected version output %q", path, firstLine(string(out)))
	}
	return string(m[1]), nil
}

// MajorLess reports whether version a ("13.4") has an older major
// version than b ("15.20").
func MajorLess(a, b string) bool { return majorNum(a) < majorNum(b) }

// majorNum maps "15.20" to 1500 and "9.6.24" to 906.
func majorNum(v string) int {
	parts := strings.Split(v, ".")
	a, _ := strconv.Atoi(parts[0])
	if a >= 10 || len(parts) < 2 {
		return a * 100
	}
	b, _ := strconv.Atoi(parts[1])
	return a*100 + b
}

func majorString(v string) string {
	if n := majorNum(v); n >= 1000 {
		return strconv.Itoa(n / 100)
	}
	parts := strings.Split(v, ".")
	if len(parts) >= 2 {
		return parts[0] + "." + parts[1]
	}
	return v
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// CommandEnvironment is how a child libpq program (pg_dump, pg_restore) connects:
// a connection string without the password, and the password in the
// environment.
type CommandEnvironment struct {
	ConnString string   // for --dbname
	Env        []string // os.Environ() plus PGPASSWORD when the DSN had one
	password   string
}

// CommandEnv prepares dsn for a libpq program: the password is moved
// out of the connection string (it would show in ps) into PGPASSWORD. When
// database is not empty it replaces the DSN's database.
func CommandEnv(dsn, database string) (CommandEnvironment, error) {
	conn, pw, err := splitPassword(dsn, database)
	if err != nil {
		return CommandEnvironment{}, err
	}
	env := os.Environ()
	if pw != "" {
		env = append(env, "PGPASSWORD="+pw)
	}
	return CommandEnvironment{ConnString: conn, Env: env, password: pw}, nil
}

func splitPassword(dsn, database string) (conn, password string, err error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", "", errors.New("postgres: invalid DSN URL")
		}
		if u.User != nil {
			if pw, ok := u.User.Password(); ok {
				password = pw
				u.User = url.User(u.User.Username())
			}
		}
		q := u.Query()
		if q.Has("password") {
			password = q.Get("password")
			q.Del("password")
		}
		if database != "" {
			q.Del("dbname")
			u.Path = "/" + database
			u.RawPath = ""
		}
		u.RawQuery = q.Encode()
		return u.String(), password, nil
	}
	kv, err := parseKeywordDSN(dsn)
	if err != nil {
		return "", "", err
	}
	var b strings.Builder
	for _, p := range kv {
		switch {
		case p[0] == "password":
			password = p[1]
			continue
		case p[0] == "dbname" && database != "":
			continue
		}
		fmt.Fprintf(&b, "%s=%s ", p[0], quoteKeywordValue(p[1]))
	}
	if database != "" {
		fmt.Fprintf(&b, "dbname=%s ", quoteKeywordValue(database))
	}
	return strings.TrimSpace(b.String()), password, nil
}

// parseKeywordDSN parses libpq's "key=value key='quoted \' value'" form.
func parseKeywordDSN(s string) ([][2]string, error) {
	var out [][2]string
	for {
		s = strings.TrimLeft(s, " \t\n\r")
		if s == "" {
			return out, nil
		}
		eq := strings.IndexByte(s, '=')
		if eq < 0 {
			return nil, errors.New("postgres: invalid DSN: missing \"=\" after a keyword")
		}
		key := strings.TrimSpace(s[:eq])
		s = strings.TrimLeft(s[eq+1:], " \t\n\r")
		var val strings.Builder
		if strings.HasPrefix(s, "'") {
			s = s[1:]
			closed := false
			for len(s) > 0 {
				c := s[0]
				s = s[1:]
				if c == '\\' && len(s) > 0 {
					val.WriteByte(s[0])
					s = s[1:]
					continue
				}
				if c == '\'' {
					closed = true
					break
				}
				val.WriteByte(c)
			}
			if !closed {
				return nil, errors.New("postgres: invalid DSN: unterminated quoted value")
			}
		} else {
			for len(s) > 0 && !strings.ContainsRune(" \t\n\r", rune(s[0])) {
				if s[0] == '\\' && len(s) > 1 {
					s = s[1:]
				}
				val.WriteByte(s[0])
				s = s[1:]
			}
		}
		out = append(out, [2]string{key, val.String()})
	}
}

func quoteKeywordValue(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// tool is a running client program whose stdout is read as an io.Reader.
// Read reports the program's failure instead of a clean io.EOF, so a Writer
// never stores a truncated dump as if it were complete.
type tool struct {
	name   string
	cmd    *exec.Cmd
	stdout io.ReadCloser
	stderr *tailBuffer
	err    error // failure to start
	once   sync.Once
	werr   error
	redact string
	// readFailed is set when Read returned the program's failure.
	readFailed bool
	// eof is set once stdout ended and the program exited cleanly: the
	// pipe is closed then, and later Reads must keep saying io.EOF.
	eof bool
}

func startTool(ctx context.Context, path string, env []string, args ...string) *tool {
	t := &tool{name: filepath.Base(path), stderr: &tailBuffer{max: 8 << 10}}
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PGPASSWORD="); ok {
			t.redact = v
		}
	}
	t.cmd = exec.CommandContext(ctx, path, args...)
	t.cmd.Env = env
	t.cmd.Stderr = t.stderr
	t.cmd.WaitDelay = 5 * time.Second
	var err error
	if t.stdout, err = t.cmd.StdoutPipe(); err == nil {
		err = t.cmd.Start()
	}
	if err != nil {
		t.err = fmt.Errorf("start %s: %w", t.name, err)
		t.once.Do(func() { t.werr = t.err })
	}
	return t
}

func (t *tool) Read(p []byte) (int, error) {
	if t.eof {
		return 0, io.EOF
	}
	n, err := t.stdout.Read(p)
	if err == io.EOF {
		if werr := t.wait(); werr != nil {
			t.readFailed = true
			return n, werr
		}
		t.eof = true
	}
	return n, err
}

// wait waits for the program after its stdout was read to the end or the
// program was cancelled, and describes its failure with the end of its
// standard error.
func (t *tool) wait() error {
	t.once.Do(func() {
		err := t.cmd.Wait()
		if err == nil {
			return
		}
		msg := t.stderr.lastLines(5)
		if t.redact != "" {
			msg = strings.ReplaceAll(msg, t.redact, "********")
		}
		if msg != "" {
			t.werr = fmt.Errorf("%s failed (%v): %s", t.name, err, msg)
		} else {
			t.werr = fmt.Errorf("%s failed: %v", t.name, err)
		}
	})
	return t.werr
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) lastLines(n int) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := strings.Split(strings.TrimSpace(string(bytes.ToValidUTF8(t.b, nil))), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.TrimSpace(strings.Join(lines, "; "))
}

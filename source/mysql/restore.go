package mysql

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cofferhq/coffer/internal/fingerprint"
	"github.com/cofferhq/coffer/source"
)

// Options controls Restore.
type Options struct {
	// Replace allows an existing target database: the snapshot is restored
	// into a fresh database, verified, and only then swapped in.
	Replace bool
	// Force allows the target to be the very database the snapshot came
	// from.
	Force bool
	// Owner is the account ("user" or "user@host") to grant ALL
	// PRIVILEGES on the restored database; when empty, the grants the
	// snapshot records are made again to the accounts that exist on the
	// target (see grants.go).
	Owner string
}

// Result describes a finished MySQL restore.
type Result struct {
	Database string // the restored database's name
	Grants   *GrantResult
}

// Restored says what the restore did: which accounts may use the database.
func (r *Result) Restored() *source.Restored {
	out := &source.Restored{Facts: map[string]any{"database": r.Database}}
	if r.Grants != nil {
		out.Lines = append(out.Lines, r.Grants.String())
		out.Facts["owner"] = r.Grants.Owner()
		if len(r.Grants.Missing) > 0 {
			out.Facts["grants_left_out_for"] = r.Grants.Missing
		}
	}
	return out
}

// Restore restores a mysql source (see Source) into the
// database named by targetDSN, which coffer creates. The dump is streamed
// statement by statement over one connection; nothing is written to disk.
// After loading, the fingerprints are recomputed on the new database and
// compared with the backup's: a difference returns a
// *fingerprint.MismatchError. On any failure the new database is dropped, so
// a failed restore leaves nothing behind.
//
// With Replace and an existing target, the snapshot is restored and verified
// in "<name>_coffer_<random>"; then the target's triggers are dropped, one
// RENAME TABLE statement (atomic) moves the target's tables aside and the new
// tables in, the target's views, routines and events are replaced by the
// snapshot's, and the two helper databases are dropped. Limits: between the
// RENAME and the re-creation of the triggers (milliseconds) writes to the
// target do not fire triggers; grants on the old tables are not copied.
func Restore(ctx context.Context, src source.Reader, targetDSN string, opts Options) (*Result, error) {
	res, err := restoreMySQL(ctx, src, targetDSN, opts)
	if err != nil {
		return nil, fmt.Errorf("restore %s to mysql: %w", src.Name(), err)
	}
	return res, nil
}

func restoreMySQL(ctx context.Context, src source.Reader, targetDSN string, opts Options) (*Result, error) {
	if src.Kind() != "mysql" {
		return nil, fmt.Errorf("source is of kind %s, not mysql", src.Kind())
	}
	var want fingerprint.Fingerprints
	if err := src.Meta(fingerprint.MetaKey, &want); err != nil {
		return nil, fmt.Errorf("read fingerprints: %w", err)
	}
	var info Info
	if err := src.Meta(MetaKey, &info); err != nil {
		return nil, fmt.Errorf("read source information: %w", err)
	}
	if info.Format > DumpFormat {
		return nil, fmt.Errorf("dump format %d is newer than this coffer understands (%d)", info.Format, DumpFormat)
	}
	cfg, err := ParseDSN(targetDSN)
	if err != nil {
		return nil, err
	}
	target := cfg.DBName
	if target == "" {
		return nil, errors.New("the target DSN names no database")
	}
	if len(target) > 64 {
		return nil, fmt.Errorf("database name %q is longer than 64 characters", target)
	}
	admin := cfg.Clone()
	admin.DBName = ""
	adb, err := Open(ctx, admin)
	if err != nil {
		return nil, err
	}
	defer adb.Close()
	aconn, err := adb.Conn(ctx)
	if err != nil {
		return nil, ServerError(admin, err)
	}
	defer aconn.Close()

	id, err := ServerID(ctx, aconn)
	if err != nil {
		return nil, err
	}
	if id == info.ServerUUID && target == info.Database && !opts.Force {
		return nil, fmt.Errorf("database %q on %s is the database this snapshot was taken from: %w", target, cfg.Addr, source.ErrRestoreOverSource)
	}
	exists, err := mysqlDatabaseExists(ctx, aconn, target)
	if err != nil {
		return nil, err
	}
	if exists && !opts.Replace {
		return nil, fmt.Errorf("database %q already exists on %s: %w", target, cfg.Addr, source.ErrTargetExists)
	}
	load := target
	if exists {
		load = mysqlTempName(target, "_coffer_")
	}

	create := "CREATE DATABASE " + mysqlIdent(load)
	if info.Charset != "" {
		create += " CHARACTER SET " + mysqlIdent(info.Charset)
	}
	if info.Collation != "" {
		create += " COLLATE " + mysqlIdent(info.Collation)
	}
	if _, err := aconn.ExecContext(ctx, create); err != nil {
		return nil, fmt.Errorf("create database %s: %w", load, err)
	}
	ok := false
	defer func() {
		if !ok {
			dropMySQLDatabase(ctx, aconn, load)
		}
	}()

	lcfg := cfg.Clone()
	lcfg.DBName = load
	ldb, err := Open(ctx, lcfg)
	if err != nil {
		return nil, err
	}
	defer ldb.Close()
	lconn, err := ldb.Conn(ctx)
	if err != nil {
		return nil, ServerError(lcfg, err)
	}
	defer lconn.Close()

	objects, err := loadMySQLDump(ctx, src, lconn)
	if err != nil {
		return nil, err
	}
	got, err := SnapshotFingerprints(ctx, lconn, info.Checks)
	if err != nil {
		return nil, fmt.Errorf("fingerprint restored database: %w", err)
	}
	if diffs := fingerprint.Compare(want, got); len(diffs) > 0 {
		return nil, &fingerprint.MismatchError{Diffs: diffs}
	}
	lconn.Close()
	ldb.Close()
	// Grants name the final database: in a swap, the target's name.
	grants, err := applyGrants(ctx, aconn, target, info.Grants, opts.Owner, !exists)
	if err != nil {
		return nil, err
	}
	if load != target {
		if err := swapMySQL(ctx, aconn, target, load, objects); err != nil {
			return nil, err
		}
		// load now holds only the snapshot's views, routines and events.
		if err := dropMySQLDatabase(ctx, aconn, load); err != nil {
			return nil, fmt.Errorf("drop %s after the swap: %w", load, err)
		}
	}
	ok = true
	return &Result{Database: target, Grants: grants}, nil
}

func mysqlTempName(name, infix string) string {
	var b [4]byte
	rand.Read(b[:])
	suffix := infix + hex.EncodeToString(b[:])
	if len(name)+len(suffix) > 64 {
		name = name[:64-len(suffix)]
	}
	return name + suffix
}

func mysqlDatabaseExists(ctx context.Context, conn *sql.Conn, name string) (bool, error) {
	var n int
	err := conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", name).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("look up database %s: %w", name, err)
	}
	return n > 0, nil
}

// dropMySQLDatabase drops a database coffer created, also when ctx is
// already cancelled.
func dropMySQLDatabase(ctx context.Context, conn *sql.Conn, name string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	_, err := conn.ExecContext(ctx, "DROP DATABASE IF EXISTS "+mysqlIdent(name))
	return err
}

// loadMySQLDump runs dump.sql on conn. It returns the statements of the
// routines, views, triggers and events sections, which a swap replays in
// the target database.
func loadMySQLDump(ctx context.Context, src source.Reader, conn *sql.Conn) ([]string, error) {
	rc, err := src.Open(ctx, DumpFile)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", DumpFile, err)
	}
	defer rc.Close()
	sc := newMySQLScanner(rc)
	var objects []string
	for {
		stmt, err := sc.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", DumpFile, err)
		}
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			return nil, fmt.Errorf("%s line %d: %s: %w", DumpFile, sc.StmtLine, mysqlAbbrev(stmt), err)
		}
		switch sc.Section {
		case "routines", "views", "triggers", "events":
			objects = append(objects, stmt)
		}
	}
	return objects, nil
}

func mysqlAbbrev(stmt string) string {
	stmt, _, _ = strings.Cut(stmt, "\n")
	if len(stmt) > 60 {
		stmt = stmt[:60] + "..."
	}
	return stmt
}

// swapMySQL moves the tables of load into target in one atomic RENAME
// TABLE, moving target's tables aside, and replaces target's views,
// triggers, routines and events with the snapshot's.
func swapMySQL(ctx context.Context, conn *sql.Conn, target, load string, objects []string) error {
	list := func(q, db string) ([]string, error) {
		rows, err := conn.QueryContext(ctx, q, db)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		return out, rows.Err()
	}
	const (
		qBase     = "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE <> 'VIEW'"
		qViews    = "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'VIEW'"
		qTriggers = "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ?"
		qRoutines = "SELECT CONCAT(ROUTINE_TYPE, ' ', ROUTINE_NAME) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ?"
		qEvents   = "SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ?"
	)
	oldTables, err := list(qBase, target)
	if err != nil {
		return fmt.Errorf("swap: list tables: %w", err)
	}
	newTables, err := list(qBase, load)
	if err != nil {
		return fmt.Errorf("swap: list tables: %w", err)
	}
	oldTriggers, err := list(qTriggers, target)
	if err != nil {
		return fmt.Errorf("swap: list triggers: %w", err)
	}
	newTriggers, err := list(qTriggers, load)
	if err != nil {
		return fmt.Errorf("swap: list triggers: %w", err)
	}
	// Keep the old triggers' definitions to put them back should the
	// RENAME fail.
	var oldTriggerDefs []string
	for _, t := range oldTriggers {
		var name, mode, stmt string
		var rest [4]sql.NullString
		err := conn.QueryRowContext(ctx, "SHOW CREATE TRIGGER "+mysqlIdent(target)+"."+mysqlIdent(t)).
			Scan(&name, &mode, &stmt, &rest[0], &rest[1], &rest[2], &rest[3])
		if err != nil {
			return fmt.Errorf("swap: read trigger %s: %w", t, err)
		}
		oldTriggerDefs = append(oldTriggerDefs, "SET SESSION sql_mode = '"+mode+"'", stmt)
	}

	old := mysqlTempName(target, "_coffer_old_")
	if _, err := conn.ExecContext(ctx, "CREATE DATABASE "+mysqlIdent(old)); err != nil {
		return fmt.Errorf("swap: create %s: %w", old, err)
	}
	defer dropMySQLDatabase(ctx, conn, old)

	// Tables with triggers cannot move to another database.
	for _, t := range newTriggers {
		if _, err := conn.ExecContext(ctx, "DROP TRIGGER "+mysqlIdent(load)+"."+mysqlIdent(t)); err != nil {
			return fmt.Errorf("swap: drop trigger %s: %w", t, err)
		}
	}
	for _, t := range oldTriggers {
		if _, err := conn.ExecContext(ctx, "DROP TRIGGER "+mysqlIdent(target)+"."+mysqlIdent(t)); err != nil {
			return fmt.Errorf("swap: drop trigger %s.%s: %w", target, t, err)
		}
	}
	var renames []string
	for _, t := range oldTables {
		renames = append(renames, mysqlIdent(target)+"."+mysqlIdent(t)+" TO "+mysqlIdent(old)+"."+mysqlIdent(t))
	}
	for _, t := range newTables {
		renames = append(renames, mysqlIdent(load)+"."+mysqlIdent(t)+" TO "+mysqlIdent(target)+"."+mysqlIdent(t))
	}
	if len(renames) > 0 {
		if _, err := conn.ExecContext(ctx, "RENAME TABLE "+strings.Join(renames, ", ")); err != nil {
			err = fmt.Errorf("swap: rename tables: %w", err)
			if rerr := mysqlExecIn(ctx, conn, target, oldTriggerDefs); rerr != nil {
				err = fmt.Errorf("%w; re-creating the target's triggers also failed: %v", err, rerr)
			}
			return err
		}
	}
	// From here on the target holds the restored data; replace its objects.
	var drops []string
	views, err := list(qViews, target)
	if err != nil {
		return fmt.Errorf("swap: list views: %w", err)
	}
	for _, v := range views {
		drops = append(drops, "DROP VIEW IF EXISTS "+mysqlIdent(v))
	}
	routines, err := list(qRoutines, target)
	if err != nil {
		return fmt.Errorf("swap: list routines: %w", err)
	}
	for _, r := range routines {
		kind, name, _ := strings.Cut(r, " ")
		drops = append(drops, "DROP "+kind+" IF EXISTS "+mysqlIdent(name))
	}
	events, err := list(qEvents, target)
	if err != nil {
		return fmt.Errorf("swap: list events: %w", err)
	}
	for _, e := range events {
		drops = append(drops, "DROP EVENT IF EXISTS "+mysqlIdent(e))
	}
	if err := mysqlExecIn(ctx, conn, target, append(drops, objects...)); err != nil {
		return fmt.Errorf("swap: the tables of %s were replaced, but re-creating views, routines, triggers and events failed: %w", target, err)
	}
	return nil
}

// mysqlExecIn runs statements with db as the default database.
func mysqlExecIn(ctx context.Context, conn *sql.Conn, db string, stmts []string) error {
	if _, err := conn.ExecContext(ctx, "USE "+mysqlIdent(db)); err != nil {
		return err
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "SET SESSION sql_mode = DEFAULT") //nolint:errcheck
	for _, s := range stmts {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", mysqlAbbrev(s), err)
		}
	}
	return nil
}

// mysqlScanner splits a SQL script into statements the way the mariadb
// client does: statements end at the delimiter (";", or what a DELIMITER
// line sets) outside quotes and comments. Comment lines between statements
// are skipped; "-- coffer: SECTION" lines name the section that follows and
// "-- coffer: end" marks the end of a complete dump.
type mysqlScanner struct {
	r     *bufio.Reader
	delim string
	buf   []byte
	pos   int  // scanned up to here
	quote byte // open quote character, 0 when none
	block bool // inside /* */
	line  int
	eof   bool
	end   bool

	Section  string // section of the statement last returned
	StmtLine int    // line the statement last returned starts on
	start    int
}

func newMySQLScanner(r io.Reader) *mysqlScanner {
	return &mysqlScanner{r: bufio.NewReaderSize(r, 1<<20), delim: ";"}
}

// errTruncated reports a dump that ends early.
var errTruncated = errors.New("dump is truncated (it does not end with the \"-- coffer: end\" line)")

// Next returns the next statement without its delimiter, or io.EOF after
// the last one.
func (s *mysqlScanner) Next() (string, error) {
	for {
		// Scan what we have for a delimiter.
		for s.pos < len(s.buf) {
			c := s.buf[s.pos]
			switch {
			case s.block:
				if c == '*' && s.pos+1 < len(s.buf) && s.buf[s.pos+1] == '/' {
					s.block = false
					s.pos++
				}
			case s.quote != 0:
				if c == '\\' && s.quote != '`' {
					s.pos++
				} else if c == s.quote {
					s.quote = 0
				}
			case c == '\'' || c == '"' || c == '`':
				s.quote = c
			case c == '/' && s.pos+1 < len(s.buf) && s.buf[s.pos+1] == '*':
				s.block = true
				s.pos++
			case c == '#' || (c == '-' && bytes.HasPrefix(s.buf[s.pos:], []byte("-- "))):
				// A comment to the end of the line; lines are read whole.
				if i := bytes.IndexByte(s.buf[s.pos:], '\n'); i >= 0 {
					s.pos += i
				} else {
					s.pos = len(s.buf) - 1
				}
			case bytes.HasPrefix(s.buf[s.pos:], []byte(s.delim)):
				stmt := strings.TrimSpace(string(s.buf[:s.pos]))
				rest := s.buf[s.pos+len(s.delim):]
				s.buf = append(s.buf[:0], rest...)
				s.pos = 0
				s.StmtLine = s.start
				if stmt == "" {
					continue
				}
				return stmt, nil
			}
			s.pos++
		}
		if s.eof {
			if s.quote != 0 || s.block || len(bytes.TrimSpace(s.buf)) > 0 {
				return "", fmt.Errorf("dump ends inside a statement at line %d: %w", s.line, errTruncated)
			}
			if !s.end {
				return "", errTruncated
			}
			return "", io.EOF
		}
		line, err := s.r.ReadBytes('\n')
		if err == io.EOF {
			s.eof = true
		} else if err != nil {
			return "", err
		}
		if len(line) == 0 {
			continue
		}
		s.line++
		if s.end {
			if len(bytes.TrimSpace(line)) > 0 {
				return "", fmt.Errorf("line %d: text after the end of the dump", s.line)
			}
			continue
		}
		if s.quote == 0 && !s.block && len(bytes.TrimSpace(s.buf)) == 0 {
			// Between statements: client commands and comment lines.
			t := string(bytes.TrimSpace(line))
			switch {
			case strings.HasPrefix(t, "DELIMITER "):
				s.delim = strings.TrimSpace(strings.TrimPrefix(t, "DELIMITER "))
				s.buf = s.buf[:0]
				s.pos = 0
				continue
			case t == "-- coffer: end":
				s.end = true
				continue
			case strings.HasPrefix(t, "-- coffer: "):
				s.Section, _, _ = strings.Cut(strings.TrimPrefix(t, "-- coffer: "), " ")
				continue
			case strings.HasPrefix(t, "--") || t == "":
				continue
			}
			s.buf = s.buf[:0]
			s.pos = 0
			s.start = s.line
		}
		s.buf = append(s.buf, line...)
	}
}

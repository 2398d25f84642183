package mysql

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/cofferhq/coffer/internal/fingerprint"
	"github.com/cofferhq/coffer/source"
)

// MySQL/MariaDB source
//
// Source dumps one database with a dumper of coffer's own rather than
// mariadb-dump, so that the fingerprints describe exactly the rows in the
// dump, also while the database is being written to:
//
//   - One connection opens one transaction with
//     SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ and
//     START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY.
//   - Inside that transaction, first the fingerprints are computed (an exact
//     count(*) of every base table and the configured check queries), then
//     the dump is read: SHOW CREATE TABLE and the rows of every base table,
//     then routines, views, triggers and events. Every read sees the same
//     InnoDB snapshot, so counts, checks and rows agree.
//   - The session uses time_zone '+00:00' (Airflow stores UTC), so TIMESTAMP
//     values are dumped and restored without conversion.
//
// Format of dump.sql (DumpFormat): plain SQL that the mariadb client
// can also run. A header sets the session (utf8mb4, UTC, foreign and unique
// checks off); each table's CREATE TABLE is followed by multi-row INSERTs
// with an explicit column list (generated columns are left out). Rows are
// ordered by primary key (by every column when there is none) and a batch
// ends at a row whose hash has chosen bits once it is 512 KiB long (at most
// 2 MiB), so tomorrow's dump of a slightly changed table has the same
// statement boundaries and deduplicates against today's; a dump of an
// unchanged database is byte-identical. Values: NULL; numbers as the server
// prints them; character data as _utf8mb4 X'..' (any column charset, any
// byte); binary data as X'..'; dates and times as quoted text; BIT as b'..'.
// Compound statements (routines, triggers, events) are wrapped in the
// client's DELIMITER ;; convention. The dump ends with the line
// "-- coffer: end", so a truncated dump is recognised.
//
// Limits: DDL run concurrently is not protected by the snapshot. InnoDB
// refuses to read a table altered after the snapshot began ("Table
// definition has changed"), which fails the backup rather than producing a
// wrong dump; tables in non-transactional engines (MyISAM, Aria) are dumped
// with a warning, as the snapshot does not cover them. The transaction holds
// metadata locks on every table it has read until it ends, so a concurrent
// ALTER waits for the backup. Sequences and system-versioned history are
// not dumped (a warning names them). Definers are kept, so restoring views,
// triggers and routines needs an account allowed to set them. Fingerprints
// name tables without the database ("invoice"), as a restore may use
// another name.

// DumpFile is the path of the dump inside a mysql source.
const DumpFile = "dump.sql"

// MetaKey is the catalog metadata key of a mysql source's Info.
const MetaKey = "mysql"

// DumpFormat is the version of dump.sql's layout.
const DumpFormat = 1

// Info is what a mysql source records about the dumped database.
type Info struct {
	ServerVersion string `json:"server_version"`
	Database      string `json:"database"`
	// ServerUUID identifies the server: @@server_uuid on MySQL,
	// "@@hostname:@@port" on MariaDB, which has no server UUID.
	ServerUUID string `json:"server_uuid"`
	Charset    string `json:"charset"`
	Collation  string `json:"collation"`
	// Checks are the check queries whose results the fingerprints hold, so
	// that a restore can run them again.
	Checks []fingerprint.Check `json:"checks,omitempty"`
	Format int                 `json:"format"`
	// Grants on the database at backup time (see grants.go); nil in
	// snapshots that predate them.
	Grants []Grant `json:"grants"`
}

// Source backs up one MySQL or MariaDB database (kind "mysql").
type Source struct {
	SourceName string
	// DSN is a go-sql-driver DSN ("user:pass@tcp(host:3306)/db") or a URL
	// ("mysql://user:pass@host:3306/db", also SQLAlchemy's mysql+mysqldb://).
	DSN    string
	Checks []fingerprint.Check
	// InSnapshot, when set, runs on the dump's connection inside its
	// consistent snapshot, after the fingerprints and before the dump (a
	// composite kind reads what it checks from the very state the dump
	// holds). Its error fails the backup.
	InSnapshot func(ctx context.Context, conn *sql.Conn) error
}

var _ source.Source = (*Source)(nil)

func (s *Source) Name() string { return s.SourceName }
func (s *Source) Kind() string { return "mysql" }

// Backup dumps the database into w as the single file entry dump.sql and
// records the fingerprints and Info as metadata.
func (s *Source) Backup(ctx context.Context, w source.Writer) error {
	if err := s.backup(ctx, w); err != nil {
		return fmt.Errorf("mysql source %s: %w", s.SourceName, err)
	}
	return nil
}

func (s *Source) backup(ctx context.Context, w source.Writer) error {
	cfg, err := ParseDSN(s.DSN)
	if err != nil {
		return err
	}
	if cfg.DBName == "" {
		return errors.New("the DSN names no database")
	}
	if err := validateMySQLChecks(s.Checks); err != nil {
		return err
	}
	db, err := Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return ServerError(cfg, err)
	}
	defer conn.Close()
	info, err := mysqlDescribe(ctx, conn)
	if err != nil {
		return err
	}
	info.Checks = s.Checks
	if info.Grants, err = readGrants(ctx, conn); err != nil {
		return err
	}
	start := time.Now().UTC().Truncate(time.Second)
	if err := beginMySQLSnapshot(ctx, conn); err != nil {
		return err
	}
	// Closing the connection ends the read-only transaction as well.
	defer conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK") //nolint:errcheck
	point, err := consistentPoint(ctx, conn)
	if err != nil {
		return err
	}

	d := &mysqlDumper{conn: conn}
	if err := d.listTables(ctx); err != nil {
		return err
	}
	for _, t := range d.skipped {
		if err := w.Warn("mysql source %s: %s", s.SourceName, t); err != nil {
			return err
		}
	}
	fp, err := d.fingerprints(ctx, s.Checks)
	if err != nil {
		return err
	}
	if err := w.SetMeta(fingerprint.MetaKey, fp); err != nil {
		return err
	}
	if err := w.SetMeta(MetaKey, info); err != nil {
		return err
	}
	if err := w.SetMeta(source.ConsistentKey, point); err != nil {
		return err
	}
	if s.InSnapshot != nil {
		if err := s.InSnapshot(ctx, conn); err != nil {
			return err
		}
	}

	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		bw := bufio.NewWriterSize(pw, 256<<10)
		err := d.dump(ctx, bw)
		if err == nil {
			err = bw.Flush()
		}
		pw.CloseWithError(err)
		done <- err
	}()
	werr := w.WriteFile(ctx, source.Entry{Path: DumpFile, Type: source.TypeFile, Mode: 0o600, ModTime: start, Size: -1}, pr)
	pr.CloseWithError(errors.New("backup writer stopped reading the dump"))
	derr := <-done
	if derr != nil && (werr == nil || errors.Is(werr, derr)) {
		// The writer's error is only the dump error passed through.
		return fmt.Errorf("dump: %w", derr)
	}
	if werr != nil {
		return werr
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return ServerError(cfg, err)
	}
	return nil
}

func validateMySQLChecks(checks []fingerprint.Check) error {
	seen := map[string]bool{}
	for i, c := range checks {
		switch {
		case c.Name == "":
			return fmt.Errorf("check %d has no name", i+1)
		case strings.TrimSpace(c.Query) == "":
			return fmt.Errorf("check %s has no query", c.Name)
		case seen[c.Name]:
			return fmt.Errorf("check %s is configured twice", c.Name)
		}
		seen[c.Name] = true
	}
	return nil
}

// ParseDSN parses a go-sql-driver DSN ("user:pass@tcp(host:port)/db")
// or a URL ("mysql://user:pass@host:port/db", "mariadb://...", or
// SQLAlchemy's "mysql+mysqldb://..."; query parameters charset and
// unix_socket are understood). The returned Config connects in UTC, without
// multi-statements, and with a 10 s dial timeout unless one is given.
func ParseDSN(s string) (*gomysql.Config, error) {
	var cfg *gomysql.Config
	if scheme, _, ok := strings.Cut(s, "://"); ok && !strings.Contains(scheme, "@") {
		base, _, _ := strings.Cut(scheme, "+")
		if base != "mysql" && base != "mariadb" {
			return nil, fmt.Errorf("parse mysql DSN: unsupported scheme %q", scheme)
		}
		// SQLAlchemy's own parsing, so that a password is read the way
		// Airflow reads it.
		u, err := source.ParseSQLAlchemyURL(s)
		if err != nil {
			return nil, fmt.Errorf("parse mysql DSN: %w", err)
		}
		cfg = gomysql.NewConfig()
		cfg.Net = "tcp"
		cfg.User, cfg.Passwd = u.User, u.Password
		host := u.Host
		if host == "" {
			host = "127.0.0.1"
		}
		port := u.Port
		if port == "" {
			port = "3306"
		} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return nil, errors.New("parse mysql DSN: malformed port")
		}
		cfg.Addr = net.JoinHostPort(host, port)
		cfg.DBName = u.Database
		for k, v := range u.Query {
			switch k {
			case "unix_socket":
				cfg.Net, cfg.Addr = "unix", v[0]
			case "charset":
				if err := cfg.Apply(gomysql.Charset(v[0], "")); err != nil {
					return nil, fmt.Errorf("parse mysql DSN: %w", err)
				}
			default:
				return nil, fmt.Errorf("parse mysql DSN: unsupported URL parameter %q", k)
			}
		}
	} else {
		var err error
		cfg, err = gomysql.ParseDSN(s)
		if err != nil {
			return nil, fmt.Errorf("parse mysql DSN: %w", err)
		}
	}
	cfg.Loc = time.UTC
	cfg.ParseTime = false
	cfg.MultiStatements = false
	cfg.InterpolateParams = false
	cfg.Logger = &gomysql.NopLogger{}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	return cfg, nil
}

// Open connects to the server cfg names and checks that it answers and
// accepts the credentials; errors are those of ServerError.
func Open(ctx context.Context, cfg *gomysql.Config) (*sql.DB, error) {
	c, err := gomysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(c)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, ServerError(cfg, err)
	}
	return db, nil
}

// ServerError turns a connection error into one line a user can act on. It
// never contains the password.
func ServerError(cfg *gomysql.Config, err error) error {
	var me *gomysql.MySQLError
	var ne net.Error
	switch {
	case errors.As(err, &me) && (me.Number == 1045 || me.Number == 1698):
		return fmt.Errorf("server %s: access denied for user %q (wrong password?): %w", cfg.Addr, cfg.User, err)
	case errors.As(err, &me) && me.Number == 1049:
		return fmt.Errorf("server %s: database %q does not exist: %w", cfg.Addr, cfg.DBName, err)
	case errors.As(err, &me) && me.Number == 1044:
		return fmt.Errorf("server %s: user %q may not use database %q: %w", cfg.Addr, cfg.User, cfg.DBName, err)
	case errors.As(err, &ne):
		return fmt.Errorf("cannot reach server %s: %w", cfg.Addr, err)
	}
	return fmt.Errorf("server %s: %w", cfg.Addr, err)
}

// ServerID identifies the server conn is connected to:
// @@server_uuid, or "@@hostname:@@port" where there is none (MariaDB).
func ServerID(ctx context.Context, conn *sql.Conn) (string, error) {
	var id string
	if err := conn.QueryRowContext(ctx, "SELECT @@server_uuid").Scan(&id); err == nil && id != "" {
		return id, nil
	}
	if err := conn.QueryRowContext(ctx, "SELECT CONCAT(@@hostname, ':', @@port)").Scan(&id); err != nil {
		return "", fmt.Errorf("identify server: %w", err)
	}
	return id, nil
}

// mysqlDescribe sets up the dump session and returns what the catalog keeps
// about the database.
func mysqlDescribe(ctx context.Context, conn *sql.Conn) (Info, error) {
	for _, q := range []string{
		"SET NAMES utf8mb4",
		"SET SESSION time_zone = '+00:00'",
		// No ANSI_QUOTES and friends: SHOW CREATE must quote with backticks.
		"SET SESSION sql_mode = ''",
		"SET SESSION sql_quote_show_create = 1",
		// The pipeline may stall the reader for a while (slow uploads).
		"SET SESSION net_write_timeout = 3600",
	} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return Info{}, fmt.Errorf("%s: %w", q, err)
		}
	}
	// MariaDB and MySQL name their statement time limits differently.
	conn.ExecContext(ctx, "SET SESSION max_statement_time = 0") //nolint:errcheck
	conn.ExecContext(ctx, "SET SESSION max_execution_time = 0") //nolint:errcheck
	var info Info
	info.Format = DumpFormat
	err := conn.QueryRowContext(ctx, "SELECT VERSION(), DATABASE(), @@character_set_database, @@collation_database").
		Scan(&info.ServerVersion, &info.Database, &info.Charset, &info.Collation)
	if err != nil {
		return info, fmt.Errorf("describe database: %w", err)
	}
	info.ServerUUID, err = ServerID(ctx, conn)
	return info, err
}

func beginMySQLSnapshot(ctx context.Context, conn *sql.Conn) error {
	for _, q := range []string{
		"SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
		"START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
	} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("start snapshot: %w", err)
		}
	}
	return nil
}

// consistentPoint reads the time and, when the server writes a binary log,
// the binlog position of the snapshot just started on conn. MariaDB reports
// the position that matches the snapshot exactly (binlog_snapshot_file and
// _position); MySQL has no such status, so its position is the one read
// right after the snapshot began.
func consistentPoint(ctx context.Context, conn *sql.Conn) (source.ConsistentPoint, error) {
	var p source.ConsistentPoint
	var now string
	var logBin int
	if err := conn.QueryRowContext(ctx, "SELECT DATE_FORMAT(UTC_TIMESTAMP(6), '%Y-%m-%dT%H:%i:%s.%fZ'), @@log_bin").Scan(&now, &logBin); err != nil {
		return p, fmt.Errorf("read snapshot time: %w", err)
	}
	t, err := time.Parse(time.RFC3339Nano, now)
	if err != nil {
		return p, fmt.Errorf("read snapshot time: %w", err)
	}
	p.Time = t
	if logBin != 1 {
		return p, nil
	}
	status := map[string]string{}
	if rows, err := conn.QueryContext(ctx, "SHOW STATUS LIKE 'binlog_snapshot_%'"); err == nil {
		for rows.Next() {
			var k, v string
			if rows.Scan(&k, &v) == nil {
				status[strings.ToLower(k)] = v
			}
		}
		rows.Close()
	}
	if f := status["binlog_snapshot_file"]; f != "" {
		p.Binlog = f + ":" + status["binlog_snapshot_position"]
		return p, nil
	}
	for _, q := range []string{"SHOW BINARY LOG STATUS", "SHOW MASTER STATUS"} {
		rows, err := conn.QueryContext(ctx, q)
		if err != nil {
			continue
		}
		cols, _ := rows.Columns()
		if rows.Next() && len(cols) >= 2 {
			vals := make([]sql.NullString, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if rows.Scan(ptrs...) == nil && vals[0].String != "" {
				p.Binlog = vals[0].String + ":" + vals[1].String
			}
		}
		rows.Close()
		break
	}
	return p, nil
}

// SnapshotFingerprints computes the fingerprints of conn's current
// database inside a consistent snapshot of its own (used after a restore).
func SnapshotFingerprints(ctx context.Context, conn *sql.Conn, checks []fingerprint.Check) (fingerprint.Fingerprints, error) {
	if _, err := conn.ExecContext(ctx, "SET SESSION time_zone = '+00:00'"); err != nil {
		return fingerprint.Fingerprints{}, err
	}
	if err := beginMySQLSnapshot(ctx, conn); err != nil {
		return fingerprint.Fingerprints{}, err
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK") //nolint:errcheck
	d := &mysqlDumper{conn: conn}
	if err := d.listTables(ctx); err != nil {
		return fingerprint.Fingerprints{}, err
	}
	return d.fingerprints(ctx, checks)
}

type mysqlTable struct {
	name   string
	engine string
}

type mysqlDumper struct {
	conn    *sql.Conn
	tables  []mysqlTable // base tables, by name
	views   []string
	skipped []string // warnings about what is not dumped
}

func mysqlIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

func mysqlString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `''`, "\n", `\n`, "\r", `\r`, "\x00", `\0`).Replace(s) + "'"
}

func (d *mysqlDumper) listTables(ctx context.Context) error {
	rows, err := d.conn.QueryContext(ctx, "SELECT TABLE_NAME, TABLE_TYPE, COALESCE(ENGINE, '') FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()")
	if err != nil {
		return fmt.Errorf("list tables: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name, typ, engine string
		if err := rows.Scan(&name, &typ, &engine); err != nil {
			return fmt.Errorf("list tables: %w", err)
		}
		switch typ {
		case "BASE TABLE":
			d.tables = append(d.tables, mysqlTable{name, engine})
		case "VIEW":
			d.views = append(d.views, name)
		case "SYSTEM VERSIONED":
			d.tables = append(d.tables, mysqlTable{name, engine})
			d.skipped = append(d.skipped, fmt.Sprintf("table %s is system-versioned: only its current rows are dumped", name))
		default:
			d.skipped = append(d.skipped, fmt.Sprintf("%s %s is not dumped", strings.ToLower(typ), name))
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("list tables: %w", err)
	}
	sort.Slice(d.tables, func(i, j int) bool { return d.tables[i].name < d.tables[j].name })
	sort.Strings(d.views)
	for _, t := range d.tables {
		switch strings.ToLower(t.engine) {
		case "innodb", "xtradb", "rocksdb", "tokudb":
		default:
			d.skipped = append(d.skipped, fmt.Sprintf("table %s uses engine %s, which the consistent snapshot does not cover", t.name, t.engine))
		}
	}
	return nil
}

func (d *mysqlDumper) fingerprints(ctx context.Context, checks []fingerprint.Check) (fingerprint.Fingerprints, error) {
	fp := fingerprint.Fingerprints{Tables: map[string]int64{}}
	for _, t := range d.tables {
		var n int64
		if err := d.conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+mysqlIdent(t.name)).Scan(&n); err != nil {
			return fp, fmt.Errorf("count rows of %s: %w", t.name, err)
		}
		fp.Tables[t.name] = n
	}
	if len(checks) > 0 {
		fp.Checks = map[string][]string{}
	}
	for _, c := range checks {
		res, err := mysqlCheck(ctx, d.conn, c.Query)
		if err != nil {
			return fp, fmt.Errorf("check %s: %w", c.Name, err)
		}
		fp.Checks[c.Name] = res
	}
	return fp, nil
}

// mysqlCheck runs a check query and renders every row as its columns
// joined by "|", NULL as "NULL".
func mysqlCheck(ctx context.Context, conn *sql.Conn, query string) ([]string, error) {
	rows, err := conn.QueryContext(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	vals := make([]sql.RawBytes, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	res := []string{}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		parts := make([]string, len(vals))
		for i, v := range vals {
			if v == nil {
				parts[i] = "NULL"
			} else {
				parts[i] = string(v)
			}
		}
		res = append(res, strings.Join(parts, "|"))
	}
	return res, rows.Err()
}

// dump writes dump.sql. It runs inside the snapshot transaction.
func (d *mysqlDumper) dump(ctx context.Context, w *bufio.Writer) error {
	fmt.Fprintf(w, "-- coffer MySQL/MariaDB dump, format %d\n", DumpFormat)
	w.WriteString("-- Restore with coffer restore, or: mariadb --database=NEWDB < dump.sql\n")
	w.WriteString("SET NAMES utf8mb4;\n")
	w.WriteString("SET SESSION time_zone = '+00:00';\n")
	w.WriteString("SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO';\n")
	w.WriteString("SET SESSION foreign_key_checks = 0;\n")
	w.WriteString("SET SESSION unique_checks = 0;\n")
	for _, t := range d.tables {
		if err := d.dumpTable(ctx, w, t.name); err != nil {
			return fmt.Errorf("table %s: %w", t.name, err)
		}
	}
	if err := d.dumpObjects(ctx, w); err != nil {
		return err
	}
	w.WriteString("SET SESSION foreign_key_checks = 1;\n")
	w.WriteString("SET SESSION unique_checks = 1;\n")
	_, err := w.WriteString(mysqlDumpEnd + "\n")
	return err
}

// mysqlDumpEnd is the dump's last line.
const mysqlDumpEnd = "-- coffer: end"

type mysqlColumn struct {
	name, typ string
}

const (
	mysqlMinBatch = 512 << 10
	mysqlMaxBatch = 2 << 20
	// A batch ends after a row whose hash has these bits clear: about one
	// row in 64 is a possible boundary.
	mysqlBoundaryMask = 63
)

func (d *mysqlDumper) dumpTable(ctx context.Context, w *bufio.Writer, table string) error {
	var name, create string
	if err := d.conn.QueryRowContext(ctx, "SHOW CREATE TABLE "+mysqlIdent(table)).Scan(&name, &create); err != nil {
		return fmt.Errorf("show create table: %w", err)
	}
	fmt.Fprintf(w, "\n-- coffer: table %s\n%s;\n", mysqlIdent(table), create)

	cols, order, err := d.columns(ctx, table)
	if err != nil {
		return err
	}
	if len(cols) == 0 {
		return nil
	}
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = mysqlIdent(c.name)
	}
	q := "SELECT " + strings.Join(names, ", ") + " FROM " + mysqlIdent(table) + " ORDER BY " + strings.Join(order, ", ")
	rows, err := d.conn.QueryContext(ctx, q)
	if err != nil {
		return fmt.Errorf("read rows: %w", err)
	}
	defer rows.Close()
	head := "INSERT INTO " + mysqlIdent(table) + " (" + strings.Join(names, ", ") + ") VALUES\n"
	vals := make([]sql.RawBytes, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var row []byte
	batch := 0 // bytes in the open statement, 0 when none is open
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return fmt.Errorf("read rows: %w", err)
		}
		row = append(row[:0], '(')
		for i, v := range vals {
			if i > 0 {
				row = append(row, ',')
			}
			row = appendMySQLValue(row, cols[i].typ, v)
		}
		row = append(row, ')')
		if batch == 0 {
			w.WriteString(head)
		} else {
			w.WriteString(",\n")
		}
		if _, err := w.Write(row); err != nil {
			return err
		}
		batch += len(row) + 2
		h := fnv.New64a()
		h.Write(row)
		if batch >= mysqlMaxBatch || (batch >= mysqlMinBatch && h.Sum64()&mysqlBoundaryMask == 0) {
			w.WriteString(";\n")
			batch = 0
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read rows: %w", err)
	}
	if batch > 0 {
		w.WriteString(";\n")
	}
	return nil
}

// columns returns the table's stored (not generated) columns and the
// ORDER BY terms that make the row order deterministic: the primary key,
// or every column when there is none.
func (d *mysqlDumper) columns(ctx context.Context, table string) ([]mysqlColumn, []string, error) {
	rows, err := d.conn.QueryContext(ctx, "SELECT COLUMN_NAME, DATA_TYPE, IS_GENERATED FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION", table)
	if err != nil {
		return nil, nil, fmt.Errorf("list columns: %w", err)
	}
	var cols []mysqlColumn
	for rows.Next() {
		var c mysqlColumn
		var gen string
		if err := rows.Scan(&c.name, &c.typ, &gen); err != nil {
			rows.Close()
			return nil, nil, fmt.Errorf("list columns: %w", err)
		}
		if gen == "ALWAYS" {
			continue
		}
		c.typ = strings.ToLower(c.typ)
		cols = append(cols, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("list columns: %w", err)
	}
	rows, err = d.conn.QueryContext(ctx, "SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX", table)
	if err != nil {
		return nil, nil, fmt.Errorf("list primary key: %w", err)
	}
	defer rows.Close()
	var order []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, nil, fmt.Errorf("list primary key: %w", err)
		}
		order = append(order, mysqlIdent(c))
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("list primary key: %w", err)
	}
	if len(order) == 0 {
		for i := range cols {
			order = append(order, strconv.Itoa(i+1))
		}
	}
	return cols, order, nil
}

// appendMySQLValue renders one value as returned by the text protocol.
func appendMySQLValue(dst []byte, typ string, v sql.RawBytes) []byte {
	if v == nil {
		return append(dst, "NULL"...)
	}
	switch typ {
	case "tinyint", "smallint", "mediumint", "int", "integer", "bigint",
		"decimal", "numeric", "float", "double", "real", "year":
		return append(dst, v...)
	case "date", "datetime", "timestamp", "time":
		dst = append(dst, '\'')
		dst = append(dst, v...)
		return append(dst, '\'')
	case "bit":
		dst = append(dst, "b'"...)
		for _, c := range v {
			for bit := 7; bit >= 0; bit-- {
				dst = append(dst, '0'+(c>>bit)&1)
			}
		}
		return append(dst, '\'')
	case "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob",
		"geometry", "point", "linestring", "polygon", "multipoint",
		"multilinestring", "multipolygon", "geometrycollection":
		dst = append(dst, "X'"...)
		dst = hex.AppendEncode(dst, v)
		return append(dst, '\'')
	}
	// Character data of any charset arrives as utf8mb4 (SET NAMES); the
	// introducer makes the server convert it to the column's charset.
	dst = append(dst, "_utf8mb4 X'"...)
	dst = hex.AppendEncode(dst, v)
	return append(dst, '\'')
}

// dumpObjects writes routines, views, triggers and events, in that order:
// views may call functions, and triggers come after the data so that they
// do not fire during the restore.
func (d *mysqlDumper) dumpObjects(ctx context.Context, w *bufio.Writer) error {
	type object struct{ kind, name string }
	list := func(q string) ([]object, error) {
		rows, err := d.conn.QueryContext(ctx, q)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		var objs []object
		for rows.Next() {
			var o object
			if err := rows.Scan(&o.kind, &o.name); err != nil {
				return nil, err
			}
			objs = append(objs, o)
		}
		return objs, rows.Err()
	}
	// SHOW CREATE ... returns the name, sql_mode and the statement among
	// other columns; col is the statement's column.
	show := func(kind, name string, modeCol, col int) (mode, stmt string, err error) {
		rows, err := d.conn.QueryContext(ctx, "SHOW CREATE "+kind+" "+mysqlIdent(name))
		if err != nil {
			return "", "", err
		}
		defer rows.Close()
		cols, err := rows.Columns()
		if err != nil {
			return "", "", err
		}
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if !rows.Next() {
			if err := rows.Err(); err != nil {
				return "", "", err
			}
			return "", "", fmt.Errorf("%s %s vanished", strings.ToLower(kind), name)
		}
		if err := rows.Scan(ptrs...); err != nil {
			return "", "", err
		}
		if col >= len(vals) || !vals[col].Valid {
			return "", "", fmt.Errorf("no privilege to read the definition of %s %s", strings.ToLower(kind), name)
		}
		if modeCol >= 0 {
			mode = vals[modeCol].String
		}
		return mode, vals[col].String, rows.Close()
	}

	routines, err := list("SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE() ORDER BY ROUTINE_TYPE, ROUTINE_NAME")
	if err != nil {
		return fmt.Errorf("list routines: %w", err)
	}
	triggers, err := list("SELECT 'TRIGGER', TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() ORDER BY EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, ACTION_ORDER, TRIGGER_NAME")
	if err != nil {
		return fmt.Errorf("list triggers: %w", err)
	}
	events, err := list("SELECT 'EVENT', EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = DATABASE() ORDER BY EVENT_NAME")
	if err != nil {
		return fmt.Errorf("list events: %w", err)
	}

	compound := func(section string, objs []object, modeCol, col int) error {
		if len(objs) == 0 {
			return nil
		}
		fmt.Fprintf(w, "\n-- coffer: %s\nDELIMITER ;;\n", section)
		for _, o := range objs {
			mode, stmt, err := show(o.kind, o.name, modeCol, col)
			if err != nil {
				return fmt.Errorf("%s %s: %w", strings.ToLower(o.kind), o.name, err)
			}
			fmt.Fprintf(w, "SET SESSION sql_mode = %s;;\n%s;;\n", mysqlString(mode), stmt)
		}
		w.WriteString("SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO';;\nDELIMITER ;\n")
		return nil
	}
	if err := compound("routines", routines, 1, 2); err != nil {
		return err
	}

	views := make(map[string]string, len(d.views))
	for _, v := range d.views {
		_, stmt, err := show("VIEW", v, -1, 1)
		if err != nil {
			return fmt.Errorf("view %s: %w", v, err)
		}
		views[v] = stmt
	}
	if len(d.views) > 0 {
		w.WriteString("\n-- coffer: views\n")
		for _, v := range viewOrder(d.views, views) {
			fmt.Fprintf(w, "%s;\n", views[v])
		}
	}

	if err := compound("triggers", triggers, 1, 2); err != nil {
		return err
	}
	// SHOW CREATE EVENT: Event, sql_mode, time_zone, Create Event, ...
	if len(events) > 0 {
		if err := compound("events", events, 1, 3); err != nil {
			return err
		}
	}
	return nil
}

// viewOrder sorts views so that a view comes after the views its
// definition mentions (by quoted name; a view mentioning another's name in
// a string literal only changes the order).
func viewOrder(names []string, defs map[string]string) []string {
	var out []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(string)
	visit = func(v string) {
		if state[v] != 0 {
			return
		}
		state[v] = 1
		for _, o := range names {
			if o != v && strings.Contains(defs[v], mysqlIdent(o)) {
				visit(o)
			}
		}
		state[v] = 2
		out = append(out, v)
	}
	for _, v := range names {
		visit(v)
	}
	return out
}

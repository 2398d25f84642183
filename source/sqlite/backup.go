package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/cofferhq/coffer/internal/fingerprint"
	"github.com/cofferhq/coffer/source"
)

// MetaKey is the catalog metadata key of a SQLite source's Info.
const MetaKey = "sqlite"

// DatabasePath is the entry a SQLite source writes.
const DatabasePath = "database.sqlite"

// Info describes the database a SQLite snapshot came from.
type Info struct {
	Path          string              `json:"path"`
	SQLiteVersion string              `json:"sqlite_version"`
	Checks        []fingerprint.Check `json:"checks,omitempty"` // re-run on restore
}

// Source backs up a SQLite database file, also while other processes
// write to it: VACUUM INTO makes a consistent copy inside one read
// transaction, in a private temporary folder that is always removed; the
// fingerprints are taken from that copy, and the copy is what is stored.
type Source struct {
	SourceName string
	Path       string
	Checks     []fingerprint.Check
	// InSnapshot, when set, runs on the consistent copy after the
	// fingerprints (a composite kind reads what it checks from the very
	// state the backup holds). Its error fails the backup.
	InSnapshot func(ctx context.Context, db *sql.DB) error
}

var _ source.Source = (*Source)(nil)

func (s *Source) Name() string { return s.SourceName }
func (s *Source) Kind() string { return "sqlite" }

// Backup implements Source.
func (s *Source) Backup(ctx context.Context, w source.Writer) error {
	if _, err := os.Stat(s.Path); err != nil {
		return fmt.Errorf("sqlite %s: %w", s.Path, err) // do not let the driver create it
	}
	dir, err := os.MkdirTemp("", "coffer-sqlite-")
	if err != nil {
		return fmt.Errorf("sqlite %s: %w", s.Path, err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("sqlite %s: %w", s.Path, err)
	}
	copyPath := filepath.Join(dir, DatabasePath)

	db, err := Open(s.Path, false)
	if err != nil {
		return fmt.Errorf("sqlite %s: %w", s.Path, err)
	}
	point := source.ConsistentPoint{Time: time.Now().UTC()}
	_, err = db.ExecContext(ctx, "vacuum into ?", copyPath)
	db.Close()
	if err != nil {
		return fmt.Errorf("sqlite %s: copy: %w", s.Path, err)
	}

	cp, err := Open(copyPath, true)
	if err != nil {
		return fmt.Errorf("sqlite %s: open copy: %w", s.Path, err)
	}
	info := Info{Path: s.Path, Checks: s.Checks}
	cp.QueryRowContext(ctx, "select sqlite_version()").Scan(&info.SQLiteVersion)
	fp, err := Fingerprints(ctx, cp, s.Checks)
	if err != nil {
		cp.Close()
		return fmt.Errorf("sqlite %s: fingerprints: %w", s.Path, err)
	}
	if s.InSnapshot != nil {
		if err := s.InSnapshot(ctx, cp); err != nil {
			cp.Close()
			return fmt.Errorf("sqlite %s: %w", s.Path, err)
		}
	}
	cp.Close()

	f, err := os.Open(copyPath)
	if err != nil {
		return fmt.Errorf("sqlite %s: %w", s.Path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("sqlite %s: %w", s.Path, err)
	}
	e := source.Entry{Path: DatabasePath, Type: source.TypeFile, Mode: 0o600, Size: st.Size(), ModTime: time.Now()}
	if err := w.WriteFile(ctx, e, f); err != nil {
		return fmt.Errorf("sqlite %s: store copy: %w", s.Path, err)
	}
	if err := w.SetMeta(fingerprint.MetaKey, fp); err != nil {
		return err
	}
	if err := w.SetMeta(source.ConsistentKey, point); err != nil {
		return err
	}
	return w.SetMeta(MetaKey, info)
}

// Open opens the existing SQLite database at path (read-only when
// readOnly), waiting up to 30 s for other writers' locks.
func Open(path string, readOnly bool) (*sql.DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	mode := "rw"
	if readOnly {
		mode = "ro"
	}
	u := url.URL{Scheme: "file", OmitHost: true, Path: abs, RawQuery: "mode=" + mode + "&_pragma=busy_timeout(30000)"}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

// Fingerprints counts the rows of every table of db and runs checks.
// Values are rendered as text: integers and reals in Go's shortest form,
// NULL as "NULL".
func Fingerprints(ctx context.Context, db *sql.DB, checks []fingerprint.Check) (fingerprint.Fingerprints, error) {
	fp := fingerprint.Fingerprints{Tables: map[string]int64{}}
	conn, err := db.Conn(ctx)
	if err != nil {
		return fp, err
	}
	defer conn.Close()
	// One read transaction, so that counts and checks see one state.
	tx, err := conn.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fp, err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, "select name from sqlite_schema where type = 'table' and name not like 'sqlite\\_%' escape '\\' order by name")
	if err != nil {
		return fp, fmt.Errorf("list tables: %w", err)
	}
	var tables []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			rows.Close()
			return fp, fmt.Errorf("list tables: %w", err)
		}
		tables = append(tables, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fp, fmt.Errorf("list tables: %w", err)
	}
	for _, t := range tables {
		var n int64
		if err := tx.QueryRowContext(ctx, `select count(*) from "`+strings.ReplaceAll(t, `"`, `""`)+`"`).Scan(&n); err != nil {
			return fp, fmt.Errorf("count %s: %w", t, err)
		}
		fp.Tables[t] = n
	}
	fp.Checks, err = fingerprint.RunChecks(checks, func(sql string) ([]string, error) { return sqliteText(ctx, tx, sql) })
	return fp, err
}

func sqliteText(ctx context.Context, tx *sql.Tx, query string) ([]string, error) {
	rows, err := tx.QueryContext(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	out := []string{}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		parts := make([]string, len(vals))
		for i, v := range vals {
			switch v := v.(type) {
			case nil:
				parts[i] = "NULL"
			case []byte:
				parts[i] = string(v)
			case float64:
				parts[i] = strconv.FormatFloat(v, 'g', -1, 64)
			case time.Time:
				parts[i] = v.UTC().Format(time.RFC3339Nano)
			default:
				parts[i] = fmt.Sprint(v)
			}
		}
		out = append(out, strings.Join(parts, "|"))
	}
	return out, rows.Err()
}

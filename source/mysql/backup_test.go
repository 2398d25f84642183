package mysql_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/cofferhq/coffer/internal/fingerprint"
	"github.com/cofferhq/coffer/internal/testing/fixture"
	"github.com/cofferhq/coffer/source"
	"github.com/cofferhq/coffer/source/mysql"
)

// mysqlWriter is a source.Writer that keeps everything in memory.
type mysqlWriter struct {
	files map[string][]byte
	meta  map[string]any
	warns []string
}

func newMySQLWriter() *mysqlWriter {
	return &mysqlWriter{files: map[string][]byte{}, meta: map[string]any{}}
}

func (w *mysqlWriter) WriteFile(ctx context.Context, e source.Entry, r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	w.files[e.Path] = b
	return nil
}
func (w *mysqlWriter) WriteEntry(ctx context.Context, e source.Entry) error { return nil }
func (w *mysqlWriter) SetMeta(key string, v any) error                      { w.meta[key] = v; return nil }
func (w *mysqlWriter) Warn(format string, args ...any) error {
	w.warns = append(w.warns, fmt.Sprintf(format, args...))
	return nil
}

func TestParseMySQLDSN(t *testing.T) {
	for _, tc := range []struct {
		in                   string
		user, pass, addr, db string
		net                  string
	}{
		{in: "coffer:s3cret@tcp(db.example:3307)/invoices", user: "coffer", pass: "s3cret", addr: "db.example:3307", db: "invoices", net: "tcp"},
		{in: "root@tcp(127.0.0.1:3306)/", user: "root", addr: "127.0.0.1:3306", net: "tcp"},
		{in: "mysql://coffer:p%40ss%3Aw@db.example/airflow", user: "coffer", pass: "p@ss:w", addr: "db.example:3306", db: "airflow", net: "tcp"},
		{in: "mysql+mysqldb://airflow:airflow@mysql:3306/airflow?charset=utf8mb4", user: "airflow", pass: "airflow", addr: "mysql:3306", db: "airflow", net: "tcp"},
		{in: "mariadb://u@[::1]:3310/x", user: "u", addr: "[::1]:3310", db: "x", net: "tcp"},
		{in: "mysql://u:p@localhost/x?unix_socket=/run/mysqld/mysqld.sock", user: "u", pass: "p", addr: "/run/mysqld/mysqld.sock", db: "x", net: "unix"},
	} {
		cfg, err := mysql.ParseDSN(tc.in)
		if err != nil {
			t.Errorf("ParseDSN(%q): %v", tc.in, err)
			continue
		}
		if cfg.User != tc.user || cfg.Passwd != tc.pass || cfg.Addr != tc.addr || cfg.DBName != tc.db || cfg.Net != tc.net {
			t.Errorf("ParseDSN(%q) = user %q pass %q %s %q db %q", tc.in, cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName)
		}
		if cfg.MultiStatements || cfg.Timeout == 0 {
			t.Errorf("ParseDSN(%q): multi-statements %v, timeout %v", tc.in, cfg.MultiStatements, cfg.Timeout)
		}
	}
	for _, in := range []string{
		"postgres://u:topsecret@h/db",
		"mysql://u:topsecret@h/db?ssl_ca=/x",
		"mysql://u:topsecret@h:port/db",
		"u:topsecret@tcp(h/db",
	} {
		_, err := mysql.ParseDSN(in)
		if err == nil {
			t.Errorf("ParseDSN(%q) succeeded", in)
		} else if strings.Contains(err.Error(), "topsecret") {
			t.Errorf("ParseDSN(%q): error reveals the password: %v", in, err)
		}
	}
}

func FuzzParseMySQLDSN(f *testing.F) {
	f.Add("mysql+mysqldb://airflow:pw@mysql:3306/airflow?charset=utf8mb4")
	f.Add("root:pw@tcp(127.0.0.1:3306)/test")
	f.Fuzz(func(t *testing.T, s string) {
		mysql.ParseDSN(s) //nolint:errcheck // must not panic
	})
}

func TestMySQLBackupErrors(t *testing.T) {
	ctx := context.Background()
	dsn := fixture.NewMySQLDB(t)
	if err := fixture.CreateMySQL(ctx, dsn, fixture.Size{Vendors: 3, Invoices: 10, LinesPerInvoice: 2}, 1); err != nil {
		t.Fatal(err)
	}
	cfg, err := gomysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}

	// A user with a password, to be given a wrong one.
	var b [4]byte
	rand.Read(b[:])
	user := "coffer_" + hex.EncodeToString(b[:])
	admin := fixture.MySQLAdmin(t)
	for _, q := range []string{
		"CREATE USER '" + user + "'@'%' IDENTIFIED BY 'right-password'",
		"GRANT SELECT, SHOW VIEW, TRIGGER, EVENT ON `" + cfg.DBName + "`.* TO '" + user + "'@'%'",
	} {
		if _, err := admin.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Cleanup(func() { admin.Exec("DROP USER IF EXISTS '" + user + "'@'%'") })
	withUser := func(pass string) string {
		c := cfg.Clone()
		c.User, c.Passwd = user, pass
		return c.FormatDSN()
	}
	missing := cfg.Clone()
	missing.DBName = "coffer_no_such_db_" + hex.EncodeToString(b[:])

	for _, tc := range []struct {
		name   string
		dsn    string
		checks []fingerprint.Check
		want   string
	}{
		{"unreachable", "root@tcp(127.0.0.1:1)/x", nil, "cannot reach server 127.0.0.1:1"},
		{"wrong password", withUser("wrong-password"), nil, "access denied for user \"" + user + "\" (wrong password?)"},
		{"missing database", missing.FormatDSN(), nil, "database \"" + missing.DBName + "\" does not exist"},
		{"no database", "root@tcp(127.0.0.1:3306)/", nil, "names no database"},
		{"failing check", dsn, []fingerprint.Check{{Name: "broken", Query: "select nope from invoice"}}, "check broken: "},
		{"writing check", dsn, []fingerprint.Check{{Name: "sneaky", Query: "delete from invoice"}}, "check sneaky: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			w := newMySQLWriter()
			src := &mysql.Source{SourceName: "inv", DSN: tc.dsn, Checks: tc.checks}
			err := src.Backup(ctx, w)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
			t.Logf("%v", err)
			if !strings.HasPrefix(err.Error(), "mysql source inv: ") || strings.Contains(err.Error(), "\n") {
				t.Errorf("err = %q, want one line naming the source", err)
			}
			if strings.Contains(err.Error(), "wrong-password") || strings.Contains(err.Error(), "right-password") {
				t.Errorf("error reveals a password: %v", err)
			}
			if len(w.files) > 0 {
				t.Errorf("a failed backup wrote %d files", len(w.files))
			}
		})
	}
	// The right password works, and the dump is there.
	w := newMySQLWriter()
	if err := (&mysql.Source{SourceName: "inv", DSN: withUser("right-password")}).Backup(ctx, w); err != nil {
		t.Fatalf("backup with the right password: %v", err)
	}
	if got := string(w.files[mysql.DumpFile]); !strings.Contains(got, "INSERT INTO `invoice`") {
		t.Errorf("dump has no invoice rows:\n%.500s", got)
	}
	var n int
	admin.QueryRow("SELECT COUNT(*) FROM `" + cfg.DBName + "`.invoice").Scan(&n)
	if n != 10 {
		t.Errorf("invoice has %d rows after the checks, want 10", n)
	}
}

package postgres

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer/internal/fingerprint"
	"github.com/cofferhq/coffer/internal/testing/fixture"
	"github.com/cofferhq/coffer/internal/testing/memsource"
	"github.com/cofferhq/coffer/source"
)

func newBackupDB(t *testing.T) string {
	t.Helper()
	dsn := fixture.NewPostgresDB(t)
	if err := fixture.CreatePostgres(context.Background(), dsn, fixture.Size{Vendors: 10, Invoices: 2000, LinesPerInvoice: 3}, 1); err != nil {
		t.Fatal(err)
	}
	return dsn
}

// assertNothingStored checks that a failed backup left no dump and no
// metadata in w.
func assertNothingStored(t *testing.T, w *memsource.Snap) {
	t.Helper()
	if _, ok := w.Files[DumpPath]; ok {
		t.Errorf("failed backup stored %s (%d bytes)", DumpPath, len(w.Files[DumpPath]))
	}
	if len(w.MetaJSON) > 0 {
		t.Errorf("failed backup stored metadata %v", w.MetaJSON)
	}
}

func TestPostgresBackupStreamsCustomFormat(t *testing.T) {
	dsn := newBackupDB(t)
	w := memsource.New("", "")
	src := &Source{SourceName: "db", DSN: dsn}
	if err := src.Backup(context.Background(), w); err != nil {
		t.Fatal(err)
	}
	d := w.Files[DumpPath]
	if !strings.HasPrefix(string(d), "PGDMP") {
		t.Fatalf("dump starts with %q, want a custom-format archive", d[:min(len(d), 5)])
	}
	// -Z0: the rows are in the archive uncompressed.
	if !strings.Contains(string(d), "INV-2026-002000") {
		t.Error("dump does not contain invoice numbers in clear: compressed?")
	}
	if e := w.List[0]; e.Mode != 0o600 || e.Type != source.TypeFile {
		t.Errorf("entry = %+v", e)
	}
	var fp fingerprint.Fingerprints
	if err := w.Meta(fingerprint.MetaKey, &fp); err != nil {
		t.Fatal(err)
	}
	if fp.Tables["public.invoice"] != 2000 || len(fp.Tables) != 5 {
		t.Errorf("fingerprints = %v", fp.Tables)
	}
}

func TestPostgresConnectErrors(t *testing.T) {
	dsn := fixture.NewPostgresDB(t) // skips without a server
	ctx := context.Background()
	cfg, _ := pgx.ParseConfig(dsn)
	host := cfg.Host + ":" + strconv.Itoa(int(cfg.Port))
	for _, tc := range []struct {
		name, dsn string
		want      []string
		state     string
	}{
		{"unreachable", "postgres://postgres:Secret123@127.0.0.1:1/test?sslmode=disable&connect_timeout=5",
			[]string{`connect to postgres 127.0.0.1:1 database "test": `, "connection refused"}, ""},
		{"missing database", fixture.WithDatabase(dsn, "coffer_no_such_db"),
			[]string{`connect to postgres ` + host + ` database "coffer_no_such_db": `, `database "coffer_no_such_db" does not exist`}, "3D000"},
		// The test server trusts 127.0.0.1, so a wrong password is accepted:
		// an unknown role is the authentication failure we can provoke.
		{"unknown role", "host=" + cfg.Host + " port=" + strconv.Itoa(int(cfg.Port)) + " user=coffer_no_such_role password=Secret123 dbname=postgres sslmode=disable",
			[]string{`connect to postgres ` + host + ` database "postgres": `, `role "coffer_no_such_role" does not exist`}, "28000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := memsource.New("", "")
			err := (&Source{SourceName: "db", DSN: tc.dsn}).Backup(ctx, w)
			if err == nil {
				t.Fatal("Backup succeeded")
			}
			msg := err.Error()
			t.Log(msg)
			for _, s := range tc.want {
				if !strings.Contains(msg, s) {
					t.Errorf("error %q does not contain %q", msg, s)
				}
			}
			if strings.Contains(msg, "Secret123") || strings.Contains(msg, "\n") {
				t.Errorf("error %q shows the password or spans lines", msg)
			}
			var ce *ConnectError
			if !errors.As(err, &ce) || ce.SQLState() != tc.state {
				t.Errorf("error %v: want a ConnectError with SQLSTATE %q", err, tc.state)
			}
			assertNothingStored(t, w)
		})
	}
}

// fakeTool writes an executable shell script.
func fakeTool(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPostgresPgDumpMissingOrOld(t *testing.T) {
	dsn := fixture.NewPostgresDB(t)
	ctx := context.Background()

	w := memsource.New("", "")
	err := (&Source{SourceName: "db", DSN: dsn, PgDump: "/nonexistent/pg_dump"}).Backup(ctx, w)
	if !errors.Is(err, ErrToolNotFound) || !strings.Contains(err.Error(), "/nonexistent/pg_dump") {
		t.Errorf("missing pg_dump: err = %v, want ErrToolNotFound naming the path", err)
	}
	t.Log(err)
	assertNothingStored(t, w)

	old := fakeTool(t, "pg_dump", `echo "pg_dump (PostgreSQL) 9.6.0"; [ "$1" = --version ] || exit 1`)
	w = memsource.New("", "")
	err = (&Source{SourceName: "db", DSN: dsn, PgDump: old}).Backup(ctx, w)
	var ve *ToolVersionError
	if !errors.As(err, &ve) || !strings.Contains(err.Error(), "pg_dump 9.6.0 is older than server 15.") || !strings.Contains(err.Error(), "install postgresql-client-1") {
		t.Errorf("old pg_dump: err = %v, want ToolVersionError naming both versions", err)
	}
	t.Log(err)
	assertNothingStored(t, w)

	// The search itself: a server newer than any installed client.
	if _, _, err := FindTool("pg_dump", "", "99.1"); !errors.As(err, &ve) || ve.ServerVersion != "99.1" {
		t.Errorf("FindTool for server 99.1: err = %v, want ToolVersionError", err)
	}
	if p, v, err := FindTool("pg_dump", "", "15.2"); err != nil || majorNum(v) < 1500 {
		t.Errorf("FindTool for server 15.2 = %s %s, %v", p, v, err)
	}
}

func TestPostgresPgDumpKilled(t *testing.T) {
	dsn := newBackupDB(t)
	real, _, err := FindTool("pg_dump", "", "15")
	if err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(t.TempDir(), "pid")
	wrapper := fakeTool(t, "pg_dump", `echo $$ > `+pidFile+`; exec `+real+` "$@"`)
	w := memsource.New("", "")
	killed := false
	w.OnRead = func(path string, n int64) {
		if killed {
			return
		}
		b, err := os.ReadFile(pidFile)
		if err != nil {
			return
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		if pid > 0 && syscall.Kill(pid, syscall.SIGKILL) == nil {
			killed = true
		}
	}
	err = (&Source{SourceName: "db", DSN: dsn, PgDump: wrapper}).Backup(context.Background(), w)
	if !killed {
		t.Fatal("pg_dump was not killed")
	}
	if err == nil || !strings.Contains(err.Error(), "pg_dump failed") || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("err = %v, want pg_dump failed ... killed", err)
	}
	t.Log(err)
	assertNothingStored(t, w)
}

func TestPostgresPgDumpStderr(t *testing.T) {
	dsn := fixture.NewPostgresDB(t)
	failing := fakeTool(t, "pg_dump", `[ "$1" = --version ] && { echo "pg_dump (PostgreSQL) 15.1"; exit 0; }
echo "pg_dump: error: query failed: ERROR:  permission denied for table invoice" >&2; printf PGDMP; exit 1`)
	w := memsource.New("", "")
	err := (&Source{SourceName: "db", DSN: fixture.WithDatabase(dsn, dbNameOf(t, dsn)), PgDump: failing}).Backup(context.Background(), w)
	if err == nil || !strings.Contains(err.Error(), "permission denied for table invoice") {
		t.Fatalf("err = %v, want pg_dump's stderr", err)
	}
	assertNothingStored(t, w)
}

func dbNameOf(t *testing.T, dsn string) string {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Database
}

func TestPostgresFailingCheck(t *testing.T) {
	dsn := newBackupDB(t)
	w := memsource.New("", "")
	src := &Source{SourceName: "db", DSN: dsn, Checks: []fingerprint.Check{
		{Name: "ok", Query: "select count(*) from invoice"},
		{Name: "broken", Query: "select sum(no_such_column) from invoice"},
	}}
	err := src.Backup(context.Background(), w)
	if err == nil || !strings.Contains(err.Error(), `check "broken"`) || !strings.Contains(err.Error(), "no_such_column") {
		t.Fatalf("err = %v, want the failing check named", err)
	}
	t.Log(err)
	if len(w.MetaJSON) > 0 {
		t.Errorf("failed backup stored metadata")
	}
}

func TestPostgresPasswordNotInArgv(t *testing.T) {
	for _, tc := range []struct{ dsn, db, wantConn, wantPw string }{
		{"postgres://u:p%40ss@h:5433/db?sslmode=require", "", "postgres://u@h:5433/db?sslmode=require", "p@ss"},
		{"postgresql://u@h/db?password=x&sslmode=disable", "other", "postgresql://u@h/other?sslmode=disable", "x"},
		{`host=h user=u password='a b\'c' dbname=db sslrootcert=/x`, "new", `host='h' user='u' sslrootcert='/x' dbname='new'`, "a b'c"},
		{"host=h dbname=db", "", `host='h' dbname='db'`, ""},
	} {
		conn, pw, err := splitPassword(tc.dsn, tc.db)
		if err != nil || conn != tc.wantConn || pw != tc.wantPw {
			t.Errorf("splitPassword(%q, %q) = %q, %q, %v; want %q, %q", tc.dsn, tc.db, conn, pw, err, tc.wantConn, tc.wantPw)
		}
	}
}

func TestMajorNum(t *testing.T) {
	for v, want := range map[string]int{"15.20": 1500, "9.6.0": 906, "13": 1300, "10.1": 1000} {
		if got := majorNum(v); got != want {
			t.Errorf("majorNum(%q) = %d, want %d", v, got, want)
		}
	}
}

// TestPostgresPasswordGoesToEnvironment runs pg_dump through a wrapper that
// records its arguments and PGPASSWORD: the DSN's password reaches the
// child only through its environment. (The test server trusts 127.0.0.1, so
// the password itself is not checked.)
func TestPostgresPasswordGoesToEnvironment(t *testing.T) {
	dsn := fixture.NewPostgresDB(t)
	cfg, _ := pgx.ParseConfig(dsn)
	withPw := "postgres://" + cfg.User + ":Secret%20123@" + cfg.Host + ":" + strconv.Itoa(int(cfg.Port)) + "/" + cfg.Database + "?sslmode=disable"
	real, _, err := FindTool("pg_dump", "", "15")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	wrapper := fakeTool(t, "pg_dump", `[ "$1" = --version ] || { echo "$@" > `+dir+`/args; echo "$PGPASSWORD" > `+dir+`/pw; }; exec `+real+` "$@"`)
	w := memsource.New("", "")
	if err := (&Source{SourceName: "db", DSN: withPw, PgDump: wrapper}).Backup(context.Background(), w); err != nil {
		t.Fatal(err)
	}
	args, _ := os.ReadFile(filepath.Join(dir, "args"))
	pw, _ := os.ReadFile(filepath.Join(dir, "pw"))
	if strings.Contains(string(args), "Secret") || !strings.Contains(string(args), "--snapshot=") || !strings.Contains(string(args), "-Z0") && !strings.Contains(string(args), "--compress=0") {
		t.Errorf("pg_dump arguments = %s", args)
	}
	if got := strings.TrimSpace(string(pw)); got != "Secret 123" {
		t.Errorf("PGPASSWORD = %q, want the DSN's password", got)
	}
	t.Logf("pg_dump %s", args)
}

package mysql_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/cofferhq/coffer/internal/testing/fixture"
	"github.com/cofferhq/coffer/source/mysql"
)

// newAccount creates 'prefix_xxxx'@'%' (no password), dropped when the test
// ends.
func newAccount(t *testing.T, prefix string) string {
	t.Helper()
	admin := fixture.MySQLAdmin(t)
	var b [4]byte
	rand.Read(b[:])
	user := prefix + "_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec("CREATE USER '" + user + "'@'%'"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Exec("DROP USER IF EXISTS '" + user + "'@'%'") })
	return user
}

// asAccount returns dsn connecting as user without a password.
func asAccount(t *testing.T, dsn, user string) string {
	t.Helper()
	cfg, err := gomysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.User, cfg.Passwd = user, ""
	return cfg.FormatDSN()
}

func mysqlExec(t *testing.T, dsn string, stmts ...string) {
	t.Helper()
	db := mysqlOpen(t, dsn)
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// grantsDB is a database the account owner may do everything in and
// reader may read one table of.
func grantsDB(t *testing.T, owner, reader string) string {
	t.Helper()
	dsn := fixture.NewMySQLDB(t)
	db := mysqlDBName(t, dsn)
	mysqlExec(t, dsn,
		"CREATE TABLE variable (id INT AUTO_INCREMENT PRIMARY KEY, `key` VARCHAR(250) UNIQUE, val TEXT)",
		"CREATE TABLE dag (dag_id VARCHAR(250) PRIMARY KEY, is_paused BOOL NOT NULL DEFAULT 0)",
		"INSERT INTO dag VALUES ('invoice_ingest', 0)",
		"GRANT ALL PRIVILEGES ON `"+db+"`.* TO '"+owner+"'@'%'",
		"GRANT SELECT ON `"+db+"`.dag TO '"+reader+"'@'%'",
	)
	return dsn
}

func canWrite(t *testing.T, dsn string) {
	t.Helper()
	mysqlExec(t, dsn,
		"INSERT INTO variable (`key`, val) VALUES ('k', 'v')",
		"UPDATE variable SET val = 'w'",
		"INSERT INTO dag VALUES ('payment_run', 1)",
		"UPDATE dag SET is_paused = 1",
		"ALTER TABLE dag ADD COLUMN note TEXT",
	)
}

func TestMySQLRestoreGrants(t *testing.T) {
	ctx := context.Background()
	owner := newAccount(t, "coffer_af_owner")
	reader := newAccount(t, "coffer_af_reader")
	given := newAccount(t, "coffer_af_given")
	src := grantsDB(t, owner, reader)
	mem := newMySQLMem("metadb")
	if err := (&mysql.Source{SourceName: "metadb", DSN: src}).Backup(ctx, mem); err != nil {
		t.Fatal(err)
	}
	var info mysql.Info
	if err := mem.Meta(mysql.MetaKey, &info); err != nil {
		t.Fatal(err)
	}
	var ownerPrivs, readerPrivs int
	for _, g := range info.Grants {
		switch {
		case g.User == owner && g.Table == "":
			ownerPrivs++
		case g.User == reader && g.Table == "dag" && g.Privilege == "SELECT":
			readerPrivs++
		}
	}
	if ownerPrivs < 10 || readerPrivs != 1 {
		t.Fatalf("recorded grants %+v: want %s's database privileges and %s's SELECT on dag", info.Grants, owner, reader)
	}

	t.Run("recorded", func(t *testing.T) {
		dst, _ := mysqlTarget(t)
		res, err := mysql.Restore(ctx, mem, dst, mysql.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := res.Grants.Owner(), "'"+owner+"'@'%'"; got != want {
			t.Errorf("owner = %s, want %s (%s)", got, want, res.Grants)
		}
		if !strings.Contains(res.Grants.String(), reader) {
			t.Errorf("grants line %q does not name %s", res.Grants, reader)
		}
		canWrite(t, asAccount(t, dst, owner))
		var n int
		if err := mysqlOpen(t, asAccount(t, dst, reader)).QueryRow("SELECT COUNT(*) FROM dag").Scan(&n); err != nil {
			t.Errorf("reader: %v", err)
		}
	})

	t.Run("given", func(t *testing.T) {
		dst, _ := mysqlTarget(t)
		res, err := mysql.Restore(ctx, mem, dst, mysql.Options{Owner: given})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := res.Grants.Owner(), "'"+given+"'@'%'"; got != want || !res.Grants.Given {
			t.Errorf("owner = %s, want %s", got, want)
		}
		canWrite(t, asAccount(t, dst, given))
	})

	t.Run("given missing", func(t *testing.T) {
		dst, name := mysqlTarget(t)
		_, err := mysql.Restore(ctx, mem, dst, mysql.Options{Owner: "coffer_no_such_account@localhost"})
		if !errors.Is(err, mysql.ErrNoSuchAccount) {
			t.Fatalf("err = %v, want ErrNoSuchAccount", err)
		}
		if mysqlExists(t, name) {
			t.Error("the failed restore left its database")
		}
	})

	t.Run("recorded account missing", func(t *testing.T) {
		gone := newAccount(t, "coffer_af_gone")
		src := grantsDB(t, gone, reader)
		mem := newMySQLMem("metadb")
		if err := (&mysql.Source{SourceName: "metadb", DSN: src}).Backup(ctx, mem); err != nil {
			t.Fatal(err)
		}
		fixture.MySQLAdmin(t).Exec("DROP USER '" + gone + "'@'%'")
		dst, _ := mysqlTarget(t)
		res, err := mysql.Restore(ctx, mem, dst, mysql.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Grants.Missing) != 1 || !strings.Contains(res.Grants.String(), gone) {
			t.Errorf("grants = %+v (%s), want %s missing", res.Grants, res.Grants, gone)
		}
	})
}

func TestParseAccount(t *testing.T) {
	for _, tc := range []struct{ in, user, host string }{
		{"airflow", "airflow", "%"},
		{"airflow@localhost", "airflow", "localhost"},
		{"'airflow'@'10.%'", "airflow", "10.%"},
	} {
		u, h, err := mysql.ParseAccount(tc.in)
		if err != nil || u != tc.user || h != tc.host {
			t.Errorf("ParseAccount(%q) = %q, %q, %v; want %q, %q", tc.in, u, h, err, tc.user, tc.host)
		}
	}
	for _, bad := range []string{"", "@host", "a'b@c", "x`y", "'air''flow'@'10.%'", `'a\\b'@'%'`, "'a'@'h\"'"} {
		if _, _, err := mysql.ParseAccount(bad); err == nil {
			t.Errorf("ParseAccount(%q) succeeded", bad)
		}
	}
}

func TestAccountQuotesBackslash(t *testing.T) {
	g := mysql.Grant{User: `a\'b`, Host: `h\`}
	if got, want := g.Account(), `'a\\''b'@'h\\'`; got != want {
		t.Errorf("Account() = %s, want %s", got, want)
	}
}

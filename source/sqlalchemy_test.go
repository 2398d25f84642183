package source_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/source"
	"github.com/cofferhq/coffer/source/mysql"
	"github.com/cofferhq/coffer/source/postgres"
	"github.com/cofferhq/coffer/source/sqlite"
)

func TestParseSQLAlchemyURL(t *testing.T) {
	for _, tc := range []struct {
		in                                          string
		dialect, driver, user, pass, host, port, db string
		query                                       string
	}{
		{in: "postgresql+psycopg2://airflow:pa%40ss@db.internal:5433/airflow?sslmode=require",
			dialect: "postgresql", driver: "psycopg2", user: "airflow", pass: "pa@ss", host: "db.internal", port: "5433", db: "airflow", query: "sslmode=require"},
		{in: "postgresql://airflow@localhost/airflow", dialect: "postgresql", user: "airflow", host: "localhost", db: "airflow"},
		// SQLAlchemy stops the password at the first '@' and allows '/'
		// and ':' in it.
		{in: "mysql+mysqldb://u:p/a:ss@[::1]:3306/af?charset=utf8mb4", dialect: "mysql", driver: "mysqldb", user: "u", pass: "p/a:ss", host: "::1", port: "3306", db: "af", query: "charset=utf8mb4"},
		{in: "mysql+pymysql://u@h/af", dialect: "mysql", driver: "pymysql", user: "u", host: "h", db: "af"},
		{in: "sqlite:////opt/airflow/airflow.db", dialect: "sqlite", db: "/opt/airflow/airflow.db"},
		{in: "sqlite:///airflow.db", dialect: "sqlite", db: "airflow.db"},
		{in: "sqlite://", dialect: "sqlite"},
		{in: "postgresql+psycopg2://u:p@/af?host=/var/run/postgresql", dialect: "postgresql", driver: "psycopg2", user: "u", pass: "p", db: "af", query: "host=%2Fvar%2Frun%2Fpostgresql"},
	} {
		u, err := source.ParseSQLAlchemyURL(tc.in)
		if err != nil {
			t.Errorf("ParseSQLAlchemyURL(%q): %v", tc.in, err)
			continue
		}
		got := []string{u.Dialect, u.Driver, u.User, u.Password, u.Host, u.Port, u.Database, u.Query.Encode()}
		want := []string{tc.dialect, tc.driver, tc.user, tc.pass, tc.host, tc.port, tc.db, tc.query}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("ParseSQLAlchemyURL(%q) = %q, want %q", tc.in, got, want)
		}
		if strings.Contains(u.Redacted(), "pa@ss") || (u.Password != "" && !strings.Contains(u.Redacted(), "***")) {
			t.Errorf("Redacted() = %q", u.Redacted())
		}
		back, err := source.ParseSQLAlchemyURL(u.String())
		if err != nil || back.String() != u.String() || back.Password != u.Password {
			t.Errorf("String() = %q does not parse back: %v", u.String(), err)
		}
	}
	for _, bad := range []string{"", "airflow.db", "://x", "postgresql+psycopg2://u:topsecret@h:5432/db?%zz"} {
		_, err := source.ParseSQLAlchemyURL(bad)
		if err == nil {
			t.Errorf("ParseSQLAlchemyURL(%q) succeeded", bad)
		} else if strings.Contains(err.Error(), "topsecret") {
			t.Errorf("error %q shows the password", err)
		}
	}
	u, _ := source.ParseSQLAlchemyURL("mssql+pyodbc://u:topsecret@h/db")
	_, err := u.KindOf()
	var ue *source.UnsupportedDialectError
	if !errors.As(err, &ue) || strings.Contains(err.Error(), "topsecret") || !strings.Contains(err.Error(), `"mssql+pyodbc" is not supported`) {
		t.Errorf("KindOf(mssql) = %v", err)
	}
}

// Each database kind accepts the SQLAlchemy URLs Airflow's
// sql_alchemy_conn holds.
func TestKindsAcceptSQLAlchemyURLs(t *testing.T) {
	dsn, err := postgres.DSN("postgresql+psycopg2://airflow:pa%40ss@db.internal:5433/airflow?sslmode=require")
	if err != nil || dsn != "postgresql://airflow:pa%40ss@db.internal:5433/airflow?sslmode=require" {
		t.Errorf("postgres.DSN = %q, %v", dsn, err)
	}
	if dsn, err := postgres.DSN("host=/tmp dbname=x"); err != nil || dsn != "host=/tmp dbname=x" {
		t.Errorf("postgres.DSN(keyword/value) = %q, %v", dsn, err)
	}
	if _, err := postgres.DSN("mysql+mysqldb://u:topsecret@h/db"); err == nil || strings.Contains(err.Error(), "topsecret") {
		t.Errorf("postgres.DSN(mysql URL) = %v", err)
	}
	for _, in := range []string{"mysql+mysqldb://airflow:pw@mariadb:3306/airflow?charset=utf8mb4", "mysql+pymysql://airflow:pw@mariadb/airflow"} {
		cfg, err := mysql.ParseDSN(in)
		if err != nil || cfg.User != "airflow" || cfg.Passwd != "pw" || cfg.DBName != "airflow" || cfg.Addr != "mariadb:3306" {
			t.Errorf("mysql.ParseDSN(%q) = %+v, %v", in, cfg, err)
		}
	}
	for in, want := range map[string]string{
		"sqlite:////opt/airflow/airflow.db": "/opt/airflow/airflow.db",
		"sqlite:///airflow.db":              "airflow.db",
		"/plain/path.db":                    "/plain/path.db",
	} {
		if got, err := sqlite.PathOf(in); err != nil || got != want {
			t.Errorf("sqlite.PathOf(%q) = %q, %v, want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"sqlite://", "sqlite:///:memory:", "sqlite://host/x.db"} {
		if _, err := sqlite.PathOf(in); err == nil {
			t.Errorf("sqlite.PathOf(%q) succeeded", in)
		}
	}
}

// TestRedactedMasksQueryPasswords: a password given as a query parameter
// is masked like one in the userinfo.
func TestRedactedMasksQueryPasswords(t *testing.T) {
	for _, raw := range []string{
		"postgresql://airflow@db/airflow?password=S3cretQ&sslmode=require",
		"mysql+mysqldb://airflow@db/airflow?passwd=S3cretQ",
		"mysql+pymysql://airflow@db/airflow?PWD=S3cretQ",
		"postgresql://u:S3cretQ@db/airflow?sslpassword=S3cretQ&sslkey=/k",
	} {
		u, err := source.ParseSQLAlchemyURL(raw)
		if err != nil {
			t.Fatal(err)
		}
		if r := u.Redacted(); strings.Contains(r, "S3cretQ") {
			t.Errorf("%s: Redacted() = %s", raw, r)
		}
		if !strings.Contains(u.String(), "S3cretQ") {
			t.Errorf("%s: String() lost the password: %s", raw, u.String())
		}
	}
}

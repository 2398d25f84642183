package postgres

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSQLAlchemyURLTakesNoPasswordFromEnvironment: PGPASSWORD and
// ~/.pgpass are the restoring user's, not the DSN's, and must not end up in
// the URL written to airflow.cfg.
func TestSQLAlchemyURLTakesNoPasswordFromEnvironment(t *testing.T) {
	home := t.TempDir()
	pgpass := filepath.Join(home, ".pgpass")
	if err := os.WriteFile(pgpass, []byte("*:*:*:*:PassFileSecret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PGPASSWORD", "EnvSecret")
	for _, dsn := range []string{"postgres://airflow@db.internal/airflow", "host=db.internal user=airflow dbname=airflow"} {
		got, err := SQLAlchemyURL(dsn, "")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(got, "EnvSecret") {
			t.Errorf("%s: %s holds PGPASSWORD", dsn, got)
		}
	}
	t.Setenv("PGPASSWORD", "")
	t.Setenv("PGPASSFILE", pgpass)
	if got, _ := SQLAlchemyURL("postgres://airflow@db.internal/airflow", ""); strings.Contains(got, "PassFileSecret") {
		t.Errorf("%s holds the .pgpass password", got)
	}
	for dsn, want := range map[string]string{
		"postgres://airflow:dsn%40pw@db.internal/airflow":       "dsn%40pw",
		"host=db.internal user=airflow password=dsnpw dbname=a": "dsnpw",
	} {
		if got, _ := SQLAlchemyURL(dsn, ""); !strings.Contains(got, ":"+want+"@") {
			t.Errorf("%s: %s lacks the DSN's password", dsn, got)
		}
	}
}

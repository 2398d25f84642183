package airflowfixture

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"path/filepath"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testing/fixture"
)

// New generates a deployment for a test: in a temporary AIRFLOW_HOME, with
// its metadata database in a new database on the test server (see
// fixture.NewPostgresDB and fixture.NewMySQLDB; skipped or failed like
// them when the server is missing), dropped when the test ends. On MySQL
// the owner is a user of the test's own, dropped too; on PostgreSQL the
// shared role coffer_airflow (o.Owner) stays.
func New(t testing.TB, engine string, o Options) *Deployment {
	t.Helper()
	o.Engine = engine
	if o.Home == "" {
		o.Home = filepath.Join(t.TempDir(), "airflow")
	}
	switch engine {
	case "postgres":
		o.DSN = fixture.NewPostgresDB(t)
	case "mysql":
		o.DSN = fixture.NewMySQLDB(t)
		if o.Owner == "" {
			var b [4]byte
			rand.Read(b[:])
			o.Owner = "coffer_af_" + hex.EncodeToString(b[:])
			admin := fixture.MySQLAdmin(t)
			owner := o.Owner
			t.Cleanup(func() {
				if _, err := admin.ExecContext(context.Background(), "drop user if exists '"+owner+"'@'%'"); err != nil {
					t.Errorf("drop user %s: %v", owner, err)
				}
			})
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d, err := Generate(ctx, o)
	if err != nil {
		t.Fatalf("generate the Airflow deployment: %v", err)
	}
	return d
}

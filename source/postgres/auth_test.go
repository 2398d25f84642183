package postgres

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer/backup"
	"github.com/cofferhq/coffer/internal/keys"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/internal/testing/pgclustertest"
	"github.com/cofferhq/coffer/internal/testing/testrepo"
	"github.com/cofferhq/coffer/source"
)

// authRepo is a fresh local repository opened for backups.
func authRepo(t *testing.T) (*repo.Repository, *keys.SigningKey) {
	t.Helper()
	tr := testrepo.New(t)
	return tr.Host(t), tr.Signing
}

// TestPostgresAuth runs Source backups through the real pipeline
// against a private cluster that, unlike the machine's server, checks
// passwords (SCRAM over TCP).
func TestPostgresAuth(t *testing.T) {
	ctx := context.Background()
	c := pgclustertest.Start(t)
	conn, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(ctx, "create table invoice (id int primary key, total numeric); insert into invoice select g, g * 1.5 from generate_series(1, 100) g")
	conn.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r, sk := authRepo(t)
	run := func(dsn string) (*backup.Result, error) {
		return backup.Run(ctx, backup.Options{Repo: r, Signing: sk, Sources: []source.Source{&Source{SourceName: "db", DSN: dsn}}})
	}
	const wrong = "Wr0ng-Passw0rd-x7"
	noPassword := c.DSNFor(c.Superuser, "", "postgres")

	for _, tc := range []struct{ name, dsn, env string }{
		{"in DSN URL", c.DSNFor(c.Superuser, wrong, "postgres"), ""},
		{"in keyword DSN", "host=127.0.0.1 port=" + strconv.Itoa(c.Port) + " user=" + c.Superuser + " password=" + wrong + " dbname=postgres sslmode=disable", ""},
		{"in PGPASSWORD", noPassword, wrong},
	} {
		t.Run("wrong password "+tc.name, func(t *testing.T) {
			t.Setenv("PGPASSWORD", tc.env)
			t.Setenv("PGPASSFILE", "/nonexistent")
			_, err := run(tc.dsn)
			if err == nil {
				t.Fatal("backup with a wrong password succeeded")
			}
			msg := err.Error()
			t.Log(msg)
			if !strings.Contains(msg, "password authentication failed") || !strings.Contains(msg, `database "postgres"`) {
				t.Errorf("error %q does not say that password authentication failed", msg)
			}
			if strings.Contains(msg, wrong) || strings.Contains(msg, c.Password) || strings.Contains(msg, "\n") {
				t.Errorf("error %q shows a password or spans lines", msg)
			}
			var ce *ConnectError
			if !errors.As(err, &ce) || ce.SQLState() != "28P01" {
				t.Errorf("error %v: want a ConnectError with SQLSTATE 28P01", err)
			}
			if ids, err := r.SnapshotIDs(ctx); err != nil || len(ids) != 0 {
				t.Errorf("after a failed backup: snapshots %v, %v", ids, err)
			}
		})
	}

	for _, tc := range []struct{ name, dsn, env string }{
		{"in DSN", c.DSN("postgres"), ""},
		{"in PGPASSWORD", noPassword, c.Password},
	} {
		t.Run("right password "+tc.name, func(t *testing.T) {
			t.Setenv("PGPASSWORD", tc.env)
			t.Setenv("PGPASSFILE", "/nonexistent")
			res, err := run(tc.dsn)
			if err != nil {
				t.Fatal(err)
			}
			m := res.Manifest
			if len(m.Sources) != 1 || m.Sources[0].Kind != "postgres" || res.Private.Sources[0].Size == 0 {
				t.Errorf("manifest sources = %+v", m.Sources)
			}
			if _, err := r.ReadManifest(ctx, m.ID); err != nil {
				t.Errorf("published manifest: %v", err)
			}
		})
	}
}

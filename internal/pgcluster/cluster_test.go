package pgcluster_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cofferhq/coffer/internal/pgcluster"
	"github.com/cofferhq/coffer/internal/testing/pgclustertest"
)

func connect(t *testing.T, dsn string) (*pgx.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err == nil {
		t.Cleanup(func() { conn.Close(context.Background()) })
	}
	return conn, err
}

func TestClusterStartConnectStop(t *testing.T) {
	ctx := context.Background()
	c := pgclustertest.Start(t)
	t.Logf("cluster %s on port %d, PostgreSQL %s", c.Dir, c.Port, c.Version)

	fi, err := os.Stat(c.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("data dir mode = %v, want 0700", fi.Mode().Perm())
	}
	if os.Geteuid() == 0 {
		if st := fi.Sys().(*syscall.Stat_t); st.Uid == 0 {
			t.Errorf("data dir owned by root; the server should run unprivileged")
		}
	}
	if _, err := os.Stat(c.Dir + "/pwfile"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("password file left behind: %v", err)
	}

	conn, err := connect(t, c.DSN("postgres"))
	if err != nil {
		t.Fatalf("connect with the right password: %v", err)
	}
	var user, listen, fsync string
	if err := conn.QueryRow(ctx, "select current_user, current_setting('listen_addresses'), current_setting('fsync')").Scan(&user, &listen, &fsync); err != nil {
		t.Fatal(err)
	}
	if user != pgcluster.DefaultSuperuser || listen != "127.0.0.1" || fsync != "off" {
		t.Errorf("user %q listen_addresses %q fsync %q", user, listen, fsync)
	}
	var super bool
	if err := conn.QueryRow(ctx, "select rolsuper from pg_roles where rolname = current_user").Scan(&super); err != nil || !super {
		t.Errorf("superuser = %v, %v", super, err)
	}

	// A wrong password, and none at all, are refused by the server.
	for _, dsn := range []string{
		c.DSNFor(c.Superuser, "wrong-"+c.Password, "postgres"),
		c.DSNFor(c.Superuser, "", "postgres") + "&passfile=/nonexistent",
	} {
		t.Setenv("PGPASSWORD", "")
		_, err := connect(t, dsn)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "28P01" {
			t.Errorf("connect %s: err = %v, want SQLSTATE 28P01", strings.Replace(dsn, c.Password, "PW", 1), err)
		}
	}

	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cluster dir after Stop: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(c.Port))
	if err != nil {
		t.Errorf("port %d still taken after Stop: %v", c.Port, err)
	} else {
		l.Close()
	}
	if err := c.Stop(ctx); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func TestClusterTwoAtOnce(t *testing.T) {
	ctx := context.Background()
	if _, err := pgcluster.FindBinDir(); err != nil {
		pgclustertest.Start(t) // skips or fails as it should
	}
	// Started concurrently: Start is safe to call from several goroutines
	// (StartForTest is not, as t.Fatal must run on the test's goroutine).
	var (
		wg   sync.WaitGroup
		cs   [2]*pgcluster.Cluster
		errs [2]error
	)
	for i := range cs {
		wg.Go(func() { cs[i], errs[i] = pgcluster.Start(ctx, pgcluster.Options{Fast: true}) })
	}
	wg.Wait()
	for i, c := range cs {
		if c != nil {
			t.Cleanup(func() {
				if err := c.Stop(ctx); err != nil {
					t.Error(err)
				}
			})
		}
		if errs[i] != nil {
			t.Fatalf("start cluster %d: %v", i, errs[i])
		}
	}
	if cs[0].Port == cs[1].Port || cs[0].Dir == cs[1].Dir {
		t.Fatalf("clusters share port %d / dir %s", cs[0].Port, cs[0].Dir)
	}
	var ids [2]int64
	for i, c := range cs {
		conn, err := connect(t, c.DSN("postgres"))
		if err != nil {
			t.Fatal(err)
		}
		if err := conn.QueryRow(ctx, "select system_identifier from pg_control_system()").Scan(&ids[i]); err != nil {
			t.Fatal(err)
		}
	}
	if ids[0] == ids[1] {
		t.Errorf("both connections reached the same cluster")
	}
	// One cluster's password does not open the other.
	if _, err := connect(t, cs[0].DSNFor(cs[0].Superuser, cs[1].Password, "postgres")); err == nil {
		t.Error("cluster 0 accepted cluster 1's password")
	}
}

func TestClusterStartErrors(t *testing.T) {
	ctx := context.Background()
	_, err := pgcluster.Start(ctx, pgcluster.Options{BinDir: "/nonexistent/bin"})
	if err == nil || !strings.Contains(err.Error(), "initdb not found in /nonexistent/bin") {
		t.Errorf("missing BinDir: err = %v", err)
	}
	_, err = pgcluster.Start(ctx, pgcluster.Options{AuthMethod: "ident"})
	if err == nil || !strings.Contains(err.Error(), `unsupported auth method "ident"`) {
		t.Errorf("bad auth method: err = %v", err)
	}

	// A server that cannot start: the error names the step and quotes the
	// log, and nothing is left behind.
	if _, err := pgcluster.FindBinDir(); err != nil {
		pgclustertest.Start(t)
	}
	tmp := t.TempDir()
	for _, d := range []string{filepath.Dir(tmp), tmp} { // for the server's user when root
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	c, err := pgcluster.Start(ctx, pgcluster.Options{Fast: true, TempDir: tmp, Password: "Secret-xyz-123",
		Settings: map[string]string{"shared_buffers": "lots"}})
	if c != nil || err == nil || !strings.Contains(err.Error(), "pgcluster: start server: pg_ctl failed") ||
		!strings.Contains(err.Error(), `"shared_buffers"`) {
		t.Errorf("bad setting: cluster %v, err = %v", c, err)
	}
	t.Log(err)
	if strings.Contains(err.Error(), "Secret-xyz-123") || strings.Contains(err.Error(), "\n") {
		t.Errorf("error %q shows the password or spans lines", err)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("failed Start left %v in %s", left, tmp)
	}
}

// Package mariadbcluster starts a private, throwaway MariaDB server: a
// data directory made with mariadb-install-db in a folder of its own,
// served by mariadbd on a unix socket only (no TCP port, so no port
// conflicts), with a root account that logs in over that socket without a
// password. Restore drills use it when no MySQL drill server is
// configured; it mirrors package pgcluster.
package mariadbcluster

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cofferhq/coffer/internal/leftover"

	"github.com/go-sql-driver/mysql"
)

// ErrNotFound is returned (wrapped) by FindBinaries and Start when
// mariadbd or mariadb-install-db is not installed.
var ErrNotFound = errors.New("mariadbd or mariadb-install-db not found")

// dirPrefix starts the name of a server's folder in its parent.
const dirPrefix = "coffer-mariadb-"

// binDirs are searched after PATH (mariadbd lives in /usr/sbin, which a
// user's PATH often lacks).
var binDirs = []string{"/usr/sbin", "/usr/bin"}

// Options configure Start. The zero value is usable.
type Options struct {
	// TempDir is where the server's folder is created; default
	// os.TempDir(). The folder's path must be short enough for a unix
	// socket (about 100 bytes).
	TempDir string
	// StartTimeout bounds waiting for the server to accept connections;
	// default 60 s.
	StartTimeout time.Duration
}

// Cluster is a running private MariaDB server.
type Cluster struct {
	Dir     string // the server's private folder; removed by Stop
	DataDir string // Dir/data
	Socket  string // Dir/mysql.sock, the only way in
	LogFile string // Dir/error.log, the server's error log
	Version string // "10.11.19-MariaDB-0+deb12u1"

	cmd      *exec.Cmd
	exited   chan struct{}
	stopOnce sync.Once
	stopErr  error
}

// FindBinaries returns the paths of mariadbd and mariadb-install-db, from
// PATH, /usr/sbin or /usr/bin.
func FindBinaries() (server, installDB string, err error) {
	find := func(name string) string {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		for _, d := range binDirs {
			p := filepath.Join(d, name)
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
				return p
			}
		}
		return ""
	}
	server, installDB = find("mariadbd"), find("mariadb-install-db")
	if server == "" || installDB == "" {
		return "", "", fmt.Errorf("mariadbcluster: %w (on PATH, in %s)", ErrNotFound, strings.Join(binDirs, " or "))
	}
	return server, installDB, nil
}

// Start creates a data directory with mariadb-install-db, starts mariadbd
// on a unix socket and waits until it accepts a connection. On failure
// nothing is left behind: the server is stopped and the folder removed.
// Errors name the step that failed and end with the last lines of the
// tool's output or the server's error log.
func Start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	server, installDB, err := FindBinaries()
	if err != nil {
		return nil, err
	}
	if opts.TempDir == "" {
		opts.TempDir = os.TempDir()
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 60 * time.Second
	}
	dir, err := os.MkdirTemp(opts.TempDir, dirPrefix)
	if err != nil {
		return nil, fmt.Errorf("mariadbcluster: %w", err)
	}
	c := &Cluster{Dir: dir, DataDir: filepath.Join(dir, "data"), Socket: filepath.Join(dir, "mysql.sock"),
		LogFile: filepath.Join(dir, "error.log")}
	defer func() {
		if err != nil {
			c.Stop(context.WithoutCancel(ctx))
		}
	}()
	if n := len(c.Socket); n > 100 {
		return nil, fmt.Errorf("mariadbcluster: the socket path %s is %d bytes, too long for a unix socket: use a shorter temporary folder", c.Socket, n)
	}
	// mariadbd refuses to run as root unless told which user to be; the
	// folder is private to this process's user, so it stays that user.
	var user []string
	if os.Geteuid() == 0 {
		user = []string{"--user=root"}
	}
	install := exec.CommandContext(ctx, installDB, append([]string{"--no-defaults", "--datadir=" + c.DataDir,
		"--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve"}, user...)...)
	install.Dir = dir
	if out, err := install.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("mariadbcluster: mariadb-install-db: %w: %s", err, lastLines(string(out), 10))
	}
	log, err := os.OpenFile(filepath.Join(dir, "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("mariadbcluster: %w", err)
	}
	defer log.Close()
	// Not CommandContext: the server must outlive a cancelled start's
	// context only until Stop, which the deferred cleanup calls.
	cmd := exec.Command(server, append([]string{"--no-defaults", "--datadir=" + c.DataDir, "--socket=" + c.Socket,
		"--skip-networking", "--pid-file=" + filepath.Join(dir, "mariadbd.pid"), "--log-error=" + c.LogFile,
		"--innodb-buffer-pool-size=32M", "--innodb-flush-log-at-trx-commit=0", "--skip-log-bin"}, user...)...)
	cmd.Dir = c.DataDir
	cmd.Stdout, cmd.Stderr = log, log
	// Its own process group: a SIGINT at the terminal goes to the drill,
	// which stops the server itself.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("mariadbcluster: start mariadbd: %w", err)
	}
	c.cmd, c.exited = cmd, make(chan struct{})
	go func() { cmd.Wait(); close(c.exited) }()
	if err := c.waitReady(ctx, opts.StartTimeout); err != nil {
		return nil, err
	}
	return c, nil
}

// waitReady waits until the server answers on its socket.
func (c *Cluster) waitReady(ctx context.Context, timeout time.Duration) error {
	db, err := sql.Open("mysql", c.DSN(""))
	if err != nil {
		return fmt.Errorf("mariadbcluster: %w", err)
	}
	defer db.Close()
	deadline := time.Now().Add(timeout)
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		var v string
		err = db.QueryRowContext(pctx, "select version()").Scan(&v)
		cancel()
		if err == nil {
			c.Version = v
			return nil
		}
		select {
		case <-c.exited:
			return fmt.Errorf("mariadbcluster: mariadbd exited during start: %s", c.logTail(10))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("mariadbcluster: mariadbd did not accept connections within %s (%v): %s", timeout, err, c.logTail(10))
		}
	}
}

// DSN returns a go-sql-driver DSN for root on the socket, naming database
// db ("" for none).
func (c *Cluster) DSN(db string) string {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr, cfg.DBName = "root", "unix", c.Socket, db
	return cfg.FormatDSN()
}

// Stop stops the server (SIGTERM, then SIGKILL should it not exit within
// 30 s or before ctx ends) and removes its folder. It is safe to call more
// than once.
func (c *Cluster) Stop(ctx context.Context) error {
	c.stopOnce.Do(func() {
		if c.cmd != nil {
			c.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-c.exited:
			case <-ctx.Done():
			case <-time.After(30 * time.Second):
			}
			select {
			case <-c.exited:
			default:
				c.cmd.Process.Kill()
				<-c.exited
			}
		}
		if err := os.RemoveAll(c.Dir); err != nil {
			c.stopErr = fmt.Errorf("mariadbcluster: remove %s: %w", c.Dir, err)
		}
	})
	return c.stopErr
}

func (c *Cluster) logTail(n int) string {
	b, err := os.ReadFile(c.LogFile)
	if err != nil {
		return "(no error log: " + err.Error() + ")"
	}
	return lastLines(string(b), n)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// DataDirs returns the data directories of the servers Start created
// directly under parent (parent/coffer-mariadb-*/data).
func DataDirs(parent string) []string {
	dirs, _ := filepath.Glob(filepath.Join(parent, dirPrefix+"*", "data"))
	return dirs
}

// StopLeftover stops the server of a data directory whose owner was killed
// before it could call Stop: the mariadbd named by the pid file beside
// dataDir, if it still runs with dataDir as its working directory, gets
// SIGTERM and, should it not exit within 10 s, SIGKILL. It does not remove
// the folder. A missing pid file, or a pid that is no longer that
// server's, is not an error.
func StopLeftover(ctx context.Context, dataDir string) error {
	b, err := os.ReadFile(filepath.Join(filepath.Dir(dataDir), "mariadbd.pid"))
	if err != nil {
		return nil
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return nil
	}
	if err := leftover.Stop(ctx, pid, dataDir, syscall.SIGTERM); err != nil {
		return fmt.Errorf("mariadbcluster: stop leftover server (pid %d): %w", pid, err)
	}
	return nil
}

// Package pgcluster starts a private, throw-away PostgreSQL cluster with
// initdb and pg_ctl: in a fresh temporary directory, listening only on
// 127.0.0.1 on a free port, with password (SCRAM) authentication for a
// superuser whose password only the caller knows. Tests use it where the
// machine's server cannot show a behaviour (the machine's server trusts
// every local connection, so a wrong password cannot be provoked there);
// restore drills use it as their scratch database server.
//
// When the process runs as root, initdb and pg_ctl (which refuse to run as
// root) run as an unprivileged OS user, "postgres" when it exists, else
// "nobody".
package pgcluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DefaultSuperuser is the superuser initdb creates unless Options says otherwise.
const DefaultSuperuser = "coffer"

// ErrNoInitdb is returned (wrapped) by FindBinDir and Start when no initdb is
// found on PATH or under /usr/lib/postgresql/*/bin.
var ErrNoInitdb = errors.New("initdb not found")

// Options configure Start. The zero value is usable.
type Options struct {
	// BinDir holds initdb, pg_ctl and postgres. Default: the directory of
	// initdb on PATH (symlinks resolved), else the newest
	// /usr/lib/postgresql/*/bin.
	BinDir string
	// Superuser is the bootstrap superuser; default "coffer".
	Superuser string
	// Password of the superuser; default a random 32-hex-digit string.
	Password string
	// AuthMethod for TCP connections on 127.0.0.1 and for the unix socket;
	// default "scram-sha-256". "md5", "password" and "trust" are accepted.
	AuthMethod string
	// Locale for initdb; default "C" (always available). Encoding is UTF8.
	Locale string
	// Fast trades durability for speed (tests, drills): initdb --no-sync,
	// fsync, synchronous_commit and full_page_writes off, small
	// shared_buffers.
	Fast bool
	// OSUser runs initdb and the server when the process is root; default
	// "postgres", else "nobody". Ignored when not root.
	OSUser string
	// TempDir is where the cluster's directory is created; default
	// os.TempDir(). When root, every ancestor must be searchable by OSUser.
	TempDir string
	// StartTimeout bounds waiting for the server to accept connections;
	// default 30 s.
	StartTimeout time.Duration
	// Settings are extra postgresql.conf settings ("max_connections": "20").
	Settings map[string]string
}

// Cluster is a running private PostgreSQL cluster.
type Cluster struct {
	Dir       string // the cluster's private directory; removed by Stop
	DataDir   string // Dir/data, the PGDATA
	SocketDir string // Dir/run, the unix socket directory
	LogFile   string // Dir/postgres.log, the server's log
	BinDir    string
	Host      string // "127.0.0.1"
	Port      int
	Superuser string
	Password  string
	Version   string // initdb's version, "15.20"

	cred     *syscall.Credential // nil unless running as root
	stopOnce sync.Once
	stopErr  error
}

// Start creates a cluster with initdb, starts it with pg_ctl and waits until
// it accepts a password-authenticated connection. On failure nothing is
// left behind: the server is stopped and the directory removed. Errors name
// the step that failed and end with the last lines of the tool's output or
// the server's log; they never contain the password.
func Start(ctx context.Context, opts Options) (c *Cluster, err error) {
	if err := opts.fill(); err != nil {
		return nil, err
	}
	c = &Cluster{
		BinDir:    opts.BinDir,
		Host:      "127.0.0.1",
		Superuser: opts.Superuser,
		Password:  opts.Password,
	}
	for _, tool := range []string{"initdb", "pg_ctl", "postgres"} {
		if _, err := os.Stat(filepath.Join(c.BinDir, tool)); err != nil {
			return nil, fmt.Errorf("pgcluster: %s not found in %s", tool, c.BinDir)
		}
	}
	if c.Version, err = toolVersion(ctx, filepath.Join(c.BinDir, "initdb")); err != nil {
		return nil, fmt.Errorf("pgcluster: %w", err)
	}
	if os.Geteuid() == 0 {
		if c.cred, err = lookupCredential(opts.OSUser); err != nil {
			return nil, err
		}
	}
	if err := c.makeDirs(opts.TempDir); err != nil {
		return nil, err
	}
	defer func() {
		if err == nil {
			return
		}
		// Also after a cancelled pg_ctl start, the server may be running.
		if _, serr := os.Stat(filepath.Join(c.DataDir, "postmaster.pid")); serr == nil {
			_ = c.pgCtl(context.WithoutCancel(ctx), "stop", "-m", "immediate", "-w", "-t", "30")
		}
		os.RemoveAll(c.Dir)
		c = nil
	}()

	if err := c.initdb(ctx, opts); err != nil {
		return c, err
	}
	if err := c.configure(opts); err != nil {
		return c, err
	}
	// The free port may be taken between choosing it and the server's bind.
	const attempts = 5
	for i := 1; ; i++ {
		if c.Port, err = freePort(); err != nil {
			return c, fmt.Errorf("pgcluster: choose a port: %w", err)
		}
		err = c.pgCtl(ctx, "start", "-w", "-t", strconv.Itoa(int(opts.StartTimeout/time.Second)),
			"-l", c.LogFile, "-o", "-p "+strconv.Itoa(c.Port))
		if err == nil {
			break
		}
		log := c.logTail(5)
		if i < attempts && (strings.Contains(log, "could not bind") || strings.Contains(log, "could not create any TCP/IP sockets")) {
			continue
		}
		if log != "" {
			err = fmt.Errorf("%w; server log: %s", err, log)
		}
		return c, fmt.Errorf("pgcluster: start server: %w", err)
	}
	if err := c.waitReady(ctx, opts.StartTimeout); err != nil {
		return c, err
	}
	return c, nil
}

func (o *Options) fill() error {
	switch o.AuthMethod {
	case "":
		o.AuthMethod = "scram-sha-256"
	case "scram-sha-256", "md5", "password", "trust":
	default:
		return fmt.Errorf("pgcluster: unsupported auth method %q", o.AuthMethod)
	}
	if o.BinDir == "" {
		d, err := FindBinDir()
		if err != nil {
			return fmt.Errorf("pgcluster: %w", err)
		}
		o.BinDir = d
	}
	if o.Superuser == "" {
		o.Superuser = DefaultSuperuser
	}
	if o.Password == "" {
		b := make([]byte, 16)
		rand.Read(b)
		o.Password = hex.EncodeToString(b)
	}
	if strings.ContainsAny(o.Password, "\n\r\x00") {
		return errors.New("pgcluster: password must not contain newlines or NUL")
	}
	if o.Locale == "" {
		o.Locale = "C"
	}
	if o.TempDir == "" {
		o.TempDir = os.TempDir()
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 30 * time.Second
	}
	if o.StartTimeout < time.Second {
		o.StartTimeout = time.Second
	}
	return nil
}

// pgBinDirs is where Debian and Ubuntu install each major version.
var pgBinDirs = "/usr/lib/postgresql/*/bin"

// FindBinDir returns the directory of initdb on PATH (symlinks resolved, so
// that pg_ctl and postgres are its neighbours), else the newest
// /usr/lib/postgresql/*/bin holding initdb.
func FindBinDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			p = r
		}
		if abs, err := filepath.Abs(p); err == nil {
			p = abs
		}
		return filepath.Dir(p), nil
	}
	found, _ := filepath.Glob(filepath.Join(pgBinDirs, "initdb"))
	if len(found) == 0 {
		return "", fmt.Errorf("%w on PATH or in %s; install postgresql", ErrNoInitdb, pgBinDirs)
	}
	major := func(p string) int {
		n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(p))))
		return n
	}
	sort.Slice(found, func(i, j int) bool { return major(found[i]) > major(found[j]) })
	return filepath.Dir(found[0]), nil
}

func toolVersion(ctx context.Context, path string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%s: read its version: %w", path, err)
	}
	// "initdb (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)"
	f := strings.Fields(string(out))
	for i, w := range f {
		if w == "(PostgreSQL)" && i+1 < len(f) {
			return f[i+1], nil
		}
	}
	return "", fmt.Errorf("%s: unexpected version output %q", path, strings.TrimSpace(string(out)))
}

func lookupCredential(name string) (*syscall.Credential, error) {
	names := []string{name}
	if name == "" {
		names = []string{"postgres", "nobody"}
	}
	var errs []error
	for _, n := range names {
		u, err := user.Lookup(n)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil {
			errs = append(errs, fmt.Errorf("user %s: non-numeric uid %q or gid %q", n, u.Uid, u.Gid))
			continue
		}
		if uid == 0 {
			errs = append(errs, fmt.Errorf("user %s has uid 0", n))
			continue
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
	}
	return nil, fmt.Errorf("pgcluster: running as root, and no unprivileged user to run initdb as: %w", errors.Join(errs...))
}

// makeDirs creates Dir (0700, or 0711 when root so that the server's user
// can reach its own subdirectories), the data and socket directories (0700)
// and the log file (0600), the last three owned by the server's user.
func (c *Cluster) makeDirs(tempDir string) error {
	dir, err := os.MkdirTemp(tempDir, "coffer-pg-")
	if err != nil {
		return fmt.Errorf("pgcluster: create cluster directory: %w", err)
	}
	c.Dir = dir
	c.DataDir = filepath.Join(dir, "data")
	c.SocketDir = filepath.Join(dir, "run")
	c.LogFile = filepath.Join(dir, "postgres.log")
	err = func() error {
		if c.cred != nil {
			if err := os.Chmod(dir, 0o711); err != nil {
				return err
			}
			if err := checkSearchable(filepath.Dir(dir), c.cred); err != nil {
				return err
			}
		}
		for _, d := range []string{c.DataDir, c.SocketDir} {
			if err := os.Mkdir(d, 0o700); err != nil {
				return err
			}
			if err := c.chown(d); err != nil {
				return err
			}
		}
		if err := os.WriteFile(c.LogFile, nil, 0o600); err != nil {
			return err
		}
		return c.chown(c.LogFile)
	}()
	if err != nil {
		os.RemoveAll(dir)
		return fmt.Errorf("pgcluster: prepare %s: %w", dir, err)
	}
	// The unix socket's path must fit sockaddr_un (107 bytes).
	if n := len(filepath.Join(c.SocketDir, ".s.PGSQL.65535")); n > 107 {
		os.RemoveAll(dir)
		return fmt.Errorf("pgcluster: socket path in %s is %d bytes, longer than the 107 allowed; use a shorter TempDir", c.SocketDir, n)
	}
	return nil
}

// checkSearchable makes sure the server's user can reach dir's contents.
func checkSearchable(dir string, cred *syscall.Credential) error {
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		perm := fi.Mode().Perm()
		okay := perm&0o001 != 0 ||
			(ok && st.Uid == cred.Uid && perm&0o100 != 0) ||
			(ok && st.Gid == cred.Gid && perm&0o010 != 0)
		if !okay {
			return fmt.Errorf("directory %s (mode %v) is not searchable by uid %d, which runs the server; set Options.TempDir or TMPDIR", d, perm, cred.Uid)
		}
		if p := filepath.Dir(d); p == d {
			return nil
		}
	}
}

func (c *Cluster) chown(path string) error {
	if c.cred == nil {
		return nil
	}
	return os.Chown(path, int(c.cred.Uid), int(c.cred.Gid))
}

// command prepares a PostgreSQL program run as the server's user, with the
// caller's PG* variables removed so that they cannot redirect it.
func (c *Cluster) command(ctx context.Context, tool string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(c.BinDir, tool), args...)
	cmd.Dir = c.Dir
	env := []string{"LC_ALL=C"}
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "PG") && !strings.HasPrefix(e, "LC_") && !strings.HasPrefix(e, "LANG") {
			env = append(env, e)
		}
	}
	if c.cred != nil {
		env = append(env, "HOME="+c.Dir) // root's HOME is not readable for it
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	cmd.Env = env
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// run runs a program and returns an error naming it and ending with its
// last output lines.
func (c *Cluster) run(cmd *exec.Cmd) error {
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		msg := lastLines(out.String(), 5)
		if c.Password != "" {
			msg = strings.ReplaceAll(msg, c.Password, "********")
		}
		if msg != "" {
			return fmt.Errorf("%s failed (%v): %s", filepath.Base(cmd.Path), err, msg)
		}
		return fmt.Errorf("%s failed: %v", filepath.Base(cmd.Path), err)
	}
	return nil
}

func (c *Cluster) initdb(ctx context.Context, opts Options) error {
	// The password goes in a file readable only by the server's user, read
	// by initdb and removed right after.
	pwFile := filepath.Join(c.Dir, "pwfile")
	err := func() error {
		f, err := os.OpenFile(pwFile, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		_, err = f.WriteString(c.Password + "\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		return c.chown(pwFile)
	}()
	if err != nil {
		os.Remove(pwFile)
		return fmt.Errorf("pgcluster: write password file: %w", err)
	}
	args := []string{
		"-D", c.DataDir,
		"-U", c.Superuser,
		"--pwfile=" + pwFile,
		"--auth-host=" + opts.AuthMethod,
		"--auth-local=" + opts.AuthMethod,
		"--encoding=UTF8",
		"--locale=" + opts.Locale,
	}
	if opts.Fast {
		args = append(args, "--no-sync")
	}
	err = c.run(c.command(ctx, "initdb", args...))
	if rerr := os.Remove(pwFile); rerr != nil && !errors.Is(rerr, os.ErrNotExist) && err == nil {
		err = fmt.Errorf("remove password file: %w", rerr)
	}
	if err != nil {
		return fmt.Errorf("pgcluster: initdb: %w", err)
	}
	return nil
}

// configure writes the server settings and a pg_hba.conf that admits only
// password-authenticated connections from 127.0.0.1 and the private socket.
func (c *Cluster) configure(opts Options) error {
	settings := map[string]string{
		"listen_addresses":        "'127.0.0.1'",
		"unix_socket_directories": quoteConf(c.SocketDir),
		"unix_socket_permissions": "0700",
		"logging_collector":       "off",
	}
	if opts.AuthMethod == "scram-sha-256" || opts.AuthMethod == "md5" {
		settings["password_encryption"] = quoteConf(opts.AuthMethod)
	}
	if opts.Fast {
		for k, v := range map[string]string{
			"fsync":              "off",
			"synchronous_commit": "off",
			"full_page_writes":   "off",
			"shared_buffers":     "'16MB'",
			"max_wal_size":       "'256MB'",
		} {
			settings[k] = v
		}
	}
	for k, v := range opts.Settings {
		settings[k] = quoteConf(v)
	}
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("\n# coffer pgcluster\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s = %s\n", k, settings[k])
	}
	// Appended: later settings win over initdb's.
	f, err := os.OpenFile(filepath.Join(c.DataDir, "postgresql.conf"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("pgcluster: configure: %w", err)
	}
	_, err = f.WriteString(b.String())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("pgcluster: configure: %w", err)
	}
	hba := fmt.Sprintf("# coffer pgcluster: password authentication only\n"+
		"local all all %[1]s\n"+
		"host  all all 127.0.0.1/32 %[1]s\n", opts.AuthMethod)
	// Rewritten in place, keeping the owner and mode initdb gave it.
	if err := os.WriteFile(filepath.Join(c.DataDir, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		return fmt.Errorf("pgcluster: write pg_hba.conf: %w", err)
	}
	return nil
}

// quoteConf quotes a postgresql.conf value.
func quoteConf(v string) string {
	return "'" + strings.ReplaceAll(v, "'", "''") + "'"
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (c *Cluster) pgCtl(ctx context.Context, action string, args ...string) error {
	return c.run(c.command(ctx, "pg_ctl", append([]string{action, "-D", c.DataDir}, args...)...))
}

// waitReady pings the server over TCP with the superuser's password until it
// answers, the timeout passes or ctx ends.
func (c *Cluster) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cfg, err := pgx.ParseConfig(c.DSN("postgres"))
	if err != nil {
		return fmt.Errorf("pgcluster: parse DSN: %w", err)
	}
	var last error
	for {
		actx, acancel := context.WithTimeout(ctx, 5*time.Second)
		conn, err := pgx.ConnectConfig(actx, cfg)
		if err == nil {
			err = conn.Ping(actx)
			conn.Close(context.WithoutCancel(ctx))
		}
		acancel()
		if err == nil {
			return nil
		}
		last = err
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code != "57P03" { // not "starting up": a real answer
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pgcluster: server on port %d did not accept connections within %v: %v", c.Port, timeout, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("pgcluster: connect to server on port %d: %w", c.Port, last)
}

// DSN is a URL connecting to database db as the superuser with its
// password, over TCP on 127.0.0.1, without TLS.
func (c *Cluster) DSN(db string) string {
	return c.DSNFor(c.Superuser, c.Password, db)
}

// DSNFor is a URL connecting to database db as user with password; an empty
// password leaves it out (for PGPASSWORD or a passfile).
func (c *Cluster) DSNFor(user, password, db string) string {
	u := url.URL{
		Scheme:   "postgres",
		Host:     net.JoinHostPort(c.Host, strconv.Itoa(c.Port)),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	if password != "" {
		u.User = url.UserPassword(user, password)
	} else {
		u.User = url.User(user)
	}
	return u.String()
}

// Stop shuts the server down (pg_ctl stop -m fast, and -m immediate should
// that fail) and removes the cluster's directory. It may be called more than
// once; later calls return the first call's result.
func (c *Cluster) Stop(ctx context.Context) error {
	c.stopOnce.Do(func() {
		var errs []error
		if _, err := os.Stat(filepath.Join(c.DataDir, "postmaster.pid")); err == nil {
			if err := c.pgCtl(ctx, "stop", "-m", "fast", "-w", "-t", "30"); err != nil {
				errs = append(errs, fmt.Errorf("pgcluster: stop server: %w", err))
				if err := c.pgCtl(context.WithoutCancel(ctx), "stop", "-m", "immediate", "-w", "-t", "30"); err != nil {
					errs = append(errs, fmt.Errorf("pgcluster: stop server immediately: %w", err))
				}
			}
		}
		if err := os.RemoveAll(c.Dir); err != nil {
			errs = append(errs, fmt.Errorf("pgcluster: remove %s: %w", c.Dir, err))
		}
		c.stopErr = errors.Join(errs...)
	})
	return c.stopErr
}

func (c *Cluster) logTail(n int) string {
	b, err := os.ReadFile(c.LogFile)
	if err != nil {
		return ""
	}
	return lastLines(string(b), n)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(string(bytes.ToValidUTF8([]byte(s), nil))), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.TrimSpace(strings.Join(lines, "; "))
}

package main

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/cofferhq/coffer/internal/testing/testutil"
)

func init() {
	scriptCmds["skewserver"] = cmdSkewServer
}

// skewserver OFFSET
//
// starts an HTTP server on a free loopback port whose Date header is this
// host's time plus OFFSET (a Go duration), and sets SKEW_ENDPOINT to its
// http://host:port. A real S3 server's clock cannot be set apart from
// this host's: this mock stands in for one whose clock is wrong.
func cmdSkewServer(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: skewserver OFFSET")
	}
	off, err := time.ParseDuration(args[0])
	ts.Check(err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	ts.Check(err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Date", time.Now().Add(off).UTC().Format(http.TimeFormat))
		w.WriteHeader(http.StatusForbidden)
	})}
	go srv.Serve(ln)
	ts.Defer(func() { srv.Close() })
	ts.Setenv("SKEW_ENDPOINT", "http://"+ln.Addr().String())
}

// TestDoctorReadOnlyRepository runs the real coffer binary against a
// repository it may read but not write: doctor's write check fails and
// doctor exits 1. As root (who may write anywhere) it runs coffer as the
// user nobody, for whom the repository folder is read-only.
func TestDoctorReadOnlyRepository(t *testing.T) {
	e := newCrashEnv(t, "")
	bin := e.bin
	var prefix []string
	if os.Geteuid() == 0 {
		setpriv, err := exec.LookPath("setpriv")
		if err != nil {
			t.Skip("running as root without setpriv: cannot make a repository read-only for coffer")
		}
		// nobody must reach the binary, the repository, the keys.
		pub := t.TempDir()
		for _, d := range []string{pub, filepath.Dir(pub), e.dir, filepath.Dir(e.dir)} {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		bin = filepath.Join(pub, "coffer")
		testutil.PlaceBinary(t, e.bin, bin)
		filepath.Walk(filepath.Join(e.dir, "keys"), func(p string, fi os.FileInfo, err error) error {
			if err == nil {
				os.Chown(p, 65534, 65534)
			}
			return nil
		})
		for _, d := range []string{"home", "state", "cache"} {
			os.MkdirAll(filepath.Join(e.dir, d), 0o700)
			os.Chown(filepath.Join(e.dir, d), 65534, 65534)
		}
		prefix = []string{setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"}
	}
	// The repository: readable by all, writable by its owner (root) only;
	// without root, by no one.
	filepath.Walk(e.local, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		if fi.IsDir() {
			os.Chmod(p, 0o555)
		} else {
			os.Chmod(p, 0o444)
		}
		return nil
	})
	t.Cleanup(func() {
		filepath.Walk(e.local, func(p string, fi os.FileInfo, err error) error {
			if err == nil && fi.IsDir() {
				os.Chmod(p, 0o755)
			}
			return nil
		})
	})
	args := append(append(prefix, bin), "doctor")
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(e.env, "TMPDIR="+os.TempDir())
	cmd.Dir = e.dir
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	t.Logf("coffer doctor:\n%s", out)
	if code != 1 {
		t.Errorf("doctor on a read-only repository: exit %d, want 1", code)
	}
	if !strings.Contains(string(out), "FAIL write: cannot write to the repository") {
		t.Errorf("no FAIL for the write check in:\n%s", out)
	}
	if !strings.Contains(string(out), "OK   repository: ") {
		t.Errorf("the repository should be reachable (read) in:\n%s", out)
	}
}

// TestMemoryLimitSet runs the real coffer binary (main sets the limit,
// not run): without GOMEMLIMIT, doctor reports coffer's default soft
// memory limit, 40 MiB + 12 MiB per GOMAXPROCS; with GOMEMLIMIT, Go's.
func TestMemoryLimitSet(t *testing.T) {
	bin := testutil.CofferBinary(t)
	for _, c := range []struct{ env, want string }{
		{"GOMAXPROCS=3", "OK   memory: soft memory limit 76 MiB (coffer's default: 40 MiB + 12 MiB x GOMAXPROCS 3, raised as the live heap grows; GOMEMLIMIT overrides), GOGC 50 (coffer's default)\n"},
		{"GOMEMLIMIT=300MiB", "OK   memory: soft memory limit 300 MiB (GOMEMLIMIT=300MiB), GOGC 50 (coffer's default)\n"},
		{"GOMEMLIMIT=off", "OK   memory: no soft memory limit (GOMEMLIMIT=off), GOGC 50 (coffer's default)\n"},
	} {
		cmd := exec.Command(bin, "doctor")
		cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH"), c.env}
		out, _ := cmd.Output() // no repository: doctor exits 1
		if !strings.Contains(string(out), c.want) {
			t.Errorf("%s: doctor printed\n%s\nwant the line\n%s", c.env, out, c.want)
		}
	}
}

// Package leftover stops a database server that a killed coffer process
// left running in a scratch folder: the ephemeral PostgreSQL cluster and
// the ephemeral MariaDB of a drill. It reads only /proc (Linux).
package leftover

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Stop sends sig to process pid when it runs with dir as its working
// directory (so a reused pid is left alone), waits until it is gone,
// sending SIGKILL every 10 seconds it is not, and returns early when ctx
// ends. A process that is not there is not an error.
func Stop(ctx context.Context, pid int, dir string, sig syscall.Signal) error {
	if pid <= 1 || !RunsIn(pid, dir) {
		return nil
	}
	if err := syscall.Kill(pid, sig); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return nil
		}
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for RunsIn(pid, dir) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			deadline = time.Now().Add(10 * time.Second)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// RunsIn reports whether process pid is alive (not a zombie) with dir as
// its working directory, as a postmaster and mariadbd are.
func RunsIn(pid int, dir string) bool {
	cwd, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/cwd")
	if err != nil {
		return false
	}
	want, err := filepath.EvalSymlinks(dir)
	if err != nil {
		want = dir
	}
	if cwd != want {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses.
	if i := strings.LastIndexByte(string(b), ')'); i >= 0 && i+2 < len(b) && b[i+2] == 'Z' {
		return false
	}
	return true
}

package pgcluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// DataDirs returns the data directories of the clusters Start created
// directly under parent (parent/coffer-pg-*/data).
func DataDirs(parent string) []string {
	dirs, _ := filepath.Glob(filepath.Join(parent, "coffer-pg-*", "data"))
	return dirs
}

// StopLeftover stops the server of a cluster whose owner was killed
// before it could call Stop: the postmaster named by dataDir's
// postmaster.pid, if it is still running there (its working directory is
// dataDir), gets SIGQUIT (immediate shutdown) and, should it not exit
// within a few seconds, SIGKILL. It does not remove the directory. A
// missing postmaster.pid, or a pid that is no longer that server's, is not
// an error.
func StopLeftover(ctx context.Context, dataDir string) error {
	f, err := os.Open(filepath.Join(dataDir, "postmaster.pid"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	sc := bufio.NewScanner(f)
	sc.Scan()
	line := strings.TrimSpace(sc.Text())
	f.Close()
	pid, err := strconv.Atoi(line)
	if err != nil || pid <= 1 {
		return nil
	}
	if !runsIn(pid, dataDir) {
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGQUIT); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return nil
		}
		return fmt.Errorf("pgcluster: stop leftover server (pid %d): %w", pid, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for runsIn(pid, dataDir) {
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

// runsIn reports whether process pid is alive (not a zombie) with dataDir
// as its working directory, as a postmaster is.
func runsIn(pid int, dataDir string) bool {
	cwd, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/cwd")
	if err != nil {
		return false
	}
	want, err := filepath.EvalSymlinks(dataDir)
	if err != nil {
		want = dataDir
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

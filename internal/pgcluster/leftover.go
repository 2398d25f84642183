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

	"github.com/cofferhq/coffer/internal/leftover"
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
	if err := leftover.Stop(ctx, pid, dataDir, syscall.SIGQUIT); err != nil {
		return fmt.Errorf("pgcluster: stop leftover server (pid %d): %w", pid, err)
	}
	return nil
}

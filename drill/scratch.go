package drill

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cofferhq/coffer/internal/pgcluster"
)

// DatabasePrefix starts the name of every database a drill creates on a
// drill server, followed by the drill's scratch id (ScratchID):
// coffer_drill_<scratch id>_<n>. A drill
// drops only databases with its own id, and, with the prefix, those of
// drills whose marker says their process is dead.
const DatabasePrefix = "coffer_drill_"

// dirPrefix starts the name of a drill's scratch folder in the temporary
// folder: coffer-drill-<scratch id>.
const dirPrefix = "coffer-drill-"

// markerName is the marker file in a scratch folder.
const markerName = "coffer-drill.json"

// Marker says which drill owns a scratch folder and what it created
// elsewhere, so that the next drill can remove what a drill killed with
// SIGKILL left behind. It holds no credential.
type Marker struct {
	Drill string `json:"drill"`
	PID   int    `json:"pid"`
	// PIDStart is the process's start time in clock ticks since boot
	// (/proc/PID/stat), so that a reused pid is not taken for the drill.
	PIDStart uint64    `json:"pid_start"`
	Started  time.Time `json:"started"`
	// Servers are the drill servers it created databases on, as
	// "kind host:port" (no credentials).
	Servers []string `json:"servers,omitempty"`
}

// scratch is a drill's private folder: the marker, "work/" (0700) for
// restored files, and the ephemeral cluster's folder.
type scratch struct {
	dir    string
	work   string
	marker Marker
}

// ScratchID is the part of a drill's id that names its scratch folder and
// databases: its first 16 hex digits (a database name has at most 63
// bytes, a unix socket path inside the folder at most 107).
func ScratchID(id string) string {
	if len(id) > 16 {
		return id[:16]
	}
	return id
}

func newScratch(tempDir, id string, started time.Time) (*scratch, error) {
	if tempDir == "" {
		tempDir = os.TempDir()
	}
	dir := filepath.Join(tempDir, dirPrefix+ScratchID(id))
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create the scratch folder: %w", err)
	}
	s := &scratch{dir: dir, work: filepath.Join(dir, "work"),
		marker: Marker{Drill: id, PID: os.Getpid(), PIDStart: procStart(os.Getpid()), Started: started.UTC()}}
	if err := s.writeMarker(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := os.Mkdir(s.work, 0o700); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("create the scratch folder: %w", err)
	}
	return s, nil
}

// writeMarker replaces the marker atomically.
func (s *scratch) writeMarker() error {
	b, err := json.MarshalIndent(s.marker, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(s.dir, markerName+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write the drill marker: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(s.dir, markerName)); err != nil {
		return fmt.Errorf("write the drill marker: %w", err)
	}
	return nil
}

// addServer records a drill server in the marker before the first
// database is created on it.
func (s *scratch) addServer(key string) error {
	for _, k := range s.marker.Servers {
		if k == key {
			return nil
		}
	}
	s.marker.Servers = append(s.marker.Servers, key)
	return s.writeMarker()
}

// remove stops an ephemeral cluster left in the folder and removes it.
// Processes still running inside the folder (a killed drill's orphaned
// initdb, or server processes that outlived their postmaster) are killed
// first: the folder is the drill's own, its name unique to the drill.
func (s *scratch) remove(ctx context.Context) error {
	var errs []error
	for _, d := range pgcluster.DataDirs(s.dir) {
		if err := pgcluster.StopLeftover(ctx, d); err != nil {
			errs = append(errs, err)
		}
	}
	var err error
	for i := 0; i < 10; i++ {
		killWithin(s.dir)
		if err = os.RemoveAll(s.dir); err == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		errs = append(errs, fmt.Errorf("remove the scratch folder: %w", err))
	}
	return errors.Join(errs...)
}

// killWithin kills (SIGKILL) the processes other than this one whose
// working directory is inside dir or whose command line names it, and
// waits a little for them to go.
func killWithin(dir string) {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cwd, _ := os.Readlink("/proc/" + e.Name() + "/cwd")
		cmd, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if cwd == dir || strings.HasPrefix(cwd, dir+"/") || strings.Contains(string(cmd), dir+"/") {
			if syscall.Kill(pid, syscall.SIGKILL) == nil {
				pids = append(pids, pid)
			}
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range pids {
		for time.Now().Before(deadline) {
			b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
			if err != nil {
				break
			}
			if i := strings.LastIndexByte(string(b), ')'); i >= 0 && i+2 < len(b) && b[i+2] == 'Z' {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// procStart returns the start time of process pid in clock ticks since
// boot, 0 when unknown.
func procStart(pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	// Fields after the command: state is field 3; starttime is field 22.
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0
	}
	n, _ := strconv.ParseUint(f[19], 10, 64)
	return n
}

// alive reports whether the process a marker names still runs.
func (m Marker) alive() bool {
	if m.PID <= 0 {
		return false
	}
	if err := syscall.Kill(m.PID, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	if m.PIDStart != 0 {
		if st := procStart(m.PID); st != 0 && st != m.PIDStart {
			return false // the pid was reused
		}
	}
	return true
}

// Leftover is what a dead drill left behind and the next drill removed (or
// could not).
type Leftover struct {
	Drill   string   `json:"drill"`
	Folder  string   `json:"folder"`
	Dropped []string `json:"dropped,omitempty"`
	// Kept says why part of it was kept (a drill server this drill is not
	// configured for).
	Kept string `json:"kept,omitempty"`
}

// reapLeftovers removes the scratch folders, ephemeral clusters and drill
// server databases of drills whose process is dead. servers are this
// drill's configured drill servers, by "kind host:port"; databases on
// other servers cannot be dropped from here, and their marker is kept.
func reapLeftovers(ctx context.Context, tempDir string, servers map[string]Server) ([]Leftover, error) {
	if tempDir == "" {
		tempDir = os.TempDir()
	}
	dirs, err := filepath.Glob(filepath.Join(tempDir, dirPrefix+"*"))
	if err != nil {
		return nil, err
	}
	var out []Leftover
	var errs []error
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, markerName))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // not a drill's folder, or one being created
			}
			errs = append(errs, err)
			continue
		}
		var m Marker
		if err := json.Unmarshal(b, &m); err != nil || m.Drill == "" || filepath.Base(dir) != dirPrefix+ScratchID(m.Drill) {
			continue
		}
		if m.alive() {
			continue
		}
		l := Leftover{Drill: ScratchID(m.Drill), Folder: dir}
		var kept []string
		for _, key := range m.Servers {
			srv, ok := servers[key]
			if !ok {
				kept = append(kept, key)
				continue
			}
			dropped, err := srv.DropDrill(ctx, ScratchID(m.Drill))
			l.Dropped = append(l.Dropped, dropped...)
			if err != nil {
				errs = append(errs, err)
				kept = append(kept, key)
			}
		}
		s := &scratch{dir: dir, marker: m}
		if len(kept) == 0 {
			if err := s.remove(ctx); err != nil {
				errs = append(errs, err)
			}
		} else {
			// Keep only the marker, for a drill that can reach those servers.
			for _, d := range pgcluster.DataDirs(dir) {
				pgcluster.StopLeftover(ctx, d)
			}
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if e.Name() != markerName {
					os.RemoveAll(filepath.Join(dir, e.Name()))
				}
			}
			l.Kept = "its databases on " + strings.Join(kept, ", ") + " (configure that drill server to drop them)"
		}
		out = append(out, l)
	}
	return out, errors.Join(errs...)
}

package backup_test

// Benchmarks of the backup pipeline into a local repository:
//
//	go test -bench . -run '^$' ./backup/
//
// BenchmarkBackupStream measures throughput (MB/s) of one 100 MB stream,
// compressible (CSV-like invoice lines) and incompressible (ChaCha8).
// BenchmarkBackupRSS runs a 100 MB and a 1 GB backup each in a child process
// (this test binary, re-executed) and reports the child's peak RSS as
// peakRSS-MiB: the pipeline's memory bound must not grow with the input.
// The child collects as the coffer command does (GOGC 50, the soft memory
// limit of internal/memlimit; GOGC and GOMEMLIMIT override).
// BenchmarkBackupSmallFiles is the per-file path: a first backup of 10,000
// files of 150-700 bytes (benchutil.GenerateSmallFiles), reported as
// files/s with the allocations per file.
// BenchmarkBackupDir backs up the folder COFFER_BENCH_DIR (skipped when
// unset), backs it up again unchanged, and restores it, for CPU profiles of
// a real tree (samples are labelled phase=backup|second-cached|restore):
//
//	COFFER_BENCH_DIR=bench-out/data-1024mb go test -run '^$' -bench BackupDir -benchtime 1x -cpuprofile cpu.out ./backup/

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cofferhq/coffer/backup"
	"github.com/cofferhq/coffer/internal/keys"
	"github.com/cofferhq/coffer/internal/memlimit"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/internal/testing/benchutil"
	"github.com/cofferhq/coffer/internal/testing/testrepo"
	"github.com/cofferhq/coffer/restore"
	"github.com/cofferhq/coffer/source"
	dirkind "github.com/cofferhq/coffer/source/dir"
	"github.com/cofferhq/coffer/storage"
)

const benchStreamSize = 100 << 20

// benchRepo creates keys and an initialised local repository in dir.
func benchRepo(tb testing.TB, dir string) (*repo.Repository, *keys.SigningKey, storage.Store) {
	tb.Helper()
	tr := testrepo.NewIn(tb, dir)
	return tr.Host(tb), tr.Signing, tr.Store
}

// streamSource is a source of one file read from r, like a database dump.
type streamSource struct{ r io.Reader }

func (s streamSource) Name() string { return "stream" }
func (s streamSource) Kind() string { return "dir" }
func (s streamSource) Backup(ctx context.Context, w source.Writer) error {
	return w.WriteFile(ctx, source.Entry{Path: "stream.bin", Type: source.TypeFile, Mode: 0o600,
		ModTime: time.Unix(1_700_000_000, 0), Size: -1}, s.r)
}

func runBackup(tb testing.TB, dir string, src source.Source) *backup.Result {
	tb.Helper()
	r, sk, _ := benchRepo(tb, dir)
	res, err := backup.Run(context.Background(), backup.Options{Repo: r, Signing: sk, Sources: []source.Source{src}})
	if err != nil {
		tb.Fatalf("backup: %v", err)
	}
	return res
}

func BenchmarkBackupStream(b *testing.B) {
	for _, tc := range []struct {
		name         string
		compressible bool
	}{{"compressible", true}, {"incompressible", false}} {
		b.Run(tc.name, func(b *testing.B) {
			data, err := io.ReadAll(benchutil.Stream(benchStreamSize, 1, tc.compressible))
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(data)))
			var stored int64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				dir := filepath.Join(b.TempDir(), strconv.Itoa(i))
				r, sk, _ := benchRepo(b, dir)
				b.StartTimer()
				res, err := backup.Run(context.Background(), backup.Options{Repo: r, Signing: sk,
					Sources: []source.Source{streamSource{bytes.NewReader(data)}}})
				if err != nil {
					b.Fatal(err)
				}
				stored = res.Private.Stats.BytesStored
				b.StopTimer()
				os.RemoveAll(dir)
				b.StartTimer()
			}
			b.ReportMetric(float64(stored)/float64(len(data)), "stored/read")
		})
	}
}

// rssChildEnv tells a re-executed test binary to run one backup of that
// many bytes and exit; see TestBackupRSSChild.
const rssChildEnv = "COFFER_BENCH_RSS_CHILD"

// TestBackupRSSChild is the child process of BenchmarkBackupRSS; it does
// nothing in a normal test run.
func TestBackupRSSChild(t *testing.T) {
	n, err := strconv.ParseInt(os.Getenv(rssChildEnv), 10, 64)
	if err != nil {
		t.Skip("child process of BenchmarkBackupRSS only")
	}
	// The collector's settings of the coffer command (cmd/coffer main).
	memlimit.Configure(os.Getenv)
	res := runBackup(t, t.TempDir(), streamSource{benchutil.Stream(n, 2, false)})
	if got := res.Private.Stats.BytesRead; got != n {
		t.Fatalf("read %d bytes, want %d", got, n)
	}
	// The parent cannot use the child's rusage: on Linux, ru_maxrss
	// survives exec, and os/exec starts the child with CLONE_VM, so the
	// child's figure is at least the parent's own peak (for example the
	// 100 MB inputs of BenchmarkBackupStream run before). VmHWM belongs to
	// the child's own address space.
	if st, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(st), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
				fmt.Printf("%s%s\n", rssChildMarker, f[1])
			}
		}
	}
}

// rssChildMarker prefixes the child's peak RSS (KiB) on its output.
const rssChildMarker = "coffer-bench-vmhwm-kib="

// childPeakRSS returns the child's own peak RSS in KiB from its output,
// or, when it did not print one (no /proc), its rusage, which may include
// the parent's peak.
func childPeakRSS(out []byte, ps *os.ProcessState) int64 {
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), rssChildMarker); ok {
			if kib, err := strconv.ParseInt(v, 10, 64); err == nil {
				return kib
			}
		}
	}
	return ps.SysUsage().(*syscall.Rusage).Maxrss // KiB on Linux
}

func BenchmarkBackupRSS(b *testing.B) {
	peak := map[string]float64{}
	sizes := []struct {
		name string
		n    int64
	}{{"100MB", 100 << 20}, {"1GB", 1 << 30}}
	for _, s := range sizes {
		b.Run(s.name, func(b *testing.B) {
			b.SetBytes(s.n)
			var maxrss int64
			for i := 0; i < b.N; i++ {
				cmd := exec.Command(os.Args[0], "-test.run=^TestBackupRSSChild$", "-test.count=1")
				cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", rssChildEnv, s.n))
				out, err := cmd.CombinedOutput()
				if err != nil {
					b.Fatalf("child: %v\n%s", err, out)
				}
				maxrss = max(maxrss, childPeakRSS(out, cmd.ProcessState))
			}
			peak[s.name] = float64(maxrss) / 1024
			b.ReportMetric(peak[s.name], "peakRSS-MiB")
		})
	}
	if small, big := peak["100MB"], peak["1GB"]; small > 0 && big > 0 {
		b.Logf("peak RSS: 100 MB input %.0f MiB, 1 GB input %.0f MiB (ratio %.2f)", small, big, big/small)
		if big > 1.5*small {
			b.Errorf("peak RSS grows with the input: %.0f MiB for 1 GB vs %.0f MiB for 100 MB", big, small)
		}
	}
}

func BenchmarkBackupSmallFiles(b *testing.B) {
	const files = 10_000
	dir := filepath.Join(b.TempDir(), "files")
	size, err := benchutil.GenerateSmallFiles(dir, files, 1)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	b.ReportAllocs()
	runs := 0
	for b.Loop() {
		b.StopTimer()
		runs++
		work := filepath.Join(b.TempDir(), strconv.Itoa(runs))
		r, sk, _ := benchRepo(b, work)
		b.StartTimer()
		res, err := backup.Run(context.Background(), backup.Options{Repo: r, Signing: sk, CacheDir: filepath.Join(work, "cache"),
			Sources: []source.Source{&dirkind.Source{SourceName: "files", Path: dir}}})
		if err != nil {
			b.Fatal(err)
		}
		if got := res.Private.Stats.ChunksNew; got < files {
			b.Fatalf("%d new chunks, want at least %d", got, files)
		}
	}
	b.ReportMetric(float64(files*b.N)/b.Elapsed().Seconds(), "files/s")
}

// BenchmarkBackupDir backs up the folder COFFER_BENCH_DIR into a fresh
// repository, backs it up again unchanged (with the change cache), and
// restores it. CPU profile samples carry a pprof label phase=backup,
// second-cached or restore: go tool pprof -tagfocus phase=restore ...
func BenchmarkBackupDir(b *testing.B) {
	dir := os.Getenv("COFFER_BENCH_DIR")
	if dir == "" {
		b.Skip("set COFFER_BENCH_DIR to a folder (for example bench-out/data-1024mb after make bench)")
	}
	var size int64
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				size += fi.Size()
			}
		}
		return nil
	})
	ctx := context.Background()
	tmp := b.TempDir()
	var snap *repo.Manifest
	var st storage.Store
	var keyDir, lastWork string
	var sk0 *keys.SigningKey
	var r0 *repo.Repository
	// b.Run calls each function more than once (b.N = 1, then more), so
	// every iteration of every call gets its own folder.
	runs := 0
	next := func(kind string) string {
		runs++
		return filepath.Join(tmp, kind, strconv.Itoa(runs))
	}
	b.Run("backup", func(b *testing.B) {
		b.SetBytes(size)
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			work := next("backup")
			r, sk, s := benchRepo(b, work)
			b.StartTimer()
			var res *backup.Result
			var err error
			pprof.Do(ctx, pprof.Labels("phase", "backup"), func(ctx context.Context) {
				res, err = backup.Run(ctx, backup.Options{Repo: r, Signing: sk, CacheDir: filepath.Join(work, "cache"),
					Sources: []source.Source{&dirkind.Source{SourceName: "files", Path: dir}}})
			})
			if err != nil {
				b.Fatal(err)
			}
			snap, st, keyDir, lastWork = res.Manifest, s, filepath.Join(work, "keys"), work
			sk0, r0 = sk, r
		}
	})
	if snap == nil {
		return
	}
	// An unchanged second backup with the change cache.
	b.Run("second-cached", func(b *testing.B) {
		b.SetBytes(size)
		for i := 0; i < b.N; i++ {
			var err error
			pprof.Do(ctx, pprof.Labels("phase", "second-cached"), func(ctx context.Context) {
				_, err = backup.Run(ctx, backup.Options{Repo: r0, Signing: sk0, CacheDir: filepath.Join(lastWork, "cache"),
					Sources: []source.Source{&dirkind.Source{SourceName: "files", Path: dir}}})
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("restore", func(b *testing.B) {
		b.SetBytes(size)
		ids, err := keys.LoadIdentities(keys.Path(keyDir, keys.IdentityFile))
		if err != nil {
			b.Fatal(err)
		}
		pin, err := keys.OwnerPin(keys.Path(keyDir, keys.IdentityFile))
		if err != nil {
			b.Fatal(err)
		}
		r, err := repo.Open(ctx, st, repo.OpenOptions{Owner: pin, Identities: ids})
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < b.N; i++ {
			s, err := restore.Load(ctx, r, snap)
			if err != nil {
				b.Fatal(err)
			}
			src, err := s.Source("files")
			if err != nil {
				b.Fatal(err)
			}
			pprof.Do(ctx, pprof.Labels("phase", "restore"), func(ctx context.Context) {
				_, err = restore.RestoreDir(ctx, src, next("restore"), restore.DirOptions{})
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}

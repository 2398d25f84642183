package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
)

// bigSource writes n MiB of incompressible data into dir, in files of 16
// MiB, so that a backup takes a few seconds.
func bigSource(t *testing.T, dir string, mib int) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewChaCha8([32]byte{1, 2, 3}))
	buf := make([]byte, 1<<20)
	for f := 0; f*16 < mib; f++ {
		out, err := os.Create(filepath.Join(dir, "part"+string(rune('a'+f))))
		if err != nil {
			t.Fatal(err)
		}
		w := bufio.NewWriter(out)
		for i := 0; i < 16 && f*16+i < mib; i++ {
			for j := range buf {
				buf[j] = byte(rng.Uint32())
			}
			w.Write(buf)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		out.Close()
	}
}

// onTerminal runs coffer with stdin, stdout and stderr on a new
// pseudo-terminal and returns everything it wrote there and its exit code.
func (e *crashEnv) onTerminal(args ...string) (string, int) {
	e.t.Helper()
	cmd := e.command(args...)
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 160})
	if err != nil {
		e.t.Fatal(err)
	}
	defer tty.Close()
	var out bytes.Buffer
	_, err = io.Copy(&out, tty)
	// Linux reports EIO on the terminal's side once the process is gone.
	if err != nil && !errors.Is(err, syscall.EIO) {
		e.t.Fatal(err)
	}
	code := 0
	if err := cmd.Wait(); err != nil {
		var ee interface{ ExitCode() int }
		if !errors.As(err, &ee) {
			e.t.Fatal(err)
		}
		code = ee.ExitCode()
	}
	return out.String(), code
}

// barBytes are the byte counts a progress bar showed ("12.5 MiB, 3
// files" or "12.5 MiB / 96.0 MiB, 3 files").
var barBytes = regexp.MustCompile(`([0-9.]+ (?:B|KiB|MiB|GiB))(?: / ([0-9.]+ (?:B|KiB|MiB|GiB)))?, [0-9]+ files, `)

func seenCounts(out string) (counts []string, totals map[string]bool) {
	seen := map[string]bool{}
	totals = map[string]bool{}
	for _, m := range barBytes.FindAllStringSubmatch(out, -1) {
		if !seen[m[1]] {
			seen[m[1]] = true
			counts = append(counts, m[1])
		}
		if m[2] != "" {
			totals[m[2]] = true
		}
	}
	return counts, totals
}

// TestProgressOnTerminal runs the real coffer binary on a pseudo-terminal
// with a backup that takes a few seconds: the bar moves (it shows at least
// two different byte counts), and a restore's bar knows the total from the
// catalog. Without a terminal, the same commands print no progress (the
// scripts check that: progress.txt).
func TestProgressOnTerminal(t *testing.T) {
	if testing.Short() {
		t.Skip("a backup of 192 MiB")
	}
	e := newCrashEnv(t, "")
	src := filepath.Join(e.dir, "big")
	bigSource(t, src, 192)

	start := time.Now()
	out, code := e.onTerminal("backup", "big=dir:"+src)
	took := time.Since(start)
	if code != 0 {
		t.Fatalf("backup on a terminal: exit %d\n%s", code, out)
	}
	counts, _ := seenCounts(out)
	t.Logf("backup took %s; the bar showed %d byte counts: %v", took.Round(time.Millisecond), len(counts), counts)
	if len(counts) < 2 {
		t.Fatalf("the bar did not move: byte counts seen %v in\n%q", counts, out)
	}
	if !bytes.Contains([]byte(out), []byte("big")) || !bytes.Contains([]byte(out), []byte("snapshot ")) {
		t.Errorf("no bar named big or no summary in %q", out)
	}

	out, code = e.onTerminal("restore", "latest", "--to", filepath.Join(e.dir, "restored"))
	if code != 0 {
		t.Fatalf("restore on a terminal: exit %d\n%s", code, out)
	}
	counts, totals := seenCounts(out)
	if len(counts) < 1 || !totals["192.0 MiB"] {
		t.Errorf("restore's bar: counts %v, totals %v; want the catalog's total 192.0 MiB in\n%q", counts, totals, out)
	}

	// A drill draws a bar per source it restores, with the catalog's
	// total.
	out, code = e.onTerminal("drill", "--temp-dir", t.TempDir())
	if code != 0 {
		t.Fatalf("drill on a terminal: exit %d\n%s", code, out)
	}
	if _, totals := seenCounts(out); !totals["192.0 MiB"] {
		t.Errorf("drill's bar: totals %v; want the catalog's total 192.0 MiB in\n%q", totals, out)
	}

	// --quiet: no bar even on a terminal.
	out, code = e.onTerminal("--quiet", "verify")
	if code != 0 {
		t.Fatalf("verify --quiet: exit %d\n%s", code, out)
	}
	if c, _ := seenCounts(out); len(c) > 0 {
		t.Errorf("verify --quiet showed progress %v in %q", c, out)
	}
}

package main

import (
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/internal/testing/testutil"
)

// The rounds of an alternating run merge into one median, min and max per
// command; a command missing from every round is an error.
func TestLoadMergesRounds(t *testing.T) {
	dir := t.TempDir()
	for i, doc := range []string{
		`{"results":[{"command":"coffer","times":[3.0]},{"command":"tar","times":[1.0]}]}`,
		`{"results":[{"command":"coffer","times":[5.0]},{"command":"tar","times":[2.0]}]}`,
		`{"results":[{"command":"coffer","times":[4.0]},{"command":"tar","times":[9.0]}]}`,
	} {
		if err := os.WriteFile(filepath.Join(dir, "1-s-r"+string(rune('1'+i))+".json"), []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Another section whose name shares the prefix must not be merged in.
	os.WriteFile(filepath.Join(dir, "11-s-r1.json"), []byte(`{"results":[{"command":"coffer","times":[100]}]}`), 0o644)
	r, err := load(filepath.Join(dir, "1-s-r*.json"), "coffer")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Times) != 3 || r.Median != 4 || r.Min != 3 || r.Max != 5 {
		t.Fatalf("coffer: %+v, want 3 runs, median 4, min 3, max 5", r)
	}
	r, _ = load(filepath.Join(dir, "1-s-r*.json"), "tar")
	if r.Median != 2 {
		t.Fatalf("tar median %v, want 2", r.Median)
	}
	if _, err := load(filepath.Join(dir, "1-s-r*.json"), "restic"); err == nil {
		t.Fatal("a command in no round: no error")
	}
	if _, err := load(filepath.Join(dir, "9-*.json"), "coffer"); err == nil {
		t.Fatal("no round files: no error")
	}
}

// The chart has one bar per compared command with its ratio, none for
// coffer's reference row, and escapes names.
func TestChart(t *testing.T) {
	svg := string(chart("t", []Result{
		{Section: "first backup", Name: "coffer", Reference: true},
		{Section: "first backup", Name: "tar <zstd>", Ratio: 2.47},
		{Section: "restore", Name: "coffer", Reference: true},
		{Section: "restore", Name: "restic", Ratio: 0.71},
	}))
	for _, want := range []string{"<svg", "2.47x", "0.71x", "tar &lt;zstd&gt;", "first backup", "</svg>"} {
		if !strings.Contains(svg, want) {
			t.Errorf("chart lacks %q", want)
		}
	}
	if n := strings.Count(svg, `<rect x=`); n != 2 {
		t.Errorf("chart has %d bars, want 2", n)
	}
}

// The new and stored bytes of a coffer row come from what the real coffer
// prints under --json (events, one per line: the figures are in the "end"
// event's result). A backup of 300 KiB of random bytes stores about that much.
func TestOutBytesReadsCofferJSON(t *testing.T) {
	bin := testutil.CofferBinary(t)
	dir := t.TempDir()
	run := func(args ...string) []byte {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		cmd.Env = []string{"HOME=" + dir, "PATH=" + os.Getenv("PATH"), "XDG_CACHE_HOME=" + filepath.Join(dir, "cache"),
			"COFFER_REPO=" + filepath.Join(dir, "repo"), "COFFER_SIGNING_KEY=" + filepath.Join(dir, "keys", "host", "signing.key")}
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("coffer %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	run("keygen", "--out", "keys")
	run("init", "--owner-key", "keys/owner/owner.key", "-R", "keys/recipients.txt", "--host", "keys/signing.pub")
	data := make([]byte, 300<<10)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "src"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "src", "blob"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "backup.json")
	if err := os.WriteFile(out, run("--json", "backup", "docs=dir:src"), 0o600); err != nil {
		t.Fatal(err)
	}
	newB, storedB := outBytes("coffer", out)
	if newB != "300.0 KiB" {
		t.Errorf("new bytes = %q, want 300.0 KiB", newB)
	}
	var stored float64
	if _, err := fmt.Sscanf(storedB, "%f KiB", &stored); err != nil || stored < 300 {
		t.Errorf("stored bytes = %q, want at least 300 KiB (random bytes do not compress)", storedB)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	testutil.RemoveCofferBinary()
	os.Exit(code)
}

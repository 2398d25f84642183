package main

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

// TestBackupUnreadableFileAsRoot is testdata/backup_unreadable.txt for
// root, who reads files whatever their mode: it runs coffer as the nobody
// user (65534), for whom a root-owned file of mode 0000 is unreadable.
func TestBackupUnreadableFileAsRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("not root: testdata/backup_unreadable.txt covers this")
	}
	if testing.Short() {
		t.Skip("builds coffer")
	}
	t.Parallel()
	const nobody = 65534
	bin := cofferBinary(t)
	dir := t.TempDir()
	// nobody must reach the binary and the work folder.
	for _, d := range []string{filepath.Dir(bin), filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	src := filepath.Join(dir, "src")
	if err := makeTree(src); err != nil {
		t.Fatal(err)
	}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil {
			os.Lchown(p, nobody, nobody)
		}
		return err
	})
	secret := filepath.Join(src, "sub", "secret.txt")
	if err := os.WriteFile(secret, []byte("root only\n"), 0o000); err != nil {
		t.Fatal(err)
	}

	run := func(args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		cmd.Env = []string{"HOME=" + dir, "XDG_CACHE_HOME=" + filepath.Join(dir, "cache"), "COFFER_REPO=" + filepath.Join(dir, "repo"),
			"COFFER_SIGNING_KEY=" + filepath.Join(dir, "keys", "signing.key")}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("coffer %s: %v", strings.Join(args, " "), err)
		}
		return string(out), code
	}
	for _, args := range [][]string{{"keygen", "--out", "keys"}, {"init", "-R", "keys/recipients.txt"}} {
		if out, code := run(args...); code != 0 {
			t.Fatalf("coffer %s: exit %d\n%s", strings.Join(args, " "), code, out)
		}
	}
	out, code := run("backup", "docs=dir:src")
	if code != exitFailure {
		t.Fatalf("backup with an unreadable file: exit %d, want %d\n%s", code, exitFailure, out)
	}
	if msg := checkErrorOutput(out); msg != "" {
		t.Errorf("stderr: %s\n%s", msg, out)
	}
	want := regexp.MustCompile(`(?m)^coffer: error: source docs: read ".*src/sub/secret.txt": permission denied$`)
	if !want.MatchString(out) {
		t.Errorf("backup output = %q, want an error naming src/sub/secret.txt", out)
	}
	if out, _ := run("snapshots"); !strings.Contains(out, "0 snapshots") {
		t.Errorf("a snapshot was published after the failed backup:\n%s", out)
	}
}

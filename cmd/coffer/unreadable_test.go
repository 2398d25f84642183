package main

import (
	"database/sql"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/cofferhq/coffer/internal/testing/testutil"
)

// TestBackupUnreadableFileAsRoot is testdata/backup_unreadable.txt for
// root, who reads files whatever their mode: it runs coffer as the nobody
// user (65534), for whom a root-owned file or folder of mode 0000 is
// unreadable. The unreadable file and folder are left out with warnings
// naming them, the snapshot (a SQLite database and another folder among
// its sources) is saved and marked incomplete, and the backup exits 4;
// --strict fails and publishes nothing.
func TestBackupUnreadableFileAsRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("not root: testdata/backup_unreadable.txt covers this")
	}
	if testing.Short() {
		t.Skip("builds coffer")
	}
	t.Parallel()
	const nobody = 65534
	bin := testutil.CofferBinary(t)
	dir := t.TempDir()
	// nobody must reach the binary and the work folder.
	for _, d := range []string{filepath.Dir(bin), filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	src, other := filepath.Join(dir, "src"), filepath.Join(dir, "other")
	for _, d := range []string{src, other} {
		if err := makeTree(d); err != nil {
			t.Fatal(err)
		}
	}
	db := filepath.Join(dir, "app.db")
	if err := writeSQLite(db); err != nil {
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
	locked := filepath.Join(src, "locked")
	if err := os.Mkdir(locked, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(locked, "inside.txt"), []byte("root only\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(locked, 0o000); err != nil {
		t.Fatal(err)
	}

	run := func(args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		cmd.Env = []string{"HOME=" + dir, "XDG_CACHE_HOME=" + filepath.Join(dir, "cache"), "COFFER_REPO=" + filepath.Join(dir, "repo"),
			"COFFER_SIGNING_KEY=" + filepath.Join(dir, "keys", "host", "signing.key"), "COFFER_IDENTITY=" + filepath.Join(dir, "keys", "restore", "identity.txt")}
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
	for _, args := range [][]string{{"keygen", "--out", "keys"}, {"init", "--owner-key", "keys/owner/owner.key", "-R", "keys/recipients.txt", "--host", "keys/signing.pub"}} {
		if out, code := run(args...); code != 0 {
			t.Fatalf("coffer %s: exit %d\n%s", strings.Join(args, " "), code, out)
		}
	}
	sources := []string{"docs=dir:src", "app=sqlite:app.db", "more=dir:other"}

	out, code := run(append([]string{"backup", "--strict"}, sources...)...)
	if code != exitFailure {
		t.Fatalf("strict backup with an unreadable folder: exit %d, want %d\n%s", code, exitFailure, out)
	}
	if msg := checkErrorOutput(out); msg != "" {
		t.Errorf("stderr: %s\n%s", msg, out)
	}
	want := regexp.MustCompile(`(?m)^coffer: error: source docs: "locked": read folder: permission denied \(warning is an error in a strict backup\)$`)
	if !want.MatchString(out) {
		t.Errorf("strict backup output = %q, want an error naming \"locked\"", out)
	}
	if out, _ := run("snapshots"); !strings.Contains(out, "0 snapshots") {
		t.Errorf("a snapshot was published after the failed strict backup:\n%s", out)
	}

	out, code = run(append([]string{"backup"}, sources...)...)
	if code != exitIncomplete {
		t.Fatalf("backup with an unreadable file and folder: exit %d, want %d\n%s", code, exitIncomplete, out)
	}
	for _, re := range []string{
		`(?m)^coffer: warning: docs: skipped "locked": read folder: permission denied$`,
		`(?m)^coffer: warning: docs: skipped "sub/secret.txt": open: permission denied$`,
		`(?m)^snapshot [0-9a-f]{64} saved, incomplete: 2 paths not read$`,
		`(?m)^  sources:      docs \(dir\), app \(sqlite\), more \(dir\)$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("backup output = %q, want a line matching %s", out, re)
		}
	}
	if out, _ := run("snapshots"); !regexp.MustCompile(`(?m) incomplete$`).MatchString(out) || !strings.Contains(out, "\n1 snapshot\n") {
		t.Errorf("snapshots does not show one incomplete snapshot:\n%s", out)
	}
	if out, code := run("restore", "latest:more", "--to", "out/more"); code != 0 {
		t.Fatalf("restore more: exit %d\n%s", code, out)
	}
	if err := compareTrees(other, filepath.Join(dir, "out", "more")); err != nil {
		t.Error(err)
	}
	if out, code := run("restore", "latest:app", "--to-sqlite", "out/app.db"); code != 0 {
		t.Errorf("restore app: exit %d\n%s", code, out)
	}
	out, code = run("restore", "latest:docs", "--to", "out/docs")
	if code != 0 {
		t.Fatalf("restore docs: exit %d\n%s", code, out)
	}
	if !strings.Contains(out, `coffer: warning: snapshot `) || !strings.Contains(out, `is incomplete: 2 paths of docs could not be read at backup and are not in it ("locked", "sub/secret.txt")`) {
		t.Errorf("restore of the incomplete source does not say so:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "out", "docs", "sub", "deeper", "data.bin")); err != nil {
		t.Errorf("readable file not restored: %v", err)
	}
	if _, err := os.Stat(secret); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "out", "docs", "sub", "secret.txt")); err == nil {
		t.Error("the unreadable file was restored")
	}
}

// writeSQLite makes a small SQLite database at p.
func writeSQLite(p string) error {
	db, err := sql.Open("sqlite", p)
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.Exec("create table t(x integer); insert into t values (1), (2)")
	return err
}

package backup_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/backup"
	"github.com/cofferhq/coffer/internal/testing/testrepo"
	"github.com/cofferhq/coffer/source"
	dirkind "github.com/cofferhq/coffer/source/dir"
)

// TestHooks: pre hooks run before the sources, post hooks after, always;
// a failing pre hook aborts the backup, a failing post hook is reported
// with the saved snapshot, and a hook that runs too long is stopped.
func TestHooks(t *testing.T) {
	ctx := context.Background()
	tr := testrepo.New(t)
	host := tr.Host(t)
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	data := filepath.Join(dir, "data")
	os.MkdirAll(data, 0o755)
	os.WriteFile(filepath.Join(data, "a"), []byte("a"), 0o644)
	srcs := func() []source.Source { return []source.Source{&dirkind.Source{SourceName: "data", Path: data}} }
	logged := func() string {
		b, _ := os.ReadFile(log)
		os.Remove(log)
		return strings.TrimSpace(string(b))
	}
	rec := func(s string) string { return "echo " + s + " >> " + log }

	res, err := backup.Run(ctx, backup.Options{Repo: host, Signing: tr.Signing, Sources: srcs(),
		Hooks: backup.Hooks{Pre: []string{rec("pre1"), rec("pre2")}, Post: []string{rec("post-$COFFER_BACKUP-${#COFFER_SNAPSHOT}")}}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := logged(), "pre1\npre2\npost-ok-64"; got != want {
		t.Errorf("hooks ran %q, want %q", got, want)
	}

	// A failing pre hook: no backup, the next pre hook does not run, the
	// post hook does.
	_, err = backup.Run(ctx, backup.Options{Repo: host, Signing: tr.Signing, Sources: srcs(),
		Hooks: backup.Hooks{Pre: []string{"echo scheduler busy; exit 3", rec("pre2")}, Post: []string{rec("post-$COFFER_BACKUP")}}})
	var he *backup.HookError
	if !errors.As(err, &he) || !errors.Is(err, backup.ErrHook) || he.Phase != "pre" || he.N != 1 || he.Output != "scheduler busy" {
		t.Errorf("failing pre hook: err = %v", err)
	}
	if got, want := logged(), "post-failed"; got != want {
		t.Errorf("hooks ran %q, want %q", got, want)
	}

	// A failing post hook: the snapshot is saved and the error returned.
	res2, err := backup.Run(ctx, backup.Options{Repo: host, Signing: tr.Signing, Sources: srcs(),
		Hooks: backup.Hooks{Post: []string{"exit 1"}}})
	if res2 == nil || !errors.Is(err, backup.ErrHook) || res2.Manifest.ID == res.Manifest.ID {
		t.Errorf("failing post hook: res %v, err %v", res2, err)
	}

	// A hook that runs too long is stopped.
	start := time.Now()
	_, err = backup.Run(ctx, backup.Options{Repo: host, Signing: tr.Signing, Sources: srcs(),
		Hooks: backup.Hooks{Pre: []string{"sleep 30"}, Timeout: 200 * time.Millisecond}})
	if !errors.As(err, &he) || !strings.Contains(err.Error(), "timed out after 200ms") || time.Since(start) > 10*time.Second {
		t.Errorf("slow pre hook: err = %v after %s", err, time.Since(start))
	}
}

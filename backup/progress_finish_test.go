package backup_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/cofferhq/coffer/backup"
	"github.com/cofferhq/coffer/internal/progress"
	"github.com/cofferhq/coffer/internal/testing/testrepo"
	"github.com/cofferhq/coffer/source"
)

// finishes records the parts a run called Finish for.
type finishes struct {
	mu   sync.Mutex
	done []string
}

func (f *finishes) Start(string, progress.Counts) {}
func (f *finishes) Add(string, progress.Counts)   {}
func (f *finishes) Finish(p string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.done = append(f.done, p)
}

// failingSource writes its root and one file, then fails.
type failingSource struct{ entriesSource }

func (s failingSource) Backup(ctx context.Context, w source.Writer) error {
	if err := s.entriesSource.Backup(ctx, w); err != nil {
		return err
	}
	return errors.New("the source broke half way")
}

// TestProgressFinishOnlyOnSuccess: a source that fails is not reported
// finished (a bar would show it done, a JSON event "done": true, before
// the error); one that succeeds is.
func TestProgressFinishOnlyOnSuccess(t *testing.T) {
	tr := testrepo.New(t)
	mt := time.Unix(1_700_000_000, 0)
	entries := entriesSource{{Path: ".", Type: source.TypeDir, Mode: 0o755, ModTime: mt},
		{Path: "a", Type: source.TypeFile, Mode: 0o644, ModTime: mt}}
	var f finishes
	_, err := backup.Run(context.Background(), backup.Options{Repo: tr.Host(t), Signing: tr.Signing,
		Sources: []source.Source{failingSource{entries}}, Progress: &f})
	if err == nil {
		t.Fatal("the failing source's backup succeeded")
	}
	if len(f.done) != 0 {
		t.Errorf("a failed source was reported finished: %v", f.done)
	}
	f = finishes{}
	if _, err := backup.Run(context.Background(), backup.Options{Repo: tr.Host(t), Signing: tr.Signing,
		Sources: []source.Source{entries}, Progress: &f}); err != nil {
		t.Fatal(err)
	}
	if len(f.done) != 1 || f.done[0] != "docs" {
		t.Errorf("finished parts %v, want [docs]", f.done)
	}
}

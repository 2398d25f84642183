package backup_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/cofferhq/coffer/backup"
	"github.com/cofferhq/coffer/internal/testing/benchutil"
	"github.com/cofferhq/coffer/source"
	"github.com/cofferhq/coffer/source/dir"
)

// TestSmallFilesBatched: a tree of small files, one chunk a file, is
// handed to the pipeline's workers in batches, not a chunk at a time
// (which cost a wake-up of a worker and of the walk per file), and every
// file is still stored.
func TestSmallFilesBatched(t *testing.T) {
	const files = 2000
	tree := filepath.Join(t.TempDir(), "files")
	if _, err := benchutil.GenerateSmallFiles(tree, files, 1); err != nil {
		t.Fatal(err)
	}
	r, sk, _ := benchRepo(t, t.TempDir())
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	res, err := backup.Run(context.Background(), backup.Options{Repo: r, Signing: sk, Logger: log,
		Sources: []source.Source{&dir.Source{SourceName: "files", Path: tree}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Private.Stats.ChunksNew; got < files {
		t.Fatalf("%d new chunks, want at least %d", got, files)
	}
	var stored struct {
		Chunks    int64 `json:"chunks"`
		Handovers int64 `json:"handovers"`
	}
	for line := range bytes.Lines(logs.Bytes()) {
		var rec struct {
			Msg string `json:"msg"`
		}
		if json.Unmarshal(line, &rec) == nil && rec.Msg == "sources stored" {
			if err := json.Unmarshal(line, &stored); err != nil {
				t.Fatal(err)
			}
		}
	}
	if stored.Chunks < files {
		t.Fatalf("log says %d chunks stored, want at least %d (log: %s)", stored.Chunks, files, logs.String())
	}
	// Up to 64 small chunks a batch; only the last goes partly full.
	if max := stored.Chunks / 32; stored.Handovers > max {
		t.Fatalf("%d chunks in %d handovers, want at most %d", stored.Chunks, stored.Handovers, max)
	}
	t.Logf("%d chunks in %d handovers", stored.Chunks, stored.Handovers)
}

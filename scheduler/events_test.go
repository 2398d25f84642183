package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/config"
	"github.com/cofferhq/coffer/storage"
)

// TestAlertEvents runs the daemon in-process with a backup step that
// returns each outcome in turn: a snapshot whose Fernet key is missing
// (exit 5 style), an incomplete snapshot (exit 4 style), a failure, then
// a success; and a drill job on a build without drills. The webhook hears
// of each in order, with a recovery after the success, and nothing is
// retried that retrying cannot change. (A missed-schedule alert may come
// between: the schedule is every second.)
func TestAlertEvents(t *testing.T) {
	var mu sync.Mutex
	var got []Alert
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var a Alert
		if err := json.NewDecoder(r.Body).Decode(&a); err == nil {
			mu.Lock()
			got = append(got, a)
			mu.Unlock()
		}
	}))
	defer recv.Close()
	cfg, err := config.Parse(strings.NewReader(fmt.Sprintf(`daemon: {metrics: "off", retries: 2, retry_delay: 10ms}
sources: {a: "dir:/nonexistent"}
backups:
  j: {schedule: "* * * * * *"}
drills:
  d: {schedule: "* * * * * *", catch_up: false}
alerts:
  - url: %s/hook
`, recv.URL)))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	st, err := storage.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	backup := func(ctx context.Context, cfg *config.Config, run Run, job config.BackupJob, tags []string) (*BackupResult, error) {
		if !strings.Contains(strings.Join(tags, " "), RunTag(run)) {
			t.Errorf("tags %v lack the run's", tags)
		}
		switch calls.Add(1) {
		case 1:
			return &BackupResult{Snapshot: "s1", Unrestorable: []string{"no Fernet key"}}, nil
		case 2:
			return &BackupResult{Snapshot: "s2", Incomplete: true}, nil
		case 3, 4, 5: // one run: the first try and two retries
			return nil, errors.New("boom")
		}
		return &BackupResult{Snapshot: "ok"}, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, Options{Load: func() (*config.Config, error) { return cfg, nil },
			OpenStore: func(context.Context, *config.Config) (storage.Store, error) { return st, nil },
			Backup:    backup, Log: io.Discard, Owner: "test:1"})
	}()
	events := func(job string) []string {
		mu.Lock()
		defer mu.Unlock()
		var out []string
		for _, a := range got {
			if a.Job == job && a.Event != EventMissed {
				out = append(out, a.Event)
			}
		}
		return out
	}
	deadline := time.Now().Add(30 * time.Second)
	for index(events("j"), EventRecovery) < 0 || len(events("d")) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("alerts so far: j %v, d %v", events("j"), events("d"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	want := []string{EventUnrestorable, EventIncomplete, EventFailure, EventFailure, EventFailure, EventRecovery}
	if j := events("j"); strings.Join(j[:min(len(j), len(want))], ",") != strings.Join(want, ",") {
		t.Errorf("job alerts %v, want %v first", j, want)
	}
	if d := events("d"); d[0] != EventDrillFailure {
		t.Errorf("drill alerts %v, want %s", d, EventDrillFailure)
	}
}

func index(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

package scheduler

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/config"
	"github.com/cofferhq/coffer/internal/testing/testutil"
	"github.com/cofferhq/coffer/storage"
)

// stores are the backends the lease tests run on: a local folder and, with
// versitygw, S3 (If-None-Match: *).
func stores(t *testing.T) map[string]storage.Store {
	local, err := storage.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg := testutil.StartS3(t)
	s3, err := storage.NewS3(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]storage.Store{"local": local, "s3": s3}
}

// clock is a clock the test moves.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestLeases(t *testing.T) {
	ctx := context.Background()
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			clk := &clock{t: time.Date(2026, 3, 29, 0, 30, 0, 0, time.UTC)}
			lease := func(owner string) *Leases {
				return &Leases{Store: st, Owner: owner, TTL: 10 * time.Second, Now: clk.now}
			}
			run := clk.now().Truncate(time.Minute)

			// Eight daemons race for one run: exactly one wins.
			var wg sync.WaitGroup
			var mu sync.Mutex
			var winners []*Record
			for i := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rec, busy, err := lease(string(rune('a'+i))).Acquire(ctx, "job", run, false)
					if err != nil {
						t.Error(err)
						return
					}
					if rec != nil {
						mu.Lock()
						winners = append(winners, rec)
						mu.Unlock()
					} else if busy == nil || busy.Done {
						t.Errorf("loser's busy = %+v, want a holder that is not done", busy)
					}
				}()
			}
			wg.Wait()
			if len(winners) != 1 {
				t.Fatalf("%d daemons took the lease, want 1", len(winners))
			}
			held := winners[0]
			other := lease("z")

			// Renewed, it stays held past the first expiry.
			clk.add(8 * time.Second)
			held, err := lease(held.Owner).Renew(ctx, held)
			if err != nil {
				t.Fatal(err)
			}
			clk.add(8 * time.Second)
			if rec, busy, _ := other.Acquire(ctx, "job", run, false); rec != nil || busy.Done {
				t.Fatalf("a renewed lease was taken: %+v %+v", rec, busy)
			}

			// Not renewed, it expires and is taken over, once; the old
			// holder's renewal then finds it lost.
			clk.add(11 * time.Second)
			taken, _, err := other.Acquire(ctx, "job", run, false)
			if err != nil || taken == nil {
				t.Fatalf("takeover after expiry: %v %v", taken, err)
			}
			if rec, _, _ := lease("y").Acquire(ctx, "job", run, false); rec != nil {
				t.Fatal("a second daemon took over the same lease")
			}
			if _, err := lease(held.Owner).Renew(ctx, held); !errors.Is(err, ErrLeaseLost) {
				t.Fatalf("renewal of a taken-over lease = %v, want ErrLeaseLost", err)
			}

			// Done, the run is never run again, and its success is kept.
			if err := other.Release(ctx, taken, StateDone, true, "snap"); err != nil {
				t.Fatal(err)
			}
			if rec, busy, _ := lease("y").Acquire(ctx, "job", run, false); rec != nil || !busy.Done {
				t.Fatalf("a done run was taken again: %+v %+v", rec, busy)
			}
			next := run.Add(time.Minute)
			rec, _, err := lease("y").Acquire(ctx, "job", next, false)
			if err != nil || rec == nil || !rec.LastSuccess.Equal(run) {
				t.Fatalf("the next run: %+v, %v; want it taken with the last success carried", rec, err)
			}
			// An aborted run (SIGTERM) may be run again.
			if err := lease("y").Release(ctx, rec, StateAborted, false, ""); err != nil {
				t.Fatal(err)
			}
			failed, _, _ := lease("x").Acquire(ctx, "job", next, false)
			if failed == nil {
				t.Fatal("an aborted run could not be run again")
			}
			// A run done without success is run again only by a catch-up.
			if err := lease("x").Release(ctx, failed, StateDone, false, ""); err != nil {
				t.Fatal(err)
			}
			if rec, busy, _ := lease("w").Acquire(ctx, "job", next, false); rec != nil || !busy.Done {
				t.Fatalf("a failed run was taken again on schedule: %+v %+v", rec, busy)
			}
			again, _, err := lease("x").Acquire(ctx, "job", next, true)
			if err != nil || again == nil {
				t.Fatalf("catch-up of a failed run: %v %v", again, err)
			}
			latest, err := other.Latest(ctx, "job")
			if err != nil || latest.Owner != "x" || latest.State != StateRunning || !latest.LastSuccess.Equal(run) {
				t.Fatalf("latest = %+v, %v", latest, err)
			}
		})
	}
}

// TestLastSlot: the missed slot a job catches up on, with time zones and
// a DST change.
func TestLastSlot(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skip("no time zone data")
	}
	for _, tc := range []struct {
		spec      string
		last, now time.Time
		want      time.Time
	}{
		// Daily at 02:30 Berlin; 29 March 2026 has no 02:30 (DST starts):
		// robfig/cron skips that day, so the slot before is the 28th.
		{"CRON_TZ=Europe/Berlin 30 2 * * *", time.Date(2026, 3, 20, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 29, 12, 0, 0, 0, berlin),
			time.Date(2026, 3, 28, 2, 30, 0, 0, berlin)},
		{"@daily", time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 30, 13, 0, 0, 0, time.UTC),
			time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)},
		// A success after the last slot: nothing to catch up.
		{"@daily", time.Date(2026, 11, 30, 1, 0, 0, 0, time.UTC), time.Date(2026, 11, 30, 13, 0, 0, 0, time.UTC), time.Time{}},
		{"*/10 * * * * *", time.Time{}, time.Date(2026, 11, 30, 13, 0, 25, 0, time.UTC), time.Date(2026, 11, 30, 13, 0, 20, 0, time.UTC)},
	} {
		s, err := config.ParseSchedule(tc.spec)
		if err != nil {
			t.Fatal(err)
		}
		got := lastSlot(s, tc.last, tc.now)
		if tc.want.IsZero() {
			if got.After(tc.last) {
				t.Errorf("%s: slot %v after a success at %v, want none", tc.spec, got, tc.last)
			}
			continue
		}
		if !got.Equal(tc.want) {
			t.Errorf("%s since %v at %v: slot %v, want %v", tc.spec, tc.last, tc.now, got, tc.want)
		}
	}
}

// TestAlertBodies: the generic JSON body and the Slack text body.
func TestAlertBodies(t *testing.T) {
	al := Alert{Event: EventFailure, Job: "nightly", Run: "nightly@2026-11-30T02:00:00Z", Message: "boom", Host: "h:1"}
	b, err := body("slack", al)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"text":"coffer failure: job nightly on h:1: boom (run nightly@2026-11-30T02:00:00Z)"}`; got != want {
		t.Errorf("slack body = %s, want %s", got, want)
	}
	b, _ = body("json", al)
	for _, want := range []string{`"event":"failure"`, `"job":"nightly"`, `"message":"boom"`} {
		if !contains(string(b), want) {
			t.Errorf("json body %s lacks %s", b, want)
		}
	}
}

// TestAlertErrorsHideURL: a webhook that cannot be reached gives an error
// without its URL, which is often its secret.
func TestAlertErrorsHideURL(t *testing.T) {
	a := &alerter{attempts: 2, delay: time.Millisecond}
	const secret = "s3cr3t-path-token"
	err := a.post(context.Background(), config.Alert{URL: "http://u:" + secret + "@127.0.0.1:1/hook/" + secret}, Alert{Event: EventFailure})
	if err == nil || contains(err.Error(), secret) {
		t.Fatalf("post = %v, want an error without the secret", err)
	}
	if got := config.RedactURL("https://hooks.example.com/services/" + secret + "?x=" + secret); contains(got, secret) {
		t.Errorf("RedactURL = %q", got)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// lostReply is a store whose first Put lands but answers with an error, as
// when the reply of a successful write is lost.
type lostReply struct {
	storage.Store
	once sync.Once
}

func (l *lostReply) Put(ctx context.Context, name string, r io.Reader, size int64, o storage.PutOptions) error {
	err := l.Store.Put(ctx, name, r, size, o)
	lost := false
	l.once.Do(func() { lost = true })
	if err == nil && lost {
		return errors.New("connection reset by peer")
	}
	return err
}

// TestLeaseWriteRetried: a lease write whose reply was lost is retried,
// finds its own object and counts as taken, not as lost to another
// daemon.
func TestLeaseWriteRetried(t *testing.T) {
	local, err := storage.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st := storage.WithRetry(&lostReply{Store: local}, storage.RetryOptions{BaseDelay: time.Millisecond})
	l := &Leases{Store: st, Owner: "a", TTL: time.Minute}
	rec, busy, err := l.Acquire(context.Background(), "job", time.Now().Truncate(time.Second), false)
	if err != nil || rec == nil {
		t.Fatalf("Acquire = %+v, %+v, %v; want the lease", rec, busy, err)
	}
}

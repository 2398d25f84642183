package scheduler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/cofferhq/coffer/drill"
	"github.com/cofferhq/coffer/internal/config"
	"github.com/cofferhq/coffer/storage"
)

// Run is one run of a job: the job's name and its scheduled time (before
// jitter) are its identity, the same on every replica.
type Run struct {
	Job  string
	Time time.Time
	// Attempt counts the tries of this run, from 1.
	Attempt int
}

// ID is the run's identity as text: JOB@TIME (RFC 3339, UTC).
func (r Run) ID() string { return r.Job + "@" + r.Time.UTC().Format(time.RFC3339) }

// RunTag is the tag a backup run gives its snapshot, so that the snapshots
// of the runs of a job can be told apart by scheduled time.
func RunTag(r Run) string { return "coffer-run=" + r.ID() }

// JobTag is the tag a backup job gives each of its snapshots.
func JobTag(job string) string { return "coffer-job=" + job }

// BackupResult is what a backup run made.
type BackupResult struct {
	Snapshot                         string
	BytesRead, BytesNew, BytesStored int64
	// Incomplete: the snapshot is saved but left out what its sources
	// could not read (the CLI's exit 4).
	Incomplete bool
	// Unrestorable: the snapshot is saved but a source cannot be
	// restored as it is (a wrong or missing Airflow Fernet key, exit 5).
	Unrestorable []string
	// Forgotten counts the snapshots the job's retention forgot after it.
	Forgotten int
}

// Func types that cmd/coffer wires to the library calls that the CLI
// runs too.
type (
	// BackupFunc runs one backup with cfg's keys and sources. tags are the
	// job's tags with JobTag and RunTag. A nil result is a backup that
	// published no snapshot.
	BackupFunc func(ctx context.Context, cfg *config.Config, run Run, job config.BackupJob, tags []string) (*BackupResult, error)
	// RetentionFunc applies a job's retention policy after a successful
	// run and returns how many snapshots it forgot.
	RetentionFunc func(ctx context.Context, cfg *config.Config, run Run, job config.BackupJob) (forgotten int, err error)
	// DrillFunc runs one drill.
	DrillFunc func(ctx context.Context, cfg *config.Config, run Run, job config.DrillJob) (*drill.Report, error)
	// StatsFunc measures the repository: its size in bytes and its
	// number of snapshots.
	StatsFunc func(ctx context.Context, store storage.Store) (size int64, snapshots int, err error)
)

// Options of Daemon.
type Options struct {
	// Load reads the configuration, at start and on every reload.
	Load func() (*config.Config, error)
	// OpenStore opens the repository's store, for leases and readiness.
	OpenStore func(ctx context.Context, cfg *config.Config) (storage.Store, error)
	Backup    BackupFunc
	Retention RetentionFunc // nil: retention policies are not applied (warned at start)
	Drill     DrillFunc     // nil: drill jobs fail with ErrNoDrills
	Stats     StatsFunc
	// Reload receives a value when the configuration is to be read again
	// (SIGHUP).
	Reload <-chan struct{}
	// Log receives the logs, in the configuration's format.
	Log io.Writer
	// Owner names this daemon in leases (host:pid).
	Owner string
	// Ready, if set, is called with the metrics listener's address once
	// the daemon runs.
	Ready func(addr string)
}

// ErrNoDrills is a drill job on a build without the drill engine.
var ErrNoDrills = errors.New("this build cannot run drills")

// Daemon runs a configuration's jobs on their schedules.
type Daemon struct {
	o       Options
	log     *slog.Logger
	metrics *metrics
	alerts  *alerter

	mu    sync.Mutex
	cfg   *config.Config
	store storage.Store
	// running holds the jobs running now, so that a job never overlaps
	// itself, across reloads too.
	running map[string]bool
	state   map[string]*jobState
	ready   bool
	// stopping: SIGTERM came; no run starts any more.
	stopping bool

	sem  chan struct{}
	jobs sync.WaitGroup
	// runCtx is cancelled at the stop deadline: it cancels running jobs.
	runCtx    context.Context
	cancelRun context.CancelFunc
}

// jobState is what the daemon remembers of a job between runs.
type jobState struct {
	lastSuccess time.Time // when the last successful run ended
	failing     bool      // the last run failed: the next success is a recovery
	missed      bool      // a missed-schedule alert was sent and no success since
	since       time.Time // when the daemon started watching the job
}

// Serve runs the daemon of o until ctx is done (SIGTERM), then stops scheduling,
// lets running jobs finish until the stop deadline, cancels them after
// it, and returns nil. It returns an error only when the first
// configuration cannot be loaded or the listener cannot start.
func Serve(ctx context.Context, o Options) error {
	cfg, err := o.Load()
	if err != nil {
		return err
	}
	d := &Daemon{o: o, cfg: cfg, running: map[string]bool{}, state: map[string]*jobState{}}
	d.log = newLogger(o.Log, cfg)
	d.metrics = newMetrics()
	d.alerts = &alerter{log: d.log, owner: o.Owner}
	d.alerts.set(cfg.Alerts)
	ds := cfg.DaemonSettings()
	d.sem = make(chan struct{}, ds.Concurrency)
	d.runCtx, d.cancelRun = context.WithCancel(context.WithoutCancel(ctx))
	defer d.cancelRun()

	st, err := o.OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	d.store = st

	var srv *http.Server
	if ds.Metrics != "off" {
		ln, err := net.Listen("tcp", ds.Metrics)
		if err != nil {
			return fmt.Errorf("metrics listener: %w", err)
		}
		srv = &http.Server{Handler: d.handler(), ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()
		if o.Ready != nil {
			o.Ready(ln.Addr().String())
		}
		d.log.Info("daemon started", "owner", o.Owner, "metrics", ln.Addr().String(), "backups", len(cfg.Backups), "drills", len(cfg.Drills))
	} else {
		d.log.Info("daemon started", "owner", o.Owner, "backups", len(cfg.Backups), "drills", len(cfg.Drills))
	}
	d.warnUnsupported(cfg)
	d.mu.Lock()
	d.ready = true
	d.mu.Unlock()
	go d.refreshStats(ctx)

	// Each configuration's job loops stop when it is replaced; a run they
	// started goes on (d.running keeps the new loops from overlapping it).
	var wg sync.WaitGroup
	for {
		sched, stop := context.WithCancel(ctx)
		d.schedule(sched, &wg)
		select {
		case <-ctx.Done():
			stop()
			err := d.shutdown()
			wg.Wait()
			return err
		case <-o.Reload:
			next, err := o.Load()
			if err != nil {
				d.log.Error("reload refused: keeping the configuration in force", "error", err.Error())
				stop()
				continue
			}
			nst, err := o.OpenStore(ctx, next)
			if err != nil {
				d.log.Error("reload refused: keeping the configuration in force", "error", err.Error())
				stop()
				continue
			}
			stop()
			d.mu.Lock()
			d.cfg, d.store = next, nst
			d.mu.Unlock()
			d.alerts.set(next.Alerts)
			d.warnUnsupported(next)
			d.log.Info("configuration reloaded", "backups", len(next.Backups), "drills", len(next.Drills))
		}
	}
}

// shutdown waits for running jobs until the stop deadline, then cancels
// them and waits for them to stop.
func (d *Daemon) shutdown() error {
	deadline := d.config().DaemonSettings().StopDeadline
	d.mu.Lock()
	d.stopping = true // no run starts from now on
	d.mu.Unlock()
	d.log.Info("stopping: no new runs; waiting for running jobs", "deadline", deadline.String())
	done := make(chan struct{})
	go func() { d.jobs.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(deadline):
		d.log.Warn("stop deadline reached: cancelling running jobs")
		d.cancelRun()
		<-done
	}
	d.alerts.flush(10 * time.Second)
	d.log.Info("daemon stopped")
	return nil
}

func (d *Daemon) config() *config.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}

func (d *Daemon) leases() *Leases {
	d.mu.Lock()
	defer d.mu.Unlock()
	return &Leases{Store: d.store, Owner: d.o.Owner, TTL: d.cfg.DaemonSettings().LeaseTTL}
}

func (d *Daemon) warnUnsupported(cfg *config.Config) {
	for name, j := range cfg.Backups {
		if !j.Retention.Empty() && d.o.Retention == nil {
			d.log.Warn("this build cannot apply retention policies: nothing will be forgotten", "job", name)
		}
	}
	if len(cfg.Drills) > 0 && d.o.Drill == nil {
		d.log.Warn("this build cannot run drills: drill jobs will fail", "drills", len(cfg.Drills))
	}
}

// job is one scheduled job of either kind.
type job struct {
	name     string
	schedule cron.Schedule
	jitter   time.Duration
	catchUp  bool
	drill    bool
}

// schedule starts one goroutine per job of the configuration in force;
// they stop when ctx is done.
func (d *Daemon) schedule(ctx context.Context, wg *sync.WaitGroup) {
	cfg := d.config()
	var jobs []job
	for name, j := range cfg.Backups {
		s, _ := config.ParseSchedule(j.Schedule) // validated by Load
		jobs = append(jobs, job{name: name, schedule: s, jitter: j.Jitter, catchUp: j.CatchesUp()})
	}
	for name, j := range cfg.Drills {
		s, _ := config.ParseSchedule(j.Schedule)
		jobs = append(jobs, job{name: name, schedule: s, jitter: j.Jitter, catchUp: j.CatchesUp(), drill: true})
	}
	for _, j := range jobs {
		wg.Add(2)
		go func() { defer wg.Done(); d.loop(ctx, j) }()
		go func() { defer wg.Done(); d.watch(ctx, j) }()
	}
}

// interval estimates a schedule's interval: the time between its next
// two runs.
func interval(s cron.Schedule, now time.Time) time.Duration {
	a := s.Next(now)
	return s.Next(a).Sub(a)
}

// lastSlot returns the latest scheduled time after since and not after
// now, or the zero time.
func lastSlot(s cron.Schedule, since, now time.Time) time.Time {
	if floor := now.Add(-2 * interval(s, now)); since.Before(floor) {
		since = floor
	}
	var last time.Time
	for t := s.Next(since); !t.After(now); t = s.Next(t) {
		last = t
	}
	return last
}

// loop runs one job at its scheduled times until ctx is done.
func (d *Daemon) loop(ctx context.Context, j job) {
	now := time.Now()
	if j.catchUp {
		rec, err := d.leases().Latest(ctx, j.name)
		if err != nil {
			d.log.Warn("cannot read the job's last run: no catch-up", "job", j.name, "error", err.Error())
		} else {
			var last time.Time
			if rec != nil {
				last = rec.LastSuccess
			}
			d.noteSuccess(j.name, rec)
			// A job whose last success is older than its interval runs at
			// once, as the run of the slot it missed.
			if slot := lastSlot(j.schedule, last, now); !slot.IsZero() && slot.After(last) {
				d.log.Info("catching up a missed run", "job", j.name, "run", Run{Job: j.name, Time: slot}.ID())
				d.start(ctx, j, slot, true)
			}
		}
	}
	for {
		next := j.schedule.Next(time.Now())
		wait := time.Until(next)
		if j.jitter > 0 {
			wait += rand.N(j.jitter)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		d.start(ctx, j, next, false)
	}
}

// noteSuccess records a job's last success from its lease, for the
// missed-schedule watch and the metrics.
func (d *Daemon) noteSuccess(name string, rec *Record) {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.jobState(name)
	if rec != nil && rec.LastSuccessEnd.After(st.lastSuccess) {
		st.lastSuccess = rec.LastSuccessEnd
		d.metrics.lastSuccess.WithLabelValues(name).Set(float64(rec.LastSuccessEnd.Unix()))
	}
}

// jobState returns a job's state; d.mu is held.
func (d *Daemon) jobState(name string) *jobState {
	st := d.state[name]
	if st == nil {
		st = &jobState{since: time.Now()}
		d.state[name] = st
	}
	return st
}

// start runs a job's run unless the job is running already (here); it
// returns when the run is over. Runs of different jobs go on in their
// own loops, up to the concurrency limit.
func (d *Daemon) start(ctx context.Context, j job, at time.Time, catchUp bool) {
	run := Run{Job: j.name, Time: at}
	d.mu.Lock()
	if d.stopping {
		d.mu.Unlock()
		return
	}
	if d.running[j.name] {
		d.mu.Unlock()
		d.log.Warn("run skipped: the job's previous run is still running", "job", j.name, "run", run.ID())
		return
	}
	d.running[j.name] = true
	d.jobs.Add(1) // under d.mu, before stopping: never concurrent with shutdown's Wait
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		delete(d.running, j.name)
		d.mu.Unlock()
		d.jobs.Done()
	}()
	select {
	case d.sem <- struct{}{}:
	case <-ctx.Done():
		return
	}
	defer func() { <-d.sem }()
	d.leased(ctx, j, run, catchUp)
}

// leased takes the run's lease, runs it and releases the lease. A run that
// another replica holds is watched until it ends or its lease expires
// (then it is taken over), or until the job's next scheduled time.
func (d *Daemon) leased(ctx context.Context, j job, run Run, catchUp bool) {
	ls := d.leases()
	for {
		rec, busy, err := ls.Acquire(ctx, j.name, run.Time, catchUp)
		if err != nil {
			d.log.Error("cannot take the job's lease: run skipped", "job", j.name, "run", run.ID(), "error", err.Error())
			d.fail(j, run, err)
			return
		}
		if rec != nil {
			d.runLeased(j, run, ls, rec)
			return
		}
		if busy.Done {
			d.noteSuccess(j.name, busy.Holder)
			d.log.Info("run done by another replica", "job", j.name, "run", run.ID())
			return
		}
		// Another replica runs it (or still runs an earlier run): look
		// again when its lease would expire, until the next run is due.
		retry := 200 * time.Millisecond // lost a race and could not read the winner
		if busy.Holder != nil {
			retry = time.Until(busy.Holder.Expires) + 100*time.Millisecond
		}
		if next := j.schedule.Next(run.Time); time.Now().Add(retry).After(next) {
			d.log.Info("run held by another replica", "job", j.name, "run", run.ID())
			return
		}
		t := time.NewTimer(max(retry, 100*time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// runLeased runs a run whose lease is held, renewing it, and releases it.
// SIGTERM does not cancel it; the stop deadline does.
func (d *Daemon) runLeased(j job, run Run, ls *Leases, rec *Record) {
	ctx, cancel := context.WithCancelCause(d.runCtx)
	defer cancel(nil)
	var mu sync.Mutex
	renewDone := make(chan struct{})
	go func() {
		defer close(renewDone)
		tick := time.NewTicker(ls.TTL / 3)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			mu.Lock()
			n, err := ls.Renew(ctx, rec)
			if err == nil {
				rec = n
			}
			mu.Unlock()
			if errors.Is(err, ErrLeaseLost) {
				cancel(err)
				return
			}
			if err != nil && ctx.Err() == nil {
				d.log.Warn("lease renewal failed; trying again", "job", j.name, "error", err.Error())
			}
		}
	}()
	ok, snapshot := d.execute(ctx, j, run)
	cancel(nil)
	<-renewDone
	state := StateDone
	if d.runCtx.Err() != nil {
		state = StateAborted
	}
	mu.Lock()
	defer mu.Unlock()
	if errors.Is(context.Cause(ctx), ErrLeaseLost) {
		d.log.Error("run lost its lease to another replica", "job", j.name, "run", run.ID())
		return
	}
	// Release with a context of its own: a cancelled run still says so.
	rctx, rcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer rcancel()
	if err := ls.Release(rctx, rec, state, ok, snapshot); err != nil {
		d.log.Error("cannot release the job's lease", "job", j.name, "run", run.ID(), "error", err.Error())
	}
}

// execute runs a run with its retries; it reports whether it succeeded
// and the snapshot it made.
func (d *Daemon) execute(ctx context.Context, j job, run Run) (bool, string) {
	cfg := d.config()
	ds := cfg.DaemonSettings()
	delay := ds.RetryDelay
	for attempt := 1; ; attempt++ {
		run.Attempt = attempt
		ok, snapshot, err := d.once(ctx, cfg, j, run)
		if ok || ctx.Err() != nil || attempt > *ds.Retries || permanentErr(err) {
			return ok, snapshot
		}
		wait := delay/2 + rand.N(delay/2+1)
		d.log.Info("run failed; trying again", "job", j.name, "run", run.ID(), "attempt", attempt, "wait", wait.Round(time.Millisecond).String())
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return false, ""
		case <-t.C:
		}
		delay *= 2
	}
}

// permanentErr: an outcome that trying again cannot change.
func permanentErr(err error) bool {
	var u *UnrestorableError
	return errors.Is(err, ErrNoDrills) || errors.As(err, &u) || errors.Is(err, ErrIncomplete)
}

// ErrIncomplete is a snapshot saved without what its sources could not
// read (exit 4 in the CLI).
var ErrIncomplete = errors.New("snapshot saved, incomplete: some paths could not be read")

// UnrestorableError is a snapshot saved whose sources cannot be restored
// as they are (a Fernet or key problem; exit 5 in the CLI).
type UnrestorableError struct{ Problems []string }

func (e *UnrestorableError) Error() string {
	return fmt.Sprintf("snapshot saved, but cannot be restored as is: %v", e.Problems)
}

// once runs one attempt of a run, with its log lines, metrics and alerts.
func (d *Daemon) once(ctx context.Context, cfg *config.Config, j job, run Run) (ok bool, snapshot string, err error) {
	kind := "backup"
	if j.drill {
		kind = "drill"
	}
	d.log.Info("run started", "kind", kind, "job", j.name, "run", run.ID(), "attempt", run.Attempt, "owner", d.o.Owner)
	d.metrics.running.WithLabelValues(j.name).Set(1)
	defer d.metrics.running.WithLabelValues(j.name).Set(0)
	start := time.Now()
	var attrs []any
	if j.drill {
		var rep *drill.Report
		rep, err = d.drill(ctx, cfg, run, cfg.Drills[j.name])
		if rep != nil {
			_, failed := rep.Failed()
			d.metrics.drillFailedChecks.WithLabelValues(j.name).Set(float64(len(failed)))
			d.metrics.drillRTO.WithLabelValues(j.name).Set(rep.RTO.Duration().Seconds())
			attrs = append(attrs, "drill", rep.ID, "snapshot", rep.Snapshot, "result", string(rep.Result), "rto_seconds", rep.RTO.Duration().Seconds(), "failed_checks", len(failed))
			if err == nil && (rep.Result == drill.Fail || rep.Result == drill.Error) {
				err = fmt.Errorf("drill %s: %s (%d checks failed) %s", rep.ID, rep.Result, len(failed), rep.Error)
			}
			snapshot = rep.Snapshot
		}
		if err == nil {
			d.metrics.drillLastSuccess.WithLabelValues(j.name).Set(float64(time.Now().Unix()))
		}
	} else {
		var res *BackupResult
		res, err = d.backup(ctx, cfg, run, cfg.Backups[j.name])
		if res != nil {
			snapshot = res.Snapshot
			d.metrics.bytes.WithLabelValues(j.name, "read").Set(float64(res.BytesRead))
			d.metrics.bytes.WithLabelValues(j.name, "new").Set(float64(res.BytesNew))
			d.metrics.bytes.WithLabelValues(j.name, "stored").Set(float64(res.BytesStored))
			attrs = append(attrs, "snapshot", res.Snapshot, "bytes_read", res.BytesRead, "bytes_new", res.BytesNew, "bytes_stored", res.BytesStored, "forgotten", res.Forgotten)
		}
	}
	dur := time.Since(start)
	d.metrics.duration.WithLabelValues(j.name).Set(dur.Seconds())
	d.metrics.runs.WithLabelValues(j.name).Inc()
	attrs = append([]any{"kind", kind, "job", j.name, "run", run.ID(), "attempt", run.Attempt, "duration_seconds", dur.Seconds()}, attrs...)
	if err != nil && d.runCtx.Err() != nil {
		// The stop deadline cancelled it: not a failure of the job.
		d.log.Warn("run cancelled at the stop deadline; nothing was published", append(attrs, "error", err.Error())...)
		return false, snapshot, err
	}
	if err != nil {
		d.metrics.failures.WithLabelValues(j.name).Inc()
		d.log.Error("run failed", append(attrs, "error", err.Error())...)
		d.fail(j, run, err)
		return false, snapshot, err
	}
	d.log.Info("run finished", attrs...)
	d.succeed(j, run)
	d.refreshStats(ctx)
	return true, snapshot, nil
}

func (d *Daemon) drill(ctx context.Context, cfg *config.Config, run Run, j config.DrillJob) (*drill.Report, error) {
	if d.o.Drill == nil {
		return nil, ErrNoDrills
	}
	return d.o.Drill(ctx, cfg, run, j)
}

// backup runs a backup run and applies its job's retention after it.
func (d *Daemon) backup(ctx context.Context, cfg *config.Config, run Run, j config.BackupJob) (*BackupResult, error) {
	tags := append(append([]string{}, j.Tags...), JobTag(run.Job), RunTag(run))
	res, err := d.o.Backup(ctx, cfg, run, j, tags)
	if err != nil || res == nil {
		if err == nil {
			err = errors.New("backup published no snapshot")
		}
		return res, err
	}
	switch {
	case len(res.Unrestorable) > 0:
		return res, &UnrestorableError{Problems: res.Unrestorable}
	case res.Incomplete:
		return res, ErrIncomplete
	}
	if !j.Retention.Empty() && d.o.Retention != nil {
		n, err := d.o.Retention(ctx, cfg, run, j)
		res.Forgotten = n
		if err != nil {
			return res, fmt.Errorf("snapshot %s saved, but retention failed: %w", res.Snapshot, err)
		}
	}
	return res, nil
}

// fail records a failed run and sends its alert.
func (d *Daemon) fail(j job, run Run, err error) {
	d.mu.Lock()
	d.jobState(j.name).failing = true
	d.mu.Unlock()
	ev := EventFailure
	var u *UnrestorableError
	switch {
	case j.drill:
		ev = EventDrillFailure
	case errors.As(err, &u):
		ev = EventUnrestorable
	case errors.Is(err, ErrIncomplete):
		ev = EventIncomplete
	}
	d.alerts.send(Alert{Event: ev, Job: j.name, Run: run.ID(), Message: err.Error()})
}

// succeed records a successful run and sends a recovery alert when the
// job's previous run failed or missed its schedule.
func (d *Daemon) succeed(j job, run Run) {
	now := time.Now()
	d.mu.Lock()
	st := d.jobState(j.name)
	recovered := st.failing || st.missed
	st.failing, st.missed, st.lastSuccess = false, false, now
	d.mu.Unlock()
	d.metrics.lastSuccess.WithLabelValues(j.name).Set(float64(now.Unix()))
	if recovered {
		d.alerts.send(Alert{Event: EventRecovery, Job: j.name, Run: run.ID(), Message: "the job succeeded again"})
	}
}

// watch sends a missed-schedule alert when a job has had no success
// within twice its interval (since its last success, or since the daemon
// started watching it), once until its next success.
func (d *Daemon) watch(ctx context.Context, j job) {
	tick := time.NewTicker(max(min(interval(j.schedule, time.Now())/4, time.Minute), 200*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := time.Now()
		limit := 2 * interval(j.schedule, now)
		d.mu.Lock()
		st := d.jobState(j.name)
		ref := st.lastSuccess
		if ref.Before(st.since) {
			ref = st.since
		}
		alert := !st.missed && now.Sub(ref) > limit
		if alert {
			st.missed = true
		}
		d.mu.Unlock()
		if alert {
			d.log.Error("missed schedule: no successful run within twice the interval", "job", j.name, "interval", (limit / 2).String())
			d.alerts.send(Alert{Event: EventMissed, Job: j.name,
				Message: fmt.Sprintf("no successful run within %s (twice the interval)", limit)})
		}
	}
}

// refreshStats measures the repository for the metrics.
func (d *Daemon) refreshStats(ctx context.Context) {
	if d.o.Stats == nil {
		return
	}
	d.mu.Lock()
	st := d.store
	d.mu.Unlock()
	size, n, err := d.o.Stats(ctx, st)
	if err != nil {
		d.log.Warn("cannot measure the repository", "error", err.Error())
		return
	}
	d.metrics.repoSize.Set(float64(size))
	d.metrics.snapshots.Set(float64(n))
}

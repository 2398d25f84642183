package config

import (
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/cofferhq/coffer/internal/retention"
)

// Daemon holds the settings of coffer daemon as a whole.
type Daemon struct {
	// Metrics is the address of the metrics and health listener (default
	// DefaultMetrics); "off" turns it off.
	Metrics string `yaml:"metrics"`
	// Concurrency is how many jobs run at once (default 1).
	Concurrency int `yaml:"concurrency"`
	// StopDeadline is how long a running job may go on after SIGTERM
	// before it is cancelled (default DefaultStopDeadline).
	StopDeadline time.Duration `yaml:"stop_deadline"`
	// LeaseTTL is how long a job's lease holds without renewal; another
	// replica takes a job over this long after its holder died (default
	// DefaultLeaseTTL).
	LeaseTTL time.Duration `yaml:"lease_ttl"`
	// Retries is how many times a failed run is tried again (default
	// DefaultRetries; 0 leaves it to the next scheduled run), RetryDelay
	// the first wait, doubled each time, with jitter.
	Retries    *int          `yaml:"retries"`
	RetryDelay time.Duration `yaml:"retry_delay"`
	// LogFormat is "text" (default) or "json".
	LogFormat string `yaml:"log_format"`
}

// BackupJob is one scheduled backup.
type BackupJob struct {
	Schedule string `yaml:"schedule"`
	// Jitter delays each run by a random time up to it.
	Jitter time.Duration `yaml:"jitter"`
	// Sources are names from sources: (default: all of them).
	Sources []string `yaml:"sources"`
	Tags    []string `yaml:"tags"`
	// Hooks replace the file's top-level hooks for this job when given.
	Hooks     *Hooks    `yaml:"hooks"`
	Retention Retention `yaml:"retention"`
	// CatchUp runs the job at start when its last success is older than
	// its interval (default true).
	CatchUp *bool `yaml:"catch_up"`
	Strict  bool  `yaml:"strict"`
}

// CatchesUp reports whether the job catches up on a missed run at start.
func (j BackupJob) CatchesUp() bool { return j.CatchUp == nil || *j.CatchUp }

// Retention is a backup job's retention policy, applied after each
// successful run: the snapshots that no rule keeps are forgotten. A count
// of -1 keeps every bucket of its rule.
type Retention struct {
	KeepLast    int `yaml:"keep_last"`
	KeepHourly  int `yaml:"keep_hourly"`
	KeepDaily   int `yaml:"keep_daily"`
	KeepWeekly  int `yaml:"keep_weekly"`
	KeepMonthly int `yaml:"keep_monthly"`
	KeepYearly  int `yaml:"keep_yearly"`
	// KeepWithin is a duration in coffer forget --keep-within's form
	// ("7d", "2y5m7d3h", "36h"; "6m" is six months), read by Within with
	// the same parser.
	KeepWithin string `yaml:"keep_within"`
	// TimeZone is where hours, days, weeks, months and years are counted
	// (an IANA name; default UTC).
	TimeZone string `yaml:"time_zone"`
	// Prune also removes the data no snapshot references afterwards.
	Prune bool `yaml:"prune"`
}

// Empty reports whether the policy has no rule (nothing is forgotten).
func (r Retention) Empty() bool {
	return r.KeepLast == 0 && r.KeepHourly == 0 && r.KeepDaily == 0 && r.KeepWeekly == 0 &&
		r.KeepMonthly == 0 && r.KeepYearly == 0 && r.KeepWithin == ""
}

// Within returns KeepWithin as a duration (0 when it is not set), parsed
// as coffer forget --keep-within is (retention.ParseDuration).
func (r Retention) Within() (time.Duration, error) {
	if r.KeepWithin == "" {
		return 0, nil
	}
	return retention.ParseDuration(r.KeepWithin)
}

// DrillJob is one scheduled restore drill.
type DrillJob struct {
	Schedule string        `yaml:"schedule"`
	Jitter   time.Duration `yaml:"jitter"`
	// Snapshot is "latest" (default) or a snapshot id.
	Snapshot string `yaml:"snapshot"`
	// Sources are the snapshot's sources to drill (default: all).
	Sources []string `yaml:"sources"`
	// Random drills a snapshot picked at random instead of Snapshot
	// (old snapshots rot too). Where drills restore to (servers, scratch
	// folder) is the drill engine's own configuration, the same for the
	// CLI and the daemon.
	Random  bool  `yaml:"random"`
	CatchUp *bool `yaml:"catch_up"`
}

// CatchesUp reports whether the drill catches up on a missed run at
// start.
func (j DrillJob) CatchesUp() bool { return j.CatchUp == nil || *j.CatchUp }

// Alert is a webhook that the daemon calls on failures, recoveries,
// missed schedules and drill failures.
type Alert struct {
	// URL receives a POST. It often holds a secret (a Slack webhook's
	// path): coffer never logs it, only its scheme and host.
	URL string `yaml:"url"`
	// Format is "json" (default: a generic JSON object) or "slack" (a
	// {"text": ...} body).
	Format string `yaml:"format"`
}

// Defaults of the daemon.
const (
	DefaultMetrics      = "127.0.0.1:9464"
	DefaultStopDeadline = 5 * time.Minute
	DefaultLeaseTTL     = time.Minute
	DefaultRetries      = 3
	DefaultRetryDelay   = 30 * time.Second
	// DefaultRetryBudget is how long one storage operation is tried again
	// before it fails (s3.retry_budget): an S3 outage shorter than this is
	// ridden out.
	DefaultRetryBudget = 5 * time.Minute
)

// scheduleParser is the one cron parser: the daemon schedules with the
// schedules it returns and Validate checks with it. Five fields, an
// optional leading seconds field, descriptors (@daily, @every 1h) and a
// CRON_TZ= or TZ= prefix.
var scheduleParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSchedule parses a job's schedule.
func ParseSchedule(spec string) (cron.Schedule, error) {
	if strings.TrimSpace(spec) == "" {
		return nil, fmt.Errorf("no schedule")
	}
	s, err := scheduleParser.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("invalid schedule %q: %w", spec, err)
	}
	return s, nil
}

// DaemonSettings returns the daemon's settings with the defaults filled
// in.
func (c *Config) DaemonSettings() Daemon {
	d := c.Daemon
	if d.Metrics == "" {
		d.Metrics = DefaultMetrics
	}
	if d.Concurrency == 0 {
		d.Concurrency = 1
	}
	if d.StopDeadline == 0 {
		d.StopDeadline = DefaultStopDeadline
	}
	if d.LeaseTTL == 0 {
		d.LeaseTTL = DefaultLeaseTTL
	}
	if d.Retries == nil {
		n := DefaultRetries
		d.Retries = &n
	}
	if d.RetryDelay == 0 {
		d.RetryDelay = DefaultRetryDelay
	}
	if d.LogFormat == "" {
		d.LogFormat = "text"
	}
	return d
}

// RedactURL returns a URL fit for logs: its scheme and host, never its
// user, path or query, which may hold a secret.
func RedactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return "(invalid URL)"
	}
	return u.Scheme + "://" + u.Host + "/..."
}

// validateDaemon adds the problems of the daemon's sections.
func (c *Config) validateDaemon(add func(key, format string, args ...any)) {
	d := c.Daemon
	if d.Concurrency < 0 || d.Concurrency > 64 {
		add("daemon.concurrency", "must be between 1 and 64, not %d", d.Concurrency)
	}
	for key, v := range map[string]time.Duration{"daemon.stop_deadline": d.StopDeadline, "daemon.retry_delay": d.RetryDelay, "s3.retry_budget": c.S3.RetryBudget} {
		if v < 0 {
			add(key, "must not be negative")
		}
	}
	if d.LeaseTTL != 0 && d.LeaseTTL < 3*time.Second {
		add("daemon.lease_ttl", "must be at least 3s, not %s", d.LeaseTTL)
	}
	if d.Retries != nil && (*d.Retries < 0 || *d.Retries > 100) {
		add("daemon.retries", "must be between 0 and 100, not %d", *d.Retries)
	}
	if f := d.LogFormat; f != "" && f != "text" && f != "json" {
		add("daemon.log_format", "must be text or json, not %q", f)
	}
	if m := d.Metrics; m != "" && m != "off" && !strings.Contains(m, ":") {
		add("daemon.metrics", "must be HOST:PORT or off, not %q", m)
	}
	for _, n := range sortedKeys(c.Backups) {
		j, key := c.Backups[n], "backups."+n
		if !validJobName(n) {
			add(key, "job names may hold only letters, digits, '-', '_' and '.'")
		}
		if _, err := ParseSchedule(j.Schedule); err != nil {
			add(key+".schedule", "%v", err)
		}
		if j.Jitter < 0 {
			add(key+".jitter", "must not be negative")
		}
		for _, s := range j.Sources {
			if _, ok := c.Sources[s]; !ok {
				add(key+".sources", "no source %q in sources:", s)
			}
		}
		if len(j.Sources) == 0 && len(c.Sources) == 0 {
			add(key+".sources", "nothing to back up: sources: is empty")
		}
		r := j.Retention
		for k, v := range map[string]int{"keep_last": r.KeepLast, "keep_hourly": r.KeepHourly, "keep_daily": r.KeepDaily,
			"keep_weekly": r.KeepWeekly, "keep_monthly": r.KeepMonthly, "keep_yearly": r.KeepYearly} {
			if v < -1 {
				add(key+".retention."+k, "must be a count, or -1 for unlimited, not %d", v)
			}
		}
		if _, err := r.Within(); err != nil {
			add(key+".retention.keep_within", "%v", err)
		}
		if r.TimeZone != "" {
			if _, err := time.LoadLocation(r.TimeZone); err != nil {
				add(key+".retention.time_zone", "unknown time zone %q", r.TimeZone)
			}
		}
		if r.Prune && r.Empty() {
			add(key+".retention.prune", "prune without a keep_ rule would only prune: give a keep_ rule")
		}
		if j.Hooks != nil && j.Hooks.Timeout < 0 {
			add(key+".hooks.timeout", "must not be negative")
		}
	}
	for _, n := range sortedKeys(c.Drills) {
		j, key := c.Drills[n], "drills."+n
		if !validJobName(n) {
			add(key, "job names may hold only letters, digits, '-', '_' and '.'")
		}
		if _, ok := c.Backups[n]; ok {
			add(key, "a backup job has the same name")
		}
		if _, err := ParseSchedule(j.Schedule); err != nil {
			add(key+".schedule", "%v", err)
		}
		if j.Jitter < 0 {
			add(key+".jitter", "must not be negative")
		}
	}
	for i, a := range c.Alerts {
		key := fmt.Sprintf("alerts.%d", i)
		u, err := url.Parse(a.URL)
		switch {
		case a.URL == "":
			add(key+".url", "no url")
		case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
			// Never echo the URL: it may hold a secret.
			add(key+".url", "must be an http:// or https:// URL")
		}
		if a.Format != "" && a.Format != "json" && a.Format != "slack" {
			add(key+".format", "must be json or slack, not %q", a.Format)
		}
	}
}

func validJobName(n string) bool {
	if n == "" {
		return false
	}
	for _, r := range n {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

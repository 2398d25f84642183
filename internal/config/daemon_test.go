package config

import (
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/retention"
)

func TestDaemonConfig(t *testing.T) {
	c, err := Parse(strings.NewReader(`repository: /r
s3:
  retry_budget: 10m
daemon:
  metrics: 127.0.0.1:9999
  concurrency: 2
  stop_deadline: 90s
  log_format: json
sources:
  dags: dir:/opt/airflow/dags
backups:
  nightly:
    schedule: "CRON_TZ=Europe/Berlin 30 2 * * *"
    jitter: 5m
    sources: [dags]
    tags: [nightly]
    hooks: {pre: ["true"], timeout: 1m}
    retention: {keep_daily: 7, keep_weekly: 4}
  often:
    schedule: "*/10 * * * * *"
    catch_up: false
drills:
  weekly:
    schedule: "@weekly"
    sources: [dags]
alerts:
  - url: https://hooks.example.com/services/T/B/X
    format: slack
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	d := c.DaemonSettings()
	if d.Concurrency != 2 || d.StopDeadline != 90*time.Second || d.LeaseTTL != DefaultLeaseTTL || *d.Retries != DefaultRetries {
		t.Errorf("settings = %+v", d)
	}
	if !c.Backups["nightly"].CatchesUp() || c.Backups["often"].CatchesUp() {
		t.Error("catch_up: want the default true and an explicit false")
	}
	if got := c.Backups["nightly"].Retention.KeepDaily; got != 7 {
		t.Errorf("keep_daily = %d", got)
	}
	s3, err := c.S3Config()
	if err != nil || s3.RetryBudget != 10*time.Minute {
		t.Errorf("retry budget = %v, %v", s3.RetryBudget, err)
	}
	c2, _ := Parse(strings.NewReader("repository: /r\n"))
	if s3, _ := c2.S3Config(); s3.RetryBudget != DefaultRetryBudget {
		t.Errorf("default retry budget = %v, want %v", s3.RetryBudget, DefaultRetryBudget)
	}
}

// TestDaemonConfigProblems: every problem at once, each with its key and
// line; an invalid cron expression is found by the parser that schedules.
func TestDaemonConfigProblems(t *testing.T) {
	c, err := Parse(strings.NewReader(`sources:
  dags: dir:/d
daemon:
  concurrency: 100
  log_format: xml
  lease_ttl: 1s
backups:
  bad cron:
    schedule: "61 * * * *"
  nosched:
    sources: [missing]
  neg:
    schedule: "@daily"
    jitter: -1s
    retention: {keep_last: -2, time_zone: Mars/Olympus}
drills:
  d:
    schedule: "@fortnightly"
alerts:
  - url: "ftp://example.com/x"
  - url: https://example.com/y
    format: teams
`))
	if err != nil {
		t.Fatal(err)
	}
	err = c.Validate()
	if err == nil {
		t.Fatal("Validate() = nil")
	}
	for _, want := range []string{
		"line 4: daemon.concurrency",
		"line 5: daemon.log_format",
		"line 6: daemon.lease_ttl",
		"line 8: backups.bad cron: job names",
		`line 9: backups.bad cron.schedule: invalid schedule "61 * * * *"`,
		"line 10: backups.nosched.schedule: no schedule",
		`line 11: backups.nosched.sources: no source "missing"`,
		"line 14: backups.neg.jitter",
		"line 15: backups.neg.retention.keep_last: must be a count",
		`line 15: backups.neg.retention.time_zone: unknown time zone "Mars/Olympus"`,
		`line 18: drills.d.schedule: invalid schedule "@fortnightly"`,
		"line 20: alerts.0.url: must be an http",
		"line 22: alerts.1.format",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "example.com") {
		t.Errorf("error echoes a webhook URL:\n%v", err)
	}
}

// TestDaemonKeepWithin: a job's retention.keep_within is read by the parser
// of coffer forget --keep-within (restic's 2y5m7d3h, where 6m is six
// months, or Go's 36h), and a bad one is a problem with its key and line
// like the others. It used to be a Go duration only: "6m" kept six minutes
// and "30d" made the whole file unreadable.
func TestDaemonKeepWithin(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"6m", 180 * 24 * time.Hour},
		{"30d", 30 * 24 * time.Hour},
		{"2y5m7d3h", (2*365+5*30+7)*24*time.Hour + 3*time.Hour},
		{"36h", 36 * time.Hour},
		{"1.5h", 90 * time.Minute},
	} {
		c, err := Parse(strings.NewReader("sources: {d: dir:/d}\nbackups:\n  j:\n    schedule: \"@daily\"\n    retention: {keep_within: " + tc.in + "}\n"))
		if err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		rp := c.Backups["j"].Retention
		got, err := rp.Within()
		if err != nil || got != tc.want {
			t.Errorf("keep_within %s = %v, %v; want %v", tc.in, got, err, tc.want)
		}
		if rp.Empty() {
			t.Errorf("keep_within %s: policy is empty", tc.in)
		}
		cli, err := retention.ParseDuration(tc.in)
		if err != nil || cli != got {
			t.Errorf("keep_within %s = %v, forget --keep-within %s = %v (%v): not the same parser", tc.in, got, tc.in, cli, err)
		}
	}
	c, err := Parse(strings.NewReader(`sources: {d: dir:/d}
backups:
  weeks:
    schedule: "@daily"
    retention: {keep_within: 7w}
  negative:
    schedule: "@daily"
    retention:
      keep_daily: 7
      keep_within: -1h
  zero:
    schedule: "@daily"
    retention: {keep_within: 0}
`))
	if err != nil {
		t.Fatal(err)
	}
	err = c.Validate()
	if err == nil {
		t.Fatal("Validate() = nil")
	}
	for _, want := range []string{
		`line 5: backups.weeks.retention.keep_within: duration "7w": want e.g. 7d, 2y5m7d3h or 36h`,
		`line 10: backups.negative.retention.keep_within: duration "-1h": must be positive`,
		`line 13: backups.zero.retention.keep_within: duration "0"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// Package scheduler is where coffer's daemon will live: cron schedules
// (robfig/cron v3), leases so that one replica runs each job, retention,
// alerts, metrics and health. It is empty until the daemon's issue; the
// backup, restore and verify code it will call is in the backup and
// restore packages, the same code the CLI runs.
package scheduler

// Package scheduler is coffer's daemon: it runs the backup and drill jobs
// of a configuration on their cron schedules (robfig/cron v3, through
// config.ParseSchedule, the parser that validates them too), one run of a
// job at a time and up to daemon.concurrency jobs at once.
//
// # Runs and leases
//
// A run is identified by its job and its scheduled time (before jitter),
// the same on every replica that shares the repository and the
// configuration. Before a run, a daemon takes the job's lease in the
// repository's store (Leases): each generation of a lease is a new object
// written create-if-absent, so exactly one daemon wins each generation; the
// holder renews by writing the next generation, and a lease that expired
// (its holder died) is taken over by writing the next generation too. The
// newest generation says which run the job last ran and whether it is
// done, so a run happens once across replicas, and it carries the time of
// the job's last success, which decides whether a job catches up at start.
//
// # Failures
//
// A failed run is tried again (daemon.retries, with exponential backoff and
// jitter); a failed backup publishes nothing and deletes nothing. Webhooks
// hear about failures, recoveries, missed schedules, failed drills and
// snapshots saved incomplete or unrestorable. SIGTERM (ctx) stops the
// scheduling and lets running jobs finish until daemon.stop_deadline, then
// cancels them: a cancelled backup publishes no manifest.
//
// The backup, retention and drill steps are function fields of Options
// that cmd/coffer wires to the library calls the CLI runs.
package scheduler

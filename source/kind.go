package source

import (
	"context"
	"errors"

	"github.com/cofferhq/coffer/internal/fingerprint"
)

// Spec is one configured source: its kind, where it is, and what the kind
// makes of it.
type Spec struct {
	Kind     string
	Location string
	// Exclude holds globs of paths to leave out (folder kinds).
	Exclude []string
	// Checks are queries whose results are fingerprinted with the dump
	// (database kinds).
	Checks []fingerprint.Check
	// Globals also backs up a PostgreSQL server's roles and tablespaces.
	Globals bool
	// Airflow holds the airflow kind's settings.
	Airflow AirflowSpec
}

// AirflowSpec are the settings of an airflow source beyond its LOCATION
// (AIRFLOW_HOME).
type AirflowSpec struct {
	// Config is the deployment's airflow.cfg; default $AIRFLOW_CONFIG,
	// else LOCATION/airflow.cfg.
	Config string
	// EnvFile holds the deployment's AIRFLOW__... variables, one KEY=VALUE
	// a line, as the deployment's processes see them.
	EnvFile string
	// IncludeLogs also backs up the task logs ([logging] base_log_folder).
	IncludeLogs bool
}

// Kind describes one source kind. The registry (source/registry) is the one
// list of kinds: command-line parsing, configuration checks, help, backups
// and restores all read it.
type Kind struct {
	// Name is the kind as written in KIND:LOCATION ("postgres").
	Name string
	// Location says what LOCATION is, for help ("a PostgreSQL DSN").
	Location string
	// Path reports that LOCATION is a file system path, relative to the
	// configuration file that names it.
	Path bool
	// Checks reports that the kind runs check queries.
	Checks bool
	// Globals reports that the kind understands Spec.Globals.
	Globals bool
	// First reports that sources of this kind are backed up before the
	// other sources of a snapshot: an Airflow metadata database is dumped
	// before the stores its tasks write to (doc/design.md says why).
	First bool
	// New builds a source of this kind. It checks spec without connecting
	// to anything.
	New func(name string, spec Spec) (Source, error)
	// Target says what Restore's target is, for help ("new database
	// (DSN)").
	Target string
	// Restore restores a source of this kind into target (a DSN, a file),
	// all or nothing. It is nil for kinds whose only target is a folder.
	Restore func(ctx context.Context, src Reader, target string, opts RestoreOptions) error
}

// RestoreOptions are understood by every kind's Restore; a kind ignores
// what does not apply to it.
type RestoreOptions struct {
	// Replace allows an existing target: the snapshot is restored into a
	// fresh one that is swapped in only after it succeeded.
	Replace bool
	// Force allows overwriting an existing file target, and restoring over
	// the very database the snapshot came from.
	Force bool
	// Jobs is the number of parallel restore jobs, where the kind has them.
	Jobs int
	// MemoryBudget caps the memory a restore may hold a dump in.
	MemoryBudget int64
}

// Errors a kind's Restore wraps, so that callers can say what to do.
var (
	// ErrTargetExists: the target database exists (Replace swaps it).
	ErrTargetExists = errors.New("target exists")
	// ErrTargetFileExists: the target file exists (Force overwrites it).
	ErrTargetFileExists = errors.New("target file exists")
	// ErrRestoreOverSource: the target is the database the snapshot was
	// taken from (Force allows it).
	ErrRestoreOverSource = errors.New("target is the snapshot's source database")
)

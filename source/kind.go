package source

import (
	"context"
	"errors"
	"time"

	"github.com/cofferhq/coffer/internal/fingerprint"
	"github.com/cofferhq/coffer/storage"
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
	// S3 says how to reach a bucket source's endpoint, with credentials
	// of its own (the bucket and prefix are LOCATION's).
	S3 storage.S3Config
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
	// Restore restores a source of this kind into target (a DSN, a file;
	// a folder for a composite kind), all or nothing, and says what it
	// did. It is nil for kinds whose only target is a folder.
	Restore func(ctx context.Context, src Reader, target string, opts RestoreOptions) (*Restored, error)
	// Drill runs the kind's own checks on what Restore restored, for a
	// restore drill (package drill): the database engine's own check, the
	// user checks, and a composite kind's checks of its parts. Nil for
	// kinds whose target is a folder (the drill checks those itself).
	Drill DrillFunc
	// Composite reports a kind made of other kinds' parts (airflow): its
	// Restore's target is a folder, and RestoreOptions.DatabaseKind and
	// Database say where its database part goes.
	Composite bool
}

// Restored is what a kind's Restore reports, for people and programs. It
// never holds a secret.
type Restored struct {
	// Lines state what was restored, one fact per line ("owned by role
	// airflow, its original owner").
	Lines []string
	// Facts are the same facts for machine-readable output.
	Facts map[string]any
	// NextSteps are what to do with the restored state, one command or
	// instruction per line.
	NextSteps []string
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
	// Owner is the role (PostgreSQL) or account (MySQL) that is to own
	// the restored database; when empty, its original owner does if it
	// exists on the target.
	Owner string

	// DatabaseKind and Database are where a composite kind restores its
	// database part: a kind ("postgres") and that kind's target (a DSN).
	DatabaseKind, Database string
	// The options below are the airflow kind's (see source/airflow).
	// RewriteConfig makes the restored configuration name the restored
	// database and folders, and nothing of the source.
	RewriteConfig bool
	// Paused pauses every DAG in the restored metadata database.
	Paused bool
	// WithSecrets writes the deployment's secrets into the target folder.
	WithSecrets bool
	// AirflowVersion, when set, refuses a snapshot whose schema is not
	// that version's.
	AirflowVersion string
	// S3 says how to reach a bucket target's endpoint (the bucket and
	// prefix are the target's).
	S3 storage.S3Config
	// Select, when set, restores only the files whose path it accepts
	// (a bucket target; folder restores filter in package restore).
	Select func(path string) bool
}

// ConsistentKey is the metadata key under which a source (or a part of a
// composite source, "metadb.consistent") records its consistent point: the
// instant its contents are of.
const ConsistentKey = "consistent"

// ConsistentPoint is the instant a source's contents are of: a time, and
// the database's own position when it has one.
type ConsistentPoint struct {
	Time   time.Time `json:"time"`
	LSN    string    `json:"lsn,omitempty"`    // PostgreSQL WAL position
	Binlog string    `json:"binlog,omitempty"` // MySQL "file:position"
	// End is when reading ended, for sources read over a span rather than
	// in one snapshot (folders): their contents are from between Time and
	// End.
	End *time.Time `json:"end,omitempty"`
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

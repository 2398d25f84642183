// Package airflow is the airflow source kind: one Apache Airflow deployment
// as one recovery point. It reads the deployment's configuration the way
// Airflow does (environment, _CMD commands, airflow.cfg, defaults; see
// config.go), and backs up, into one source of one snapshot, the metadata
// database first (through its own kind: postgres, mysql or sqlite), then
// the DAGs folder with its .git, the plugins, the configuration files and,
// when asked, the task logs, together with the secrets Airflow needs to
// read its own database (the Fernet keys, the web and API secret keys).
//
// # Snapshot layout
//
// Every part is stored under a path prefix through source.Prefix, exactly
// as its own kind writes it, with the part's metadata under the same
// prefix ("metadb.postgres", "metadb.fingerprints"):
//
//	metadb/     the metadata database (dump.pgdump, dump.sql or database.sqlite)
//	dags/       the DAGs folder, .git included
//	plugins/    the plugins folder, when it exists
//	config/     airflow.cfg, webserver_config.py, airflow_local_settings.py (those that exist)
//	logs/       the task logs, with include_logs
//
// Metadata key "airflow" (Meta) describes the deployment; "airflow.secrets"
// (Secrets) holds the secrets as resolved. Both live only in the encrypted
// catalog, like every other byte of the snapshot. doc/design.md has the
// fields.
//
// # Fernet check
//
// Inside the dump's own snapshot (the PostgreSQL transaction, the MySQL
// consistent snapshot, the SQLite copy) the backup decrypts every
// encrypted connection password and extra, variable value and trigger
// kwargs with the resolved keys. A missing key, a key that does not parse
// or a value no key decrypts leaves the snapshot saved but reports the
// deployment as not restorable as it is (source.Report.Unrestorable; the
// CLI exits 5), and is a warning, so a strict backup fails instead.
package airflow

import (
	"github.com/cofferhq/coffer/source"
)

// Kind is the airflow kind's registry entry.
var Kind = source.Kind{
	Name:      "airflow",
	Location:  "an Airflow deployment's AIRFLOW_HOME (in the config file also airflow: {config, env_file, include_logs})",
	Path:      true,
	First:     true,
	Composite: true,
	New: func(name string, spec source.Spec) (source.Source, error) {
		return &Source{SourceName: name, Options: Options{Home: spec.Location, Config: spec.Airflow.Config, EnvFile: spec.Airflow.EnvFile},
			IncludeLogs: spec.Airflow.IncludeLogs}, nil
	},
	Target:  "new AIRFLOW_HOME folder, with its metadata database restored into a new database",
	Restore: restoreKind,
	Drill:   Drill,
}

// Metadata keys of an airflow source.
const (
	MetaKey        = "airflow"
	SecretsMetaKey = "airflow.secrets"
)

// Path prefixes of the parts inside an airflow source.
const (
	PartMetaDB  = "metadb"
	PartDags    = "dags"
	PartPlugins = "plugins"
	PartConfig  = "config"
	PartLogs    = "logs"
)

// MetaVersion is the version of Meta's layout.
const MetaVersion = 1

// Meta is the metadata key "airflow" of an airflow source.
type Meta struct {
	Version    int    `json:"version"`
	Home       string `json:"home"`
	ConfigPath string `json:"config_path"`
	EnvFile    string `json:"env_file,omitempty"`
	// Parts lists the prefixes the source holds, in the order written
	// ("metadb", "dags", "plugins", "config", "logs").
	Parts []string `json:"parts"`
	// ConfigFiles are the files under config/ and where each came from.
	ConfigFiles map[string]string `json:"config_files"`

	MetaDBKind string `json:"metadb_kind"`
	// MetaDBURL is sql_alchemy_conn with its password masked.
	MetaDBURL  string `json:"metadb_url"`
	MetaDBUser string `json:"metadb_user,omitempty"`
	// MetaDBSchema is [database] sql_alchemy_schema, when set.
	MetaDBSchema       string `json:"metadb_schema,omitempty"`
	AlembicRevision    string `json:"alembic_revision"`
	AlembicRevisionFAB string `json:"alembic_revision_fab,omitempty"`
	// AirflowVersion is the version whose head AlembicRevision is, "" when
	// the revision is not a known head.
	AirflowVersion string `json:"airflow_version"`

	DagsFolder    string    `json:"dags_folder"`
	DagsGit       *GitState `json:"dags_git,omitempty"`
	PluginsFolder string    `json:"plugins_folder"`
	LogFolder     string    `json:"base_log_folder"`
	Logs          bool      `json:"logs"`
	RemoteLogging bool      `json:"remote_logging,omitempty"`

	Fernet FernetCheck `json:"fernet"`
	// Consistent holds each part's consistent point: the metadata
	// database's snapshot (time and LSN or binlog position) and the span
	// in which each folder was read.
	Consistent map[string]source.ConsistentPoint `json:"consistent"`
	// Owner is who the deployment connects to its database as.
	Owner Owner `json:"owner"`
	// Origins says where each option came from ("core.fernet_key": "env
	// AIRFLOW__CORE__FERNET_KEY_CMD"), never the value.
	Origins map[string]Origin `json:"origins"`
}

// Owner describes the database role of the deployment.
type Owner struct {
	// DBUser is the user sql_alchemy_conn connects as.
	DBUser string `json:"db_user,omitempty"`
}

// GitState is the state of the DAGs folder's git repository, read with the
// git binary before the folder is read.
type GitState struct {
	Head   string `json:"head"`
	Branch string `json:"branch"` // "" for a detached HEAD
	Dirty  bool   `json:"dirty"`
	// Changes counts the lines of git status --porcelain.
	Changes int `json:"changes"`
	// Toplevel is the repository's root when it is not the DAGs folder
	// itself (its .git is then not in the snapshot).
	Toplevel string `json:"toplevel,omitempty"`
}

// Source backs up one Airflow deployment.
type Source struct {
	SourceName  string
	Options     Options
	IncludeLogs bool

	report source.Report
}

var (
	_ source.Source   = (*Source)(nil)
	_ source.Reporter = (*Source)(nil)
)

func (s *Source) Name() string { return s.SourceName }
func (s *Source) Kind() string { return "airflow" }

// Report implements source.Reporter: the Fernet check's result.
func (s *Source) Report() source.Report { return s.report }

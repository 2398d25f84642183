package config

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Drill configures restore drills (coffer drill, and the daemon's drill
// runs): where databases are restored and what is checked beyond the
// built-in checks.
type Drill struct {
	// PostgresServer is a PostgreSQL drill server's DSN (a role that may
	// create databases); empty: each drill starts an ephemeral cluster.
	PostgresServer string `yaml:"postgres_server"`
	// MySQLServer is a MySQL/MariaDB drill server's DSN (an account that
	// may create and drop databases), needed for MySQL sources.
	MySQLServer string `yaml:"mysql_server"`
	// TempDir holds the drills' scratch folders; default the system's.
	TempDir string `yaml:"temp_dir"`
	// ReportDir is where coffer drill writes its evidence by default.
	ReportDir string `yaml:"report_dir"`
	// Checks are queries with an expected result, run on the restored
	// databases.
	Checks []DrillCheck `yaml:"checks"`
}

// DrillCheck is a user check: Query runs on the restored database of
// Source and must return Expect (rows, columns joined by "|"), or, with
// SameAsBackup, what the source's fingerprint check of the same Name
// returned at backup time.
type DrillCheck struct {
	Source       string `yaml:"source"`
	Name         string `yaml:"name"`
	Query        string `yaml:"query"`
	Expect       Rows   `yaml:"expect"`
	SameAsBackup bool   `yaml:"same_as_backup"`
}

// Rows is an expected query result: one row as a scalar ("42",
// "3|1200.50"), or a list of rows.
type Rows []string

// UnmarshalYAML accepts a scalar or a list of scalars.
func (r *Rows) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*r = Rows{n.Value}
		return nil
	}
	var list []string
	if err := n.Decode(&list); err != nil {
		return fmt.Errorf("line %d: expect: a value or a list of rows", n.Line)
	}
	*r = list
	return nil
}

// validateDrill checks the drill section.
func (c *Config) validateDrill(add func(key, format string, args ...any)) {
	seen := map[string]bool{}
	for i, ch := range c.Drill.Checks {
		key := fmt.Sprintf("drill.checks[%d]", i)
		switch {
		case ch.Source == "":
			add(key, "a check needs the source it runs on (source:)")
		case strings.TrimSpace(ch.Name) == "":
			add(key, "a check needs a name")
		case strings.TrimSpace(ch.Query) == "":
			add(key, "check %s needs a query", ch.Name)
		case ch.SameAsBackup && ch.Expect != nil:
			add(key, "check %s: give expect or same_as_backup, not both", ch.Name)
		case !ch.SameAsBackup && ch.Expect == nil:
			add(key, "check %s: give the expected result (expect:) or same_as_backup: true", ch.Name)
		}
		if seen[ch.Source+"\x00"+ch.Name] {
			add(key, "check %s of source %s is given twice", ch.Name, ch.Source)
		}
		seen[ch.Source+"\x00"+ch.Name] = true
	}
}

package airflow

import (
	"fmt"
	"strings"
)

// alembicHeads maps Airflow versions to the Alembic head revision of their
// metadata schema (from Airflow's own migrations; see
// ../shared/AIRFLOW.md). Versions between two entries share the earlier
// entry's head only if they are listed.
var alembicHeads = []struct{ Version, Revision string }{
	{"2.7.0", "405de8318b3a"},
	{"2.8.0", "10b52ebd31f7"},
	{"2.8.1", "88344c1d9134"},
	{"2.9.0", "1949afb29106"},
	{"2.9.2", "686269002441"},
	{"2.10.0", "22ed7efa9da2"},
	{"2.10.3", "5f2621c13b39"},
	{"2.11.0", "5f2621c13b39"}, // inferred: 2.11 added no migration
	{"3.0.0", "29ce7909c52b"},
	{"3.0.3", "fe199e1abd77"},
	{"3.1.0", "cc92b33c6709"},
	{"3.2.0", "658517c60c7f"},
}

// AirflowVersion returns the Airflow version whose schema head is the
// Alembic revision rev ("2.10.3"), or "" when coffer does not know it. A
// revision shared by several versions maps to the first.
func AirflowVersion(rev string) string {
	for _, h := range alembicHeads {
		if h.Revision == rev {
			return h.Version
		}
	}
	return ""
}

// AlembicHead returns the head revision of Airflow version v ("2.10.3",
// also "2.10" for the newest 2.10.x coffer knows).
func AlembicHead(v string) (string, bool) {
	v = strings.TrimPrefix(strings.TrimSpace(v), "v")
	for _, h := range alembicHeads {
		if h.Version == v {
			return h.Revision, true
		}
	}
	if strings.Count(v, ".") == 1 {
		rev, ok := "", false
		for _, h := range alembicHeads {
			if strings.HasPrefix(h.Version, v+".") {
				rev, ok = h.Revision, true
			}
		}
		return rev, ok
	}
	return "", false
}

// KnownVersions lists the versions AlembicHead knows.
func KnownVersions() []string {
	var out []string
	for _, h := range alembicHeads {
		out = append(out, h.Version)
	}
	return out
}

// VersionError refuses a restore for an Airflow version whose schema is
// not the snapshot's.
type VersionError struct {
	Want, WantRevision string // the version asked for and its head ("" if unknown)
	Revision, Version  string // the snapshot's revision and the version it maps to
}

func (e *VersionError) Error() string {
	have := "Alembic revision " + orUnknown(e.Revision)
	if e.Version != "" {
		have += " (Airflow " + e.Version + ")"
	}
	if e.WantRevision == "" {
		return fmt.Sprintf("Airflow %s is not a version coffer knows the schema of (known: %s); the snapshot's metadata database is at %s",
			e.Want, strings.Join(KnownVersions(), ", "), have)
	}
	return fmt.Sprintf("the snapshot's metadata database is at %s, but Airflow %s expects %s: "+
		"restore it for the version it was taken with; migrating it forward (airflow db migrate) is your choice to make afterwards, "+
		"and cannot be undone", have, e.Want, e.WantRevision)
}

// checkVersion refuses want when its head is not rev.
func checkVersion(want, rev string) error {
	head, ok := AlembicHead(want)
	if ok && head == rev {
		return nil
	}
	return &VersionError{Want: want, WantRevision: head, Revision: rev, Version: AirflowVersion(rev)}
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

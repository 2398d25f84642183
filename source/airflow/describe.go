package airflow

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/cofferhq/coffer/source"
)

// Summary is what a snapshot's airflow source holds, in a few facts, for
// listings and restores. It holds no secret.
type Summary struct {
	AlembicRevision string      `json:"alembic_revision"`
	AirflowVersion  string      `json:"airflow_version"`
	MetaDBKind      string      `json:"metadb_kind"`
	DagsGit         *GitState   `json:"dags_git,omitempty"`
	Fernet          FernetCheck `json:"fernet"`
	Secrets         bool        `json:"secrets"` // the snapshot holds the secrets
	Parts           []string    `json:"parts"`
}

// Summarize reads the summary of an airflow source.
func Summarize(src source.Reader) (*Summary, error) {
	var m Meta
	if err := src.Meta(MetaKey, &m); err != nil {
		return nil, fmt.Errorf("source %s is not an airflow snapshot: %w", src.Name(), err)
	}
	s := &Summary{AlembicRevision: m.AlembicRevision, AirflowVersion: m.AirflowVersion, MetaDBKind: m.MetaDBKind,
		DagsGit: m.DagsGit, Fernet: m.Fernet, Parts: m.Parts}
	if s.AirflowVersion == "" {
		s.AirflowVersion = AirflowVersion(m.AlembicRevision)
	}
	var raw json.RawMessage
	s.Secrets = src.Meta(SecretsMetaKey, &raw) == nil
	return s, nil
}

func (s *Summary) String() string {
	parts := []string{describeVersion(s.AlembicRevision, s.AirflowVersion), s.MetaDBKind + " metadata database"}
	if g := s.DagsGit; g != nil && g.Head != "" {
		state := "clean"
		if g.Dirty {
			state = "uncommitted changes"
		}
		parts = append(parts, fmt.Sprintf("DAGs at git %s on %s (%s)", short(g.Head), orUnknown(g.Branch), state))
	}
	switch f := s.Fernet; {
	case f.Keys == 0:
		parts = append(parts, "NO Fernet key")
	case f.Error != "":
		parts = append(parts, "Fernet NOT checked: "+f.Error)
	case f.Failed > 0:
		parts = append(parts, fmt.Sprintf("Fernet: %d of %d values do NOT decrypt", f.Failed, f.Checked))
	default:
		parts = append(parts, fmt.Sprintf("Fernet: %d key(s), %d values checked", f.Keys, f.Checked))
	}
	return strings.Join(parts, ", ")
}

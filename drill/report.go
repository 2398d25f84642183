// Package drill restores a snapshot into a scratch environment that it
// creates and always removes, checks what came back, measures how long
// recovery took and keeps the evidence.
//
// This file is the report: what a drill found, the contract between the
// drill engine (which fills it), the evidence writers (JSON, HTML, the
// terminal summary, the repository's drill history) and the daemon (which
// exports its figures as metrics).
package drill

import (
	"encoding/json"
	"time"
)

// ReportVersion is the version of the JSON report's layout.
const ReportVersion = 1

// Result of a check, a source or a whole drill. A drill passes when none of
// its checks failed; warnings are reported and do not fail it.
type Result string

const (
	Pass Result = "pass"
	Warn Result = "warn"
	Fail Result = "fail"
	// Error: the drill could not run (no snapshot, no scratch environment,
	// a key missing); no check was decided.
	Error Result = "error"
)

// Worse returns the worse of two results (pass < warn < fail < error).
func Worse(a, b Result) Result {
	rank := map[Result]int{"": 0, Pass: 1, Warn: 2, Fail: 3, Error: 4}
	if rank[b] > rank[a] {
		return b
	}
	return a
}

// Check is one check's outcome. Name is short and stable ("integrity",
// "restored", "fingerprints", "engine", "fernet", "dag-files", "git-head",
// "owner-writes", "files", "user:NAME"); Detail says what was compared and,
// on failure, what differed.
type Check struct {
	Name   string `json:"name"`
	Result Result `json:"result"`
	Detail string `json:"detail,omitempty"`
}

// Seconds is a duration that reads as seconds in JSON.
type Seconds time.Duration

func (s Seconds) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(s).Seconds())
}

func (s *Seconds) UnmarshalJSON(b []byte) error {
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	*s = Seconds(f * float64(time.Second))
	return nil
}

// Duration returns s as a time.Duration.
func (s Seconds) Duration() time.Duration { return time.Duration(s) }

// Timings split a source's recovery time. Fetch is reading objects from the
// repository, Decrypt is age and zstd, Restore is writing the target (the
// database's own load included), Check is the checks. Total is wall time
// from the drill's start until this source was restored and checked, so the
// largest Total is the drill's RTO.
type Timings struct {
	Fetch   Seconds `json:"fetch"`
	Decrypt Seconds `json:"decrypt"`
	Restore Seconds `json:"restore"`
	Check   Seconds `json:"check"`
	Total   Seconds `json:"total"`
}

// SourceReport is one source's part of a drill.
type SourceReport struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"`
	Result Result `json:"result"`
	// Scratch names where it was restored, without credentials (a
	// database name on the scratch cluster, a temp folder).
	Scratch   string  `json:"scratch,omitempty"`
	BytesRead int64   `json:"bytes_read"`
	Timings   Timings `json:"timings"`
	Checks    []Check `json:"checks"`
}

// Report is everything a drill found.
type Report struct {
	Version int    `json:"version"`
	ID      string `json:"id"`
	Result  Result `json:"result"`
	// Error says why the drill could not run (Result is Error).
	Error string `json:"error,omitempty"`

	Repository   string `json:"repository"` // location, without credentials
	RepositoryID string `json:"repository_id"`

	Snapshot     string    `json:"snapshot"`
	SnapshotTime time.Time `json:"snapshot_time"`
	SnapshotHost string    `json:"snapshot_host,omitempty"`

	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Host     string    `json:"host"` // where the drill ran
	User     string    `json:"user"` // who ran it
	Coffer   string    `json:"coffer_version"`

	// RTO: from the drill's start until every source was restored and
	// checked. RPO: the snapshot's age when the drill started.
	RTO        Seconds `json:"rto"`
	RPO        Seconds `json:"rpo"`
	BytesRead  int64   `json:"bytes_read"`
	Throughput float64 `json:"throughput_bytes_per_second"`

	// Checks that concern the whole snapshot (integrity).
	Checks  []Check        `json:"checks"`
	Sources []SourceReport `json:"sources"`
}

// Failed returns the checks that failed, each with its source's name
// ("" for snapshot-wide checks).
func (r *Report) Failed() (source []string, checks []Check) {
	for _, c := range r.Checks {
		if c.Result == Fail {
			source, checks = append(source, ""), append(checks, c)
		}
	}
	for _, s := range r.Sources {
		for _, c := range s.Checks {
			if c.Result == Fail {
				source, checks = append(source, s.Name), append(checks, c)
			}
		}
	}
	return source, checks
}

// Summary is the public, signed part of a drill's evidence: enough for
// `coffer drills` to list the history without any key. Everything else
// (check details, table names, timings per source) stays in the encrypted
// report.
type Summary struct {
	ID       string    `json:"id"`
	Snapshot string    `json:"snapshot"`
	Started  time.Time `json:"started"`
	Result   Result    `json:"result"`
	RTO      Seconds   `json:"rto"`
}

// Summary returns r's public summary.
func (r *Report) Summary() Summary {
	return Summary{ID: r.ID, Snapshot: r.Snapshot, Started: r.Started, Result: r.Result, RTO: r.RTO}
}

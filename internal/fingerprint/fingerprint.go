// Package fingerprint describes a database at one instant: the exact row
// count of every table and the results of configured check queries. A
// database source computes them in the same snapshot as its dump; a restore
// recomputes them on the target and compares.
package fingerprint

import (
	"fmt"
	"sort"
	"strings"
)

// MetaKey is the catalog metadata key under which sources store their
// Fingerprints.
const MetaKey = "fingerprints"

// Check is a query configured per source, for example
// "select count(*), sum(total) from invoice where status = 'paid'".
type Check struct {
	Name  string `json:"name" yaml:"name"`
	Query string `json:"query" yaml:"query"`
}

// Fingerprints of one database.
type Fingerprints struct {
	// Tables maps "schema.table" (or "table" where the engine has no
	// schemas) to its exact row count.
	Tables map[string]int64 `json:"tables"`
	// Checks maps a check name to the query's result: every column of every
	// row, rendered as text, one row per element, columns joined by "|".
	Checks map[string][]string `json:"checks,omitempty"`
}

// Diff is one difference between two Fingerprints.
type Diff struct {
	What string // "table public.invoice" or "check paid_total"
	Want string
	Got  string
}

func (d Diff) String() string {
	return fmt.Sprintf("%s: backup %s, restored %s", d.What, d.Want, d.Got)
}

// Compare returns the differences between the fingerprints taken at backup
// time (want) and those of a restored database (got), sorted by name.
func Compare(want, got Fingerprints) []Diff {
	var diffs []Diff
	for t, n := range want.Tables {
		m, ok := got.Tables[t]
		switch {
		case !ok:
			diffs = append(diffs, Diff{What: "table " + t, Want: fmt.Sprint(n), Got: "missing"})
		case m != n:
			diffs = append(diffs, Diff{What: "table " + t, Want: fmt.Sprint(n), Got: fmt.Sprint(m)})
		}
	}
	for t, m := range got.Tables {
		if _, ok := want.Tables[t]; !ok {
			diffs = append(diffs, Diff{What: "table " + t, Want: "missing", Got: fmt.Sprint(m)})
		}
	}
	for c, w := range want.Checks {
		g, ok := got.Checks[c]
		switch {
		case !ok:
			diffs = append(diffs, Diff{What: "check " + c, Want: strings.Join(w, "; "), Got: "missing"})
		case strings.Join(w, "\n") != strings.Join(g, "\n"):
			diffs = append(diffs, Diff{What: "check " + c, Want: strings.Join(w, "; "), Got: strings.Join(g, "; ")})
		}
	}
	sort.Slice(diffs, func(i, j int) bool { return diffs[i].What < diffs[j].What })
	return diffs
}

// RunChecks runs every check with query, which renders a query's rows as
// text (columns joined by "|"), and returns the results by check name, or
// nil when there are no checks.
func RunChecks(checks []Check, query func(sql string) ([]string, error)) (map[string][]string, error) {
	if len(checks) == 0 {
		return nil, nil
	}
	out := make(map[string][]string, len(checks))
	for _, c := range checks {
		rows, err := query(c.Query)
		if err != nil {
			return nil, fmt.Errorf("check %q: %w", c.Name, err)
		}
		out[c.Name] = rows
	}
	return out, nil
}

// MismatchError reports a restored database whose fingerprints differ from
// those taken at backup time.
type MismatchError struct {
	Diffs []Diff
}

func (e *MismatchError) Error() string {
	parts := make([]string, len(e.Diffs))
	for i, d := range e.Diffs {
		parts[i] = d.String()
	}
	return fmt.Sprintf("restored database differs from the backup: %s", strings.Join(parts, "; "))
}

package source

import (
	"context"
	"strings"
)

// DrillResult is the outcome of one drill check: "pass", "warn" or "fail".
type DrillResult string

const (
	DrillPass DrillResult = "pass"
	DrillWarn DrillResult = "warn"
	DrillFail DrillResult = "fail"
)

// DrillCheck is one check a kind ran on what a restore drill restored.
// Name is short and stable ("engine", "fernet", "user:NAME"); Detail says
// what was compared and, on failure, what differed. It never holds a
// secret or a value read from the data, beyond what a user check asked
// for.
type DrillCheck struct {
	Name   string
	Result DrillResult
	Detail string
}

// UserCheck is a query configured for a drill with its expected result:
// Expect (rows, columns joined by "|", as fingerprint checks render them),
// or, with SameAsBackup, the result the fingerprint check of the same name
// had at backup time.
type UserCheck struct {
	Name         string
	Query        string
	Expect       []string
	SameAsBackup bool
}

// DrillOptions are given to a kind's Drill.
type DrillOptions struct {
	// Checks are the user checks configured for this source.
	Checks []UserCheck
	// DatabaseKind and Database are where a composite kind's database
	// part was restored (as in RestoreOptions).
	DatabaseKind, Database string
}

// DrillFunc runs a kind's own drill checks on target, where its Restore
// restored src (a DSN, a file; a folder for a composite kind).
type DrillFunc func(ctx context.Context, src Reader, target string, o DrillOptions) []DrillCheck

// RunUserChecks runs checks with query (which renders a query's rows as
// fingerprint checks do) and compares each result with what it expects;
// backup holds the fingerprint check results taken at backup time.
func RunUserChecks(checks []UserCheck, backup map[string][]string, query func(sql string) ([]string, error)) []DrillCheck {
	var out []DrillCheck
	for _, c := range checks {
		name := "user:" + c.Name
		want := c.Expect
		if c.SameAsBackup {
			w, ok := backup[c.Name]
			if !ok {
				out = append(out, DrillCheck{name, DrillFail, "no check query named " + c.Name + " was fingerprinted at backup time"})
				continue
			}
			want = w
		}
		got, err := query(c.Query)
		if err != nil {
			out = append(out, DrillCheck{name, DrillFail, "query failed: " + oneLine(err.Error())})
			continue
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			what := "expected"
			if c.SameAsBackup {
				what = "at backup time"
			}
			out = append(out, DrillCheck{name, DrillFail, "got " + quoteRows(got) + ", " + what + " " + quoteRows(want)})
			continue
		}
		out = append(out, DrillCheck{name, DrillPass, "result " + quoteRows(got) + " as expected"})
	}
	return out
}

func quoteRows(rows []string) string {
	s := strings.Join(rows, "; ")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return "[" + s + "]"
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

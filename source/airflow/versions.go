package airflow

import (
	"strconv"
	"strings"
)

// alembicHeads maps Airflow versions to the Alembic head revision of their
// metadata schema (../shared/AIRFLOW.md, read from Airflow's migrations),
// oldest first. A version not listed has the head of the newest listed
// version of the same minor release below it.
var alembicHeads = []struct{ version, revision string }{
	{"2.7.0", "405de8318b3a"},
	{"2.8.0", "10b52ebd31f7"},
	{"2.8.1", "88344c1d9134"},
	{"2.9.0", "1949afb29106"},
	{"2.9.2", "686269002441"},
	{"2.10.0", "22ed7efa9da2"},
	{"2.10.3", "5f2621c13b39"},
	{"3.0.0", "29ce7909c52b"},
	{"3.0.3", "fe199e1abd77"},
	{"3.1.0", "cc92b33c6709"},
	{"3.2.0", "658517c60c7f"},
}

// VersionOf returns the Airflow version whose schema head is revision (the
// first version with that head: "5f2621c13b39" is "2.10.3"), or "" when the
// revision is not a known head.
func VersionOf(revision string) string {
	for _, h := range alembicHeads {
		if h.revision == revision {
			return h.version
		}
	}
	return ""
}

// HeadOf returns the Alembic head revision of an Airflow version ("2.10.4"
// has 2.10.3's head), and false for a version of a minor release that is
// not listed. 2.11 is taken to have 2.10.3's head (inferred: 2.11 added no
// migration).
func HeadOf(version string) (string, bool) {
	v, ok := parseVersion(version)
	if !ok {
		return "", false
	}
	if v[0] == 2 && v[1] == 11 {
		v = [3]int{2, 10, 3}
	}
	rev := ""
	for _, h := range alembicHeads {
		hv, _ := parseVersion(h.version)
		if hv[0] == v[0] && hv[1] == v[1] && !less(v, hv) {
			rev = h.revision
		}
	}
	return rev, rev != ""
}

func parseVersion(s string) ([3]int, bool) {
	var v [3]int
	parts := strings.Split(strings.TrimPrefix(strings.TrimSpace(s), "v"), ".")
	if len(parts) < 2 || len(parts) > 3 {
		return v, false
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return v, false
		}
		v[i] = n
	}
	return v, true
}

func less(a, b [3]int) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

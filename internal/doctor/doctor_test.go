package doctor

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/internal/testing/testutil"
)

// A server newer than every pg_dump on this machine (PostgreSQL 99): the
// backup could not dump it, so doctor says FAIL and how to fix it.
func TestPgDumpOlderThanServer(t *testing.T) {
	if _, err := exec.LookPath("pg_dump"); err != nil {
		testutil.Missing(t, "pg_dump not installed")
	}
	r := pgDumpCheck("postgres db", "99.1")
	if r.Status != Fail || !strings.Contains(r.Message, "older than server 99.1") || !strings.Contains(r.Fix, "postgresql-client") {
		t.Errorf("pg_dump against server 99.1: %+v, want FAIL naming the old client and the fix", r)
	}
	r = pgDumpCheck("postgres db", "9.6.24")
	if r.Status == Fail {
		t.Errorf("pg_dump against an old server: %+v, want OK", r)
	}
}

func TestVersionLess(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{{"10.5.2", "10.11.19", true}, {"10.11.19", "10.11.19", false}, {"11.0", "10.11", false}, {"8.0", "10.6", true}} {
		if got := versionLess(c.a, c.b); got != c.want {
			t.Errorf("versionLess(%s, %s) = %v", c.a, c.b, got)
		}
	}
}

func TestWorst(t *testing.T) {
	if w := Worst([]Result{{Status: OK}, {Status: Warn}}); w != Warn {
		t.Errorf("worst of OK, WARN = %s", w)
	}
	if w := Worst([]Result{{Status: Fail}, {Status: Warn}}); w != Fail {
		t.Errorf("worst of FAIL, WARN = %s", w)
	}
	if w := Worst(nil); w != OK {
		t.Errorf("worst of none = %s", w)
	}
}

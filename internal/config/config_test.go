package config

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	c, err := Parse(strings.NewReader(`
repository: s3://bucket/coffer
s3:
  endpoint: http://127.0.0.1:9000
  path_style: true
identity: keys/identity.txt
signing_key: keys/signing.key
uploads: 4
sources:
  dags: dir:/opt/airflow/dags
  metadb:
    kind: postgres
    location: postgres://airflow@db/airflow
    checks:
      - name: paid
        query: select count(*) from invoice where status = 'paid'
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if got, want := c.Sources["dags"].Kind, "dir"; got != want {
		t.Fatalf("dags kind = %q, want %q", got, want)
	}
	if got, want := c.Sources["dags"].Location, "/opt/airflow/dags"; got != want {
		t.Fatalf("dags location = %q, want %q", got, want)
	}
	if got, want := len(c.Sources["metadb"].Checks), 1; got != want {
		t.Fatalf("checks = %d, want %d", got, want)
	}
	if got, want := c.Uploads, 4; got != want {
		t.Fatalf("uploads = %d, want %d", got, want)
	}
}

func TestParseUnknownKey(t *testing.T) {
	_, err := Parse(strings.NewReader("repository: x\nrepo_typo: y\n"))
	if err == nil || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "repo_typo") {
		t.Fatalf("err = %v, want it to name line 2 and the key", err)
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c, err := Parse(strings.NewReader(`uploads: 0
sources:
  a: tape:/dev/st0
  b:
    kind: dir
  c:
    kind: dir
    location: /x
    checks: [{name: n, query: "select 1"}]
`))
	if err != nil {
		t.Fatal(err)
	}
	err = c.Validate()
	if err == nil {
		t.Fatal("Validate() = nil")
	}
	for _, want := range []string{"line 1: uploads", "line 3: sources.a: unknown kind \"tape\"", "line 4: sources.b: no location", "sources.c.checks"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("repository: x\nsources:\n  a: dir:/x\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(strings.NewReader(string(b)))
		if err == nil {
			_ = c.Validate()
		}
	})
}

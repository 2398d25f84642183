package config

import (
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestDrillSection(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, filepath.Join(dir, "c.yaml"), `drill:
  postgres_server: postgres://postgres@127.0.0.1:5432/postgres
  mysql_server: root@tcp(127.0.0.1:3306)/
  temp_dir: scratch
  report_dir: reports
  checks:
    - source: invoices
      name: paid
      query: select count(*) from invoice where status = 'paid'
      same_as_backup: true
    - source: invoices
      name: vendors
      query: select id, name from vendor order by id
      expect: ["1|ACME", "2|Globex"]
    - source: ledger
      name: one
      query: select 1
      expect: 1
`)
	c, err := Load(LoadOptions{File: file, Flags: Overrides{DrillMySQLServer: "root@tcp(127.0.0.1:3307)/"}})
	if err != nil {
		t.Fatal(err)
	}
	d := c.Drill
	if d.PostgresServer != "postgres://postgres@127.0.0.1:5432/postgres" || d.MySQLServer != "root@tcp(127.0.0.1:3307)/" {
		t.Errorf("servers %q %q (the flag wins for MySQL)", d.PostgresServer, d.MySQLServer)
	}
	if d.TempDir != filepath.Join(dir, "scratch") || d.ReportDir != filepath.Join(dir, "reports") {
		t.Errorf("folders %q %q, want them relative to the file", d.TempDir, d.ReportDir)
	}
	if len(d.Checks) != 3 || !d.Checks[0].SameAsBackup || !reflect.DeepEqual(d.Checks[1].Expect, Rows{"1|ACME", "2|Globex"}) ||
		!reflect.DeepEqual(d.Checks[2].Expect, Rows{"1"}) {
		t.Errorf("checks %+v", d.Checks)
	}
}

func TestDrillSectionProblems(t *testing.T) {
	file := writeFile(t, filepath.Join(t.TempDir(), "c.yaml"), `drill:
  checks:
    - name: a
      query: select 1
      expect: 1
    - source: s
      name: b
      query: select 1
    - source: s
      name: c
      query: select 1
      expect: 1
      same_as_backup: true
    - source: s
      name: " "
      query: ""
      expect: 1
`)
	_, err := Load(LoadOptions{File: file})
	var ie *InvalidError
	if !errors.As(err, &ie) {
		t.Fatalf("err %v, want an InvalidError", err)
	}
	want := []string{
		"line 3: drill.checks[0]: a check needs the source it runs on (source:)",
		"line 6: drill.checks[1]: check b: give the expected result (expect:) or same_as_backup: true",
		"line 9: drill.checks[2]: check c: give expect or same_as_backup, not both",
		"line 14: drill.checks[3]: a check needs a name",
	}
	if got := strings.Split(ie.Err.Error(), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("problems:\n%s\nwant:\n%s", ie.Err, strings.Join(want, "\n"))
	}
}

func TestDrillServerPasswordNeedsPrivateFile(t *testing.T) {
	for _, dsn := range []string{"postgres://u:secret@h/db", "u:secret@tcp(h:3306)/", "host=h password=secret"} {
		file := writeFile(t, filepath.Join(t.TempDir(), "c.yaml"), "drill:\n  postgres_server: \""+dsn+"\"\n")
		_, err := Load(LoadOptions{File: file})
		var pe *PermissionError
		if !errors.As(err, &pe) || !strings.Contains(pe.Key, "drill.postgres_server") {
			t.Errorf("%s in a 0644 file: %v, want a PermissionError", dsn, err)
		}
	}
}

// Package layering checks which of coffer's packages may import which,
// from the non-test imports that go list reports:
//
//   - backup (the snapshot writer) and restore (the snapshot reader) do
//     not import each other, any source kind, or a database driver;
//   - a source kind (source/X and below, but not source/registry) does
//     not import another kind, except that a composite kind may import
//     leaf kinds;
//   - drill (restore drills) does not import backup: it only reads;
//   - storage imports nothing of coffer's;
//   - production code does not import internal/testing, and the coffer
//     binary does not link the testing package.
//
// Every rule is checked transitively, except the one about
// internal/testing, which every production package is checked for
// directly. A failure names the import arrow that breaks the rule and,
// when it is not the package's own import, one chain that leads to it.
package layering

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/cofferhq/coffer"

// composites are the source kinds allowed to import leaf kinds (the
// kinds not listed here).
var composites = map[string]bool{
	"airflow": true,
}

// drivers are the database drivers only source kinds may import; an
// entry covers the packages below it.
var drivers = []string{
	"github.com/jackc/pgx",
	"github.com/go-sql-driver/mysql",
	"modernc.org/sqlite",
}

// graph maps an import path to the paths its non-test files import.
type graph map[string][]string

// A violation is an import that breaks a rule.
type violation struct {
	rule string
	// path runs from the package the rule is about to the forbidden
	// package; its last arrow is the offending import.
	path []string
}

func (v violation) arrow() string {
	n := len(v.path)
	if n < 2 {
		return ""
	}
	return short(v.path[n-2]) + " -> " + short(v.path[n-1])
}

func (v violation) String() string {
	if len(v.path) < 2 {
		return v.rule
	}
	s := v.arrow() + ": " + v.rule
	if len(v.path) > 2 {
		var hops []string
		for _, p := range v.path {
			hops = append(hops, short(p))
		}
		s += " (via " + strings.Join(hops, " -> ") + ")"
	}
	return s
}

// short drops the module path from coffer's packages.
func short(p string) string {
	if r, ok := rel(p); ok {
		return r
	}
	return p
}

// rel returns p relative to the module, and whether p is in the module.
func rel(p string) (string, bool) {
	if p == module {
		return ".", true
	}
	r, ok := strings.CutPrefix(p, module+"/")
	return r, ok
}

// under reports whether p is dir or below it.
func under(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+"/")
}

// kindOf returns the kind of a package of the module given relative to
// it: X for source/X and below; "" for anything else, source itself and
// source/registry included.
func kindOf(r string) string {
	rest, ok := strings.CutPrefix(r, "source/")
	if !ok {
		return ""
	}
	k, _, _ := strings.Cut(rest, "/")
	if k == "registry" {
		return ""
	}
	return k
}

func isDriver(p string) bool {
	for _, d := range drivers {
		if under(p, d) {
			return true
		}
	}
	return false
}

// check returns every violation in g, sorted.
func check(g graph) []violation {
	var vs []violation
	// Rules about packages that are gone would check nothing.
	for _, r := range []string{"backup", "restore", "storage", "cmd/coffer"} {
		if _, ok := g[module+"/"+r]; !ok {
			vs = append(vs, violation{rule: "package " + r + " is missing, so the rules about it check nothing"})
		}
	}
	for _, p := range slices.Sorted(maps.Keys(g)) {
		r, ok := rel(p)
		if !ok {
			continue
		}
		switch {
		case under(r, "backup") || under(r, "restore"):
			self, other := "backup", "restore"
			if under(r, "restore") {
				self, other = other, self
			}
			vs = append(vs, reach(g, p, func(q string) string {
				qr, ours := rel(q)
				switch {
				case ours && under(qr, other):
					return self + " must not import " + other
				case ours && (kindOf(qr) != "" || qr == "source/registry"):
					return self + " must not import a source kind, only package source"
				case isDriver(q):
					return self + " must not import a database driver"
				}
				return ""
			})...)
		case kindOf(r) != "":
			k := kindOf(r)
			vs = append(vs, reach(g, p, func(q string) string {
				qr, ours := rel(q)
				if !ours {
					return ""
				}
				k2 := kindOf(qr)
				if k2 == "" || k2 == k || (composites[k] && !composites[k2]) {
					return ""
				}
				return "kind source/" + k + " must not import kind source/" + k2 + " (only a composite kind may, and only leaf kinds)"
			})...)
		case under(r, "drill"):
			// A drill reads only the repository: it is built on restore
			// and the kinds (whose restores and drill checks it runs),
			// never on the snapshot writer.
			vs = append(vs, reach(g, p, func(q string) string {
				if qr, ours := rel(q); ours && under(qr, "backup") {
					return "drill must not import backup (a drill reads the repository, never writes it)"
				}
				return ""
			})...)
		case under(r, "storage"):
			vs = append(vs, reach(g, p, func(q string) string {
				if qr, ours := rel(q); ours && !under(qr, "storage") {
					return "storage must not import anything of coffer's"
				}
				return ""
			})...)
		}
		if !under(r, "internal/testing") {
			for _, q := range g[p] {
				if qr, ours := rel(q); ours && under(qr, "internal/testing") {
					vs = append(vs, violation{rule: "production code must not import internal/testing", path: []string{p, q}})
				}
			}
		}
	}
	if cmd := module + "/cmd/coffer"; g[cmd] != nil {
		vs = append(vs, reach(g, cmd, func(q string) string {
			if qr, ours := rel(q); under(q, "testing") || (ours && under(qr, "internal/testing")) {
				return "the coffer binary must not link " + short(q)
			}
			return ""
		})...)
	}
	return dedup(vs)
}

// reach walks the imports of root breadth first and returns a violation
// for every arrow into a package for which forbid returns a rule. It does
// not walk on from a forbidden package: what that one imports is moot.
func reach(g graph, root string, forbid func(string) string) []violation {
	var vs []violation
	parent := map[string]string{root: ""}
	queue := []string{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, q := range g[p] {
			if rule := forbid(q); rule != "" {
				path := []string{q}
				for x := p; x != ""; x = parent[x] {
					path = append(path, x)
				}
				slices.Reverse(path)
				vs = append(vs, violation{rule: rule, path: path})
				continue
			}
			if _, seen := parent[q]; !seen {
				parent[q] = p
				queue = append(queue, q)
			}
		}
	}
	return vs
}

// dedup keeps one violation per rule and arrow, the one with the shortest
// chain, and sorts them.
func dedup(vs []violation) []violation {
	best := map[string]violation{}
	for _, v := range vs {
		key := v.rule + "\x00" + v.arrow()
		if b, ok := best[key]; !ok || len(v.path) < len(b.path) {
			best[key] = v
		}
	}
	out := make([]violation, 0, len(best))
	for _, v := range best {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// readGraph runs go list on the module: every package of the module and
// everything they import, with their non-test imports.
func readGraph() (graph, error) {
	cmd := exec.Command("go", "list", "-deps", "-json=ImportPath,Imports", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list: %w\n%s", err, stderr.Bytes())
	}
	g := graph{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var pkg struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&pkg); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("go list output: %w", err)
		}
		g[pkg.ImportPath] = pkg.Imports
	}
	return g, nil
}

// TestLayering checks the rules on the module as it is.
func TestLayering(t *testing.T) {
	g, err := readGraph()
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range check(g) {
		t.Error(v)
	}
}

// TestCheck feeds check a graph that breaks every rule once, and one that
// breaks none.
func TestCheck(t *testing.T) {
	m := func(r string) string { return module + "/" + r }
	clean := graph{
		m("backup"):                      {m("source"), m("storage"), m("internal/repo"), "database/sql"},
		m("restore"):                     {m("source"), m("storage"), m("internal/repo")},
		m("source"):                      {"io"},
		m("source/dir"):                  {m("source"), m("source/dir/internal/walk")},
		m("source/dir/internal/walk"):    {"io/fs"},
		m("source/postgres"):             {m("source"), "github.com/jackc/pgx/v5"},
		m("source/mysql"):                {m("source"), "github.com/go-sql-driver/mysql"},
		m("source/registry"):             {m("source/dir"), m("source/postgres"), m("source/mysql")},
		m("storage"):                     {"io"},
		m("storage/s3"):                  {m("storage"), "github.com/minio/minio-go/v7"},
		m("internal/repo"):               {m("storage")},
		m("cmd/coffer"):                  {m("backup"), m("restore"), m("source/registry")},
		m("internal/testing/fixture"):    {"testing", m("internal/testing/testutil")},
		m("internal/testing/testutil"):   {"testing"},
		"github.com/jackc/pgx/v5":        {"github.com/jackc/pgx/v5/pgconn"},
		"github.com/jackc/pgx/v5/pgconn": nil,
	}
	if vs := check(clean); len(vs) != 0 {
		t.Errorf("check(clean graph) = %v, want no violations", vs)
	}

	bad := graph{
		// restore imports backup through a helper; backup imports restore.
		m("restore"):         {m("internal/helper")},
		m("internal/helper"): {m("backup")},
		m("backup"):          {m("restore"), m("source/sqlite"), m("internal/db")},
		// backup reaches a driver through a package of its own.
		m("internal/db"): {"modernc.org/sqlite"},
		// A leaf kind imports another; a composite kind that is not
		// listed imports a leaf kind.
		m("source/sqlite"):            {m("source/dir/internal/walk")},
		m("source/dir/internal/walk"): nil,
		m("source/dagster"):           {m("source/postgres")},
		m("source/postgres"):          nil,
		// A drill writes snapshots.
		m("drill"): {m("backup")},
		// storage imports coffer's repo package.
		m("storage"):       nil,
		m("storage/s3"):    {m("storage"), m("internal/repo")},
		m("internal/repo"): nil,
		// Production code imports test support; the binary links testing.
		m("cmd/coffer"):                {m("backup"), m("internal/testing/testutil"), "github.com/x/lib"},
		"github.com/x/lib":             {"testing"},
		m("internal/testing/testutil"): {"testing"},
		"modernc.org/sqlite":           nil,
	}
	want := []string{
		"backup -> restore: backup must not import restore",
		"backup -> source/sqlite: backup must not import a source kind, only package source",
		"cmd/coffer -> internal/testing/testutil: production code must not import internal/testing",
		"cmd/coffer -> internal/testing/testutil: the coffer binary must not link internal/testing/testutil",
		"drill -> backup: drill must not import backup (a drill reads the repository, never writes it)",
		"github.com/x/lib -> testing: the coffer binary must not link testing (via cmd/coffer -> github.com/x/lib -> testing)",
		"internal/db -> modernc.org/sqlite: backup must not import a database driver (via backup -> internal/db -> modernc.org/sqlite)",
		"internal/helper -> backup: restore must not import backup (via restore -> internal/helper -> backup)",
		"source/dagster -> source/postgres: kind source/dagster must not import kind source/postgres (only a composite kind may, and only leaf kinds)",
		"source/sqlite -> source/dir/internal/walk: kind source/sqlite must not import kind source/dir (only a composite kind may, and only leaf kinds)",
		"storage/s3 -> internal/repo: storage must not import anything of coffer's",
	}
	var got []string
	for _, v := range check(bad) {
		got = append(got, v.String())
	}
	if !slices.Equal(got, want) {
		t.Errorf("check(bad graph):\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Once listed, a composite kind may import leaf kinds, but not another
	// composite kind.
	composites["dagster"] = true
	defer delete(composites, "dagster")
	composite := graph{
		m("backup"): nil, m("restore"): nil, m("storage"): nil, m("cmd/coffer"): nil,
		m("source/airflow"):  {m("source/postgres"), m("source/dagster")},
		m("source/postgres"): nil,
		m("source/dagster"):  nil,
	}
	got = nil
	for _, v := range check(composite) {
		got = append(got, v.String())
	}
	want = []string{"source/airflow -> source/dagster: kind source/airflow must not import kind source/dagster (only a composite kind may, and only leaf kinds)"}
	if !slices.Equal(got, want) {
		t.Errorf("check(composite graph) = %q, want %q", got, want)
	}

	// A rule about a package that is gone says so.
	got = nil
	for _, v := range check(graph{}) {
		got = append(got, v.String())
	}
	if len(got) != 4 || !strings.Contains(got[0], "is missing") {
		t.Errorf("check(empty graph) = %q, want the four missing packages", got)
	}
}

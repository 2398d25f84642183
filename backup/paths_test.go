package backup

import (
	"strings"
	"testing"
)

type pathEntry struct {
	path string
	dir  bool
}

// permutations calls f with every order of es.
func permutations(es []pathEntry, f func([]pathEntry)) {
	var rec func(k int)
	rec = func(k int) {
		if k == len(es) {
			f(es)
			return
		}
		for i := k; i < len(es); i++ {
			es[k], es[i] = es[i], es[k]
			rec(k + 1)
			es[k], es[i] = es[i], es[k]
		}
	}
	rec(0)
}

// firstRefused returns the index of the first entry c refuses, or -1.
func firstRefused(c pathChecker, es []pathEntry) (int, error) {
	for i, e := range es {
		if err := c.check(e.path, e.dir); err != nil {
			return i, err
		}
	}
	return -1, nil
}

func inWalkOrder(es []pathEntry) bool {
	for i := 1; i < len(es); i++ {
		if es[0].path != "." || walkCompare(es[i-1].path, es[i].path) >= 0 {
			return false
		}
	}
	return len(es) == 0 || es[0].path == "."
}

// TestPathCheckers writes sets of entries in every order through both
// path checkers: the set (any source) and the walk check (a source in
// walk order, which holds only the open folders). Every order of a set
// with a path twice (also once as a file and once as a folder) is
// refused by both, and so is an entry below a file or below a folder not
// yet written; the walk check also refuses any order that is not a walk's,
// and accepts every walk order of a sound set.
func TestPathCheckers(t *testing.T) {
	d := func(p string) pathEntry { return pathEntry{p, true} }
	f := func(p string) pathEntry { return pathEntry{p, false} }
	for _, tc := range []struct {
		name  string
		es    []pathEntry
		sound bool // some order passes
	}{
		{"sound", []pathEntry{d("."), d("a"), f("a/b"), f("a-b"), d("a/c"), f("a/c/x"), f("a0")}, true},
		{"twice", []pathEntry{d("."), d("a"), f("a/b"), f("a/b"), f("c")}, false},
		{"file then folder", []pathEntry{d("."), f("a"), d("a"), f("b")}, false},
		{"folder twice", []pathEntry{d("."), d("a"), d("a"), f("a/x")}, false},
		{"below a file", []pathEntry{d("."), f("a"), f("a/b"), f("a-b")}, false},
		{"root twice", []pathEntry{d("."), d("."), f("a")}, false},
		{"no folder", []pathEntry{d("."), d("a"), f("a/b/c")}, false},
	} {
		passed := 0
		permutations(tc.es, func(es []pathEntry) {
			order := make([]string, len(es))
			for i, e := range es {
				order[i] = e.path
			}
			si, serr := firstRefused(newPathSet(), es)
			wi, werr := firstRefused(&walkCheck{}, es)
			if !tc.sound && (si < 0 || wi < 0) {
				t.Fatalf("%s: %q passed: set %v, walk %v", tc.name, order, serr, werr)
			}
			if si >= 0 && (wi < 0 || wi > si) {
				t.Fatalf("%s: %q: the set refuses entry %d (%v), the walk check %d (%v)", tc.name, order, si, serr, wi, werr)
			}
			walk := inWalkOrder(es)
			if !walk && wi < 0 {
				t.Fatalf("%s: %q is not in walk order, and the walk check passed it", tc.name, order)
			}
			if tc.sound && walk {
				if wi >= 0 || si >= 0 {
					t.Fatalf("%s: %q in walk order refused: set %v, walk %v", tc.name, order, serr, werr)
				}
				passed++
			}
			if werr != nil && wi == si && !strings.Contains(werr.Error(), "out of the order") && werr.Error() != serr.Error() {
				t.Fatalf("%s: %q: walk check says %q, the set %q", tc.name, order, werr, serr)
			}
		})
		if tc.sound && passed != 1 {
			t.Fatalf("%s: %d walk orders passed, want 1", tc.name, passed)
		}
	}
}

package pathglob

import (
	"errors"
	"slices"
	"testing"
)

func TestMatch(t *testing.T) {
	cases := []struct {
		pattern, name string
		want          bool
	}{
		{"*.pdf", "a.pdf", true},
		{"*.pdf", "invoices/2024/a.pdf", true},
		{"*.pdf", "invoices/2024/a.txt", false},
		{"*.pdf", ".", false},
		{"invoices/*.pdf", "invoices/a.pdf", true},
		{"/invoices/*.pdf", "invoices/a.pdf", true},
		{"invoices/*.pdf", "x/invoices/a.pdf", false},
		{"invoices/*.pdf", "invoices/2024/a.pdf", false},
		{"invoices/**/*.pdf", "invoices/a.pdf", true},
		{"invoices/**/*.pdf", "invoices/2024/11/a.pdf", true},
		{"**/INV-42*", "INV-42.pdf", true},
		{"**/INV-42*", "a/b/INV-42.pdf", true},
		{"**/INV-42*", "a/b/INV-43.pdf", false},
		{"**", "a/b", true},
		{"a/**", "a", true},
		{"a/**", "a/b/c", true},
		{"a/**", "b/c", false},
		{"a/**/**/c", "a/c", true},
		{"INV-?", "INV-7", true},
		{"INV-[0-4]", "INV-7", false},
		{"/", "a/b", true},
	}
	for _, c := range cases {
		p, err := Compile(c.pattern)
		if err != nil {
			t.Fatalf("Compile(%q): %v", c.pattern, err)
		}
		if got := p.Match(c.name); got != c.want {
			t.Errorf("%q.Match(%q) = %v, want %v", c.pattern, c.name, got, c.want)
		}
	}
}

func TestCompileBad(t *testing.T) {
	for _, p := range []string{"", " ", "a//b", "[", "a/[x"} {
		if _, err := Compile(p); !errors.Is(err, ErrBadPattern) {
			t.Errorf("Compile(%q) = %v, want ErrBadPattern", p, err)
		}
	}
}

// names is a catalog's order: every folder before what is in it.
var names = []string{".", "a", "a/x.pdf", "a/y.txt", "a/sub", "a/sub/z.pdf", "b", "b/w.txt", "empty", "top.pdf"}

func kept(f *Filter) []string {
	var out []string
	for i, k := range f.Keep(names) {
		if k {
			out = append(out, names[i])
		}
	}
	return out
}

func TestKeep(t *testing.T) {
	cases := []struct {
		include, exclude []string
		want             []string
	}{
		{nil, nil, names},
		{[]string{"*.pdf"}, nil, []string{".", "a", "a/x.pdf", "a/sub", "a/sub/z.pdf", "top.pdf"}},
		{[]string{"a/x.pdf"}, nil, []string{".", "a", "a/x.pdf"}},
		// Including a folder includes what is in it.
		{[]string{"a/sub"}, nil, []string{".", "a", "a/sub", "a/sub/z.pdf"}},
		{[]string{"empty"}, nil, []string{".", "empty"}},
		// Excluding a folder excludes what is in it.
		{nil, []string{"a"}, []string{".", "b", "b/w.txt", "empty", "top.pdf"}},
		{[]string{"*.pdf"}, []string{"sub"}, []string{".", "a", "a/x.pdf", "top.pdf"}},
		{[]string{"nothing"}, nil, nil},
	}
	for _, c := range cases {
		f, err := NewFilter(c.include, c.exclude)
		if err != nil {
			t.Fatal(err)
		}
		if got := kept(f); !slices.Equal(got, c.want) {
			t.Errorf("include %q exclude %q: kept %q, want %q", c.include, c.exclude, got, c.want)
		}
	}
}

// TestDotElements: "./inv/*.pdf" is how a shell user names a path of the
// source's root, and means "inv/*.pdf"; a ".." element can match no
// catalog path (they are clean), and would silently select nothing: it is
// a bad pattern, not a way out of the target.
func TestDotElements(t *testing.T) {
	for _, c := range []struct{ pattern, name string }{
		{"./inv/*.pdf", "inv/a.pdf"},
		{"./top.pdf", "top.pdf"},
		{"inv/./a.pdf", "inv/a.pdf"},
	} {
		p, err := Compile(c.pattern)
		if err != nil {
			t.Fatalf("Compile(%q): %v", c.pattern, err)
		}
		if !p.Match(c.name) {
			t.Errorf("%q does not match %q", c.pattern, c.name)
		}
	}
	if p, err := Compile("./top.pdf"); err == nil && p.Match("a/top.pdf") {
		t.Errorf("./top.pdf matches a/top.pdf: it is anchored at the root")
	}
	for _, bad := range []string{"../x", "../../etc/passwd", "a/../b", "/.."} {
		if _, err := Compile(bad); !errors.Is(err, ErrBadPattern) {
			t.Errorf("Compile(%q) = %v, want ErrBadPattern", bad, err)
		}
	}
}

// Package pathglob matches the slash-separated relative paths of a
// snapshot's catalog against glob patterns, and selects the entries a
// partial restore writes: the ones asked for and the folders that lead to
// them. It works on paths alone, so any source whose catalog looks like a
// folder's (a folder, a bucket) filters the same way.
//
// # Patterns
//
// A pattern is matched element by element (elements are separated by
// "/"). Within an element, "*", "?" and "[...]" mean what they mean to
// path.Match. An element "**" matches zero or more whole elements.
//
// A pattern without a "/" matches the last element of a path at any depth:
// "*.pdf" matches "a.pdf" and "invoices/2024/a.pdf". A pattern with a "/" is
// anchored at the source's root, a leading "/" being optional:
// "invoices/*.pdf" matches "invoices/a.pdf" but not "x/invoices/a.pdf";
// "**/INV-42*" matches "INV-42.pdf" at any depth. A "." element is
// dropped ("./inv" is "inv"); a ".." element is a bad pattern.
package pathglob

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// ErrBadPattern is wrapped by Compile for a malformed pattern.
var ErrBadPattern = errors.New("bad pattern")

// Pattern is a compiled glob pattern.
type Pattern struct {
	src string
	// elems are the pattern's elements; base: the pattern has no "/" and
	// matches the last element of a path.
	elems []string
	base  bool
}

// Compile checks and compiles a pattern.
func Compile(p string) (*Pattern, error) {
	src := p
	if strings.TrimSpace(p) == "" {
		return nil, fmt.Errorf("%w %q: empty", ErrBadPattern, src)
	}
	base := !strings.Contains(p, "/")
	p = strings.Trim(p, "/")
	if p == "" {
		p = "**"
	}
	var elems []string
	for _, el := range strings.Split(p, "/") {
		switch el {
		case "":
			return nil, fmt.Errorf("%w %q: empty element", ErrBadPattern, src)
		case ".":
			continue // "./inv" is "inv", anchored at the root
		case "..":
			return nil, fmt.Errorf("%w %q: a \"..\" element matches nothing: patterns match paths inside the source", ErrBadPattern, src)
		}
		if _, err := path.Match(el, ""); err != nil {
			return nil, fmt.Errorf("%w %q: %v", ErrBadPattern, src, err)
		}
		elems = append(elems, el)
	}
	if len(elems) == 0 {
		elems = []string{"**"}
	}
	return &Pattern{src: src, elems: elems, base: base}, nil
}

// String returns the pattern as given.
func (p *Pattern) String() string { return p.src }

// Match reports whether the catalog path name (relative, clean, "." for
// the root, which matches no pattern) matches p.
func (p *Pattern) Match(name string) bool {
	if name == "." || name == "" {
		return false
	}
	if p.base {
		return matchElems(p.elems, []string{path.Base(name)})
	}
	return matchElems(p.elems, strings.Split(name, "/"))
}

func matchElems(pat, name []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			// Collapse runs of "**", then try every split point.
			for len(pat) > 0 && pat[0] == "**" {
				pat = pat[1:]
			}
			if len(pat) == 0 {
				return true
			}
			for i := 0; i <= len(name); i++ {
				if matchElems(pat, name[i:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], name[0]); !ok {
			return false
		}
		pat, name = pat[1:], name[1:]
	}
	return len(name) == 0
}

// Filter selects entries by include and exclude patterns.
type Filter struct {
	include, exclude []*Pattern
}

// NewFilter compiles include and exclude patterns. With no include
// pattern everything is included.
func NewFilter(include, exclude []string) (*Filter, error) {
	f := &Filter{}
	for _, s := range include {
		p, err := Compile(s)
		if err != nil {
			return nil, err
		}
		f.include = append(f.include, p)
	}
	for _, s := range exclude {
		p, err := Compile(s)
		if err != nil {
			return nil, err
		}
		f.exclude = append(f.exclude, p)
	}
	return f, nil
}

// Empty reports whether the filter selects everything.
func (f *Filter) Empty() bool { return f == nil || len(f.include)+len(f.exclude) == 0 }

// Selects reports whether the entry at name is selected: name or a folder
// above it matches an include pattern (or there is none), and neither name
// nor a folder above it matches an exclude pattern. So including a folder
// includes what is in it, and excluding a folder excludes what is in it.
func (f *Filter) Selects(name string) bool {
	if f.Empty() {
		return true
	}
	if name == "." || name == "" {
		return len(f.include) == 0
	}
	included := len(f.include) == 0
	for q := name; ; {
		if !included && matchAny(f.include, q) {
			included = true
		}
		if matchAny(f.exclude, q) {
			return false
		}
		i := strings.LastIndexByte(q, '/')
		if i < 0 {
			break
		}
		q = q[:i]
	}
	return included
}

func matchAny(ps []*Pattern, name string) bool {
	for _, p := range ps {
		if p.Match(name) {
			return true
		}
	}
	return false
}

// Keep returns which of names (a catalog's paths) a partial restore
// writes: the selected ones, and the folders that lead to them (the root
// "." included) so that they are restored with their modes and times.
// A selected folder brings nothing else with it unless what is in it is
// selected too, which including it does.
func (f *Filter) Keep(names []string) []bool {
	keep := make([]bool, len(names))
	needed := map[string]bool{}
	some := false
	for i, n := range names {
		if !f.Selects(n) || n == "." {
			continue
		}
		keep[i] = true
		some = true
		for d := path.Dir(n); d != "." && !needed[d]; d = path.Dir(d) {
			needed[d] = true
		}
	}
	for i, n := range names {
		if needed[n] || (n == "." && some) {
			keep[i] = true
		}
	}
	return keep
}

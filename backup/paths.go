package backup

import (
	"fmt"
	"hash/maphash"
	"path"
	"strings"
)

// pathChecker refuses what a folder restore could not recreate: a path
// written twice (byte for byte), an entry whose folder was not written
// before it. check records path when it passes.
type pathChecker interface {
	check(path string, dir bool) error
}

const errNoParent = "%q: its folder %q was not written before it"

// pathSet is the checker of a source whose order is not known: the set of
// paths it has written, and whether each is a folder. It holds a 128-bit
// hash of each path, not the path: about 20-40 bytes an entry against
// about 110 for the path strings (which kept the walk's whole joined path
// alive). The hash is two maphash sums under seeds drawn for the process,
// so names cannot be chosen to collide; an accidental collision (about
// 2^-88 for a million paths) would make the backup fail with "entry
// written twice", never store anything wrong.
type pathSet struct {
	s1, s2 maphash.Seed
	m      map[[16]byte]bool
}

func newPathSet() *pathSet {
	return &pathSet{s1: maphash.MakeSeed(), s2: maphash.MakeSeed(), m: map[[16]byte]bool{}}
}

func (p *pathSet) key(path string) [16]byte {
	var k [16]byte
	a, b := maphash.String(p.s1, path), maphash.String(p.s2, path)
	for i := range 8 {
		k[i], k[8+i] = byte(a>>(8*i)), byte(b>>(8*i))
	}
	return k
}

func (p *pathSet) check(name string, dir bool) error {
	k := p.key(name)
	if _, dup := p.m[k]; dup {
		return fmt.Errorf("%q: entry written twice", name)
	}
	if parent := path.Dir(name); name != "." && parent != "." && !p.m[p.key(parent)] {
		return fmt.Errorf(errNoParent, name, parent)
	}
	p.m[k] = dir
	return nil
}

// walkCheck is the checker of a source that writes in the order of a
// folder walk (source.WalkOrdered): the root first, then every path after
// the one before it in walkCompare's order, so that a folder's contents
// follow it together. No path can then come twice, and the folder of an
// entry, if written, is among the folders still open: the ancestors of the
// path before it. It holds those (the depth of the tree), not every path;
// a path out of that order is refused.
type walkCheck struct {
	last    string
	started bool
	open    []string // folders, each inside the one before it
}

func (c *walkCheck) check(name string, dir bool) error {
	switch {
	case !c.started:
		c.started = true
	case name == c.last:
		return fmt.Errorf("%q: entry written twice", name)
	case name == "." || (c.last != "." && walkCompare(c.last, name) > 0):
		return fmt.Errorf("%q: written after %q, out of the order of a folder walk", name, c.last)
	}
	for n := len(c.open); n > 0 && !strings.HasPrefix(name, c.open[n-1]+"/"); n-- {
		c.open = c.open[:n-1]
	}
	if parent := path.Dir(name); name != "." && parent != "." &&
		(len(c.open) == 0 || c.open[len(c.open)-1] != parent) {
		return fmt.Errorf(errNoParent, name, parent)
	}
	c.last = name
	if dir && name != "." {
		c.open = append(c.open, name)
	}
	return nil
}

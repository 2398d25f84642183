package backup

import "hash/maphash"

// pathSet is the set of paths a source has written, for the duplicate and
// parent checks, and whether each is a folder. It holds a 128-bit hash of
// each path, not the path: about 20-40 bytes an entry against about 110
// for the path strings (which kept the walk's whole joined path alive). The
// hash is two maphash sums under seeds drawn for the process, so names
// cannot be chosen to collide; an accidental collision (about 2^-88 for a
// million paths) would make the backup fail with "entry written twice",
// never store anything wrong.
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

// get reports whether path was added, and whether as a folder.
func (p *pathSet) get(path string) (dir, ok bool) {
	dir, ok = p.m[p.key(path)]
	return dir, ok
}

// isDir reports whether path was added as a folder.
func (p *pathSet) isDir(path string) bool { return p.m[p.key(path)] }

// add records path.
func (p *pathSet) add(path string, dir bool) { p.m[p.key(path)] = dir }

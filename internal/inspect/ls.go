package inspect

import (
	"fmt"
	"path"
	"strings"

	"github.com/cofferhq/coffer/internal/repo"
)

// ListOptions say what List lists.
type ListOptions struct {
	// Source is the source to list; "" lists every source.
	Source string
	// Path is a path in Source ("/" or "" for its root). A folder lists
	// what is in it; a file lists itself.
	Path string
	// Recursive lists everything below Path rather than what is directly
	// in it.
	Recursive bool
}

// List returns the entries of a snapshot's catalog that opts asks for, in
// catalog order (every folder before what is in it). A database source's
// dump carries its fingerprints.
func List(c *repo.Catalog, opts ListOptions) ([]Entry, error) {
	if opts.Source == "" && strings.Trim(opts.Path, "/") != "" {
		return nil, fmt.Errorf("a path needs a source")
	}
	var scs []*repo.SourceCatalog
	if opts.Source == "" {
		for i := range c.Sources {
			scs = append(scs, &c.Sources[i])
		}
	} else {
		sc, err := findSource(c, c.Snapshot, opts.Source)
		if err != nil {
			return nil, err
		}
		scs = append(scs, sc)
	}
	dir := catalogPath(opts.Path)
	out := []Entry{}
	for _, sc := range scs {
		dumps := dumpEntries(sc, fingerprintsByPart(sc))
		found := dir == "."
		for i := range sc.Entries {
			e := &sc.Entries[i]
			var take bool
			switch {
			case e.Path == dir:
				found = true
				take = e.Type != "dir" // a file lists itself
			case dir == ".":
				take = e.Path != "." && (opts.Recursive || !strings.Contains(e.Path, "/"))
			case strings.HasPrefix(e.Path, dir+"/"):
				found = true
				take = opts.Recursive || path.Dir(e.Path) == dir
			}
			if !take {
				continue
			}
			x := newEntry(sc.Name, e)
			x.Fingerprints = dumps[i]
			out = append(out, x)
		}
		if !found {
			return nil, fmt.Errorf("%w %q in source %s of snapshot %s", ErrNoPath, slashPath(dir), sc.Name, repo.ShortID(c.Snapshot))
		}
	}
	return out, nil
}

// Package inspect looks inside snapshots without restoring them: it lists
// a snapshot's entries (ls), finds paths across snapshots (find), compares
// two snapshots (diff) and sums up a repository (stats).
//
// Everything here reads manifests, private parts and catalogs (the
// catalogs' own packs included), never the packs that hold file contents:
// a catalog says what every file is, its size, times, owner and content
// hash, and a database source's fingerprints. Catalogs are sealed to the
// recipients, so all of it but the repository's object counts needs the
// identity.
package inspect

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cofferhq/coffer/internal/fingerprint"
	"github.com/cofferhq/coffer/internal/repo"
)

var (
	// ErrNoSource is wrapped when a snapshot has no source of the name.
	ErrNoSource = errors.New("no such source")
	// ErrNoPath is wrapped when a source has no entry at a path.
	ErrNoPath = errors.New("no such path")
)

// Entry is one catalog entry as ls, find and diff show it.
type Entry struct {
	Source string `json:"source"`
	// Path is the entry's path in its source with a leading "/" ("/" is
	// the source's root). PathB64 holds its exact bytes (standard base64)
	// when they are not valid UTF-8, which JSON cannot carry.
	Path    string    `json:"path"`
	PathB64 []byte    `json:"path_b64,omitempty"`
	Type    string    `json:"type"`
	Mode    string    `json:"mode"`
	UID     int       `json:"uid"`
	GID     int       `json:"gid"`
	User    string    `json:"user,omitempty"`
	Group   string    `json:"group,omitempty"`
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mtime"`
	Link    string    `json:"link,omitempty"`
	SHA256  string    `json:"sha256,omitempty"`
	// Fingerprints are a database part's row counts and checks, taken in
	// the same database snapshot as its dump; set on the dump (the first
	// file of the part's folder).
	Fingerprints *fingerprint.Fingerprints `json:"fingerprints,omitempty"`
}

// newEntry converts a catalog entry of source src.
func newEntry(src string, e *repo.Entry) Entry {
	out := Entry{Source: src, Path: slashPath(e.Path), Type: e.Type, UID: e.UID, GID: e.GID, User: e.User, Group: e.Group,
		Size: e.Size, ModTime: e.ModTime, Link: e.Link, SHA256: e.SHA256}
	if !utf8.ValidString(e.Path) {
		out.PathB64 = []byte(e.Path)
	}
	out.Mode = modeString(e.Type, e.Mode)
	return out
}

func modeString(typ string, m fs.FileMode) string {
	switch typ {
	case "dir":
		m |= fs.ModeDir
	case "symlink":
		// fs.FileMode writes "L" for a symlink; ls writes "l".
		return "l" + (m & fs.ModePerm).String()[1:]
	}
	return m.String()
}

// slashPath turns a catalog path into the form users give: "/a/b", "/".
func slashPath(p string) string {
	if p == "." {
		return "/"
	}
	return "/" + p
}

// catalogPath turns a path a user gave ("/a/b/", "a/b", "/", "") into a
// catalog path ("a/b", ".").
func catalogPath(p string) string {
	p = strings.Trim(path.Clean("/"+p), "/")
	if p == "" {
		return "."
	}
	return p
}

// fingerprintsByPart returns a source's fingerprints by the folder of the
// part they describe: "." for a database source, "metadb" for the part of
// a composite source stored under that prefix (meta key
// "metadb.fingerprints").
func fingerprintsByPart(sc *repo.SourceCatalog) map[string]*fingerprint.Fingerprints {
	out := map[string]*fingerprint.Fingerprints{}
	for k, raw := range sc.Meta {
		dir := "."
		if k != fingerprint.MetaKey {
			prefix, ok := strings.CutSuffix(k, "."+fingerprint.MetaKey)
			if !ok || prefix == "" {
				continue
			}
			dir = prefix
		}
		var fp fingerprint.Fingerprints
		if err := json.Unmarshal(raw, &fp); err != nil {
			continue
		}
		out[dir] = &fp
	}
	return out
}

// dumpEntries returns, for each part with fingerprints, the index of its
// dump in sc.Entries: the first file directly in the part's folder (a
// database kind writes its dump first).
func dumpEntries(sc *repo.SourceCatalog, fps map[string]*fingerprint.Fingerprints) map[int]*fingerprint.Fingerprints {
	out := map[int]*fingerprint.Fingerprints{}
	if len(fps) == 0 {
		return out
	}
	done := map[string]bool{}
	for i := range sc.Entries {
		e := &sc.Entries[i]
		if e.Type != "file" {
			continue
		}
		dir := path.Dir(e.Path)
		if fp, ok := fps[dir]; ok && !done[dir] {
			done[dir] = true
			out[i] = fp
		}
	}
	return out
}

// sourceNames lists a catalog's sources for an error message.
func sourceNames(c *repo.Catalog) string {
	var names []string
	for _, s := range c.Sources {
		names = append(names, s.Name)
	}
	return strings.Join(names, ", ")
}

// findSource returns the named source of c, or an error that lists those
// it has.
func findSource(c *repo.Catalog, id, name string) (*repo.SourceCatalog, error) {
	sc, ok := c.Source(name)
	if !ok {
		return nil, fmt.Errorf("%w %q in snapshot %s (it has: %s)", ErrNoSource, name, repo.ShortID(id), sourceNames(c))
	}
	return sc, nil
}

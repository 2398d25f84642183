// Package dir is the folder source kind: regular files, folders and symlinks
// (stored as links, never followed) with modes, times and owners. A folder
// is restored by package restore's folder restore, which serves every kind.
package dir

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cofferhq/coffer/source"
)

// Kind is the folder kind's registry entry.
var Kind = source.Kind{
	Name:     "dir",
	Location: "a folder",
	Path:     true,
	New: func(name string, spec source.Spec) (source.Source, error) {
		return &Source{SourceName: name, Path: spec.Location, Exclude: spec.Exclude}, nil
	},
}

// Source backs up a folder.
type Source struct {
	SourceName string
	Path       string
	// Exclude holds globs (path.Match syntax) matched against each entry's
	// path relative to the folder and against its base name.
	Exclude []string
}

func (d *Source) Name() string { return d.SourceName }
func (d *Source) Kind() string { return "dir" }

// WalkOrdered reports that Backup writes in the order of a folder walk.
func (d *Source) WalkOrdered() bool { return true }

// Backup walks the folder in lexical order (see walk).
func (d *Source) Backup(ctx context.Context, w source.Writer) error {
	root, err := filepath.Abs(d.Path)
	if err != nil {
		return err
	}
	fi, err := os.Lstat(root)
	if err != nil {
		return pathError("folder", d.Path, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%q is not a folder", d.Path)
	}
	for _, g := range d.Exclude {
		if _, err := path.Match(g, ""); err != nil {
			return fmt.Errorf("exclude %q: %w", g, err)
		}
	}
	names := &ownerNames{users: map[int]string{}, groups: map[int]string{}}
	ct, _ := w.(source.ChangeTracker)
	start := time.Now().UTC()
	wk := &walk{d: d, ctx: ctx, w: w, ct: ct, names: names, maxHeld: heldMax()}
	err = wk.visit(unix.AT_FDCWD, root, root, ".", true, fi)
	if err != nil {
		return err
	}
	// A folder is read over a span, not at one instant.
	end := time.Now().UTC()
	return w.SetMeta(source.ConsistentKey, source.ConsistentPoint{Time: start, End: &end})
}

// unreadable handles what the walk could not read. What vanished since
// its folder was listed is only a warning: the snapshot misses nothing
// that exists. Anything else (permission denied, an I/O error) is left
// out through the writer's Skipper, which marks the snapshot incomplete;
// a writer without one gets fail, and the source fails.
func unreadable(w source.Writer, rel, op string, err, fail error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	if errors.Is(err, fs.ErrNotExist) {
		return w.Warn("%q: vanished while the folder was read", rel)
	}
	if s, ok := w.(source.Skipper); ok {
		return s.Skip(rel, fmt.Errorf("%s: %w", op, err))
	}
	return fail
}

// file backs up the regular file name in the folder parent (a
// descriptor), whose full path is p.
func (d *Source) file(ctx context.Context, w source.Writer, ct source.ChangeTracker, parent int, name, p string, e source.Entry, info fs.FileInfo) error {
	st := stateOf(info)
	if ct != nil {
		ok, err := ct.Unchanged(e, st)
		if err != nil || ok {
			return err
		}
	}
	f, err := openFileAt(parent, name, p, info.Size())
	if err != nil {
		return unreadable(w, e.Path, "open", err, pathError("read", p, err))
	}
	defer f.close()
	if err := w.WriteFile(ctx, e, f); err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return pathError("read", p, err)
		}
		return err
	}
	after, err := f.stat()
	if err != nil {
		return pathError("stat", p, err)
	}
	if stateOfStat(after) != st {
		return w.Warn("%q: file changed while it was read", e.Path)
	}
	if ct != nil {
		ct.Remember(e.Path, st)
	}
	return nil
}

// pathError says what failed on which path, the path quoted (a file name
// may hold a newline or bytes that are not UTF-8), without the raw path
// that an *fs.PathError would print again.
func pathError(op, p string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Errorf("%s %q: %w", op, p, err)
}

func (d *Source) excluded(rel string) bool {
	base := path.Base(rel)
	for _, g := range d.Exclude {
		if ok, _ := path.Match(g, rel); ok {
			return true
		}
		if ok, _ := path.Match(g, base); ok {
			return true
		}
	}
	return false
}

func stateOf(info fs.FileInfo) source.FileState {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return stateOfStat(st)
	}
	return source.FileState{Size: info.Size(), MTime: info.ModTime().UnixNano()}
}

func stateOfStat(st *syscall.Stat_t) source.FileState {
	return source.FileState{Size: st.Size, MTime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec).UnixNano(),
		CTime: time.Unix(st.Ctim.Sec, st.Ctim.Nsec).UnixNano(), Ino: st.Ino, Dev: uint64(st.Dev)}
}

type ownerNames struct {
	users, groups map[int]string
}

func entryFromInfo(rel string, info fs.FileInfo, names *ownerNames) source.Entry {
	e := source.Entry{Path: rel, Mode: info.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky),
		ModTime: info.ModTime(), Size: info.Size()}
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		e.UID, e.GID = int(st.Uid), int(st.Gid)
		if n, ok := names.users[e.UID]; ok {
			e.User = n
		} else if u, err := user.LookupId(strconv.Itoa(e.UID)); err == nil {
			e.User, names.users[e.UID] = u.Username, u.Username
		} else {
			names.users[e.UID] = ""
		}
		if n, ok := names.groups[e.GID]; ok {
			e.Group = n
		} else if g, err := user.LookupGroupId(strconv.Itoa(e.GID)); err == nil {
			e.Group, names.groups[e.GID] = g.Name, g.Name
		} else {
			names.groups[e.GID] = ""
		}
	}
	return e
}

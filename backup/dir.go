package backup

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
)

// DirSource backs up a folder: regular files, folders and symlinks (stored
// as links, never followed) with modes, times and owners.
type DirSource struct {
	SourceName string
	Path       string
	// Exclude holds globs (path.Match syntax) matched against each entry's
	// path relative to the folder and against its base name.
	Exclude []string
}

func (d *DirSource) Name() string { return d.SourceName }
func (d *DirSource) Kind() string { return "dir" }

// Backup walks the folder in lexical order.
func (d *DirSource) Backup(ctx context.Context, w Writer) error {
	root, err := filepath.Abs(d.Path)
	if err != nil {
		return err
	}
	fi, err := os.Lstat(root)
	if err != nil {
		return fmt.Errorf("folder %s: %w", d.Path, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a folder", d.Path)
	}
	for _, g := range d.Exclude {
		if _, err := path.Match(g, ""); err != nil {
			return fmt.Errorf("exclude %q: %w", g, err)
		}
	}
	names := &ownerNames{users: map[int]string{}, groups: map[int]string{}}
	sw, _ := w.(*sourceWriter)
	return filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("read %s: %w", p, err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if rel != "." && d.excluded(rel) {
			if de.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := de.Info()
		if err != nil {
			return fmt.Errorf("stat %s: %w", p, err)
		}
		e := entryFromInfo(rel, info, names)
		switch {
		case info.IsDir():
			e.Type = TypeDir
			return w.WriteEntry(ctx, e)
		case info.Mode()&fs.ModeSymlink != 0:
			e.Type = TypeSymlink
			if e.Link, err = os.Readlink(p); err != nil {
				return fmt.Errorf("read link %s: %w", p, err)
			}
			return w.WriteEntry(ctx, e)
		case info.Mode().IsRegular():
			e.Type = TypeFile
			return d.file(ctx, w, sw, p, e, info)
		default:
			return w.Warn("%s: skipped %s (not a file, folder or symlink)", rel, info.Mode().Type())
		}
	})
}

func (d *DirSource) file(ctx context.Context, w Writer, sw *sourceWriter, p string, e Entry, info fs.FileInfo) error {
	key := keyOf(info)
	if sw != nil {
		// The index map is shared with the pipeline's workers.
		sw.p.mu.Lock()
		rec, ok := sw.cache.lookup(sw.name, e.Path, key)
		sw.p.mu.Unlock()
		if ok {
			return sw.reuse(e, key, rec)
		}
	}
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("read %s: %w", p, err)
	}
	defer f.Close()
	if err := w.WriteFile(ctx, e, f); err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return fmt.Errorf("read %s: %w", p, pe.Err)
		}
		return err
	}
	after, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", p, err)
	}
	if k := keyOf(after); k != key {
		return w.Warn("%s: file changed while it was read", e.Path)
	}
	if sw != nil {
		sw.cache.remember(sw.name, e.Path, key, sw.files[len(sw.files)-1])
	}
	return nil
}

func (d *DirSource) excluded(rel string) bool {
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

// reuse records an unchanged file from the change cache without reading it.
func (w *sourceWriter) reuse(e Entry, k fileKey, rec fileRec) error {
	if err := w.add(e); err != nil {
		return err
	}
	ce := catalogEntry(e)
	ce.Size, ce.SHA256 = rec.entry.Size, rec.entry.SHA256
	rec.entry = ce
	w.files = append(w.files, &rec)
	w.res.BytesSkipped += ce.Size
	w.p.chunks.Add(int64(len(rec.locs)))
	w.cache.remember(w.name, e.Path, k, &rec)
	return nil
}

func keyOf(info fs.FileInfo) fileKey {
	k := fileKey{Size: info.Size(), MTime: info.ModTime().UnixNano()}
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		k.CTime = time.Unix(st.Ctim.Sec, st.Ctim.Nsec).UnixNano()
		k.Ino, k.Dev = st.Ino, uint64(st.Dev)
	}
	return k
}

type ownerNames struct {
	users, groups map[int]string
}

func entryFromInfo(rel string, info fs.FileInfo, names *ownerNames) Entry {
	e := Entry{Path: rel, Mode: info.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky),
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

package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// tempMarker separates an object's name from the random suffix of the
// temporary file it is written to. Files containing it are never objects.
const tempMarker = ".tmp-"

// StaleAge is the age after which what an interrupted write left behind (a
// local temporary file, an incomplete S3 multipart upload) is removed: no
// write of an object takes that long, so its writer is gone.
const StaleAge = time.Hour

// Local is a Store kept in a directory of the local filesystem. Every object
// is a file (0600) under that directory, in folders (0700) that follow the
// slashes of its name. Writes are atomic: a temporary file is written, synced
// and renamed (or hard-linked for IfNotExists) into place, and the folder is
// synced after. Temporary files that a killed process left are removed by
// List (and CleanStale) once they are older than StaleAge.
type Local struct {
	dir string
}

var (
	_ Store   = (*Local)(nil)
	_ Cleaner = (*Local)(nil)
)

// NewLocal returns a Store in dir. A missing dir is created (0700, with
// its missing parents) by the first Put, never before: a store that is
// only read (snapshots, verify, restore) leaves no trace, and reads as
// empty.
func NewLocal(dir string) (*Local, error) {
	if dir == "" {
		return nil, errors.New("local store: empty directory")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("local store %s: %w", dir, err)
	}
	fi, err := os.Stat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("local store: %w", err)
	case !fi.IsDir():
		return nil, fmt.Errorf("local store %s: not a directory", abs)
	}
	return &Local{dir: abs}, nil
}

// Location returns the file:// URL of the store's directory.
func (l *Local) Location() string {
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(l.dir)}).String()
}

// checkName rejects names that are not clean relative slash paths, and names
// that look like the store's temporary files.
func checkName(name string) error {
	if name == "" {
		return permanent(errors.New("empty object name"))
	}
	if strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/") || path.Clean(name) != name ||
		name == "." || name == ".." || strings.HasPrefix(name, "../") || strings.ContainsRune(name, 0) {
		return permanent(fmt.Errorf("invalid object name %q", name))
	}
	if strings.Contains(path.Base(name), tempMarker) {
		return permanent(fmt.Errorf("invalid object name %q: contains %q", name, tempMarker))
	}
	return nil
}

func (l *Local) path(name string) string {
	return filepath.Join(l.dir, filepath.FromSlash(name))
}

// Put writes the object atomically.
func (l *Local) Put(ctx context.Context, name string, r io.Reader, size int64, opts PutOptions) (err error) {
	if err := checkName(name); err != nil {
		return fmt.Errorf("put: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put %s: %w", name, err)
	}
	if opts.Retention != nil {
		return permanent(fmt.Errorf("put %s: %w: a local folder cannot lock objects", name, ErrLockUnsupported))
	}
	final := l.path(name)
	dir := filepath.Dir(final)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("put %s: %w", name, err)
	}
	f, err := os.CreateTemp(dir, filepath.Base(final)+tempMarker+"*")
	if err != nil {
		return fmt.Errorf("put %s: %w", name, err)
	}
	tmp := f.Name()
	defer func() {
		if f != nil {
			f.Close()
		}
		if err != nil {
			os.Remove(tmp)
		}
	}()

	n, err := io.Copy(f, ctxReader{ctx: ctx, r: r})
	if err != nil {
		return fmt.Errorf("put %s: %w", name, err)
	}
	if size >= 0 && n != size {
		return fmt.Errorf("put %s: got %d bytes, want %d", name, n, size)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("put %s: %w", name, err)
	}
	err = f.Close()
	f = nil
	if err != nil {
		return fmt.Errorf("put %s: %w", name, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put %s: %w", name, err)
	}

	if opts.IfNotExists {
		// link(2) fails with EEXIST instead of replacing: an atomic
		// create-if-absent.
		if err := os.Link(tmp, final); err != nil {
			if errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("put %s: %w", name, ErrExists)
			}
			return fmt.Errorf("put %s: %w", name, err)
		}
		if err := os.Remove(tmp); err != nil {
			return fmt.Errorf("put %s: %w", name, err)
		}
	} else if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("put %s: %w", name, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("put %s: %w", name, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Open returns length bytes of the object from off (to the end if length <
// 0). Reading past the end yields no bytes.
func (l *Local) Open(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	if err := checkName(name); err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	if off < 0 {
		return nil, permanent(fmt.Errorf("open %s: negative offset %d", name, off))
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	f, err := os.Open(l.path(name))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || isNotDir(err) {
			return nil, fmt.Errorf("open %s: %w", name, ErrNotExist)
		}
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("open %s: %w", name, ErrNotExist)
	}
	if off > 0 {
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			f.Close()
			return nil, fmt.Errorf("open %s: %w", name, err)
		}
	}
	if length < 0 {
		return &ctxReadCloser{ctxReader{ctx: ctx, r: f}, f}, nil
	}
	return &ctxReadCloser{ctxReader{ctx: ctx, r: io.LimitReader(f, length)}, f}, nil
}

// Stat describes the object.
func (l *Local) Stat(ctx context.Context, name string) (ObjectInfo, error) {
	if err := checkName(name); err != nil {
		return ObjectInfo{}, fmt.Errorf("stat: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return ObjectInfo{}, fmt.Errorf("stat %s: %w", name, err)
	}
	fi, err := os.Stat(l.path(name))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || isNotDir(err) {
			return ObjectInfo{}, fmt.Errorf("stat %s: %w", name, ErrNotExist)
		}
		return ObjectInfo{}, fmt.Errorf("stat %s: %w", name, err)
	}
	if !fi.Mode().IsRegular() {
		return ObjectInfo{}, fmt.Errorf("stat %s: %w", name, ErrNotExist)
	}
	return ObjectInfo{Name: name, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// List walks the directory in lexical order of object names, skipping
// temporary files.
func (l *Local) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	// Errors from fn come back unchanged; the walk's own are wrapped.
	return l.walk(ctx, l.dir, "", prefix, fn)
}

// walk lists folder dir, whose objects' names start with rel. Entries are
// sorted as the names they produce: a folder d sorts as "d/", so its whole
// subtree lands where its names belong among its siblings.
func (l *Local) walk(ctx context.Context, dir, rel, prefix string, fn func(ObjectInfo) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("list %s: %w", prefix, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed while listing, or a store never written to
		}
		return fmt.Errorf("list %s: %w", prefix, err)
	}
	type entry struct {
		key string
		e   fs.DirEntry
	}
	sorted := make([]entry, 0, len(entries))
	for _, e := range entries {
		key := rel + e.Name()
		if e.IsDir() {
			key += "/"
			if !strings.HasPrefix(key, prefix) && !strings.HasPrefix(prefix, key) {
				continue
			}
		} else {
			if strings.Contains(e.Name(), tempMarker) {
				removeStale(filepath.Join(dir, e.Name()), e, time.Now().Add(-StaleAge))
				continue
			}
			if !e.Type().IsRegular() || !strings.HasPrefix(key, prefix) {
				continue
			}
		}
		sorted = append(sorted, entry{key, e})
	}
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].key < sorted[j].key })
	for _, s := range sorted {
		if s.e.IsDir() {
			if err := l.walk(ctx, filepath.Join(dir, s.e.Name()), s.key, prefix, fn); err != nil {
				return err
			}
			continue
		}
		fi, err := s.e.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // deleted while listing
			}
			return fmt.Errorf("list %s: %w", prefix, err)
		}
		if err := fn(ObjectInfo{Name: s.key, Size: fi.Size(), ModTime: fi.ModTime()}); err != nil {
			return err
		}
	}
	return nil
}

// removeStale removes the temporary file p if it was last written before
// cutoff, and reports whether it did.
func removeStale(p string, e fs.DirEntry, cutoff time.Time) bool {
	if !e.Type().IsRegular() {
		return false
	}
	fi, err := e.Info()
	if err != nil || !fi.ModTime().Before(cutoff) {
		return false
	}
	return os.Remove(p) == nil
}

// CleanStale removes every temporary file in the store last written more
// than olderThan ago.
func (l *Local) CleanStale(ctx context.Context, olderThan time.Duration) (int, error) {
	cutoff := time.Now().Add(-olderThan)
	n := 0
	err := filepath.WalkDir(l.dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !e.IsDir() && strings.Contains(e.Name(), tempMarker) && removeStale(p, e, cutoff) {
			n++
		}
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("clean %s: %w", l.dir, err)
	}
	return n, nil
}

// Delete removes the object; a missing object is not an error.
func (l *Local) Delete(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	p := l.path(name)
	if err := os.Remove(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) || isNotDir(err) {
			return nil
		}
		if errors.Is(err, fs.ErrPermission) {
			return fmt.Errorf("delete %s: %w (%v)", name, ErrDeleteDenied, err)
		}
		return fmt.Errorf("delete %s: %w", name, err)
	}
	if err := syncDir(filepath.Dir(p)); err != nil {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}

// isNotDir reports whether err is ENOTDIR: a folder in the object's name is
// a file, so the object cannot exist.
func isNotDir(err error) bool {
	return errors.Is(err, syscall.ENOTDIR)
}

// ctxReader fails reads once ctx is done, so long copies stop on cancel.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

type ctxReadCloser struct {
	ctxReader
	c io.Closer
}

func (c *ctxReadCloser) Close() error { return c.c.Close() }

package dir

import (
	"context"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/cofferhq/coffer/source"
)

// A walk visits a folder as filepath.WalkDir does (each folder's names in
// byte order, a folder before its contents, the same calls on the same
// errors), but through the descriptor of the folder that holds each
// entry: its names come from getdents(2) on that descriptor, and each
// entry is examined with fstatat(2), opened with openat(2) and its link
// read with readlinkat(2) relative to it. A full path made the kernel look
// every component up again for each file (doc/performance.md, "Unchanged
// second backup, per file").
//
// A path of PATH_MAX bytes or more (with the NUL, the kernel's limit for
// one path) fails as it does through the full path, with ENAMETOOLONG:
// such an entry is left out, as before, and nothing under it is read.
// A restore makes every path whole, so it could not put such a file back.
type walk struct {
	d     *Source
	ctx   context.Context
	w     source.Writer
	ct    source.ChangeTracker
	names *ownerNames
	buf   []byte // for getdents
	// held is how many folder descriptors the walk holds open, one a
	// level; past maxHeld a folder's descriptor is closed once it is
	// listed and its entries go by full path, as before: a tree deeper
	// than the process may open files is still read whole, not left out
	// for EMFILE.
	held, maxHeld int
}

// heldMax is how many folder descriptors a walk holds at most: an eighth
// of the soft limit on open files, at most 64, at least 1.
func heldMax() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 16
	}
	return int(max(1, min(64, lim.Cur/8)))
}

// pathMax is PATH_MAX, the terminating NUL included.
const pathMax = 4096

// dirent is a folder's entry as getdents gave it.
type dirent struct {
	name string
	dir  bool
}

// visit is filepath.WalkDir's walkDir for the entry name in the folder
// parent (a descriptor; for the root, AT_FDCWD and its absolute path),
// whose full path is p; isDir says whether the folder listing gave it as
// a folder, as WalkDir decides whether to descend; info is the root's
// lstat (nil for other entries).
func (wk *walk) visit(parent int, name, p, rel string, isDir bool, info fs.FileInfo) error {
	if err := wk.entry(parent, name, p, rel, isDir, info); err != nil || !isDir {
		if err == filepath.SkipDir && isDir {
			err = nil
		}
		return err
	}
	fd, ents, err := wk.readDir(parent, name, p)
	byPath := false
	if fd >= 0 {
		if wk.held >= wk.maxHeld {
			syscall.Close(fd)
			fd, byPath = unix.AT_FDCWD, true
		} else {
			wk.held++
			defer func(fd int) {
				syscall.Close(fd)
				wk.held--
			}(fd)
		}
	}
	if err != nil {
		// The second call for a folder whose entries could not be
		// read: its entry is stored, its contents are left out.
		if err := unreadable(wk.w, rel, "read folder", err, pathError("read", p, err)); err != nil {
			if err == filepath.SkipDir {
				err = nil
			}
			return err
		}
	}
	for _, de := range ents {
		p1, rel1 := p+"/"+de.name, rel+"/"+de.name
		if strings.HasSuffix(p, "/") {
			p1 = p + de.name
		}
		if rel == "." {
			rel1 = de.name
		}
		parent, name := fd, de.name
		if byPath {
			name = p1
		}
		if err := wk.visit(parent, name, p1, rel1, de.dir, nil); err != nil {
			if err == filepath.SkipDir {
				break
			}
			return err
		}
	}
	return nil
}

// entry is what the walk does with one entry (the WalkDirFunc of a
// successful listing).
func (wk *walk) entry(parent int, name, p, rel string, isDir bool, info fs.FileInfo) error {
	if err := wk.ctx.Err(); err != nil {
		return err
	}
	if rel != "." && wk.d.excluded(rel) {
		if isDir {
			return filepath.SkipDir
		}
		return nil
	}
	if info == nil {
		var err error
		if info, err = lstatAt(parent, name, p); err != nil {
			return unreadable(wk.w, rel, "stat", err, pathError("stat", p, err))
		}
	}
	e := entryFromInfo(rel, info, wk.names)
	switch {
	case info.IsDir():
		e.Type = source.TypeDir
		return wk.w.WriteEntry(wk.ctx, e)
	case info.Mode()&fs.ModeSymlink != 0:
		e.Type = source.TypeSymlink
		var err error
		if e.Link, err = readlinkAt(parent, name, p); err != nil {
			return unreadable(wk.w, rel, "read link", err, pathError("read link", p, err))
		}
		return wk.w.WriteEntry(wk.ctx, e)
	case info.Mode().IsRegular():
		e.Type = source.TypeFile
		return wk.d.file(wk.ctx, wk.w, wk.ct, parent, name, p, e, info)
	default:
		return wk.w.Warn("%q: skipped %s (not a file, folder or symlink)", rel, info.Mode().Type())
	}
}

// readDir opens the folder name in parent and lists it, sorted by name;
// the descriptor is returned open (or -1) for the entries' calls. On an
// error while listing, the entries listed so far come with it, as
// os.ReadDir's do.
func (wk *walk) readDir(parent int, name, p string) (int, []dirent, error) {
	if len(p) >= pathMax {
		return -1, nil, &fs.PathError{Op: "open", Path: p, Err: syscall.ENAMETOOLONG}
	}
	fd, err := retry(func() (int, error) {
		return syscall.Openat(parent, name, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC|syscall.O_NOFOLLOW, 0)
	})
	if err != nil {
		return -1, nil, &fs.PathError{Op: "open", Path: p, Err: err}
	}
	if wk.buf == nil {
		wk.buf = make([]byte, 32<<10)
	}
	var ents []dirent
	for {
		n, err := retry(func() (int, error) { return unix.Getdents(fd, wk.buf) })
		if err != nil {
			err = &fs.PathError{Op: "readdirent", Path: p, Err: err}
			sortDirents(ents)
			return fd, ents, err
		}
		if n <= 0 {
			break
		}
		ents = appendDirents(ents, wk.buf[:n], fd)
	}
	sortDirents(ents)
	return fd, ents, nil
}

func sortDirents(ents []dirent) {
	// Names in one folder are unique.
	slices.SortFunc(ents, func(a, b dirent) int { return strings.Compare(a.name, b.name) })
}

// appendDirents appends the entries of buf, linux_dirent64 records
// (inode, offset, record length, type, name and its NUL), less "." and
// "..". An entry whose type the file system does not give (DT_UNKNOWN) is
// examined as os.ReadDir does: one that vanished meanwhile is left out.
func appendDirents(ents []dirent, buf []byte, fd int) []dirent {
	for len(buf) >= 19 {
		reclen := int(buf[16]) | int(buf[17])<<8
		if reclen < 19 || reclen > len(buf) {
			break
		}
		rec := buf[:reclen]
		buf = buf[reclen:]
		ino := uint64(rec[0]) | uint64(rec[1])<<8 | uint64(rec[2])<<16 | uint64(rec[3])<<24 |
			uint64(rec[4])<<32 | uint64(rec[5])<<40 | uint64(rec[6])<<48 | uint64(rec[7])<<56
		if ino == 0 {
			continue
		}
		nameb := rec[19:]
		if i := slices.Index(nameb, 0); i >= 0 {
			nameb = nameb[:i]
		}
		name := string(nameb)
		if name == "." || name == ".." {
			continue
		}
		typ := rec[18]
		if typ == unix.DT_UNKNOWN {
			var st syscall.Stat_t
			_, err := retry(func() (int, error) {
				return 0, fstatat(fd, name, &st)
			})
			if err == syscall.ENOENT {
				continue
			}
			if err == nil && st.Mode&syscall.S_IFMT == syscall.S_IFDIR {
				typ = unix.DT_DIR
			}
		}
		ents = append(ents, dirent{name: name, dir: typ == unix.DT_DIR})
	}
	return ents
}

// lstatAt is lstat of name in the folder parent, whose full path is p.
func lstatAt(parent int, name, p string) (fs.FileInfo, error) {
	if len(p) >= pathMax {
		return nil, &fs.PathError{Op: "lstat", Path: p, Err: syscall.ENAMETOOLONG}
	}
	fi := &statInfo{name: filepath.Base(p)}
	_, err := retry(func() (int, error) { return 0, fstatat(parent, name, &fi.st) })
	if err != nil {
		return nil, &fs.PathError{Op: "lstat", Path: p, Err: err}
	}
	return fi, nil
}

// readlinkAt is readlink of name in the folder parent, whose full path is p.
func readlinkAt(parent int, name, p string) (string, error) {
	if len(p) >= pathMax {
		return "", &fs.PathError{Op: "readlink", Path: p, Err: syscall.ENAMETOOLONG}
	}
	for size := 128; ; size *= 2 {
		b := make([]byte, size)
		n, err := retry(func() (int, error) { return unix.Readlinkat(parent, name, b) })
		if err != nil {
			return "", &fs.PathError{Op: "readlink", Path: p, Err: err}
		}
		if n < size {
			return string(b[:n]), nil
		}
	}
}

// fstatat is fstatat(2) with AT_SYMLINK_NOFOLLOW, into a syscall.Stat_t
// (what the change tracker's state is made of).
func fstatat(dirfd int, name string, st *syscall.Stat_t) error {
	return unix.Fstatat(dirfd, name, (*unix.Stat_t)(unsafe.Pointer(st)), unix.AT_SYMLINK_NOFOLLOW)
}

// The two Stat_t are the same kernel struct stat.
var (
	_ [unsafe.Sizeof(syscall.Stat_t{}) - unsafe.Sizeof(unix.Stat_t{})]byte
	_ [unsafe.Sizeof(unix.Stat_t{}) - unsafe.Sizeof(syscall.Stat_t{})]byte
)

// retry calls f until it fails with something other than EINTR.
func retry(f func() (int, error)) (int, error) {
	for {
		n, err := f()
		if err != syscall.EINTR {
			return n, err
		}
	}
}

// statInfo is an fs.FileInfo of an lstat, as os.Lstat gives it.
type statInfo struct {
	name string
	st   syscall.Stat_t
}

func (fi *statInfo) Name() string       { return fi.name }
func (fi *statInfo) Size() int64        { return fi.st.Size }
func (fi *statInfo) ModTime() time.Time { return time.Unix(fi.st.Mtim.Unix()) }
func (fi *statInfo) IsDir() bool        { return fi.Mode().IsDir() }
func (fi *statInfo) Sys() any           { return &fi.st }

// Mode converts the mode bits as package os does.
func (fi *statInfo) Mode() fs.FileMode {
	m := fs.FileMode(fi.st.Mode & 0o777)
	switch fi.st.Mode & syscall.S_IFMT {
	case syscall.S_IFBLK:
		m |= fs.ModeDevice
	case syscall.S_IFCHR:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case syscall.S_IFDIR:
		m |= fs.ModeDir
	case syscall.S_IFIFO:
		m |= fs.ModeNamedPipe
	case syscall.S_IFLNK:
		m |= fs.ModeSymlink
	case syscall.S_IFSOCK:
		m |= fs.ModeSocket
	}
	if fi.st.Mode&syscall.S_ISGID != 0 {
		m |= fs.ModeSetgid
	}
	if fi.st.Mode&syscall.S_ISUID != 0 {
		m |= fs.ModeSetuid
	}
	if fi.st.Mode&syscall.S_ISVTX != 0 {
		m |= fs.ModeSticky
	}
	return m
}

package restore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/cofferhq/coffer/internal/pathglob"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/source"
)

// DirOptions tune a folder restore.
type DirOptions struct {
	// Force allows a non-empty target; it is replaced only after the
	// restore succeeded. A partial restore (Filter) never replaces a
	// non-empty target (ErrPartialReplace). A target that holds a mount point is refused all
	// the same: a restore never crosses into another file system.
	Force bool
	// SubPath restores only this path of the source (and what is below).
	SubPath string
	// Filter, if not nil, restores only the entries it selects (matched
	// against their paths in the source, not below SubPath) and the
	// folders that lead to them. Only the packs that hold the selected
	// files are read.
	Filter *pathglob.Filter
	// Workers restore files in parallel; default 4.
	Workers int
	// PreserveOwner restores owners and setuid/setgid bits as recorded.
	// It takes effect only when the process runs as root; otherwise, and
	// without it, everything restored belongs to the restoring user and
	// setuid/setgid bits are cleared (the sticky bit stays).
	PreserveOwner bool
}

// DirResult of a restore.
type DirResult struct {
	Files, Dirs, Symlinks int
	Bytes                 int64
	// OwnersRestored reports that owners and setuid/setgid bits were
	// restored (PreserveOwner, as root).
	OwnersRestored bool
}

var (
	// ErrTargetNotEmpty is returned when the target exists and is not
	// empty.
	ErrTargetNotEmpty = errors.New("target is not empty")
	// ErrTargetSymlink is returned when the target is a symlink: a
	// restore never follows one.
	ErrTargetSymlink = errors.New("target is a symlink")
	// ErrTargetMount is returned when the target is a mount point or holds
	// one: replacing it would cross into another file system.
	ErrTargetMount = errors.New("target holds a mount point")
	// ErrPartialReplace is returned when a partial restore (a Filter) is
	// forced over a non-empty target: replacing the target with the
	// selected files alone would lose everything else in it.
	ErrPartialReplace = errors.New("a partial restore never replaces a folder")
	// ErrPathSwapped is wrapped when a folder inside the restore was
	// replaced (by a symlink, or a mount) while the restore ran.
	ErrPathSwapped = errors.New("a folder on its path was replaced during the restore")
)

// RestoreDir restores a source (or a part of it) into target, all or
// nothing: entries are written into a private staging folder beside the
// target, which is renamed into place only after every file was written
// and verified. On failure the target is as it was.
//
// Everything is created relative to directory handles: the staging folder
// is opened once, and every entry is created beneath it with openat2
// (RESOLVE_BENEATH, RESOLVE_NO_SYMLINKS, RESOLVE_NO_XDEV), so a folder
// swapped for a symlink or a mount while the restore runs cannot redirect
// a write outside it.
func RestoreDir(ctx context.Context, src *Source, target string, opts DirOptions) (*DirResult, error) {
	target = filepath.Clean(target)
	// Without a filter or progress, one pass over the source's entries
	// checks each and writes it (into the staging folder, which becomes
	// the target only once the whole catalog was checked). A filter needs
	// to know what is selected, and progress the total, before anything
	// is written: then a first pass checks them all and finds what is
	// selected, before the target is looked at, and the second restores.
	// Neither holds the entries (design.md, section 14.2).
	sel := newSelection(opts.Filter, opts.SubPath)
	onePass := opts.Filter.Empty() && src.prog == nil
	if !onePass {
		if err := src.each(ctx, sel.scan); err != nil {
			return nil, err
		}
		if err := sel.result(); err != nil {
			return nil, err
		}
	}
	if src.prog != nil {
		// The total of what was selected (Start again updates it).
		src.prog.Start(src.sc.Name, sel.total)
	}
	parentPath, base := filepath.Dir(target), filepath.Base(target)
	if base == "." || base == ".." || base == "/" {
		return nil, fmt.Errorf("cannot restore into %q: name a folder", target)
	}
	made, err := mkdirAll(parentPath)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			// A failed restore leaves no folder it created behind.
			for i := len(made) - 1; i >= 0; i-- {
				unix.Rmdir(made[i])
			}
		}
	}()
	parent, err := unix.Open(parentPath, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %q: %w", parentPath, err)
	}
	defer unix.Close(parent)
	ts, err := inspectTarget(parent, parentPath, base, target, opts.Force)
	if err != nil {
		return nil, err
	}
	if ts.exists && !ts.empty && !opts.Filter.Empty() {
		return nil, fmt.Errorf("%w: %q is not empty, and replacing it would leave only the selected files in it; restore into a new folder and copy from there; nothing was changed",
			ErrPartialReplace, target)
	}
	staging := ".coffer-restore-" + randomSuffix()
	if err := unix.Mkdirat(parent, staging, 0o700); err != nil {
		return nil, fmt.Errorf("create staging folder: %w", err)
	}
	defer func() {
		if !ok {
			removeTree(parent, staging)
		}
	}()
	root, err := unix.Openat(parent, staging, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open staging folder: %w", err)
	}
	t := &tree{fd: root, owner: opts.PreserveOwner && os.Geteuid() == 0, src: src}
	t.probe()
	res, err := writeTree(ctx, src, sel, t, opts.Workers, onePass)
	if err == nil && onePass {
		err = sel.result()
	}
	if err == nil {
		// Make the restored tree durable before it becomes the target.
		if err = unix.Syncfs(root); err != nil {
			err = fmt.Errorf("sync restored files: %w", err)
		}
	}
	if err == nil {
		err = sameDir(parent, staging, root)
	}
	unix.Close(root)
	if err != nil {
		return nil, err
	}
	if err := swapIn(parent, parentPath, staging, base, ts.exists); err != nil {
		return nil, err
	}
	ok = true
	res.OwnersRestored = t.owner
	return res, nil
}

// mkdirAll is os.MkdirAll(dir, 0o700) that returns the folders it
// created, parents first.
func mkdirAll(dir string) ([]string, error) {
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		missing = append(missing, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	var made []string
	for i := len(missing) - 1; i >= 0; i-- {
		err := os.Mkdir(missing[i], 0o700)
		if err == nil {
			made = append(made, missing[i])
			continue
		}
		if errors.Is(err, fs.ErrExist) {
			if st, serr := os.Stat(missing[i]); serr == nil && st.IsDir() {
				continue // made meanwhile, by someone else
			}
		}
		for j := len(made) - 1; j >= 0; j-- {
			unix.Rmdir(made[j])
		}
		return nil, err
	}
	return made, nil
}

func randomSuffix() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

type targetState struct {
	exists, empty bool
}

// inspectTarget looks at the target without following it: a symlink is
// refused, a non-empty folder needs force, and a mount point at or below
// the target is refused before anything is created or moved.
func inspectTarget(parent int, parentPath, base, target string, force bool) (targetState, error) {
	var st unix.Stat_t
	err := unix.Fstatat(parent, base, &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		return targetState{}, nil
	}
	if err != nil {
		return targetState{}, fmt.Errorf("target %q: %w", target, err)
	}
	ts := targetState{exists: true}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		buf := make([]byte, 4096)
		n, _ := unix.Readlinkat(parent, base, buf)
		return ts, fmt.Errorf("%w: %q -> %q; a restore never follows it: give the folder it points to, or remove the link",
			ErrTargetSymlink, target, buf[:max(n, 0)])
	case unix.S_IFDIR:
	default:
		if !force {
			return ts, fmt.Errorf("%w: %q is a file, not a folder", ErrTargetNotEmpty, target)
		}
		return ts, nil
	}
	fd, err := unix.Openat(parent, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return ts, fmt.Errorf("target %q: %w", target, err)
	}
	f := os.NewFile(uintptr(fd), target)
	names, err := f.Readdirnames(1)
	tm, merr := mountOf(fd)
	f.Close()
	if err != nil && err != io.EOF {
		return ts, fmt.Errorf("target %q: %w", target, err)
	}
	ts.empty = len(names) == 0
	if !ts.empty && !force {
		return ts, fmt.Errorf("%w: %q", ErrTargetNotEmpty, target)
	}
	pm, perr := mountOf(parent)
	if merr == nil && perr == nil && tm != pm {
		return ts, fmt.Errorf("%w: %q is itself a mount point; a restore writes beside its target and renames the result into place, which would cross into another file system; nothing was changed",
			ErrTargetMount, target)
	}
	if ts.empty {
		return ts, nil
	}
	mounts, err := mountsBelow(parentPath, base)
	if err != nil {
		// Without the mount table the old tree's removal still stops
		// at every mount point (removeTree).
		slog.Warn("cannot read the mount table; mount points below the target are checked while removing it", "err", err)
	}
	if len(mounts) > 0 {
		return ts, fmt.Errorf("%w: %q is mounted inside %q (another file system); a forced restore never replaces or removes what is mounted inside its target; nothing was changed",
			ErrTargetMount, mounts[0], target)
	}
	return ts, nil
}

// mountsBelow lists the mount points strictly below parentPath/base,
// from /proc/self/mountinfo.
func mountsBelow(parentPath, base string) ([]string, error) {
	real, err := filepath.EvalSymlinks(parentPath)
	if err != nil {
		return nil, err
	}
	real, err = filepath.Abs(filepath.Join(real, base))
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		if mp := unescapeMount(f[4]); strings.HasPrefix(mp, real+"/") {
			out = append(out, mp)
		}
	}
	sort.Strings(out)
	return out, nil
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space, and
// so on).
func unescapeMount(s string) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// mountID identifies the mount (and device) a file is on.
type mountID struct {
	mnt          uint64
	major, minor uint32
}

func mountOf(fd int) (mountID, error) {
	var sx unix.Statx_t
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, &sx); err != nil {
		return mountID{}, err
	}
	id := mountID{major: sx.Dev_major, minor: sx.Dev_minor}
	if sx.Mask&unix.STATX_MNT_ID != 0 {
		id.mnt = sx.Mnt_id
	}
	return id, nil
}

// sameDir checks that parent/name is still the folder open as fd.
func sameDir(parent int, name string, fd int) error {
	var a, b unix.Stat_t
	if err := unix.Fstatat(parent, name, &a, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("staging folder: %w", err)
	}
	if err := unix.Fstat(fd, &b); err != nil {
		return fmt.Errorf("staging folder: %w", err)
	}
	if a.Dev != b.Dev || a.Ino != b.Ino {
		return fmt.Errorf("staging folder %q was replaced during the restore", name)
	}
	return nil
}

// swapIn renames staging to target; an existing target is moved aside
// first and removed only after the rename succeeded. All names are in the
// folder open as parent.
func swapIn(parent int, parentPath, staging, base string, exists bool) error {
	if !exists {
		if err := unix.Renameat(parent, staging, parent, base); err != nil {
			return fmt.Errorf("move restored tree into place: %w", err)
		}
		return unix.Fsync(parent)
	}
	old := ".coffer-old-" + randomSuffix()
	if err := unix.Renameat(parent, base, parent, old); err != nil {
		return fmt.Errorf("move old target aside: %w", err)
	}
	if err := unix.Renameat(parent, staging, parent, base); err != nil {
		unix.Renameat(parent, old, parent, base)
		return fmt.Errorf("move restored tree into place: %w", err)
	}
	if err := unix.Fsync(parent); err != nil {
		return err
	}
	// The restore has succeeded; a leftover old tree is only untidy.
	kept, err := removeTree(parent, old)
	switch {
	case len(kept) > 0:
		slog.Warn("restored; the replaced tree was kept because it holds a mount point (another file system), which a restore never removes",
			"path", filepath.Join(parentPath, old), "mount", filepath.Join(parentPath, old, kept[0]))
	case err != nil:
		slog.Warn("restored; could not remove the replaced tree", "path", filepath.Join(parentPath, old), "err", err)
	}
	return nil
}

// removeTree removes dir/name and everything below it without following
// symlinks and without crossing into another file system: a mount point
// (a folder on another mount, or a file that cannot be unlinked because
// something is mounted on it) is left in place with its parents, and
// returned in kept (relative to name).
func removeTree(dir int, name string) (kept []string, err error) {
	var st unix.Stat_t
	if err := unix.Fstatat(dir, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, nil
		}
		return nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil, unix.Unlinkat(dir, name, 0)
	}
	fd, err := unix.Openat(dir, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	mnt, err := mountOf(fd)
	unix.Close(fd)
	if err != nil {
		return nil, err
	}
	err = removeBelow(dir, name, ".", mnt, &kept)
	return kept, err
}

func removeBelow(dir int, name, rel string, mnt mountID, kept *[]string) error {
	err := unix.Unlinkat(dir, name, 0)
	switch {
	case err == nil, errors.Is(err, unix.ENOENT):
		return nil
	case errors.Is(err, unix.EBUSY):
		*kept = append(*kept, rel)
		return nil
	case !errors.Is(err, unix.EISDIR):
		return err
	}
	fd, err := unix.Openat(dir, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), rel)
	defer f.Close()
	if m, err := mountOf(fd); err != nil {
		return err
	} else if m != mnt {
		*kept = append(*kept, rel)
		return nil
	}
	// Make sure the folder can be read and emptied (a restored read-only
	// folder, or one without search permission).
	unix.Fchmod(fd, 0o700)
	names, err := f.Readdirnames(-1)
	if err != nil {
		return err
	}
	n := len(*kept)
	var first error
	for _, c := range names {
		if err := removeBelow(fd, c, path.Join(rel, c), mnt, kept); err != nil && first == nil {
			first = err
		}
	}
	if first != nil || len(*kept) > n {
		return first
	}
	return unix.Unlinkat(dir, name, unix.AT_REMOVEDIR)
}

// ErrNothingSelected is returned when a filter selects no entry.
var ErrNothingSelected = errors.New("nothing matches")

// tree creates entries beneath one open folder (the staging folder).
type tree struct {
	fd int
	// owner: restore owners and setuid/setgid bits.
	owner bool
	// src is told the progress (Source.SetProgress).
	src *Source
	// keeps is the mode bits a file created in the tree keeps of those
	// it is created with (probe): the umask, or a default ACL inherited
	// from the target's folder, take the others away.
	keeps uint32
}

// probe finds which mode bits a file created in the tree keeps: it
// creates a file asking for 0777 and looks at what it got. The umask
// and a default ACL (which then replaces the umask) each clear bits of
// the mode asked at creation, the same bits whatever the mode, and every
// folder of the tree is created by the restore beneath the staging folder,
// so inherits the same default ACL. A file whose mode keeps within these
// bits is created with it; any other gets an explicit fchmod. If the
// probe fails, every file gets one.
func (t *tree) probe() {
	t.keeps = probeKeeps(func(mode uint32) (uint32, bool) {
		name := ".coffer-probe-" + randomSuffix()
		fd, err := unix.Openat(t.fd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, mode)
		if err != nil {
			return 0, false
		}
		var st unix.Stat_t
		serr := unix.Fstat(fd, &st)
		unix.Close(fd)
		if unix.Unlinkat(t.fd, name, 0) != nil || serr != nil {
			return 0, false
		}
		return st.Mode & 0o777, true
	})
}

// probeKeeps is what probe finds with create, which creates a file asking
// for a mode and returns the mode it got. A file system that gives a new
// file bits it did not ask for (one whose inherited NFSv4 ACL sets the
// mode whatever the create asks, say) keeps nothing: a file created
// 0000 must get 0000, or every file gets an explicit fchmod, as it would
// otherwise keep the bits it was given.
func probeKeeps(create func(mode uint32) (uint32, bool)) uint32 {
	all, ok := create(0o777)
	if !ok {
		return 0
	}
	if none, ok := create(0); !ok || none != 0 {
		return 0
	}
	return all
}

// resolve keeps every path beneath the staging folder, on its file system,
// through no symlink.
const resolve = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_XDEV

// noOpenat2 is set once openat2 reported ENOSYS (Linux before 5.6).
var noOpenat2 atomic.Bool

// open opens rel beneath the tree's root. Every component is a folder the
// restore created: a symlink or a mount point on the way is refused
// (ErrPathSwapped).
func (t *tree) open(rel string, flags int, mode uint32) (int, error) {
	flags |= unix.O_CLOEXEC | unix.O_NOFOLLOW
	if !noOpenat2.Load() {
		how := &unix.OpenHow{Flags: uint64(flags), Mode: uint64(mode), Resolve: resolve}
		for i := 0; ; i++ {
			fd, err := unix.Openat2(t.fd, rel, how)
			if (err == unix.EINTR || err == unix.EAGAIN) && i < 16 {
				continue
			}
			if err == unix.ENOSYS {
				noOpenat2.Store(true)
				break
			}
			return fd, swapped(err)
		}
	}
	// Without openat2: one component at a time, never following a link.
	dir := t.fd
	elems := strings.Split(rel, "/")
	for _, el := range elems[:len(elems)-1] {
		fd, err := unix.Openat(dir, el, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if dir != t.fd {
			unix.Close(dir)
		}
		if err != nil {
			return -1, swapped(err)
		}
		dir = fd
	}
	fd, err := unix.Openat(dir, elems[len(elems)-1], flags, mode)
	if dir != t.fd {
		unix.Close(dir)
	}
	return fd, swapped(err)
}

// swapped names what ELOOP, ENOTDIR, EXDEV and ENOENT mean here: a
// folder the restore created is no longer that folder (or is gone,
// moved away).
func swapped(err error) error {
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.EXDEV) || errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("%w (%v)", ErrPathSwapped, err)
	}
	return err
}

// parent opens rel's folder (the root itself for a top-level entry) and
// returns it with rel's base name; close it with t.release.
func (t *tree) parent(rel string) (int, string, error) {
	dir, base := path.Split(rel)
	if dir == "" {
		return t.fd, base, nil
	}
	fd, err := t.open(strings.TrimSuffix(dir, "/"), unix.O_PATH|unix.O_DIRECTORY, 0)
	return fd, base, err
}

func (t *tree) release(fd int) {
	if fd != t.fd {
		unix.Close(fd)
	}
}

func (t *tree) mkdir(rel string) error {
	pfd, base, err := t.parent(rel)
	if err != nil {
		return err
	}
	defer t.release(pfd)
	return unix.Mkdirat(pfd, base, 0o700)
}

func (t *tree) symlink(e *repo.Entry) error {
	pfd, base, err := t.parent(e.Path)
	if err != nil {
		return err
	}
	defer t.release(pfd)
	if err := unix.Symlinkat(e.Link, pfd, base); err != nil {
		return err
	}
	if t.owner {
		unix.Fchownat(pfd, base, e.UID, e.GID, unix.AT_SYMLINK_NOFOLLOW)
	}
	return unix.UtimesNanoAt(pfd, base, times(e), unix.AT_SYMLINK_NOFOLLOW)
}

// setMeta applies owner (with PreserveOwner, as root), mode and times to
// the open file or folder fd. Setuid and setgid bits come back only with
// the owner they were recorded with. created says fd was created with
// e's permission bits: the mode is then set only when the create did not
// keep all of them (t.keeps) or there are setuid, setgid or sticky bits.
func (t *tree) setMeta(fd int, e *repo.Entry, created bool) {
	mode := e.Mode
	owned := false
	if t.owner {
		owned = unix.Fchown(fd, e.UID, e.GID) == nil
	}
	if !owned {
		mode &^= fs.ModeSetuid | fs.ModeSetgid
	}
	if perm := posixMode(mode); !created || perm&^0o777 != 0 || perm&^t.keeps != 0 {
		unix.Fchmod(fd, perm)
	}
	unix.UtimesNanoAt(fd, "", times(e), unix.AT_EMPTY_PATH)
}

func times(e *repo.Entry) []unix.Timespec {
	ts := unix.NsecToTimespec(e.ModTime.UnixNano())
	return []unix.Timespec{ts, ts}
}

// posixMode converts permission, setuid, setgid and sticky bits of an
// fs.FileMode to st_mode bits.
func posixMode(m fs.FileMode) uint32 {
	out := uint32(m & fs.ModePerm)
	if m&fs.ModeSetuid != 0 {
		out |= unix.S_ISUID
	}
	if m&fs.ModeSetgid != 0 {
		out |= unix.S_ISGID
	}
	if m&fs.ModeSticky != 0 {
		out |= unix.S_ISVTX
	}
	return out
}

// restoreFile creates e and writes it. A small file costs four system
// calls: openat2 (beneath the staging folder, created with its final
// mode), write, futimens, close. Its mode needs an fchmod only when the
// umask or a default ACL would not keep it (tree.probe), or it has
// setuid, setgid or sticky bits (which a chown clears, and which a
// create may drop).
func restoreFile(ctx context.Context, s *Snapshot, cr *repo.ChunkReader, e *repo.Entry, t *tree) error {
	mode := e.Mode
	if !t.owner {
		mode &^= fs.ModeSetuid | fs.ModeSetgid
	}
	perm := posixMode(mode)
	fd, err := t.open(e.Path, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, perm&0o777)
	if err != nil {
		if ierr := listedTwice(e.Path, err); ierr != nil {
			return ierr
		}
		return fmt.Errorf("create %q: %w", e.Path, err)
	}
	w := &fdWriter{fd: fd, path: e.Path}
	if t.src != nil && t.src.prog != nil {
		w.src = t.src
	}
	if err := copyChunks(ctx, s, cr, e, w, false); err != nil {
		unix.Close(fd)
		return err
	}
	t.setMeta(fd, e, true)
	if err := unix.Close(fd); err != nil {
		return fmt.Errorf("write %q: %w", e.Path, err)
	}
	if t.src != nil {
		t.src.add(0, 1)
	}
	return nil
}

// fdWriter writes to a file descriptor (no os.File: that asks the
// descriptor's flags, a system call a file) and tells a source's progress
// the bytes written, if src is set.
type fdWriter struct {
	fd   int
	path string
	src  *Source
}

func (w *fdWriter) Write(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := unix.Write(w.fd, p[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		if m == 0 {
			return n, io.ErrShortWrite
		}
		n += m
	}
	if w.src != nil {
		w.src.add(int64(n), 0)
	}
	return n, nil
}

// copyChunks writes e's verified contents to w. Each chunk is checked
// against its keyed id as it is read (repo.ChunkReader), and the
// catalog, which lists the chunks in order, is signed and checked: the
// contents are the file's. wholeHash also checks the file's SHA-256 as
// the catalog states it (verify --decrypt), which a restore leaves out
// (design.md, section 12).
func copyChunks(ctx context.Context, s *Snapshot, cr *repo.ChunkReader, e *repo.Entry, w io.Writer, wholeHash bool) error {
	var h hash.Hash
	if wholeHash {
		h = sha256.New()
	}
	var n int64
	for _, c := range e.Chunks {
		data, err := cr.Read(ctx, c.Pack, c)
		if err != nil {
			return err
		}
		if h != nil {
			h.Write(data)
		}
		n += int64(len(data))
		if _, err := w.Write(data); err != nil {
			return fmt.Errorf("write %q: %w", e.Path, err)
		}
	}
	if n != e.Size || (h != nil && hex.EncodeToString(h.Sum(nil)) != e.SHA256) {
		return &repo.IntegrityError{Object: s.Manifest.Catalog.Name, Err: fmt.Errorf("%q: content does not match the catalog", e.Path)}
	}
	return nil
}

var _ source.TreeRestorer = (*Source)(nil)

// RestoreTree implements source.TreeRestorer with RestoreDir.
func (s *Source) RestoreTree(ctx context.Context, dir, target string) (int, int64, error) {
	if _, err := os.Lstat(target); err == nil {
		return 0, 0, fmt.Errorf("%w: %q", ErrTargetNotEmpty, target)
	}
	res, err := RestoreDir(ctx, s, target, DirOptions{SubPath: dir})
	if err != nil {
		return 0, 0, err
	}
	return res.Files, res.Bytes, nil
}

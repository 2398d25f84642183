package restore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/source"
)

// DirOptions tune a folder restore.
type DirOptions struct {
	// Force allows a non-empty target; it is replaced only after the
	// restore succeeded.
	Force bool
	// SubPath restores only this path of the source (and what is below).
	SubPath string
	// Workers restore files in parallel; default 4.
	Workers int
}

// DirResult of a restore.
type DirResult struct {
	Files, Dirs, Symlinks int
	Bytes                 int64
}

// ErrTargetNotEmpty is returned when the target exists and is not empty.
var ErrTargetNotEmpty = errors.New("target is not empty")

// RestoreDir restores a source (or a part of it) into target, all or
// nothing: entries are written into a private staging folder beside the
// target, which is renamed into place only after every file was written
// and verified. On failure the target is as it was.
func RestoreDir(ctx context.Context, src *Source, target string, opts DirOptions) (*DirResult, error) {
	target = filepath.Clean(target)
	entries, err := selectEntries(src.sc.Entries, opts.SubPath)
	if err != nil {
		return nil, err
	}
	empty, exists, err := targetState(target)
	if err != nil {
		return nil, err
	}
	if exists && !empty && !opts.Force {
		return nil, fmt.Errorf("%w: %s", ErrTargetNotEmpty, target)
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
		return nil, err
	}
	staging := filepath.Join(filepath.Dir(target), ".coffer-restore-"+randomSuffix())
	if err := os.Mkdir(staging, 0o700); err != nil {
		return nil, fmt.Errorf("create staging folder: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(staging)
		}
	}()
	res, err := writeTree(ctx, src.s, entries, staging, opts.Workers)
	if err != nil {
		return nil, err
	}
	// Make the restored tree durable before it becomes the target.
	if err := syncFS(staging); err != nil {
		return nil, fmt.Errorf("sync restored files: %w", err)
	}
	if err := swapIn(staging, target, exists); err != nil {
		return nil, err
	}
	ok = true
	return res, nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

func syncFS(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Syncfs(int(f.Fd()))
}

func randomSuffix() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func targetState(target string) (empty, exists bool, err error) {
	fi, err := os.Lstat(target)
	if errors.Is(err, fs.ErrNotExist) {
		return true, false, nil
	}
	if err != nil {
		return false, false, err
	}
	if !fi.IsDir() {
		return false, true, nil
	}
	des, err := os.ReadDir(target)
	if err != nil {
		return false, true, err
	}
	return len(des) == 0, true, nil
}

// swapIn renames staging to target; an existing target is moved aside
// first and removed only after the rename succeeded.
func swapIn(staging, target string, exists bool) error {
	if !exists {
		if err := os.Rename(staging, target); err != nil {
			return err
		}
		return syncDir(filepath.Dir(target))
	}
	old := filepath.Join(filepath.Dir(target), ".coffer-old-"+randomSuffix())
	if err := os.Rename(target, old); err != nil {
		return fmt.Errorf("move old target aside: %w", err)
	}
	if err := os.Rename(staging, target); err != nil {
		os.Rename(old, target)
		return fmt.Errorf("move restored tree into place: %w", err)
	}
	if err := syncDir(filepath.Dir(target)); err != nil {
		return err
	}
	// The restore has succeeded; a leftover old tree is only untidy.
	if err := os.RemoveAll(old); err != nil {
		slog.Warn("restored; could not remove the replaced tree", "path", old, "err", err)
	}
	return nil
}

// selectEntries returns the entries under sub, rebased so that sub becomes
// the root. A file sub becomes a single entry named by its base name.
func selectEntries(all []repo.Entry, sub string) ([]repo.Entry, error) {
	sub = strings.Trim(path.Clean("/"+sub), "/")
	if sub == "" {
		sub = "."
	}
	var out []repo.Entry
	for _, e := range all {
		if err := repo.CheckPath(e.Path); err != nil {
			return nil, &repo.IntegrityError{Object: "catalog", Err: err}
		}
		switch {
		case sub == ".":
			out = append(out, e)
		case e.Path == sub:
			if e.Type == "dir" {
				e.Path = "."
			} else {
				e.Path = path.Base(sub)
			}
			out = append(out, e)
		case strings.HasPrefix(e.Path, sub+"/"):
			e.Path = strings.TrimPrefix(e.Path, sub+"/")
			out = append(out, e)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no such path %q in the snapshot", "/"+sub)
	}
	// Every entry's parent must be a folder listed before it: then no
	// entry can be created through a symlink (symlinks are never
	// parents) or in a folder the catalog does not describe.
	dirs := map[string]bool{".": true}
	for _, e := range out {
		if parent := path.Dir(e.Path); e.Path != "." && !dirs[parent] {
			return nil, &repo.IntegrityError{Object: "catalog", Err: fmt.Errorf("%s: its folder %s is not a folder listed before it", e.Path, parent)}
		}
		if e.Type == "dir" {
			dirs[e.Path] = true
		}
	}
	return out, nil
}

func writeTree(ctx context.Context, s *Snapshot, entries []repo.Entry, root string, workers int) (*DirResult, error) {
	if workers <= 0 {
		workers = 4
	}
	res := &DirResult{}
	var dirs, files, links []repo.Entry
	for _, e := range entries {
		switch e.Type {
		case "dir":
			dirs = append(dirs, e)
		case "file":
			files = append(files, e)
		case "symlink":
			links = append(links, e)
		default:
			return nil, &repo.IntegrityError{Object: "catalog", Err: fmt.Errorf("%s: unknown type %q", e.Path, e.Type)}
		}
	}
	// Folders first (owner-only until their modes are set at the end),
	// then files, then symlinks: no link exists while anything is written
	// below it, so no write can be redirected through a link.
	for _, d := range dirs {
		if d.Path == "." {
			continue
		}
		if err := os.Mkdir(filepath.Join(root, filepath.FromSlash(d.Path)), 0o700); err != nil {
			return nil, fmt.Errorf("create folder %s: %w", d.Path, err)
		}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// Files go to workers in runs of neighbours (catalog order is pack
	// order), so a worker's read-ahead window and age's cached 64 KiB
	// chunk serve many small files with one read and one decryption.
	jobs := make(chan []repo.Entry)
	var wg sync.WaitGroup
	var mu sync.Mutex
	readers := make([]*repo.ChunkReader, workers)
	for i := range readers {
		cr, err := s.Repo.NewChunkReader(ctx, s.Manifest)
		if err != nil {
			return nil, err
		}
		readers[i] = cr
	}
	for _, cr := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for run := range jobs {
				for _, e := range run {
					if ctx.Err() != nil {
						break
					}
					if err := restoreFile(ctx, s, cr, e, root); err != nil {
						cancel(err)
						break
					}
					mu.Lock()
					res.Files++
					res.Bytes += e.Size
					mu.Unlock()
				}
			}
		}()
	}
	const runBytes, runFiles = 4 << 20, 256
send:
	for i := 0; i < len(files); {
		j, n := i, int64(0)
		for j < len(files) && j-i < runFiles && (j == i || n+files[j].Size <= runBytes) {
			n += files[j].Size
			j++
		}
		select {
		case jobs <- files[i:j]:
		case <-ctx.Done():
			break send
		}
		i = j
	}
	close(jobs)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	for _, l := range links {
		p := filepath.Join(root, filepath.FromSlash(l.Path))
		if err := os.Symlink(l.Link, p); err != nil {
			return nil, fmt.Errorf("create symlink %s: %w", l.Path, err)
		}
		setMeta(p, l, true)
		res.Symlinks++
	}
	// Folder modes and times last, deepest first, so that writing inside
	// a folder does not change its time and read-only folders can be
	// filled.
	sort.Slice(dirs, func(i, j int) bool { return dirs[i].Path > dirs[j].Path })
	for _, d := range dirs {
		p := root
		if d.Path != "." {
			p = filepath.Join(root, filepath.FromSlash(d.Path))
		}
		setMeta(p, d, false)
		res.Dirs++
	}
	return res, nil
}

func restoreFile(ctx context.Context, s *Snapshot, cr *repo.ChunkReader, e repo.Entry, root string) error {
	p := filepath.Join(root, filepath.FromSlash(e.Path))
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", e.Path, err)
	}
	if err := copyChunks(ctx, s, cr, &e, f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", e.Path, err)
	}
	setMeta(p, e, false)
	return nil
}

// copyChunks writes e's verified contents to w.
func copyChunks(ctx context.Context, s *Snapshot, cr *repo.ChunkReader, e *repo.Entry, w io.Writer) error {
	h := sha256.New()
	var n int64
	for _, c := range e.Chunks {
		data, err := cr.Read(ctx, c.Pack, c)
		if err != nil {
			return err
		}
		h.Write(data)
		n += int64(len(data))
		if _, err := w.Write(data); err != nil {
			return fmt.Errorf("write %s: %w", e.Path, err)
		}
	}
	if n != e.Size || hex.EncodeToString(h.Sum(nil)) != e.SHA256 {
		return &repo.IntegrityError{Object: s.Manifest.Catalog.Name, Err: fmt.Errorf("%s: content does not match the catalog", e.Path)}
	}
	return nil
}

// setMeta applies owner (when permitted), mode and times. Failures to
// chown as a non-root user are expected and ignored.
func setMeta(p string, e repo.Entry, link bool) {
	if os.Geteuid() == 0 {
		os.Lchown(p, e.UID, e.GID)
	}
	if !link {
		os.Chmod(p, e.Mode&fs.ModePerm|modeBits(e.Mode))
	}
	ts := []unix.Timespec{unix.NsecToTimespec(e.ModTime.UnixNano()), unix.NsecToTimespec(e.ModTime.UnixNano())}
	unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
}

func modeBits(m fs.FileMode) fs.FileMode {
	var out fs.FileMode
	if m&fs.ModeSetuid != 0 {
		out |= fs.ModeSetuid
	}
	if m&fs.ModeSetgid != 0 {
		out |= fs.ModeSetgid
	}
	if m&fs.ModeSticky != 0 {
		out |= fs.ModeSticky
	}
	return out
}

var _ source.TreeRestorer = (*Source)(nil)

// RestoreTree implements source.TreeRestorer with RestoreDir.
func (s *Source) RestoreTree(ctx context.Context, dir, target string) (int, int64, error) {
	if _, err := os.Lstat(target); err == nil {
		return 0, 0, fmt.Errorf("%w: %s", ErrTargetNotEmpty, target)
	}
	res, err := RestoreDir(ctx, s, target, DirOptions{SubPath: dir})
	if err != nil {
		return 0, 0, err
	}
	return res.Files, res.Bytes, nil
}

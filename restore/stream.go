package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"path"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/cofferhq/coffer/internal/pathglob"
	"github.com/cofferhq/coffer/internal/progress"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/source"
)

// OpenSource opens the named source of m for a restore that streams its
// catalog (repo.CatalogStream): it reads the catalog up to the source's
// name, kind and metadata, and holds none of its entries. The stream stays
// open where it stopped: the first reader of the entries (RestoreDir,
// Size, or the first of Entries, Entry, Open and Catalog, which read and
// hold them) goes on from there, so a restore without a filter or
// progress reads the catalog once; later ones read it again, one entry at
// a time. It needs the identity.
func OpenSource(ctx context.Context, r *repo.Repository, m *repo.Manifest, name string) (*Source, error) {
	cs, err := r.OpenCatalog(ctx, m)
	if err != nil {
		return nil, err
	}
	h, err := toSource(cs, m, name, true)
	if err != nil {
		cs.Close()
		return nil, err
	}
	return &Source{s: &Snapshot{Repo: r, Manifest: m},
		sc: &repo.SourceCatalog{Name: h.Name, Kind: h.Kind, Meta: h.Meta}, streamed: true, held: cs}, nil
}

// toSource reads cs up to the header of the source named name; its
// entries come next. listing: a source not found is named as a
// missing source with the list of the others, not as an integrity error.
func toSource(cs *repo.CatalogStream, m *repo.Manifest, name string, listing bool) (*repo.SourceHeader, error) {
	var names []string
	for {
		h, err := cs.NextSource()
		if err == io.EOF {
			if !listing {
				return nil, &repo.IntegrityError{Object: m.Catalog.Name, Err: fmt.Errorf("source %q is gone from the catalog", name)}
			}
			return nil, fmt.Errorf("snapshot %s has no source %q (it has: %s)", repo.ShortID(m.ID), name, strings.Join(names, ", "))
		}
		if err != nil {
			return nil, err
		}
		if h.Name == name {
			return h, nil
		}
		names = append(names, h.Name)
	}
}

// stream returns the source's catalog stream positioned at its entries:
// the one OpenSource left open, the first time, or a new one.
func (s *Source) stream(ctx context.Context) (*repo.CatalogStream, error) {
	s.mu.Lock()
	cs := s.held
	s.held = nil
	s.mu.Unlock()
	if cs != nil {
		return cs, nil
	}
	cs, err := s.s.Repo.OpenCatalog(ctx, s.s.Manifest)
	if err != nil {
		return nil, err
	}
	if _, err := toSource(cs, s.s.Manifest, s.sc.Name, false); err != nil {
		cs.Close()
		return nil, err
	}
	return cs, nil
}

// each calls fn with a copy of every entry of the source, in catalog
// order. A streamed source (OpenSource) reads them from the catalog,
// checked as repo.CatalogStream checks them, and then reads the rest of
// the catalog: an error from it (the source's or the catalog's SHA-256)
// comes after fn saw every entry.
func (s *Source) each(ctx context.Context, fn func(*repo.Entry) error) error {
	if !s.streamed {
		for i := range s.sc.Entries {
			e := s.sc.Entries[i]
			if err := fn(&e); err != nil {
				return err
			}
		}
		return nil
	}
	cs, err := s.stream(ctx)
	if err != nil {
		return err
	}
	defer cs.Close()
	for {
		var e repo.Entry
		err := cs.NextEntry(&e)
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if err := fn(&e); err != nil {
			return err
		}
	}
	for {
		if _, err := cs.NextSource(); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
	}
}

// load reads and holds a streamed source's entries, once.
func (s *Source) load(ctx context.Context) error {
	if !s.streamed {
		return nil
	}
	s.once.Do(func() {
		var entries []repo.Entry
		s.loadErr = s.each(ctx, func(e *repo.Entry) error {
			entries = append(entries, *e)
			return nil
		})
		if s.loadErr != nil {
			return
		}
		s.sc.Entries = entries
		s.byPath = make(map[string]*repo.Entry, len(entries))
		for i := range entries {
			s.byPath[entries[i].Path] = &entries[i]
		}
	})
	return s.loadErr
}

// selection is what a folder restore writes of a source: with a filter,
// the entries it selects and the folders that lead to them; then those
// under sub, rebased so that sub becomes the root. scan is the first pass
// over the entries; keep and rebase decide in the second.
type selection struct {
	f   *pathglob.Filter
	sub string // "." for the whole source
	// check is the first pass's checker.
	check *repo.EntryChecker
	// needed holds the folders that lead to an entry the filter selects.
	needed map[string]bool
	// some: the filter selects an entry (the root is never selected).
	some bool
	// inSub counts the entries under sub, selected or not; picked the
	// selected ones.
	inSub, picked int
	// atSub counts the entries at sub itself: the checker does not hold
	// files' paths, and a file and a folder both at sub would be
	// rebased to different names, so no creation would find the second.
	atSub int
	total progress.Counts
}

func newSelection(f *pathglob.Filter, sub string) *selection {
	sub = strings.Trim(path.Clean("/"+sub), "/")
	if sub == "" {
		sub = "."
	}
	return &selection{f: f, sub: sub, check: repo.NewEntryChecker(false), needed: map[string]bool{}}
}

// selects reports whether the filter selects the entry at p.
func (s *selection) selects(p string) bool {
	return s.f.Empty() || (p != "." && s.f.Selects(p))
}

// keep reports whether the restore writes the entry at p (before
// rebasing): selected, or a folder leading to a selected entry.
func (s *selection) keep(p string) bool {
	if s.f.Empty() {
		return true
	}
	if p == "." {
		return s.some
	}
	return s.needed[p] || s.f.Selects(p)
}

// rebase reports whether e is under sub and makes sub its root. A file
// sub becomes a single entry named by its base name.
func (s *selection) rebase(e *repo.Entry) bool {
	switch {
	case s.sub == ".":
		return true
	case e.Path == s.sub:
		if e.Type == "dir" {
			e.Path = "."
		} else {
			e.Path = path.Base(s.sub)
		}
		return true
	case strings.HasPrefix(e.Path, s.sub+"/"):
		e.Path = strings.TrimPrefix(e.Path, s.sub+"/")
		return true
	}
	return false
}

// scan is the first pass: it checks every entry of the source (see
// repo.EntryChecker: every entry's parent must be a folder listed before
// it, and no folder may be listed twice, so that no entry can be created
// through a symlink or in a folder the catalog does not describe), and
// counts what is selected.
func (s *selection) scan(e *repo.Entry) error {
	_, err := s.scanOne(e)
	return err
}

// scanOne is scan that rebases e (see rebase) and reports whether it is
// under sub: a restore in one pass (no filter) writes what it checked.
func (s *selection) scanOne(e *repo.Entry) (bool, error) {
	if err := s.check.Check(e); err != nil {
		return false, &repo.IntegrityError{Object: "catalog", Err: err}
	}
	if s.sub != "." && e.Path == s.sub {
		if s.atSub++; s.atSub > 1 {
			return false, &repo.IntegrityError{Object: "catalog", Err: fmt.Errorf("%q is listed twice", e.Path)}
		}
	}
	selected := s.selects(e.Path)
	if !s.f.Empty() && selected {
		s.some = true
		for d := path.Dir(e.Path); d != "." && !s.needed[d]; d = path.Dir(d) {
			s.needed[d] = true
		}
	}
	if !s.rebase(e) {
		return false, nil
	}
	s.inSub++
	if selected {
		s.picked++
		if e.Type == string(source.TypeFile) {
			s.total.Bytes += e.Size
			s.total.Files++
		}
	}
	return true, nil
}

// result says why nothing would be restored, after the scan.
func (s *selection) result() error {
	noSuch := fmt.Errorf("no such path %q in the snapshot", "/"+strings.TrimPrefix(s.sub, "."))
	if s.f.Empty() {
		if s.inSub == 0 {
			return noSuch
		}
		return nil
	}
	if s.picked > 0 {
		return nil
	}
	if s.some && s.inSub == 0 {
		return noSuch // no such path, filter or not
	}
	where := ""
	if s.sub != "." {
		where = fmt.Sprintf(" under %q", "/"+s.sub)
	}
	return fmt.Errorf("%w: no file or folder%s is selected by the patterns", ErrNothingSelected, where)
}

// listedTwice names what EEXIST means in the staging folder, which the
// restore made and only it writes in: the catalog lists the path twice.
func listedTwice(p string, err error) error {
	if errors.Is(err, unix.EEXIST) {
		return &repo.IntegrityError{Object: "catalog", Err: fmt.Errorf("%q is listed twice", p)}
	}
	return nil
}

// A run of files ends once its chunks hold runStored bytes as stored, or
// at runFiles files. Two runs that meet inside a 64 KiB age chunk both
// fetch it, so runs are long: at most 64 KiB more in 1.5 MiB, 4%.
// runFiles bounds the entries a run holds (4 runs and 1 being gathered,
// a few hundred bytes an entry).
const (
	runStored = 3 << 19
	runFiles  = 2048
	// runWindow is each worker's read-ahead, in plaintext bytes: a run's
	// chunks in one pack fit in one window (they are not in pack order:
	// the backup's two pipelines interleave neighbouring files).
	runWindow = 2 << 20
)

// testHookFilesWritten, if set, runs once every file was written, before
// symlinks and folder modes.
var testHookFilesWritten func()

// chunksOf yields the chunks of a run's files, in order.
func chunksOf(run []repo.Entry) iter.Seq[repo.ChunkRef] {
	return func(yield func(repo.ChunkRef) bool) {
		for i := range run {
			for _, c := range run[i].Chunks {
				if !yield(c) {
					return
				}
			}
		}
	}
}

// writeTree is the second pass: it reads the source's entries again and
// restores what sel keeps. With onePass (no filter) it is the only pass:
// it checks and selects each entry (sel.scanOne) before it writes it, and
// the caller asks sel.result afterwards. Folders are created as they come, files are
// handed to the workers in runs as they come, symlinks are created after
// every file, and folder modes and times are set last, deepest first. It
// holds the folders and symlinks (for those last two steps) and at most a
// run of files per worker, never the list of files.
func writeTree(ctx context.Context, src *Source, sel *selection, t *tree, workers int, onePass bool) (*DirResult, error) {
	if workers <= 0 {
		workers = 4
	}
	s := src.s
	res := &DirResult{}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// Files go to workers in runs of neighbours (catalog order is pack
	// order), so that a worker's window serves many small files with one
	// read and one decryption. Each worker's reader is told its run's
	// chunks (Plan) and reads no further ahead than they reach, nor more
	// than runWindow: the read-ahead of a restore is bounded whatever the
	// number of packs, and only the age chunk where two runs meet is
	// fetched twice (design.md, section 14.2).
	jobs := make(chan []repo.Entry)
	var wg sync.WaitGroup
	var mu sync.Mutex
	readers := make([]*repo.ChunkReader, workers)
	for i := range readers {
		cr, err := s.Repo.NewChunkReader(ctx, s.Manifest)
		if err != nil {
			return nil, err
		}
		cr.SetWindow(runWindow)
		// restoreFile writes each chunk before it reads the next.
		cr.ReuseBuffers()
		readers[i] = cr
	}
	for _, cr := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for run := range jobs {
				cr.Plan(chunksOf(run))
				for i := range run {
					if ctx.Err() != nil {
						break
					}
					e := &run[i]
					if err := restoreFile(ctx, s, cr, e, t); err != nil {
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
	var (
		dirs, links []repo.Entry
		run         []repo.Entry
		runN        int64 // stored bytes of the run's chunks
	)
	send := func() error {
		if len(run) == 0 {
			return nil
		}
		select {
		case jobs <- run:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		run, runN = nil, 0
		return nil
	}
	// Folders first (owner-only until their modes are set at the end),
	// then files, then symlinks: no link exists while anything is written
	// below it, so no write can be redirected through a link.
	check := repo.NewEntryChecker(false)
	err := src.each(ctx, func(e *repo.Entry) error {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if onePass {
			if in, err := sel.scanOne(e); err != nil || !in {
				return err
			}
		} else {
			if err := check.Check(e); err != nil {
				return &repo.IntegrityError{Object: "catalog", Err: err}
			}
			if !sel.keep(e.Path) || !sel.rebase(e) {
				return nil
			}
		}
		switch e.Type {
		case "dir":
			if e.Path != "." {
				if err := t.mkdir(e.Path); err != nil {
					if ierr := listedTwice(e.Path, err); ierr != nil {
						return ierr
					}
					return fmt.Errorf("create folder %q: %w", e.Path, err)
				}
			}
			dirs = append(dirs, *e)
		case "file":
			if len(run) == runFiles || runN >= runStored {
				if err := send(); err != nil {
					return err
				}
			}
			run = append(run, *e)
			for _, c := range e.Chunks {
				runN += c.Length
			}
		case "symlink":
			links = append(links, *e)
		default:
			return &repo.IntegrityError{Object: "catalog", Err: fmt.Errorf("%q: unknown type %q", e.Path, e.Type)}
		}
		return nil
	})
	if err == nil {
		err = send()
	}
	close(jobs)
	wg.Wait()
	if cause := context.Cause(ctx); cause != nil {
		return nil, cause
	}
	if err != nil {
		return nil, err
	}
	if testHookFilesWritten != nil {
		testHookFilesWritten()
	}
	for i := range links {
		if err := t.symlink(&links[i]); err != nil {
			if ierr := listedTwice(links[i].Path, err); ierr != nil {
				return nil, ierr
			}
			return nil, fmt.Errorf("create symlink %q: %w", links[i].Path, err)
		}
		res.Symlinks++
	}
	// Folder modes and times last, deepest first, so that writing inside
	// a folder does not change its time and read-only folders can be
	// filled.
	sort.Slice(dirs, func(i, j int) bool { return dirs[i].Path > dirs[j].Path })
	for i := range dirs {
		d := &dirs[i]
		if d.Path == "." {
			t.setMeta(t.fd, d, false)
		} else {
			fd, err := t.open(d.Path, unix.O_RDONLY|unix.O_DIRECTORY, 0)
			if err != nil {
				return nil, fmt.Errorf("folder %q: %w", d.Path, err)
			}
			t.setMeta(fd, d, false)
			unix.Close(fd)
		}
		res.Dirs++
	}
	return res, nil
}

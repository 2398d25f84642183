// Package restore is coffer's snapshot reader: it resolves and verifies
// manifests, decrypts catalogs, streams verified file contents (a
// source.Reader for each source, which the kinds' restores read), restores
// any source's files into a folder all-or-nothing, and verifies
// repositories at three depths.
package restore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cofferhq/coffer/internal/progress"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/source"
)

// ErrNoMeta is wrapped when a source has no metadata under a key.
var ErrNoMeta = source.ErrNoMeta

// ErrNoSnapshot is wrapped when a snapshot spec matches nothing.
var ErrNoSnapshot = errors.New("no such snapshot")

// Resolve finds the manifest that spec names: a full id, a unique prefix,
// or "latest" (the newest before before, if before is not zero, among the
// manifests not dated in the future). It drops the warnings ResolveWarn
// returns.
func Resolve(ctx context.Context, r *repo.Repository, spec string, before time.Time) (*repo.Manifest, error) {
	m, _, err := ResolveWarn(ctx, r, spec, before)
	return m, err
}

// ResolveWarn is Resolve, and also returns warnings for the user: manifests
// dated more than repo.MaxClockSkew in the future (which "latest" skips),
// and snapshots that a manifest it read names as seen but that no longer
// exist (deleted).
func ResolveWarn(ctx context.Context, r *repo.Repository, spec string, before time.Time) (*repo.Manifest, []string, error) {
	if spec == "" {
		return nil, nil, errors.New("no snapshot given")
	}
	now := time.Now()
	if spec == "latest" {
		return LatestWarn(ctx, r, Filter{Before: before})
	}
	spec = strings.ToLower(spec)
	ids, err := r.SnapshotIDs(ctx)
	if err != nil {
		return nil, nil, err
	}
	var match []string
	for _, id := range ids {
		if strings.HasPrefix(id, spec) {
			match = append(match, id)
		}
	}
	switch len(match) {
	case 0:
		if forgotten, _, ferr := r.Forgotten(ctx); ferr == nil {
			for id, t := range forgotten {
				if strings.HasPrefix(id, spec) && len(spec) >= 8 {
					return nil, nil, fmt.Errorf("%w %q: it was forgotten on %s (policy: %s)", ErrNoSnapshot, spec,
						t.Time.UTC().Format(time.RFC3339), t.Policy)
				}
			}
		}
		return nil, nil, fmt.Errorf("%w %q", ErrNoSnapshot, spec)
	case 1:
	default:
		return nil, nil, fmt.Errorf("snapshot prefix %q is ambiguous (%d matches)", spec, len(match))
	}
	m, err := r.ReadManifest(ctx, match[0])
	if err != nil {
		return nil, nil, err
	}
	present, err := presentIDs(ctx, r, ids)
	if err != nil {
		return nil, nil, err
	}
	var warns []string
	for _, d := range Deletions([]*repo.Manifest{m}, present) {
		warns = append(warns, d.String()+" (run coffer verify)")
	}
	if m.InFuture(now) {
		warns = append(warns, futureMessage(m))
	}
	return m, warns, nil
}

// presentIDs returns ids and the snapshots forgotten on purpose (a
// tombstone that verifies): a manifest that names either in its seen list
// names no deletion.
func presentIDs(ctx context.Context, r *repo.Repository, ids []string) (map[string]bool, error) {
	forgotten, _, err := r.Forgotten(ctx)
	if err != nil {
		return nil, err
	}
	present := make(map[string]bool, len(ids)+len(forgotten))
	for _, id := range ids {
		present[id] = true
	}
	for id := range forgotten {
		present[id] = true
	}
	return present, nil
}

// Deletion is a snapshot that manifests name as seen but that does not
// exist and has no tombstone that verifies: it was deleted by someone
// other than forget (see repo.Tombstone).
type Deletion struct {
	ID string
	// NamedBy are the snapshots whose manifests name it.
	NamedBy []string
}

func (d Deletion) String() string {
	short := make([]string, len(d.NamedBy))
	for i, id := range d.NamedBy {
		short[i] = repo.ShortID(id)
	}
	return fmt.Sprintf("snapshot %s was deleted: named by %s", repo.ShortID(d.ID), strings.Join(short, ", "))
}

// Deletions returns the snapshots that some manifest of ms names in its
// Seen and that present (the ids of every listed manifest, damaged ones
// included) lacks, sorted by id.
func Deletions(ms []*repo.Manifest, present map[string]bool) []Deletion {
	by := map[string][]string{}
	for _, m := range ms {
		for _, id := range m.Seen {
			if !present[id] {
				by[id] = append(by[id], m.ID)
			}
		}
	}
	out := make([]Deletion, 0, len(by))
	for id, named := range by {
		sort.Strings(named)
		out = append(out, Deletion{ID: id, NamedBy: named})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// futureMessage says that m is dated beyond the clock-skew bound.
func futureMessage(m *repo.Manifest) string {
	return fmt.Sprintf("snapshot %s is dated %s, more than %s in the future (a wrong clock on its backup host, or a host key in other hands)",
		repo.ShortID(m.ID), m.Time.UTC().Format(time.RFC3339), repo.MaxClockSkew)
}

// Filter selects snapshots. Tags are in the private part, sealed to the
// recipients: a Tag filter needs it.
type Filter struct {
	Source string    // holds a source of this name
	Tag    string    // carries this tag
	Before time.Time // taken before this time
}

// Match reports whether m, with its private part p (nil when unknown),
// passes the filter. Without p no snapshot has a tag.
func (f Filter) Match(m *repo.Manifest, p *repo.Private) bool {
	if !f.Before.IsZero() && !m.Time.Before(f.Before) {
		return false
	}
	if f.Tag != "" && (p == nil || !slices.Contains(p.Tags, f.Tag)) {
		return false
	}
	if f.Source != "" && !slices.ContainsFunc(m.Sources, func(s repo.ManifestSource) bool { return s.Name == f.Source }) {
		return false
	}
	return true
}

// Latest returns the newest snapshot that f matches ("latest",
// "latest:SOURCE"). It drops the warnings LatestWarn returns.
func Latest(ctx context.Context, r *repo.Repository, f Filter) (*repo.Manifest, error) {
	m, _, err := LatestWarn(ctx, r, f)
	return m, err
}

// LatestWarn is Latest, and also returns the warnings of ResolveWarn:
// deleted snapshots, and manifests dated in the future, which it skips.
func LatestWarn(ctx context.Context, r *repo.Repository, f Filter) (*repo.Manifest, []string, error) {
	ms, bad, err := r.Manifests(ctx)
	if err != nil {
		return nil, nil, err
	}
	if len(bad) > 0 {
		// A damaged manifest may be the newest snapshot: "latest"
		// would silently mean an older one.
		return nil, nil, fmt.Errorf("cannot tell which snapshot is latest: %w (name a snapshot id, and run coffer verify)", bad[0])
	}
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.ID
	}
	present, err := presentIDs(ctx, r, ids)
	if err != nil {
		return nil, nil, err
	}
	var warns []string
	for _, d := range Deletions(ms, present) {
		warns = append(warns, d.String()+" (run coffer verify)")
	}
	now := time.Now()
	for i := len(ms) - 1; i >= 0; i-- {
		m := ms[i]
		var p *repo.Private
		if f.Tag != "" {
			if p, err = r.ReadPrivate(ctx, m); err != nil {
				return nil, warns, err
			}
		}
		if !f.Match(m, p) {
			continue
		}
		if m.InFuture(now) {
			warns = append(warns, futureMessage(m)+": not taken as latest (run coffer verify)")
			continue
		}
		return m, warns, nil
	}
	var what []string
	if f.Source != "" {
		what = append(what, fmt.Sprintf("holds source %q", f.Source))
	}
	if f.Tag != "" {
		what = append(what, fmt.Sprintf("has tag %q", f.Tag))
	}
	if !f.Before.IsZero() {
		what = append(what, "was taken before "+f.Before.Format(time.RFC3339))
	}
	switch {
	case f.Source == "" && f.Tag == "" && !f.Before.IsZero():
		return nil, warns, fmt.Errorf("%w before %s", ErrNoSnapshot, f.Before.Format(time.RFC3339))
	case len(ms) == 0 || len(what) == 0:
		return nil, warns, fmt.Errorf("%w: the repository has no snapshots", ErrNoSnapshot)
	}
	return nil, warns, fmt.Errorf("%w: none of the %d snapshots %s", ErrNoSnapshot, len(ms), strings.Join(what, " and "))
}

// Snapshot is a snapshot opened for reading: its verified manifest and
// decrypted catalog.
type Snapshot struct {
	Repo     *repo.Repository
	Manifest *repo.Manifest
	Catalog  *repo.Catalog
}

// Load decrypts m's catalog. It needs the identity.
func Load(ctx context.Context, r *repo.Repository, m *repo.Manifest) (*Snapshot, error) {
	c, err := r.ReadCatalog(ctx, m)
	if err != nil {
		return nil, err
	}
	return &Snapshot{Repo: r, Manifest: m, Catalog: c}, nil
}

// Source returns a reader of the named source.
func (s *Snapshot) Source(name string) (*Source, error) {
	sc, ok := s.Catalog.Source(name)
	if !ok {
		var names []string
		for _, x := range s.Catalog.Sources {
			names = append(names, x.Name)
		}
		return nil, fmt.Errorf("snapshot %s has no source %q (it has: %s)", repo.ShortID(s.Manifest.ID), name, strings.Join(names, ", "))
	}
	byPath := make(map[string]*repo.Entry, len(sc.Entries))
	for i := range sc.Entries {
		byPath[sc.Entries[i].Path] = &sc.Entries[i]
	}
	return &Source{s: s, sc: sc, byPath: byPath}, nil
}

// Source reads one source of a snapshot. It implements source.Reader.
type Source struct {
	s      *Snapshot
	sc     *repo.SourceCatalog
	byPath map[string]*repo.Entry
	prog   progress.Reporter
	// streamed: opened by OpenSource; sc holds no entries until load.
	streamed bool
	once     sync.Once
	loadErr  error
	// held is the catalog stream OpenSource left at the source's
	// entries, for the first reader of them (stream).
	mu   sync.Mutex
	held *repo.CatalogStream
}

// SetProgress makes the source tell r what it restores (the source's
// name is the part): bytes as they are read and checked, and a file once
// it is complete, by RestoreDir, RestoreTree and Open alike. The caller
// calls r.Start (with Size) and r.Finish.
func (s *Source) SetProgress(r progress.Reporter) { s.prog = r }

// Size is the bytes and files of the source's files at path (and below
// it; "" or "." for the whole source): the total of a restore.
//
// A streamed source (OpenSource) reads its entries for it, without
// holding them; if that fails, the counts are zero.
func (s *Source) Size(path string) progress.Counts {
	var n progress.Counts
	path = strings.Trim(path, "/")
	s.each(context.Background(), func(e *repo.Entry) error {
		if e.Type != string(source.TypeFile) {
			return nil
		}
		if path != "" && path != "." && e.Path != path && !strings.HasPrefix(e.Path, path+"/") {
			return nil
		}
		n.Bytes += e.Size
		n.Files++
		return nil
	})
	return n
}

// add reports progress, if anyone listens.
func (s *Source) add(bytes, files int64) {
	if s.prog != nil {
		s.prog.Add(s.sc.Name, progress.Counts{Bytes: bytes, Files: files})
	}
}

var _ source.Reader = (*Source)(nil)

func (s *Source) Name() string { return s.sc.Name }
func (s *Source) Kind() string { return s.sc.Kind }

// Catalog returns the source's catalog. A streamed source (OpenSource)
// reads and holds its entries first; if that fails, it has none.
func (s *Source) Catalog() *repo.SourceCatalog {
	s.load(context.Background())
	return s.sc
}

func (s *Source) Meta(key string, v any) error {
	b, ok := s.sc.Meta[key]
	if !ok {
		return fmt.Errorf("source %s: %w %q", s.sc.Name, ErrNoMeta, key)
	}
	return json.Unmarshal(b, v)
}

func (s *Source) Entries() []source.Entry {
	s.load(context.Background())
	out := make([]source.Entry, len(s.sc.Entries))
	for i, e := range s.sc.Entries {
		out[i] = source.Entry{Path: e.Path, Type: source.EntryType(e.Type), Mode: e.Mode, ModTime: e.ModTime,
			UID: e.UID, GID: e.GID, User: e.User, Group: e.Group, Size: e.Size, Link: e.Link}
	}
	return out
}

// Entry returns the catalog entry at path.
func (s *Source) Entry(path string) (*repo.Entry, bool) {
	s.load(context.Background())
	e, ok := s.byPath[path]
	return e, ok
}

func (s *Source) Open(ctx context.Context, path string) (io.ReadCloser, error) {
	e, err := s.file(ctx, path)
	if err != nil {
		return nil, err
	}
	fr, err := newFileReader(ctx, s.s, e, 2)
	if err != nil {
		return nil, err
	}
	fr.src = s
	return fr, nil
}

// file returns the catalog entry of the file at path.
func (s *Source) file(ctx context.Context, path string) (*repo.Entry, error) {
	if err := s.load(ctx); err != nil {
		return nil, err
	}
	e, ok := s.byPath[strings.TrimPrefix(path, "/")]
	if !ok {
		return nil, fmt.Errorf("source %s has no file %q", s.sc.Name, path)
	}
	if e.Type != string(source.TypeFile) {
		return nil, fmt.Errorf("%q is a %s, not a file", path, e.Type)
	}
	return e, nil
}

// fileReader streams one file's verified contents, fetching and decrypting
// up to ahead chunks while the caller consumes earlier ones. One chunk
// reader reads them in order, told the file's chunks (Plan): its windows
// lie on a grid of the file's extents in each pack and serve the chunks
// that follow and, within its budget, those a backup stored before them.
// Two readers taking every other chunk each fetched and decrypted the
// same windows, and windows reaching forward from each chunk fetched
// again the chunks stored before it: 1.4-1.9x the packs' bytes.
type fileReader struct {
	ctx     context.Context
	cancel  context.CancelFunc
	e       *repo.Entry
	results []chan chunkResult
	next    int
	buf     []byte
	h       hash.Hash
	read    int64
	err     error
	sem     chan struct{}
	// src, when set, is told the progress.
	src *Source
}

type chunkResult struct {
	data []byte
	err  error
}

// fileBudget is the plaintext a fileReader's windows hold: two of the
// 4 MiB read-ahead, enough for the chunks a backup stored out of order
// (1.01-1.06x the packs' bytes fetched; 16 MiB, the default, gave
// 1.01-1.02x). A database restore from dump blocks has a reader in
// every run: with 16 MiB each, two runs put the peak RSS of a 256 MB
// restore at 83-86 MiB; with 8, 62-65 (doc/performance.md).
const fileBudget = 8 << 20

func newFileReader(ctx context.Context, s *Snapshot, e *repo.Entry, ahead int) (*fileReader, error) {
	ctx, cancel := context.WithCancel(ctx)
	fr := &fileReader{ctx: ctx, cancel: cancel, e: e, h: sha256.New(), results: make([]chan chunkResult, len(e.Chunks))}
	for i := range fr.results {
		fr.results[i] = make(chan chunkResult, 1)
	}
	if len(e.Chunks) == 0 {
		return fr, nil
	}
	cr, err := s.Repo.NewChunkReader(ctx, s.Manifest)
	if err != nil {
		cancel()
		return nil, err
	}
	cr.Plan(slices.Values(e.Chunks))
	cr.SetBudget(fileBudget)
	// A dispatcher hands out chunk indexes in order, holding one slot of
	// sem per chunk until the reader consumes it: the chunks in flight are
	// always the lowest unconsumed ones, so memory stays at about `ahead`
	// chunks and the reader never waits on a chunk that was not handed out.
	sem := make(chan struct{}, ahead)
	jobs := make(chan int)
	go func() {
		defer close(jobs)
		for i := range e.Chunks {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			select {
			case jobs <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() {
		for i := range jobs {
			c := e.Chunks[i]
			data, err := cr.Read(ctx, c.Pack, c)
			fr.results[i] <- chunkResult{data, err}
		}
	}()
	fr.sem = sem
	return fr, nil
}

func (fr *fileReader) Read(p []byte) (int, error) {
	for len(fr.buf) == 0 {
		if fr.err != nil {
			return 0, fr.err
		}
		if fr.next == len(fr.e.Chunks) {
			fr.err = fr.finish()
			if fr.err == nil {
				fr.err = io.EOF
			}
			return 0, fr.err
		}
		var res chunkResult
		select {
		case res = <-fr.results[fr.next]:
		case <-fr.ctx.Done():
			fr.err = fr.ctx.Err()
			return 0, fr.err
		}
		<-fr.sem
		fr.next++
		if res.err != nil {
			fr.err = res.err
			return 0, fr.err
		}
		if fr.h != nil { // nil for a range (OpenRanges): no whole-file hash
			fr.h.Write(res.data)
		}
		fr.read += int64(len(res.data))
		if fr.src != nil {
			fr.src.add(int64(len(res.data)), 0)
		}
		fr.buf = res.data
	}
	n := copy(p, fr.buf)
	fr.buf = fr.buf[n:]
	return n, nil
}

func (fr *fileReader) finish() error {
	if fr.read != fr.e.Size {
		return &repo.IntegrityError{Object: "catalog", Err: fmt.Errorf("%q: read %d bytes, catalog says %d", fr.e.Path, fr.read, fr.e.Size)}
	}
	if got := hex.EncodeToString(fr.h.Sum(nil)); got != fr.e.SHA256 {
		return &repo.IntegrityError{Object: "catalog", Err: fmt.Errorf("%q: content hash does not match", fr.e.Path)}
	}
	if fr.src != nil {
		fr.src.add(0, 1)
	}
	return nil
}

func (fr *fileReader) Close() error {
	fr.cancel()
	return nil
}

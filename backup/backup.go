// Package backup makes coffer snapshots: sources (folders, databases)
// stream their entries through a content-defined chunking, deduplicating,
// compressing and encrypting pipeline into packs, and a snapshot is
// published by writing its signed manifest last.
package backup

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"sort"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/restic/chunker"

	"github.com/cofferhq/coffer/internal/keys"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/storage"
)

// Options of one backup.
type Options struct {
	// Repo must be opened with the signing key (repo.OpenOptions.Signing).
	Repo    *repo.Repository
	Signing *keys.SigningKey
	Sources []Source
	Tags    []string
	Host    string
	// Uploads is the number of packs encrypted and uploaded in parallel.
	Uploads int
	// Workers hash and compress chunks; default GOMAXPROCS.
	Workers int
	// Strict turns warnings (a file changed while read) into errors.
	Strict bool
	// CacheDir holds the change cache; empty disables it.
	CacheDir string
	Logger   *slog.Logger
}

// Result of a backup.
type Result struct {
	Manifest *repo.Manifest
	Warnings []string
	// BytesSkipped counts file bytes not read because the change cache
	// said the files were unchanged.
	BytesSkipped int64
}

// ErrManifestWrite is wrapped when writing the manifest failed: on S3 a
// write whose answer was lost may still have landed, so the snapshot may
// exist.
var ErrManifestWrite = errors.New("write manifest")

// ErrStrict is wrapped by the error a Writer.Warn returns under --strict.
var ErrStrict = errors.New("warning is an error under --strict")

// Run makes one snapshot of every source. It publishes the snapshot by
// writing its manifest last; if any source fails, nothing is published.
func Run(ctx context.Context, opts Options) (*Result, error) {
	start := time.Now()
	r := opts.Repo
	if opts.Signing == nil {
		return nil, errors.New("no signing key: a backup signs its manifest (--signing-key or COFFER_SIGNING_KEY)")
	}
	// Never publish a manifest that the repository's own key did not sign:
	// readers would refuse it, and the secrets would come from another key.
	if !opts.Signing.Public().Equal(r.Pinned) {
		return nil, &repo.KeyMismatchError{Repo: r.Pinned.String(), Ours: opts.Signing.Public().String()}
	}
	if len(opts.Sources) == 0 {
		return nil, errors.New("nothing to back up: name at least one source")
	}
	seen := map[string]bool{}
	for _, s := range opts.Sources {
		if seen[s.Name()] {
			return nil, fmt.Errorf("source name %q used twice", s.Name())
		}
		seen[s.Name()] = true
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Host == "" {
		opts.Host, _ = os.Hostname()
	}
	recipients, err := r.Recipients()
	if err != nil {
		return nil, err
	}
	secrets, err := r.Secrets(ctx)
	if err != nil {
		return nil, err
	}
	pol, err := r.Polynomial(ctx)
	if err != nil {
		return nil, err
	}
	idFunc, err := r.ChunkIDFunc(ctx)
	if err != nil {
		return nil, err
	}
	packs, known, err := loadIndex(ctx, r.Store, secrets.IndexIdentity)
	if err != nil {
		return nil, err
	}
	log.Debug("index loaded", "packs", len(packs), "chunks", len(known))

	cache := loadCache(opts.CacheDir, r.Config.ID, secrets, known, log)

	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	uploads := opts.Uploads
	if uploads <= 0 {
		uploads = 2
	}
	cp := r.Config.Chunker
	p := newPipeline(ctx, r.Store, recipients, idFunc, known, int(r.Config.Packs.TargetSize), int(cp.MaxSize), workers, uploads)

	res := &Result{}
	id := repo.NewID()
	var sources []*sourceWriter
	for _, src := range opts.Sources {
		sw := &sourceWriter{p: p, name: src.Name(), kind: src.Kind(), pol: pol, params: cp,
			strict: opts.Strict, inflight: 2*workers + 2, meta: map[string]json.RawMessage{},
			cache: cache, res: res, log: log}
		log.Info("backing up source", "source", src.Name(), "kind", src.Kind())
		err := src.Backup(p.ctx, sw)
		if ferr := sw.flush(); err == nil {
			err = ferr
		}
		if err != nil {
			if perr := p.err(); perr != nil && !errors.Is(perr, context.Canceled) {
				err = perr
			}
			p.abort(err)
			return nil, fmt.Errorf("source %s: %w", src.Name(), err)
		}
		if err := p.err(); err != nil {
			p.abort(err)
			return nil, fmt.Errorf("source %s: %w", src.Name(), err)
		}
		sources = append(sources, sw)
	}
	if err := p.finish(); err != nil {
		return nil, err
	}

	// Everything is stored; describe it. The catalog goes through the
	// pipeline like a file, so that an unchanged tree's catalog
	// deduplicates against yesterday's; it is encoded as it is chunked,
	// never held whole in memory.
	used := map[string]int64{} // packs the snapshot references
	packOf := func(s *packSlot) string {
		used[s.sha] = s.size
		return s.sha
	}
	m := &repo.Manifest{Version: repo.Version, ID: id, Repo: r.Config.ID, Time: start.UTC(),
		Host: opts.Host, Tags: opts.Tags}
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(writeCatalog(pw, id, sources, packOf, m))
	}()
	pc := newPipeline(ctx, r.Store, recipients, idFunc, p.known, int(r.Config.Packs.TargetSize), int(cp.MaxSize), workers, uploads)
	cw := &sourceWriter{p: pc, name: "catalog", pol: pol, params: cp, inflight: 2*workers + 2, res: res, log: log}
	crec := &fileRec{}
	err = cw.chunk(ctx, pr, crec)
	pr.CloseWithError(errors.New("catalog not stored")) // unblocks the encoder after a failure
	if ferr := cw.flush(); err == nil {
		err = ferr
	}
	if err != nil {
		pc.abort(err)
		return nil, fmt.Errorf("store catalog: %w", err)
	}
	if err := pc.finish(); err != nil {
		return nil, fmt.Errorf("store catalog: %w", err)
	}
	root := repo.CatalogRoot{Version: repo.Version, Snapshot: id, Size: crec.entry.Size, SHA256: crec.entry.SHA256}
	for _, l := range crec.locs {
		root.Chunks = append(root.Chunks, repo.ChunkRef{ID: l.id, Pack: packOf(l.loc.pack),
			Offset: l.loc.offset, Length: l.loc.length, Raw: l.loc.raw, Zstd: l.loc.zstd})
	}
	for sum, size := range used {
		m.Packs = append(m.Packs, repo.PackRef{SHA256: sum, Size: size})
	}
	sort.Slice(m.Packs, func(i, j int) bool { return m.Packs[i].SHA256 < m.Packs[j].SHA256 })
	p.bytesStored.Add(pc.bytesStored.Load())
	p.stored = append(p.stored, pc.stored...)

	put := func(prefix string, ct []byte) (repo.ObjectRef, error) {
		sum := repo.HashHex(ct)
		ref := repo.ObjectRef{Name: prefix + sum, Size: int64(len(ct)), SHA256: sum}
		if err := r.Store.Put(ctx, ref.Name, bytes.NewReader(ct), ref.Size, storage.PutOptions{}); err != nil {
			return ref, fmt.Errorf("write %s: %w", ref.Name, err)
		}
		p.bytesStored.Add(ref.Size)
		return ref, nil
	}
	if len(p.stored) > 0 {
		ct, err := repo.Seal(repo.Index{Version: repo.Version, Packs: p.stored}, append(recipients, secrets.IndexIdentity.Recipient())...)
		if err != nil {
			return nil, err
		}
		ref, err := put(repo.IndexPrefix, ct)
		if err != nil {
			return nil, err
		}
		m.Indexes = []repo.ObjectRef{ref}
	}
	ct, err := repo.Seal(&root, recipients...)
	if err != nil {
		return nil, err
	}
	if m.Catalog, err = put(repo.CatalogPrefix, ct); err != nil {
		return nil, err
	}
	m.Duration = time.Since(start)
	m.Stats = repo.Stats{BytesRead: p.bytesRead.Load(), BytesNew: p.bytesNew.Load(),
		BytesStored: p.bytesStored.Load(), Chunks: p.chunks.Load(), ChunksNew: p.chunksNew.Load()}
	doc, err := repo.Sign(repo.KindManifest, m, opts.Signing)
	if err != nil {
		return nil, err
	}
	// The manifest is written last: from here on the snapshot exists.
	if err := r.Store.Put(ctx, repo.SnapshotName(id), bytes.NewReader(doc), int64(len(doc)), storage.PutOptions{IfNotExists: true}); err != nil {
		// A retried write whose first attempt landed finds its own
		// manifest: that is success.
		if !errors.Is(err, storage.ErrExists) || !sameObject(ctx, r.Store, repo.SnapshotName(id), doc) {
			return nil, fmt.Errorf("%w: %w", ErrManifestWrite, err)
		}
	}
	cache.save(log)
	res.Manifest = m
	return res, nil
}

func sameObject(ctx context.Context, st storage.Store, name string, want []byte) bool {
	rc, err := st.Open(ctx, name, 0, -1)
	if err != nil {
		return false
	}
	defer rc.Close()
	got, err := io.ReadAll(io.LimitReader(rc, int64(len(want))+1))
	return err == nil && bytes.Equal(got, want)
}

// writeCatalog encodes the catalog as JSON (a repo.Catalog) entry by entry,
// and adds each source's public part to the manifest.
func writeCatalog(w io.Writer, id string, sources []*sourceWriter, packOf func(*packSlot) string, m *repo.Manifest) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	put := func(v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		_, err = bw.Write(b)
		return err
	}
	fmt.Fprintf(bw, `{"version":%d,"snapshot":%q,"sources":[`, repo.Version, id)
	for i, sw := range sources {
		if i > 0 {
			bw.WriteByte(',')
		}
		bw.WriteString(`{"name":`)
		put(sw.name)
		bw.WriteString(`,"kind":`)
		put(sw.kind)
		if len(sw.meta) > 0 {
			bw.WriteString(`,"meta":`)
			if err := put(sw.meta); err != nil {
				return err
			}
		}
		bw.WriteString(`,"entries":[`)
		h := sha256.New()
		var size int64
		for j, f := range sw.files {
			e := f.entry
			for _, l := range f.locs {
				e.Chunks = append(e.Chunks, repo.ChunkRef{ID: l.id, Pack: packOf(l.loc.pack),
					Offset: l.loc.offset, Length: l.loc.length, Raw: l.loc.raw, Zstd: l.loc.zstd})
			}
			fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\n", e.Path, e.Type, e.SHA256, e.Link)
			size += e.Size
			if j > 0 {
				bw.WriteByte(',')
			}
			if err := put(&e); err != nil {
				return err
			}
		}
		fmt.Fprintf(bw, `],"sha256":%q,"size":%d}`, hex.EncodeToString(h.Sum(nil)), size)
		m.Sources = append(m.Sources, repo.ManifestSource{Name: sw.name, Kind: sw.kind, Size: size})
	}
	bw.WriteString("]}")
	return bw.Flush()
}

// loadIndex reads every index object the backup host can decrypt, keeping
// only chunks whose pack is present with the recorded size.
func loadIndex(ctx context.Context, st storage.Store, id age.Identity) (map[string]*packSlot, map[repo.ChunkID]loc, error) {
	packs := map[string]*packSlot{}
	err := st.List(ctx, repo.DataPrefix, func(oi storage.ObjectInfo) error {
		sum := oi.Name[strings.LastIndexByte(oi.Name, '/')+1:]
		packs[sum] = &packSlot{sha: sum, size: oi.Size}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list packs: %w", err)
	}
	known := map[repo.ChunkID]loc{}
	var names []string
	err = st.List(ctx, repo.IndexPrefix, func(oi storage.ObjectInfo) error {
		names = append(names, oi.Name)
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list index: %w", err)
	}
	for _, name := range names {
		rc, err := st.Open(ctx, name, 0, -1)
		if err != nil {
			return nil, nil, fmt.Errorf("read %s: %w", name, err)
		}
		ct, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil, nil, fmt.Errorf("read %s: %w", name, err)
		}
		if repo.HashHex(ct) != strings.TrimPrefix(name, repo.IndexPrefix) {
			continue // damaged: verify reports it; never dedup against it
		}
		var ix repo.Index
		if err := repo.Unseal(ct, &ix, id); err != nil {
			continue // not ours to read, or damaged
		}
		for _, ip := range ix.Packs {
			slot, ok := packs[ip.SHA256]
			if !ok || slot.size != ip.Size {
				continue
			}
			for _, c := range ip.Chunks {
				known[c.ID] = loc{pack: slot, offset: c.Offset, length: c.Length, raw: c.Raw, zstd: c.Zstd}
			}
		}
	}
	return packs, known, nil
}

// sourceWriter implements Writer for one source.
type sourceWriter struct {
	p        *pipeline
	name     string
	kind     string
	pol      chunker.Pol
	params   repo.ChunkerParams
	ch       *chunker.Chunker
	strict   bool
	inflight int
	meta     map[string]json.RawMessage
	files    []*fileRec
	queue    []pendingChunk
	paths    map[string]bool
	cache    *changeCache
	res      *Result
	log      *slog.Logger
}

type fileRec struct {
	entry repo.Entry
	locs  []idLoc
}

type idLoc struct {
	id  repo.ChunkID
	loc loc
}

func catalogEntry(e Entry) repo.Entry {
	return repo.Entry{Path: e.Path, Type: string(e.Type), Mode: e.Mode, ModTime: e.ModTime.UTC(),
		UID: e.UID, GID: e.GID, User: e.User, Group: e.Group, Link: e.Link}
}

func (w *sourceWriter) add(e Entry) error {
	if err := repo.CheckPath(e.Path); err != nil {
		return err
	}
	if w.paths == nil {
		w.paths = map[string]bool{}
	}
	if w.paths[e.Path] {
		return fmt.Errorf("%s: entry written twice", e.Path)
	}
	w.paths[e.Path] = true
	return nil
}

func (w *sourceWriter) WriteEntry(ctx context.Context, e Entry) error {
	if e.Type == TypeFile {
		return w.WriteFile(ctx, e, strings.NewReader(""))
	}
	if e.Type != TypeDir && e.Type != TypeSymlink {
		return fmt.Errorf("%s: unknown entry type %q", e.Path, e.Type)
	}
	if err := w.add(e); err != nil {
		return err
	}
	w.files = append(w.files, &fileRec{entry: catalogEntry(e)})
	return nil
}

func (w *sourceWriter) WriteFile(ctx context.Context, e Entry, r io.Reader) error {
	if err := w.add(e); err != nil {
		return err
	}
	e.Type = TypeFile
	rec := &fileRec{entry: catalogEntry(e)}
	w.files = append(w.files, rec)
	if err := w.chunk(ctx, r, rec); err != nil {
		return fmt.Errorf("%s: %w", e.Path, err)
	}
	return nil
}

// chunk reads r to the end through the chunker and hands each chunk to the
// pipeline. It returns once r is read, not once its chunks are stored:
// chunks stay in flight across files (so many small files keep every
// worker busy), bounded by w.inflight; flush waits for the rest.
func (w *sourceWriter) chunk(ctx context.Context, r io.Reader, rec *fileRec) error {
	p := w.p
	if w.ch == nil {
		w.ch = chunker.NewWithBoundaries(r, w.pol, w.params.MinSize, w.params.MaxSize)
	} else {
		w.ch.ResetWithBoundaries(r, w.pol, w.params.MinSize, w.params.MaxSize)
	}
	w.ch.SetAverageBits(w.params.AverageBits)
	h := sha256.New()
	var size int64
	for {
		if err := ctx.Err(); err != nil {
			w.flush()
			return err
		}
		buf := p.bufs.Get().(*[]byte)
		c, err := w.ch.Next((*buf)[:0])
		if err == io.EOF {
			p.bufs.Put(buf)
			break
		}
		if err != nil {
			p.bufs.Put(buf)
			w.flush()
			return err
		}
		h.Write(c.Data)
		size += int64(c.Length)
		p.bytesRead.Add(int64(c.Length))
		j := &chunkJob{data: c.Data, buf: buf, done: make(chan struct{})}
		if err := p.submit(j); err != nil {
			p.bufs.Put(buf)
			w.flush()
			return err
		}
		w.queue = append(w.queue, pendingChunk{job: j, rec: rec})
		if len(w.queue) >= w.inflight {
			if err := w.waitOne(); err != nil {
				w.flush()
				return err
			}
		}
	}
	rec.entry.Size = size
	rec.entry.SHA256 = hex.EncodeToString(h.Sum(nil))
	return nil
}

type pendingChunk struct {
	job *chunkJob
	rec *fileRec
}

// waitOne waits for the oldest chunk in flight and appends its location
// to its file. Chunks of one file complete into it in order.
func (w *sourceWriter) waitOne() error {
	pc := w.queue[0]
	w.queue = w.queue[1:]
	<-pc.job.done
	w.p.bufs.Put(pc.job.buf)
	if pc.job.err != nil {
		return pc.job.err
	}
	pc.rec.locs = append(pc.rec.locs, idLoc{id: pc.job.id, loc: pc.job.loc})
	return nil
}

// flush waits for every chunk in flight and returns the first error.
func (w *sourceWriter) flush() error {
	var first error
	for len(w.queue) > 0 {
		if err := w.waitOne(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (w *sourceWriter) SetMeta(key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("meta %s: %w", key, err)
	}
	w.meta[key] = b
	return nil
}

func (w *sourceWriter) Warn(format string, args ...any) error {
	msg := fmt.Sprintf("%s: ", w.name) + fmt.Sprintf(format, args...)
	if w.strict {
		return fmt.Errorf("%s (%w)", msg, ErrStrict)
	}
	w.log.Warn(msg)
	w.res.Warnings = append(w.res.Warnings, msg)
	return nil
}

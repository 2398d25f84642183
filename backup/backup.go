// Package backup is coffer's snapshot writer: sources (any source.Source)
// stream their entries through a content-defined chunking, deduplicating,
// compressing and encrypting pipeline into packs, and a snapshot is
// published by writing its signed manifest last.
package backup

import (
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

	"github.com/cofferhq/coffer/internal/keys"
	"github.com/cofferhq/coffer/internal/progress"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/source"
)

// Options of one backup.
type Options struct {
	// Repo must be opened with the signing key (repo.OpenOptions.Signing),
	// which must be authorised by the repository config.
	Repo    *repo.Repository
	Signing *keys.SigningKey
	Sources []source.Source
	Tags    []string
	Host    string
	// Uploads is the number of packs encrypted and uploaded in parallel;
	// default DefaultUploads.
	Uploads int
	// Workers hash and compress chunks; default GOMAXPROCS.
	Workers int
	// Strict turns warnings (a file changed while read) into errors.
	Strict bool
	// CacheDir holds the change cache; empty disables it.
	CacheDir string
	Logger   *slog.Logger
	// Hooks run before the first source is read and after the backup.
	Hooks Hooks
	// Progress, if set, is told each source's progress (the source's
	// name is the part): bytes read and files written, including files the
	// change cache skipped; the total is what the change cache remembers
	// of the source's previous backup (zero when it has none).
	Progress progress.Reporter
}

// DefaultUploads is the number of packs uploaded in parallel unless
// Options.Uploads says otherwise.
const DefaultUploads = 2

// Result of a backup.
type Result struct {
	// Manifest is the public, signed part of the snapshot; Private the part
	// sealed to the recipients (host, tags, sizes, statistics, duration).
	Manifest *repo.Manifest
	Private  *repo.Private
	Warnings []string
	// Skipped lists what sources left out because they could not read it
	// (source.Skipper). When it is not empty the snapshot is saved and
	// marked incomplete (Manifest.Incomplete).
	Skipped []Skipped
	// RepoWarnings are what the backup noticed about the repository as it
	// started: manifests that do not verify, manifests dated in the
	// future, snapshots that were deleted. They are not the snapshot's.
	RepoWarnings []string
	// BytesSkipped counts file bytes not read because the change cache
	// said the files were unchanged.
	BytesSkipped int64
}

// Skipped is one path a source left out.
type Skipped struct {
	Source string `json:"source"`
	Path   string `json:"path"`
	Error  string `json:"error"`
}

// SkippedMeta is the source metadata key (in the encrypted catalog) under
// which a source's skipped paths are recorded, as a list of
// {"path", "error"}.
const SkippedMeta = "skipped"

// ErrManifestWrite is wrapped when writing the manifest failed: on S3 a
// write whose answer was lost may still have landed, so the snapshot may
// exist.
var ErrManifestWrite = repo.ErrManifestWrite

// ErrNoSigningKey is returned by Run without a signing key.
var ErrNoSigningKey = errors.New("no signing key: a backup signs its manifest")

// ErrNoSources is returned by Run without sources.
var ErrNoSources = errors.New("nothing to back up: name at least one source")

// Run makes one snapshot of every source. It publishes the snapshot by
// writing its manifest last; if any source fails, nothing is published.
//
// With hooks, the pre hooks run before anything else (a failing one aborts the backup), and the
// post hooks always run last, with COFFER_BACKUP=ok or failed and, when a
// snapshot was saved, COFFER_SNAPSHOT=id in their environment. A failing
// post hook after a saved snapshot returns both the Result and an error
// wrapping ErrHook.
func Run(ctx context.Context, opts Options) (*Result, error) {
	if len(opts.Hooks.Pre) == 0 && len(opts.Hooks.Post) == 0 {
		return run1(ctx, opts)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	var res *Result
	err := runHooks(ctx, "pre", opts.Hooks.Pre, opts.Hooks.Timeout, nil, log)
	if err == nil {
		res, err = run1(ctx, opts)
	}
	env := []string{"COFFER_BACKUP=failed"}
	if res != nil {
		env = []string{"COFFER_BACKUP=ok", "COFFER_SNAPSHOT=" + res.Manifest.ID}
	}
	// Post hooks run even when the backup was interrupted: they undo what
	// the pre hooks did.
	perr := runHooks(context.WithoutCancel(ctx), "post", opts.Hooks.Post, opts.Hooks.Timeout, env, log)
	if err != nil {
		if perr != nil {
			return nil, fmt.Errorf("%w; then %v", err, perr)
		}
		return nil, err
	}
	return res, perr
}

func run1(ctx context.Context, opts Options) (*Result, error) {
	// Announce the backup before reading anything, so that a prune keeps
	// what it reads and writes (doc/design.md, section 17).
	if opts.Repo != nil {
		stop, err := repo.Announce(ctx, opts.Repo.Store, 0)
		if err != nil {
			return nil, err
		}
		defer stop()
	}
	b, err := prepare(ctx, opts)
	if err != nil {
		return nil, err
	}
	if b.spill, err = newSpill(); err != nil {
		return nil, err
	}
	defer b.spill.close()
	defer func() { b.index.close() }() // set by storeSources
	defer b.known.close()
	defer b.cache.close()
	if err := b.storeSources(ctx); err != nil {
		return nil, err
	}
	root, err := b.storeCatalog(ctx)
	if err != nil {
		return nil, err
	}
	if err := b.storeIndex(ctx); err != nil {
		return nil, err
	}
	if err := b.storeCatalogRoot(ctx, root); err != nil {
		return nil, err
	}
	if err := b.storePrivate(ctx); err != nil {
		return nil, err
	}
	// The manifest is written last: from here on the snapshot exists.
	if err := b.publish(ctx); err != nil {
		return nil, err
	}
	b.cache.save(b.log, b.sources, b.spill)
	b.ledger.save(b.log)
	b.res.Manifest, b.res.Private = b.m, b.priv
	return b.res, nil
}

// run is one backup in progress.
type run struct {
	forgotten  map[string]*repo.Tombstone // snapshots forgotten on purpose
	opts       Options
	r          *repo.Repository
	log        *slog.Logger
	start      time.Time
	recipients []age.Recipient
	secrets    *keys.Derived
	chunkers   func() repo.Chunker
	idFunc     func([]byte) repo.ChunkID
	known      *knownIndex
	packs      map[string]*packSlot // known's packs by SHA-256, for the change cache
	cache      *changeCache
	ledger     *ledger
	workers    int
	uploads    int
	bufs       *chunkBufs
	index      *newIndex
	p          *pipeline // sources
	pc         *pipeline // the catalog
	sources    []*sourceWriter
	spill      *spill           // the records of finished files, until the catalog is written
	used       map[string]int64 // packs the snapshot references
	m          *repo.Manifest
	priv       *repo.Private
	res        *Result
}

// prepare checks the options and loads what the backup needs from the
// repository: recipients, derived secrets, the index and the change cache.
func prepare(ctx context.Context, opts Options) (*run, error) {
	r := opts.Repo
	if opts.Signing == nil {
		return nil, ErrNoSigningKey
	}
	// Never publish a manifest that readers would refuse: the key that
	// signs must be the one the repository was opened with, authorised
	// and not revoked.
	if err := r.CheckWriter(opts.Signing); err != nil {
		return nil, err
	}
	if len(opts.Sources) == 0 {
		return nil, ErrNoSources
	}
	seen := map[string]bool{}
	for _, s := range opts.Sources {
		if seen[s.Name()] {
			return nil, fmt.Errorf("source name %q used twice", s.Name())
		}
		seen[s.Name()] = true
	}
	b := &run{opts: opts, r: r, log: opts.Logger, start: time.Now(), res: &Result{}, used: map[string]int64{},
		workers: opts.Workers, uploads: opts.Uploads}
	if b.log == nil {
		b.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if b.opts.Host == "" {
		b.opts.Host, _ = os.Hostname()
	}
	if b.workers <= 0 {
		b.workers = runtime.GOMAXPROCS(0)
	}
	if b.uploads <= 0 {
		b.uploads = DefaultUploads
	}
	var err error
	if b.recipients, err = r.Recipients(); err != nil {
		return nil, err
	}
	if b.secrets, err = r.Secrets(ctx); err != nil {
		return nil, err
	}
	if b.chunkers, err = r.Chunkers(ctx); err != nil {
		return nil, err
	}
	if b.idFunc, err = r.ChunkIDFunc(ctx); err != nil {
		return nil, err
	}
	// Every manifest is read once: for what to deduplicate against and
	// for the heads the new manifest names. The tombstones and repack
	// records are read again now that the backup is announced: a snapshot
	// forgotten before this point may lose its data to a prune at any time.
	r.Reread()
	ms, bad, err := r.Manifests(ctx)
	if err != nil {
		return nil, fmt.Errorf("read snapshots: %w", err)
	}
	forgotten, badTombs, err := r.Forgotten(ctx)
	if err != nil {
		return nil, fmt.Errorf("read tombstones: %w", err)
	}
	b.forgotten = forgotten
	bad = append(bad, badTombs...)
	if err := b.loadDedup(ctx, ms); err != nil {
		return nil, err
	}
	b.cache = loadCache(opts.CacheDir, r.Config.ID, b.secrets, b.packs, b.log)
	heads := b.heads(ms, bad)
	id := repo.NewID()
	b.m = &repo.Manifest{Version: repo.Version, ID: id, Repo: r.Config.ID, Time: b.start.UTC(),
		ConfigSeq: r.Config.Seq, Signer: opts.Signing.Public().String(), Seen: heads}
	b.priv = &repo.Private{Version: repo.Version, Snapshot: id, Host: b.opts.Host, Tags: opts.Tags}
	return b, nil
}

// loadDedup loads what the backup deduplicates against: the indexes that
// verified manifests and repair records reference, less the packs that
// changed in the store since this host first saw them (the ledger).
func (b *run) loadDedup(ctx context.Context, ms []*repo.Manifest) error {
	b.known = newKnownIndex()
	slots := map[string]*packSlot{}
	packs := 0
	d, err := b.r.LoadDedupFunc(ctx, b.secrets.IndexIdentity, ms, func(ip *repo.IndexPack) error {
		packs++
		return loadPack(b.known, slots, ip)
	})
	if err != nil {
		b.known.close()
		return err
	}
	for _, s := range d.Skipped {
		b.log.Info("not deduplicating against it", "object", s)
	}
	b.ledger = loadLedger(b.opts.CacheDir, b.r.Config.ID, b.log)
	changed := b.ledger.check(d.Present, d.Vouched, d.Damaged)
	if len(changed) > 0 {
		msg := changedWarning(changed)
		b.log.Info(msg)
		b.res.RepoWarnings = append(b.res.RepoWarnings, msg)
	}
	for sha := range changed {
		if s := slots[sha]; s != nil {
			b.known.drop(s)
			delete(slots, sha)
		}
	}
	for _, sha := range d.Retracted {
		if s := slots[sha]; s != nil {
			b.known.drop(s)
			delete(slots, sha)
		}
	}
	b.packs = slots
	if err := b.known.endLoad(); err != nil {
		b.known.close()
		return err
	}
	b.log.Debug("index loaded", "packs", packs, "present", len(d.Present), "damaged", len(d.Damaged),
		"changed", len(changed), "chunks", b.known.len())
	return nil
}

// heads returns the ids of the snapshot heads the backup sees as it
// starts: among the manifests that verify, those that no other of them
// names in its Seen. The new manifest names them, so that deleting any
// snapshot but the newest leaves a trace that verify finds. Manifests dated
// beyond the clock-skew bound are not heads (latest skips them too), and
// neither are damaged ones; both go to Result.RepoWarnings.
func (b *run) heads(ms []*repo.Manifest, bad []error) []string {
	warn := func(msg string) {
		b.log.Info(msg)
		b.res.RepoWarnings = append(b.res.RepoWarnings, msg)
	}
	for _, err := range bad {
		warn(fmt.Sprintf("%v: not counted as seen; run coffer verify", err))
	}
	present := make(map[string]bool, len(ms)+len(bad))
	for _, m := range ms {
		present[m.ID] = true
	}
	for id := range b.forgotten {
		present[id] = true // forgotten on purpose, with a signed tombstone
	}
	for _, err := range bad {
		var ie *repo.IntegrityError
		if errors.As(err, &ie) {
			present[strings.TrimPrefix(ie.Object, repo.SnapshotsPrefix)] = true
		}
	}
	named := map[string]bool{}
	for _, m := range ms {
		for _, id := range m.Seen {
			named[id] = true
			if !present[id] {
				warn(fmt.Sprintf("snapshot %s was deleted: named by %s; run coffer verify", repo.ShortID(id), repo.ShortID(m.ID)))
			}
		}
	}
	heads := []string{}
	for _, m := range ms {
		switch {
		case m.InFuture(b.start):
			warn(fmt.Sprintf("snapshot %s is dated %s, in the future: not counted as seen; run coffer verify",
				repo.ShortID(m.ID), m.Time.Format(time.RFC3339)))
		case !named[m.ID]:
			heads = append(heads, m.ID)
		}
	}
	sort.Strings(heads)
	return heads
}

// loadPack adds an indexed pack's chunks to known; slots holds the packs
// by SHA-256.
func loadPack(known *knownIndex, slots map[string]*packSlot, ip *repo.IndexPack) error {
	slot := slots[ip.SHA256]
	if slot == nil {
		slot = &packSlot{sha: ip.SHA256, size: ip.Size}
		slots[ip.SHA256] = slot
	}
	for _, c := range ip.Chunks {
		if err := known.load(c.ID, loc{pack: slot, offset: c.Offset, length: c.Length, raw: c.Raw, zstd: c.Zstd}); err != nil {
			return err
		}
	}
	return nil
}

func (b *run) newPipeline(ctx context.Context, known *knownIndex) *pipeline {
	if b.bufs == nil {
		b.bufs = newChunkBufs(int(b.r.Config.Chunker.MaxSize), b.inflightBig()+1)
	}
	p := newPipeline(ctx, b.r.Store, b.recipients, b.idFunc, known, b.bufs, int(b.r.Config.Packs.TargetSize),
		int(b.r.Config.Chunker.MaxSize), b.workers, b.uploads)
	p.ledger = b.ledger
	p.index = b.index
	return p
}

// inflightBig is how many chunks of more than smallChunk bytes a source
// writer keeps in flight, each holding a chunk buffer (the chunk being read
// holds one more). Fewer than 2W+1 left the workers waiting on large
// chunks: W+1 cost 15-25% of BenchmarkBackupStream's throughput.
func (b *run) inflightBig() int { return 2*b.workers + 1 }

func (b *run) newWriter(p *pipeline, name, kind string) *sourceWriter {
	return &sourceWriter{p: p, name: name, kind: kind, ch: b.chunkers(), spill: b.spill,
		strict: b.opts.Strict, inflight: 2*b.workers + 2, inflightBig: b.inflightBig(), meta: map[string]json.RawMessage{},
		cache: b.cache, res: b.res, log: b.log, prog: progress.Or(nil)}
}

// storeSources streams every source through the pipeline, one after
// another, and waits until every pack is stored.
func (b *run) storeSources(ctx context.Context) error {
	ix, err := startIndex(append(b.recipients, b.secrets.IndexIdentity.Recipient()))
	if err != nil {
		return err
	}
	b.index = ix
	b.p = b.newPipeline(ctx, b.known)
	p := b.p
	for _, src := range b.opts.Sources {
		sw := b.newWriter(p, src.Name(), src.Kind())
		if wo, ok := src.(source.WalkOrdered); ok && wo.WalkOrdered() {
			sw.paths = &walkCheck{}
		}
		sw.prog = progress.Or(b.opts.Progress)
		b.log.Info("backing up source", "source", src.Name(), "kind", src.Kind())
		sw.prog.Start(src.Name(), b.cache.estimate(src.Name()))
		err := src.Backup(p.ctx, sw)
		if ferr := sw.flush(); err == nil {
			err = ferr
		}
		if err == nil {
			err = sw.spillAll()
		}
		if err != nil {
			if perr := p.err(); perr != nil && !errors.Is(perr, context.Canceled) {
				err = perr
			}
			p.abort(err)
			return fmt.Errorf("source %s: %w", src.Name(), err)
		}
		if err := p.err(); err != nil {
			p.abort(err)
			return fmt.Errorf("source %s: %w", src.Name(), err)
		}
		// Finished only when it is: a failed source is not shown done.
		sw.prog.Finish(src.Name())
		b.sources = append(b.sources, sw)
	}
	if err := p.finish(); err != nil {
		return err
	}
	b.log.Debug("sources stored", "chunks", p.chunks.Load(), "new", p.chunksNew.Load(), "handovers", p.handovers.Load())
	return nil
}

// packOf names the pack of a chunk location and notes that the snapshot
// references it.
func (b *run) packOf(s *packSlot) string {
	b.used[s.sha] = s.size
	return s.sha
}

func (b *run) chunkRefs(locs []idLoc) []repo.ChunkRef {
	refs := make([]repo.ChunkRef, 0, len(locs))
	for _, l := range locs {
		refs = append(refs, repo.ChunkRef{ID: l.id, Pack: b.packOf(l.loc.pack),
			Offset: l.loc.offset, Length: l.loc.length, Raw: l.loc.raw, Zstd: l.loc.zstd})
	}
	return refs
}

// storeCatalog stores the catalog through the pipeline like a file, so
// that an unchanged tree's catalog deduplicates against yesterday's; it is
// encoded as it is chunked, never held whole in memory.
func (b *run) storeCatalog(ctx context.Context) (*repo.CatalogRoot, error) {
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(b.encodeCatalog(pw))
	}()
	b.pc = b.newPipeline(ctx, b.p.known)
	cw := b.newWriter(b.pc, "catalog", "")
	// One chunk compressed while the next is read: the catalog is one
	// stream, and each chunk in flight holds a buffer of ChunkMax (2W+1 of
	// them were 20 MiB of a million-file backup's peak).
	cw.inflightBig = 1
	crec := &fileRec{}
	err := cw.chunk(ctx, pr, crec)
	pr.CloseWithError(errors.New("catalog not stored")) // unblocks the encoder after a failure
	if ferr := cw.flush(); err == nil {
		err = ferr
	}
	if err != nil {
		b.pc.abort(err)
		return nil, fmt.Errorf("store catalog: %w", err)
	}
	if err := b.pc.finish(); err != nil {
		return nil, fmt.Errorf("store catalog: %w", err)
	}
	b.p.bytesStored.Add(b.pc.bytesStored.Load())
	return &repo.CatalogRoot{Version: repo.Version, Snapshot: b.m.ID, Size: crec.entry.Size,
		SHA256: crec.entry.SHA256, Chunks: b.chunkRefs(crec.locs)}, nil
}

// encodeCatalog writes the catalog (a repo.Catalog) entry by entry, and
// adds each source's public part to the manifest.
func (b *run) encodeCatalog(w io.Writer) error {
	enc := repo.NewCatalogEncoder(w, b.m.ID)
	next, err := b.spill.records()
	if err != nil {
		return err
	}
	for _, sw := range b.sources {
		if err := enc.Source(sw.name, sw.kind, sw.meta); err != nil {
			return err
		}
		for range sw.count {
			rec, err := next()
			if err != nil {
				return err
			}
			e := rec.Entry
			e.Chunks = make([]repo.ChunkRef, 0, len(rec.Locs))
			for _, l := range rec.Locs {
				slot := b.spill.pack(l)
				e.Chunks = append(e.Chunks, repo.ChunkRef{ID: l.ID, Pack: b.packOf(slot),
					Offset: l.Offset, Length: l.Length, Raw: l.Raw, Zstd: l.Zstd})
			}
			if err := enc.Entry(&e); err != nil {
				return err
			}
		}
	}
	srcs, sizes, err := enc.Close()
	b.m.Sources, b.priv.Sources = srcs, sizes
	return err
}

// storeIndex writes the index of the packs this backup stored, readable by
// the recipients and by the index key (the backup host).
func (b *run) storeIndex(ctx context.Context) error {
	ref, err := b.index.store(ctx, b.r.Store)
	if err != nil || ref == nil {
		return err
	}
	b.p.bytesStored.Add(ref.Size)
	b.m.Indexes = []repo.ObjectRef{*ref}
	return nil
}

// storeCatalogRoot writes the catalog's root object, readable by the
// recipients only.
func (b *run) storeCatalogRoot(ctx context.Context, root *repo.CatalogRoot) error {
	ref, err := repo.PutSealed(ctx, b.r.Store, repo.CatalogPrefix, root, b.recipients...)
	if err != nil {
		return err
	}
	b.p.bytesStored.Add(ref.Size)
	b.m.Catalog = ref
	return nil
}

// storePrivate completes the snapshot's private part (statistics,
// duration, warnings) and writes it, readable by the recipients only. Its
// own size is not in BytesStored.
func (b *run) storePrivate(ctx context.Context) error {
	p := b.p
	b.priv.Duration = time.Since(b.start)
	b.priv.Stats = repo.Stats{BytesRead: p.bytesRead.Load(), BytesNew: p.bytesNew.Load(),
		BytesStored: p.bytesStored.Load(), Chunks: p.chunks.Load(), ChunksNew: p.chunksNew.Load()}
	b.priv.Warnings = b.res.Warnings
	ref, err := repo.PutPrivate(ctx, b.r.Store, b.priv, b.recipients...)
	if err != nil {
		return err
	}
	b.m.Private = ref
	return nil
}

// publish completes the manifest and writes it.
func (b *run) publish(ctx context.Context) error {
	for sum, size := range b.used {
		b.m.Packs = append(b.m.Packs, repo.PackRef{SHA256: sum, Size: size})
	}
	sort.Slice(b.m.Packs, func(i, j int) bool { return b.m.Packs[i].SHA256 < b.m.Packs[j].SHA256 })
	b.m.Incomplete = len(b.res.Skipped) > 0
	return repo.WriteManifest(ctx, b.r.Store, b.m, b.opts.Signing)
}

// ErrStrict is wrapped by the error a warning becomes in a strict backup.
var ErrStrict = source.ErrStrict

// sourceWriter implements source.Writer, source.ChangeTracker and
// source.ObjectTracker for one source.
var (
	_ source.ChangeTracker = (*sourceWriter)(nil)
	_ source.ObjectTracker = (*sourceWriter)(nil)
	_ source.Skipper       = (*sourceWriter)(nil)
)

type sourceWriter struct {
	p        *pipeline
	name     string
	kind     string
	ch       repo.Chunker
	strict   bool
	inflight int // batches of chunks in flight at most
	// inflightBig bounds the chunks in flight that hold a chunk buffer:
	// smaller chunks are copied out of theirs.
	inflightBig int
	big         int // chunks in flight holding a buffer
	meta        map[string]json.RawMessage
	skipped     []skippedPath
	spill       *spill
	open        []*fileRec      // written, not yet spilled: the last may still be remembered, others wait for chunks
	count       int             // records spilled
	cached      progress.Counts // the files among them with a state for the change cache
	batch       *chunkBatch     // being filled, not handed over
	queue       []*chunkBatch
	free        []*chunkBatch // stored, for reuse
	paths       pathChecker   // a pathSet unless the source is source.WalkOrdered
	cache       *changeCache
	res         *Result
	log         *slog.Logger
	prog        progress.Reporter
}

type fileRec struct {
	entry   repo.Entry
	locs    []idLoc
	pending int               // chunks in flight
	state   *source.FileState // for the change cache
	meta    []byte            // stored with it in the change cache (see source.ObjectTracker)
}

type idLoc struct {
	id  repo.ChunkID
	loc loc
}

func catalogEntry(e source.Entry) repo.Entry {
	return repo.Entry{Path: e.Path, Type: string(e.Type), Mode: e.Mode, ModTime: e.ModTime.UTC(),
		UID: e.UID, GID: e.GID, User: e.User, Group: e.Group, Link: e.Link}
}

// add checks that e can be restored where it is: a clean relative path,
// written once (byte for byte: the catalog keeps names exact, see
// repo.Entry), below a folder written before it.
func (w *sourceWriter) add(e source.Entry) error {
	if err := repo.CheckPath(e.Path); err != nil {
		return err
	}
	if e.Path == "." && e.Type != source.TypeDir {
		return fmt.Errorf("the root of a source is a folder, not a %s", e.Type)
	}
	if w.paths == nil {
		w.paths = newPathSet()
	}
	return w.paths.check(e.Path, e.Type == source.TypeDir)
}

func (w *sourceWriter) WriteEntry(ctx context.Context, e source.Entry) error {
	if e.Type == source.TypeFile {
		return w.WriteFile(ctx, e, strings.NewReader(""))
	}
	if e.Type != source.TypeDir && e.Type != source.TypeSymlink {
		return fmt.Errorf("%q: unknown entry type %q", e.Path, e.Type)
	}
	if err := w.add(e); err != nil {
		return err
	}
	return w.append(&fileRec{entry: catalogEntry(e)})
}

// openMax bounds the records that wait, not yet spilled, behind the
// oldest one whose chunks are not stored. Chunks are waited for only when
// the queue is full, and a small chunk may sit in a batch not yet handed
// over: one changed small file early in a tree otherwise unchanged (no
// new chunks after it) held every later record in memory until the
// source's end, 130 MB more for 200,000 files. It is at least twice the
// chunks that may be in flight, so that a backup of new files never waits
// sooner than for a full queue.
const openMax = 4096

// append adds a record, after spilling every earlier one that is complete.
func (w *sourceWriter) append(rec *fileRec) error {
	if len(w.open) >= max(openMax, 2*(w.inflight+1)*batchChunks) && w.open[0].pending > 0 {
		if err := w.submit(); err != nil {
			return err
		}
		for w.open[0].pending > 0 && len(w.queue) > 0 {
			if err := w.waitOne(); err != nil {
				return err
			}
		}
	}
	for len(w.open) > 0 && w.open[0].pending == 0 {
		if err := w.spill1(w.open[0]); err != nil {
			return err
		}
		w.open[0] = nil
		w.open = w.open[1:]
	}
	w.open = append(w.open, rec)
	return nil
}

// spillAll spills every record; the source is done and flushed.
func (w *sourceWriter) spillAll() error {
	for _, rec := range w.open {
		if rec.pending != 0 {
			return fmt.Errorf("%q: chunks still in flight", rec.entry.Path)
		}
		if err := w.spill1(rec); err != nil {
			return err
		}
	}
	w.open = nil
	return nil
}

func (w *sourceWriter) spill1(rec *fileRec) error {
	if err := w.spill.add(rec); err != nil {
		return err
	}
	w.count++
	if rec.state != nil {
		w.cached.Files++
		w.cached.Bytes += rec.entry.Size
	}
	return nil
}

func (w *sourceWriter) WriteFile(ctx context.Context, e source.Entry, r io.Reader) error {
	e.Type = source.TypeFile
	if err := w.add(e); err != nil {
		return err
	}
	rec := &fileRec{entry: catalogEntry(e)}
	if err := w.append(rec); err != nil {
		return err
	}
	if err := w.chunk(ctx, r, rec); err != nil {
		return fmt.Errorf("%q: %w", e.Path, err)
	}
	w.prog.Add(w.name, progress.Counts{Files: 1})
	return nil
}

// chunk reads r to the end through the chunker and hands each chunk to the
// pipeline. It returns once r is read, not once its chunks are stored:
// chunks stay in flight across files (so many small files keep every
// worker busy), bounded by w.inflight; flush waits for the rest.
func (w *sourceWriter) chunk(ctx context.Context, r io.Reader, rec *fileRec) error {
	p := w.p
	w.ch.Reset(r)
	h := sha256.New()
	var size int64
	for {
		if err := ctx.Err(); err != nil {
			w.flush()
			return err
		}
		buf := p.bufs.get()
		// The chunk is read into buf (cap MaxSize), which its job holds.
		data, err := w.ch.Next((*buf)[:0])
		if err == io.EOF {
			p.bufs.put(buf)
			break
		}
		if err != nil {
			p.bufs.put(buf)
			w.flush()
			return err
		}
		if w.batch == nil {
			w.batch = w.newBatch()
		}
		if len(data) <= smallChunk {
			// A small file's chunk leaves the buffer for the next one,
			// copied into its batch: a tree of small files keeps many
			// chunks in flight with one buffer.
			data = w.batch.keep(data)
			p.bufs.put(buf)
			buf = nil
		}
		h.Write(data)
		n := int64(len(data))
		size += n
		p.bytesRead.Add(n)
		w.prog.Add(w.name, progress.Counts{Bytes: n})
		w.batch.jobs = append(w.batch.jobs, chunkJob{data: data, buf: buf})
		w.batch.recs = append(w.batch.recs, rec)
		w.batch.bytes += len(data)
		rec.pending++
		if buf != nil {
			w.big++
		}
		if w.batch.full() {
			if err := w.submit(); err != nil {
				w.flush()
				return err
			}
		}
		for len(w.queue) >= w.inflight || w.big >= w.inflightBig {
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

// smallChunk is the largest chunk copied out of its chunk buffer.
const smallChunk = 64 << 10

// submit hands the batch being filled to the pipeline.
func (w *sourceWriter) submit() error {
	b := w.batch
	if b == nil {
		return nil
	}
	w.batch = nil
	if err := w.p.submit(b); err != nil {
		b.err = err
		close(b.done)
		w.queue = append(w.queue, b)
		return err
	}
	w.queue = append(w.queue, b)
	return nil
}

// newBatch returns an empty batch, one whose chunks are stored if there
// is one.
func (w *sourceWriter) newBatch() *chunkBatch {
	if n := len(w.free); n > 0 {
		b := w.free[n-1]
		w.free = w.free[:n-1]
		return b
	}
	return &chunkBatch{done: make(chan struct{})}
}

// waitOne waits for the oldest batch in flight and appends the locations
// of its chunks to their files. Chunks of one file complete into it in
// order.
func (w *sourceWriter) waitOne() error {
	b := w.queue[0]
	w.queue[0] = nil
	w.queue = w.queue[1:]
	<-b.done
	for i := range b.jobs {
		j := &b.jobs[i]
		if j.buf != nil {
			w.p.bufs.put(j.buf)
			w.big--
		}
		rec := b.recs[i]
		rec.pending--
		if b.err == nil {
			rec.locs = append(rec.locs, idLoc{id: j.id, loc: j.loc})
		}
	}
	err := b.err
	if len(w.free) < w.inflight+1 {
		b.reset()
		w.free = append(w.free, b)
	}
	return err
}

// flush hands over the batch being filled, waits for every chunk in
// flight and returns the first error. The source is done: its batches
// are let go.
func (w *sourceWriter) flush() error {
	first := w.submit()
	for len(w.queue) > 0 {
		if err := w.waitOne(); err != nil && first == nil {
			first = err
		}
	}
	w.free = nil
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
		return fmt.Errorf("%s (%w)", msg, source.ErrStrict)
	}
	// The caller reports Result.Warnings (once: not the log too).
	w.res.Warnings = append(w.res.Warnings, msg)
	return nil
}

type skippedPath struct {
	Path  string `json:"path"`
	Error string `json:"error"`
}

// Skip leaves out a path the source could not read: the snapshot is
// saved, marked incomplete, and the path is recorded in the source's
// metadata and in the warnings. A strict backup fails instead.
func (w *sourceWriter) Skip(path string, err error) error {
	if w.strict {
		return fmt.Errorf("%q: %v (%w)", path, err, source.ErrStrict)
	}
	msg := fmt.Sprintf("%s: skipped %q: %v", w.name, path, err)
	// The caller reports Result.Warnings (once: not the log too).
	w.res.Warnings = append(w.res.Warnings, msg)
	w.res.Skipped = append(w.res.Skipped, Skipped{Source: w.name, Path: path, Error: err.Error()})
	w.skipped = append(w.skipped, skippedPath{Path: path, Error: err.Error()})
	return w.SetMeta(SkippedMeta, w.skipped)
}

// Unchanged records an unchanged file from the change cache without
// reading it.
func (w *sourceWriter) Unchanged(e source.Entry, st source.FileState) (bool, error) {
	_, ok, err := w.UnchangedMeta(e, st)
	return ok, err
}

// Known reports whether an item is unchanged, recording nothing.
func (w *sourceWriter) Known(path string, st source.FileState) bool {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.cache.knownItem(w.name, path, st)
}

// UnchangedMeta records an unchanged item from the change cache without
// reading it, and returns the metadata stored with it.
func (w *sourceWriter) UnchangedMeta(e source.Entry, st source.FileState) ([]byte, bool, error) {
	// The index map is shared with the pipeline's workers.
	w.p.mu.Lock()
	rec, meta, ok := w.cache.lookupMeta(w.name, e.Path, st)
	w.p.mu.Unlock()
	if !ok {
		return nil, false, nil
	}
	if err := w.add(e); err != nil {
		return nil, false, err
	}
	ce := catalogEntry(e)
	ce.Size, ce.SHA256 = rec.entry.Size, rec.entry.SHA256
	rec.entry = ce
	rec.state, rec.meta = &st, meta
	if err := w.append(&rec); err != nil {
		return nil, false, err
	}
	w.res.BytesSkipped += ce.Size
	w.prog.Add(w.name, progress.Counts{Bytes: ce.Size, Files: 1})
	w.p.chunks.Add(int64(len(rec.locs)))
	return meta, true, nil
}

// Remember notes the state of the file just written.
func (w *sourceWriter) Remember(path string, st source.FileState) { w.RememberMeta(path, st, nil) }

// RememberMeta notes the state and metadata of the item just written: its
// record carries them to the spill and from there to the change cache.
func (w *sourceWriter) RememberMeta(path string, st source.FileState, meta []byte) {
	if n := len(w.open); n > 0 && w.open[n-1].entry.Path == path {
		w.open[n-1].state, w.open[n-1].meta = &st, meta
	}
}

package postgres

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sys/unix"

	"github.com/cofferhq/coffer/internal/fingerprint"
	"github.com/cofferhq/coffer/source"
)

// Options control Restore.
type Options struct {
	// Replace allows an existing target: the snapshot is restored into a
	// fresh database that is swapped in only after it succeeded.
	Replace bool
	// Force allows restoring over the very database the snapshot came from.
	Force bool
	// Jobs is the number of parallel pg_restore jobs; <= 1 streams the dump
	// into one pg_restore in a single transaction.
	Jobs int
	// MemoryBudget caps the memory-backed copy of the dump that a parallel
	// restore of a snapshot without a block list makes (default 1 GiB); a
	// larger dump is loaded with one job and its post-data section
	// (indexes, constraints) restored with Jobs. A snapshot with a block
	// list holds only its table of contents, which must fit.
	MemoryBudget int64
	// PgRestore is the pg_restore binary; found like pg_dump when empty.
	PgRestore string
	// Owner is the role to own the restored database and what its
	// original owner owned; when empty, the original owner does if that
	// role exists on the target server (see owners.go).
	Owner string
}

// Result describes a finished PostgreSQL restore.
type Result struct {
	Database     string // the restored database's name
	Replaced     bool   // an existing database of that name was replaced
	KeptOld      string // the replaced database, when it could not be dropped
	Jobs         int    // pg_restore jobs used
	DumpBytes    int64
	Fingerprints fingerprint.Fingerprints
	Globals      bool // the snapshot has roles and tablespaces (see Globals); never applied
	Owner        *OwnerResult
}

// Restored says what the restore did: which role owns the database.
func (r *Result) Restored() *source.Restored {
	out := &source.Restored{Facts: map[string]any{"database": r.Database}}
	if r.Owner != nil {
		out.Lines = append(append(out.Lines, r.Owner.String()), r.Owner.Notes()...)
		out.Facts["owner"] = r.Owner.Role
		out.Facts["owner_reason"] = r.Owner.Reason
		if len(r.Owner.MissingGrantees) > 0 {
			out.Facts["privileges_left_out_for"] = r.Owner.MissingGrantees
		}
	}
	if r.KeptOld != "" {
		out.Lines = append(out.Lines, fmt.Sprintf("the replaced database could not be dropped; it is kept as %s", r.KeptOld))
		out.Facts["kept_old"] = r.KeptOld
	}
	return out
}

const defaultMemoryBudget = 1 << 30

// Restore restores a PostgreSQL snapshot source into the database
// targetDSN names, which coffer creates on that server (connecting to its
// "postgres" database to do so). It then recomputes the fingerprints on the
// target; a difference is a *fingerprint.MismatchError. On any failure the
// database it created is dropped.
func Restore(ctx context.Context, src source.Reader, targetDSN string, opts Options) (*Result, error) {
	var info Info
	if err := src.Meta(MetaKey, &info); err != nil {
		return nil, fmt.Errorf("source %s is not a PostgreSQL snapshot: %w", src.Name(), err)
	}
	var want fingerprint.Fingerprints
	if err := src.Meta(fingerprint.MetaKey, &want); err != nil {
		return nil, fmt.Errorf("source %s: fingerprints: %w", src.Name(), err)
	}
	dump, ok := pgEntry(src, DumpPath)
	if !ok {
		return nil, fmt.Errorf("source %s has no %s", src.Name(), DumpPath)
	}
	cfg, err := pgx.ParseConfig(targetDSN)
	if err != nil {
		return nil, errors.New("postgres: invalid target DSN")
	}
	target := cfg.Database
	if target == "" {
		return nil, errors.New("postgres: the target DSN names no database")
	}
	adminCfg := cfg.Copy()
	adminCfg.Database = "postgres"
	admin, err := ConnectConfig(ctx, adminCfg)
	if err != nil {
		return nil, err
	}
	defer admin.Close(context.WithoutCancel(ctx))
	server, err := ServerInfo(ctx, admin)
	if err != nil {
		return nil, err
	}
	if !opts.Force && info.SystemIdentifier != "" && info.SystemIdentifier == server.SystemIdentifier && info.Database == target {
		return nil, fmt.Errorf("database %q on this server is the one the snapshot was taken from: %w", target, source.ErrRestoreOverSource)
	}
	exists, err := pgDatabaseExists(ctx, admin, target)
	if err != nil {
		return nil, err
	}
	if exists && !opts.Replace {
		return nil, fmt.Errorf("database %q already exists: %w", target, source.ErrTargetExists)
	}
	need := info.PgDumpVersion // pg_restore must read this archive...
	if MajorLess(need, server.ServerVersion) {
		need = server.ServerVersion // ...and talk to this server
	}
	pgRestore, _, err := FindTool("pg_restore", opts.PgRestore, need)
	if err != nil {
		return nil, err
	}

	into := target
	if exists {
		into = pgTempName(target, "_coffer_")
	}
	if _, err := admin.Exec(ctx, "create database "+pgx.Identifier{into}.Sanitize()+" template template0"); err != nil {
		return nil, fmt.Errorf("create database %q: %w", into, err)
	}
	res := &Result{Database: target, Replaced: exists, Globals: info.Globals}
	done := false
	defer func() {
		if !done {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			admin.Exec(dctx, "drop database if exists "+pgx.Identifier{into}.Sanitize()+" with (force)")
		}
	}()

	// A snapshot that records owners and privileges has them applied by
	// pgSetOwners, to the roles that exist here.
	noACL := info.Owners != nil
	if err := runPgRestore(ctx, src, dump, targetDSN, into, pgRestore, opts, noACL, res); err != nil {
		return nil, err
	}
	intoCfg := cfg.Copy()
	intoCfg.Database = into
	if res.Owner, err = pgOwn(ctx, intoCfg, into, info.Owners, opts.Owner); err != nil {
		return nil, err
	}
	got, err := pgFingerprints(ctx, intoCfg, info.Checks)
	if err != nil {
		return nil, fmt.Errorf("fingerprints of restored database %q: %w", into, err)
	}
	res.Fingerprints = got
	if diffs := fingerprint.Compare(want, got); len(diffs) > 0 {
		return nil, &fingerprint.MismatchError{Diffs: diffs}
	}
	if exists {
		kept, err := pgSwap(ctx, admin, target, into)
		if err != nil {
			return nil, err
		}
		res.KeptOld = kept
	}
	done = true
	return res, nil
}

// Globals streams the roles and tablespaces (pg_dumpall
// --globals-only) of a PostgreSQL snapshot source taken with globals. They
// are never applied by Restore.
func Globals(ctx context.Context, src source.Reader) (io.ReadCloser, error) {
	if _, ok := pgEntry(src, GlobalsPath); !ok {
		return nil, fmt.Errorf("source %s has no globals (back up with globals: true): %w", src.Name(), source.ErrNoMeta)
	}
	return src.Open(ctx, GlobalsPath)
}

func pgEntry(src source.Reader, path string) (source.Entry, bool) {
	return source.Lookup(src, path)
}

func pgDatabaseExists(ctx context.Context, conn *pgx.Conn, name string) (bool, error) {
	var ok bool
	if err := conn.QueryRow(ctx, "select exists (select 1 from pg_database where datname = $1)", name).Scan(&ok); err != nil {
		return false, fmt.Errorf("look up database %q: %w", name, err)
	}
	return ok, nil
}

// pgTempName returns name+infix+random, within PostgreSQL's 63-byte limit.
func pgTempName(name, infix string) string {
	b := make([]byte, 4)
	rand.Read(b)
	suffix := infix + hex.EncodeToString(b)
	if len(name)+len(suffix) > 63 {
		name = name[:63-len(suffix)]
	}
	return name + suffix
}

// pgOwn gives the restored database into to its owner (see owners.go).
func pgOwn(ctx context.Context, cfg *pgx.ConnConfig, into string, rec *Owners, given string) (*OwnerResult, error) {
	conn, err := ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return pgSetOwners(ctx, conn, into, rec, given)
}

func pgFingerprints(ctx context.Context, cfg *pgx.ConnConfig, checks []fingerprint.Check) (fingerprint.Fingerprints, error) {
	conn, err := ConnectConfig(ctx, cfg)
	if err != nil {
		return fingerprint.Fingerprints{}, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fingerprint.Fingerprints{}, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	return Fingerprints(ctx, tx, checks)
}

// runPgRestore restores the dump into database into, reading the snapshot's
// dump once, as a stream, and never writing plaintext to disk.
//
// With one job the whole dump streams into one pg_restore, in a single
// transaction. With more, a snapshot that lists its dump's data blocks is
// restored from them, by parallel runs that each read just their tables'
// blocks (pgRestoreBlocks). Otherwise (a snapshot taken before the list
// was recorded), a dump up to the memory budget is copied into a
// memory-backed file for pg_restore --jobs, whose scheduler builds a
// table's indexes while other tables load (measured faster than the
// sections below while the dump fits: doc/performance.md). A larger dump
// is restored in sections instead of with one job: the pre-data and data
// sections stream into one pg_restore (loading starts with the first
// decrypted chunk), and once the whole dump has been read and its hash
// verified, the post-data section (indexes, constraints, triggers) runs
// with the jobs in parallel from a memory-backed file that holds only the
// archive's header and table of contents: that section reads no table
// data. An archive whose table of contents coffer cannot read (another
// version of the format) is never restored in sections.
func runPgRestore(ctx context.Context, src source.Reader, dump source.Entry, dsn, into, pgRestore string, opts Options, noACL bool, res *Result) error {
	env, err := CommandEnv(dsn, into)
	if err != nil {
		return err
	}
	budget := opts.MemoryBudget
	if budget <= 0 {
		budget = defaultMemoryBudget
	}
	args := []string{"--no-owner", "--exit-on-error", "--no-password", "--dbname=" + env.ConnString}
	if noACL {
		args = append(args, "--no-privileges")
	}
	runWith := func(ctx context.Context, counter *pgCountingReader, stdin io.Reader, extra []*os.File, more ...string) error {
		if counter == nil {
			counter = &pgCountingReader{}
		}
		return pgRestoreRun(ctx, pgRestore, env.Env, into, append(args[:len(args):len(args)], more...), stdin, extra, counter)
	}
	if opts.Jobs > 1 {
		if ok, err := pgRestoreBlocks(ctx, src, dump, opts.Jobs, budget, into, runWith, res); ok || err != nil {
			return err
		}
	}
	rc, err := src.Open(ctx, DumpPath)
	if err != nil {
		return fmt.Errorf("open %s: %w", DumpPath, err)
	}
	defer func() { rc.Close() }()
	counter := &pgCountingReader{r: rc}
	defer func() { res.DumpBytes = counter.n }()
	run := func(stdin io.Reader, extra []*os.File, more ...string) error {
		return runWith(ctx, counter, stdin, extra, more...)
	}
	// stream restores everything from one pg_restore reading r.
	stream := func(r io.Reader) error {
		res.Jobs = 1
		if err := run(r, nil, "--single-transaction"); err != nil {
			return err
		}
		return pgDrain(r)
	}
	if opts.Jobs <= 1 {
		return stream(counter)
	}

	// The header and table of contents, kept in memory (up to the budget)
	// as they are read; then the dump from its start again.
	var head bytes.Buffer
	tocLen, err := pgArchiveTOCLength(io.TeeReader(io.LimitReader(counter, budget), &head))
	whole := io.MultiReader(bytes.NewReader(head.Bytes()), counter)
	switch {
	case counter.err != nil && counter.err != io.EOF:
		return fmt.Errorf("read %s: %w", DumpPath, counter.err)
	case errors.Is(err, errArchiveUnsupported):
		if dump.Size >= 0 && dump.Size > budget {
			return stream(whole)
		}
		return pgRestoreWhole(whole, budget, opts.Jobs, res, run, stream)
	case err != nil:
		// A table of contents larger than the budget, or a dump that ends
		// inside it: one job (pg_restore then reports the truncated dump).
		return stream(whole)
	case dump.Size >= 0 && dump.Size <= budget:
		return pgRestoreWhole(whole, budget, opts.Jobs, res, run, stream)
	}
	toc, err := pgMemfd(bytes.NewReader(head.Bytes()[:tocLen]))
	if err != nil {
		return err
	}
	defer toc.Close()
	res.Jobs = opts.Jobs
	if err := run(whole, nil, "--section=pre-data", "--section=data"); err != nil {
		return err
	}
	// Read to the end: the whole-file hash then vouches for the table of
	// contents the post-data section is restored from.
	if err := pgDrain(whole); err != nil {
		return err
	}
	return run(nil, []*os.File{toc}, "--section=post-data", "--jobs="+strconv.Itoa(opts.Jobs), "/proc/self/fd/3") // ExtraFiles[0] is fd 3
}

// pgRunner runs pg_restore with more arguments; a failure while counter
// was read is reported as the cause.
type pgRunner func(ctx context.Context, counter *pgCountingReader, stdin io.Reader, extra []*os.File, more ...string) error

// pgRestoreBlocks restores with jobs in parallel from the snapshot's list
// of dump blocks (blocks.go), when it has one and src reads ranges of a
// file (source.RangeReader); it returns false, having done nothing, when
// not. It reads the header and table of contents into a memory-backed
// file and runs the pre-data section from it. Then up to jobs pg_restore
// runs go at once (pgPlanBlocks): each loads tables of about as many
// bytes as the others, largest first, and builds their indexes and
// constraints as soon as they are loaded (--use-list), reading on standard
// input the table of contents followed by the blocks of just its tables,
// read from the snapshot where the list says they are. pg_restore reads an
// archive without data offsets forward, passing over blocks it was not
// asked for, so it finds each of its entries' blocks in turn; every COPY
// is its own (encoding, standard_conforming_strings, search_path). Last,
// the rest of the post-data section (what needs tables of two runs,
// materialized view data) runs with jobs from the table of contents.
//
// Nothing of the dump but the table of contents is held, in memory or
// anywhere else. Every byte comes from chunks verified against their
// keyed ids; the whole-file hash cannot be checked on ranges, so the
// list is checked against the table of contents before anything runs (the
// blocks must tile the dump after it, one for each entry with data), and
// each block, as it is read, must be the block of its entry and end where
// the list says (pgBlockChecker): a list that does not describe the dump
// fails the restore, which then leaves no database.
func pgRestoreBlocks(ctx context.Context, src source.Reader, dump source.Entry, jobs int, budget int64, into string, run pgRunner, res *Result) (bool, error) {
	rr, ok := src.(source.RangeReader)
	if !ok || dump.Size < 0 {
		return false, nil
	}
	var db DumpBlocks
	if err := src.Meta(BlocksMetaKey, &db); errors.Is(err, source.ErrNoMeta) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("source %s: %s: %w", src.Name(), BlocksMetaKey, err)
	}
	if db.Version != dumpBlocksVersion || db.TOC > budget {
		return false, nil
	}
	if db.TOC <= 0 || db.TOC > dump.Size {
		return true, blocksMismatch("the table of contents is %d bytes of a %d-byte dump", db.TOC, dump.Size)
	}
	head, toc, err := pgReadTOCRange(ctx, rr, db.TOC)
	if err != nil {
		return true, err
	}
	plan, err := pgPlanBlocks(toc, &db, dump.Size, jobs)
	if err != nil {
		return true, err
	}
	tocFile, err := pgMemfd(bytes.NewReader(head))
	if err != nil {
		return true, err
	}
	defer tocFile.Close()
	res.Jobs = jobs
	res.DumpBytes = int64(len(head))
	if err := run(ctx, nil, nil, []*os.File{tocFile}, "--section=pre-data", "/proc/self/fd/3"); err != nil {
		return true, err
	}
	n, err := pgRunBlocks(ctx, rr, plan.runs, head, toc.IntSize, into, run)
	res.DumpBytes += n
	if err != nil {
		return true, err
	}
	var more []string
	if len(plan.post) > 1 {
		more = []string{"--jobs=" + strconv.Itoa(jobs)}
	}
	return true, pgRunPostData(ctx, plan.post, tocFile, run, more...)
}

// pgRunPostData runs the post-data entries ids from the TOC file.
func pgRunPostData(ctx context.Context, ids []int64, tocFile *os.File, run pgRunner, more ...string) error {
	if len(ids) == 0 {
		return nil
	}
	list, err := pgListFile(ids)
	if err != nil {
		return err
	}
	defer list.Close()
	// ExtraFiles[0] is fd 3, [1] fd 4.
	return run(ctx, nil, nil, []*os.File{tocFile, list},
		append([]string{"--section=post-data", "--use-list=/proc/self/fd/4"}, append(more, "/proc/self/fd/3")...)...)
}

// pgListFile returns a memory-backed pg_restore --use-list file of ids.
func pgListFile(ids []int64) (*os.File, error) {
	var list bytes.Buffer
	for _, id := range ids {
		fmt.Fprintf(&list, "%d\n", id)
	}
	return pgMemfd(&list)
}

// pgReadTOCRange reads the dump's header and table of contents, which
// the block list says are its first n bytes, and parses them. It holds
// only the bytes parsed: a list that claims a larger table of contents
// than the dump has costs no more memory than the true one.
func pgReadTOCRange(ctx context.Context, rr source.RangeReader, n int64) ([]byte, *pgTOC, error) {
	rc, err := rr.OpenRanges(ctx, DumpPath, []source.Range{{Offset: 0, Length: n}})
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", DumpPath, err)
	}
	defer rc.Close()
	counter := &pgCountingReader{r: rc}
	var head bytes.Buffer
	toc, err := pgArchiveReadTOC(io.TeeReader(counter, &head), true)
	switch {
	case counter.err != nil && counter.err != io.EOF:
		return nil, nil, fmt.Errorf("read %s: %w", DumpPath, counter.err)
	case err != nil:
		return nil, nil, blocksMismatch("the first %d bytes are not a whole table of contents: %v", n, err)
	case toc.Length != n:
		return nil, nil, blocksMismatch("the table of contents is %d bytes, the list says %d", toc.Length, n)
	}
	return head.Bytes()[:n], toc, nil
}

// pgRunBlocks runs the data section's runs at once. The first to fail
// stops the others. It returns the bytes of blocks read.
func pgRunBlocks(ctx context.Context, rr source.RangeReader, runs []*pgBlockRun, head []byte, intSize int, into string, run pgRunner) (int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		total int64
	)
	for _, r := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := pgRunBlockRun(ctx, rr, r, head, intSize, into, run)
			mu.Lock()
			defer mu.Unlock()
			total += n
			if err != nil && first == nil {
				first = err
				cancel()
			}
		}()
	}
	wg.Wait()
	return total, first
}

// pgRunBlockRun runs pg_restore on one run's entries (its data entries
// and the post-data entries placed after them), listed in a memory-backed
// file, and feeds it the table of contents and the run's blocks, each
// checked as it passes.
func pgRunBlockRun(ctx context.Context, rr source.RangeReader, r *pgBlockRun, head []byte, intSize int, into string, run pgRunner) (int64, error) {
	listFile, err := pgListFile(r.ids)
	if err != nil {
		return 0, err
	}
	defer listFile.Close()
	readers := []io.Reader{bytes.NewReader(head)}
	if len(r.blocks) > 0 {
		var ranges []source.Range
		for _, b := range r.blocks {
			if k := len(ranges) - 1; k >= 0 && ranges[k].Offset+ranges[k].Length == b.Offset {
				ranges[k].Length += b.Length
			} else {
				ranges = append(ranges, source.Range{Offset: b.Offset, Length: b.Length})
			}
		}
		rc, err := rr.OpenRanges(ctx, DumpPath, ranges)
		if err != nil {
			return 0, fmt.Errorf("read %s: %w", DumpPath, err)
		}
		defer rc.Close()
		for _, b := range r.blocks {
			readers = append(readers, newPgBlockChecker(io.LimitReader(rc, b.Length), b, intSize))
		}
	}
	counter := &pgCountingReader{r: io.MultiReader(readers...)}
	err = run(ctx, counter, counter, []*os.File{listFile}, "--section=data", "--section=post-data", "--use-list=/proc/self/fd/3")
	n := max(counter.n-int64(len(head)), 0)
	switch {
	case err != nil:
	case counter.err != nil && counter.err != io.EOF:
		err = fmt.Errorf("read %s: %w", DumpPath, counter.err)
	case counter.err == nil:
		// pg_restore succeeded without reading its blocks to their end.
		err = fmt.Errorf("pg_restore into %q stopped reading %s after %d of its %d bytes", into, DumpPath, counter.n, int64(len(head))+r.bytes)
	}
	return n, err
}

// pgRestoreWhole restores with pg_restore --jobs from a memory-backed copy
// of the whole dump, or, when that is larger than budget after all, with
// one streaming job.
func pgRestoreWhole(whole io.Reader, budget int64, jobs int, res *Result, run func(io.Reader, []*os.File, ...string) error, stream func(io.Reader) error) error {
	counted := &pgCountingReader{r: io.LimitReader(whole, budget+1)}
	mem, err := pgMemfd(counted)
	if err != nil {
		return err
	}
	defer mem.Close()
	if counted.n > budget {
		return stream(io.MultiReader(mem, whole))
	}
	if err := pgDrain(whole); err != nil {
		return err
	}
	res.Jobs = jobs
	return run(nil, []*os.File{mem}, "--jobs="+strconv.Itoa(jobs), "/proc/self/fd/3")
}

// pgRestoreRun runs pg_restore with args. A failed read of the snapshot (a
// damaged pack) is reported as the cause: pg_restore then only saw a
// truncated archive.
func pgRestoreRun(ctx context.Context, pgRestore string, env []string, into string, args []string, stdin io.Reader, extra []*os.File, counter *pgCountingReader) error {
	cmd := pgCommand(ctx, pgRestore, env, args...)
	cmd.Stdin = stdin
	cmd.ExtraFiles = extra
	stderr := &pgTail{}
	cmd.Stderr = stderr
	if err := cmd.Run(); err != nil {
		if counter.err != nil && counter.err != io.EOF {
			return fmt.Errorf("read %s: %w", DumpPath, counter.err)
		}
		return fmt.Errorf("pg_restore into %q failed (%v): %s", into, err, stderr.last(5))
	}
	return nil
}

// pgDrain reads r to its end, so that the snapshot's reader verifies the
// whole-file hash.
func pgDrain(r io.Reader) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return fmt.Errorf("read %s: %w", DumpPath, err)
	}
	return nil
}

// pgMemfd copies r into a new memory-backed file, rewound.
func pgMemfd(r io.Reader) (*os.File, error) {
	fd, err := unix.MemfdCreate("coffer-pgdump", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "memfd:coffer-pgdump")
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return nil, fmt.Errorf("read %s: %w", DumpPath, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// pgSwap swaps database into in as target in one transaction: connections to
// target are refused and ended first. It returns the old database's name
// when the old database could not be dropped afterwards.
func pgSwap(ctx context.Context, admin *pgx.Conn, target, into string) (kept string, err error) {
	old := pgTempName(target, "_coffer_old_"+time.Now().UTC().Format("20060102150405")+"_")
	t, i, o := pgx.Identifier{target}.Sanitize(), pgx.Identifier{into}.Sanitize(), pgx.Identifier{old}.Sanitize()
	if _, err := admin.Exec(ctx, "alter database "+t+" allow_connections false"); err != nil {
		return "", fmt.Errorf("swap in restored database: refuse connections to %q: %w", target, err)
	}
	swapped := false
	defer func() {
		if !swapped {
			admin.Exec(context.WithoutCancel(ctx), "alter database "+t+" allow_connections true")
		}
	}()
	if _, err := admin.Exec(ctx, "select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()", target); err != nil {
		return "", fmt.Errorf("swap in restored database: end connections to %q: %w", target, err)
	}
	// Ended backends leave asynchronously; retry the rename for a while.
	deadline := time.Now().Add(10 * time.Second)
	for {
		tx, err := admin.Begin(ctx)
		if err != nil {
			return "", fmt.Errorf("swap in restored database: %w", err)
		}
		_, err = tx.Exec(ctx, "alter database "+t+" rename to "+o)
		if err == nil {
			_, err = tx.Exec(ctx, "alter database "+i+" rename to "+t)
		}
		if err == nil {
			err = tx.Commit(ctx)
		} else {
			tx.Rollback(ctx)
		}
		if err == nil {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return "", fmt.Errorf("swap in restored database %q: %w", target, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	swapped = true
	if _, err := admin.Exec(ctx, "drop database "+o+" with (force)"); err != nil {
		return old, nil
	}
	return "", nil
}

type pgCountingReader struct {
	r   io.Reader
	n   int64
	err error
}

func (c *pgCountingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err != nil {
		c.err = err
	}
	return n, err
}

// pgTail keeps the end of a child's standard error.
type pgTail struct{ b []byte }

func (t *pgTail) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 8<<10 {
		t.b = append(t.b[:0], t.b[len(t.b)-8<<10:]...)
	}
	return len(p), nil
}

func (t *pgTail) last(n int) string {
	lines := strings.Split(strings.TrimSpace(strings.ToValidUTF8(string(t.b), "")), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "; ")
}

func pgCommand(ctx context.Context, path string, env []string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = env
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

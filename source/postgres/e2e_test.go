package postgres

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/backup"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/internal/testing/fixture"
	"github.com/cofferhq/coffer/internal/testing/testrepo"
	"github.com/cofferhq/coffer/restore"
	"github.com/cofferhq/coffer/source"
)

// pgRepo is a local repository with fresh keys.
type pgRepo struct{ *testrepo.Repo }

func newPgRepo(t *testing.T) *pgRepo { return &pgRepo{testrepo.New(t)} }

func (p *pgRepo) backup(t *testing.T, src source.Source) *repo.Manifest {
	t.Helper()
	res, err := backup.Run(context.Background(), backup.Options{Repo: p.Host(t), Signing: p.Signing, Sources: []source.Source{src}})
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	return res.Manifest
}

func (p *pgRepo) source(t *testing.T, m *repo.Manifest, name string) *restore.Source {
	t.Helper()
	snap, err := restore.Load(context.Background(), p.Operator(t), m)
	if err != nil {
		t.Fatal(err)
	}
	s, err := snap.Source(name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestPostgresEndToEnd goes through the real pipeline: chunked, compressed
// and encrypted into a local repository, then restored from it, streaming
// and in parallel.
func TestPostgresEndToEnd(t *testing.T) {
	ctx := context.Background()
	srcDSN := newInvoiceDB(t, 11)
	p := newPgRepo(t)
	m := p.backup(t, &Source{SourceName: "invoices", DSN: srcDSN, Checks: pgChecks, Globals: true})
	// The catalog holds the dump's block list, and the parallel restore
	// reads the blocks from the repository by their ranges.
	var db DumpBlocks
	if err := p.source(t, m, "invoices").Meta(BlocksMetaKey, &db); err != nil || len(db.Blocks) < 3 {
		t.Fatalf("block list %+v, %v; want one block per table", db, err)
	}
	for _, jobs := range []int{1, 2} {
		wrapper, log := pgRestoreLogger(t)
		dst, _ := newTarget(t)
		res, err := Restore(ctx, p.source(t, m, "invoices"), dst, Options{Jobs: jobs, PgRestore: wrapper})
		if err != nil {
			t.Fatalf("restore (jobs %d): %v", jobs, err)
		}
		if res.Jobs != jobs {
			t.Errorf("jobs = %d, want %d", res.Jobs, jobs)
		}
		b, _ := os.ReadFile(log)
		if data := strings.Count(string(b), "--section=data --section=post-data --use-list"); (jobs == 1) != (data == 0) || data > jobs {
			t.Errorf("jobs %d: pg_restore runs:\n%s", jobs, b)
		}
		assertSameTables(t, srcDSN, dst)
	}
}

// TestPostgresDedup backs up an invoice database, changes 1% of its invoices
// with fixture.MutatePostgres and backs up again, reporting the second
// backup's new bytes. COFFER_TEST_DEDUP_INVOICES sets the size. The default,
// 30000 invoices (a 14 MB dump), keeps the suite fast and only checks that
// most of the second backup deduplicates: with content-defined chunks of
// about 1 MiB a small dump cannot show the ratio of a large one. With
// 200000 invoices (a 98 MB dump) the second backup stored 3.5% of the
// first's bytes.
func TestPostgresDedup(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	n := 30000
	if s := os.Getenv("COFFER_TEST_DEDUP_INVOICES"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	ctx := context.Background()
	dsn := fixture.NewPostgresDB(t)
	if err := fixture.CreatePostgres(ctx, dsn, fixture.Size{Vendors: max(n/200, 1), Invoices: n, LinesPerInvoice: 5}, 1); err != nil {
		t.Fatal(err)
	}
	p := newPgRepo(t)
	src := &Source{SourceName: "invoices", DSN: dsn, Checks: pgChecks}
	m1 := p.backup(t, src)
	if err := fixture.MutatePostgres(ctx, dsn, 0.01, 2); err != nil {
		t.Fatal(err)
	}
	m2 := p.backup(t, src)
	// The statistics are in each snapshot's private part, which only the
	// identity reads.
	stats := func(m *repo.Manifest) repo.Stats {
		priv, err := p.Operator(t).ReadPrivate(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		return priv.Stats
	}
	s1, s2 := stats(m1), stats(m2)
	t.Logf("%d invoices: first backup read %d, stored %d; after 1%% changed: read %d, new %d, stored %d (%.1f%% of the first's stored bytes)",
		n, s1.BytesRead, s1.BytesStored, s2.BytesRead, s2.BytesNew, s2.BytesStored, 100*float64(s2.BytesStored)/float64(s1.BytesStored))
	// A 14 MB dump has about 28 chunks; the changes touch the dump's
	// header and the end of each changed table. Each repository derives
	// its own chunker polynomial, so where chunks are cut, and how much of
	// a change one chunk carries, varies from run to run: measured 12% to
	// 44% new at this size (1.3% for a 1 GB database, doc/benchmarks.md).
	if s2.BytesNew*100 >= s2.BytesRead*60 {
		t.Errorf("second backup: %d new of %d bytes read: little deduplication", s2.BytesNew, s2.BytesRead)
	}
	if n >= 100000 && s2.BytesStored*10 >= s1.BytesStored {
		t.Errorf("second backup stored %d bytes, not well under 10%% of the first's %d", s2.BytesStored, s1.BytesStored)
	}
	dst, _ := newTarget(t)
	if _, err := Restore(ctx, p.source(t, m2, "invoices"), dst, Options{Jobs: 2}); err != nil {
		t.Fatal(err)
	}
	assertSameTables(t, dsn, dst)
}

package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer/internal/fingerprint"
	"github.com/cofferhq/coffer/internal/testing/fixture"
	"github.com/cofferhq/coffer/internal/testing/memsource"
	"github.com/cofferhq/coffer/source"
)

var pgChecks = []fingerprint.Check{
	{Name: "paid_total", Query: "select count(*), sum(total) from invoice where status = 'paid'"},
	{Name: "by_status", Query: "select status, count(*), sum(total) from invoice group by status order by status"},
}

var smallSize = fixture.Size{Vendors: 20, Invoices: 1500, LinesPerInvoice: 3}

// newInvoiceDB returns the DSN of a new fixture database.
func newInvoiceDB(t *testing.T, seed int64) string {
	t.Helper()
	dsn := fixture.NewPostgresDB(t)
	if err := fixture.CreatePostgres(context.Background(), dsn, smallSize, seed); err != nil {
		t.Fatal(err)
	}
	return dsn
}

// newTarget returns a DSN naming a database that does not exist yet and is
// dropped when the test ends.
func newTarget(t *testing.T) (dsn, name string) {
	t.Helper()
	name = pgTempName("coffer_test_target", "_")
	t.Cleanup(func() { fixture.DropPostgresDB(t, name) })
	return fixture.WithDatabase(fixture.AdminDSN(), name), name
}

func backupPostgres(t *testing.T, src *Source) *memsource.Snap {
	t.Helper()
	snap := memsource.New(src.SourceName, src.Kind())
	if err := src.Backup(context.Background(), snap); err != nil {
		t.Fatalf("Backup: %v", err)
	}
	return snap
}

func dbName(t *testing.T, dsn string) string {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Database
}

// leftovers lists databases whose names start with prefix.
func leftovers(t *testing.T, prefix string) []string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, fixture.AdminDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, _ := conn.Query(ctx, "select datname from pg_database where starts_with(datname, $1) order by 1", prefix)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func assertSameTables(t *testing.T, wantDSN, gotDSN string) {
	t.Helper()
	want, got := fixture.TableMD5(t, wantDSN), fixture.TableMD5(t, gotDSN)
	for _, tab := range fixture.Tables {
		if want[tab] != got[tab] {
			t.Errorf("table %s: md5 %s after restore, %s in source", tab, got[tab], want[tab])
		}
	}
}

func TestPostgresRoundTrip(t *testing.T) {
	ctx := context.Background()
	srcDSN := newInvoiceDB(t, 1)
	snap := backupPostgres(t, &Source{SourceName: "invoices", DSN: srcDSN, Checks: pgChecks, Globals: true})

	var info Info
	if err := snap.Meta(MetaKey, &info); err != nil {
		t.Fatal(err)
	}
	if info.SystemIdentifier == "" || info.Database != dbName(t, srcDSN) || info.PgDumpVersion == "" || info.ServerVersion == "" {
		t.Errorf("postgres meta = %+v, want server identity, database and versions", info)
	}
	var fp fingerprint.Fingerprints
	if err := snap.Meta(fingerprint.MetaKey, &fp); err != nil {
		t.Fatal(err)
	}
	if got, want := fp.Tables["public.invoice"], int64(smallSize.Invoices); got != want {
		t.Errorf("fingerprint public.invoice = %d, want %d", got, want)
	}
	if len(fp.Checks["by_status"]) < 3 {
		t.Errorf("check by_status = %q, want a row per status", fp.Checks["by_status"])
	}

	for _, jobs := range []int{1, 2} {
		dst, _ := newTarget(t)
		res, err := Restore(ctx, snap, dst, Options{Jobs: jobs})
		if err != nil {
			t.Fatalf("Restore(jobs %d): %v", jobs, err)
		}
		if res.Jobs != jobs || res.DumpBytes != int64(len(snap.Files[DumpPath])) || !res.Globals {
			t.Errorf("result = %+v, want %d jobs, %d dump bytes, globals", res, jobs, len(snap.Files[DumpPath]))
		}
		if d := fingerprint.Compare(fp, res.Fingerprints); len(d) > 0 {
			t.Errorf("fingerprints differ: %v", d)
		}
		assertSameTables(t, srcDSN, dst)
	}

	// A budget smaller than the table of contents falls back to one
	// streaming job.
	dst, _ := newTarget(t)
	res, err := Restore(ctx, snap, dst, Options{Jobs: 2, MemoryBudget: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if res.Jobs != 1 {
		t.Errorf("jobs = %d with a 1000-byte budget, want 1", res.Jobs)
	}

	g, err := Globals(ctx, snap)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(g)
	g.Close()
	if !strings.Contains(string(b), "CREATE ROLE postgres") || strings.Contains(string(b), "PASSWORD '") {
		t.Errorf("globals.sql lacks roles or has passwords:\n%s", b)
	}
}

func TestPostgresConsistencyUnderLoad(t *testing.T) {
	ctx := context.Background()
	srcDSN := newInvoiceDB(t, 2)

	// The writer inserts an invoice and pays an open one per transaction.
	var commits atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var loadErr atomic.Value
	wg.Add(1)
	go func() {
		defer wg.Done()
		conn, err := pgx.Connect(ctx, srcDSN)
		if err != nil {
			loadErr.Store(err)
			return
		}
		defer conn.Close(ctx)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			tx, err := conn.Begin(ctx)
			if err == nil {
				_, err = tx.Exec(ctx, `insert into invoice (vendor_id, invoice_number, issue_date, due_date, currency, total, status, created_at, updated_at)
					values (1, $1, current_date, current_date + 30, 'EUR', 99.5, 'open', now(), now())`, fmt.Sprintf("LOAD-%d", i))
			}
			if err == nil {
				_, err = tx.Exec(ctx, `update invoice set status = 'paid', updated_at = now()
					where id = (select id from invoice where status = 'open' order by id limit 1)`)
			}
			if err == nil {
				err = tx.Commit(ctx)
			}
			if err != nil {
				loadErr.Store(err)
				return
			}
			commits.Add(1)
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	for commits.Load() < 10 {
		if err := loadErr.Load(); err != nil {
			t.Fatalf("load: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}

	snap := memsource.New("invoices", "postgres")
	var atFirstRead int64 = -1
	snap.OnRead = func(path string, n int64) {
		if atFirstRead >= 0 {
			return
		}
		// Hold the dump until the writer has committed more transactions.
		atFirstRead = commits.Load()
		deadline := time.Now().Add(10 * time.Second)
		for commits.Load() < atFirstRead+20 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	}
	src := &Source{SourceName: "invoices", DSN: srcDSN, Checks: pgChecks}
	if err := src.Backup(ctx, snap); err != nil {
		t.Fatal(err)
	}
	during := commits.Load() - atFirstRead
	if err := loadErr.Load(); err != nil {
		t.Fatalf("load: %v", err)
	}
	if during < 20 {
		t.Fatalf("only %d writes committed during the dump", during)
	}
	var want fingerprint.Fingerprints
	snap.Meta(fingerprint.MetaKey, &want)

	dst, _ := newTarget(t)
	res, err := Restore(ctx, snap, dst, Options{Jobs: 1})
	if err != nil {
		t.Fatalf("restore of a dump taken under load: %v", err)
	}
	if d := fingerprint.Compare(want, res.Fingerprints); len(d) > 0 {
		t.Fatalf("restored fingerprints differ: %v", d)
	}

	// The load did change the source: its fingerprints now differ.
	conn, err := pgx.Connect(ctx, srcDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	now, err := Fingerprints(ctx, conn, pgChecks)
	if err != nil {
		t.Fatal(err)
	}
	if d := fingerprint.Compare(want, now); len(d) == 0 {
		t.Fatal("source fingerprints after the load equal the backup's: the load changed nothing")
	} else {
		t.Logf("%d writes during the dump; later differences: %v", during, d)
	}
}

func TestPostgresReplace(t *testing.T) {
	ctx := context.Background()
	srcDSN := newInvoiceDB(t, 3)
	snap := backupPostgres(t, &Source{SourceName: "invoices", DSN: srcDSN, Checks: pgChecks})

	dst, name := newTarget(t)
	if err := fixture.CreatePostgres(ctx, func() string {
		conn, err := pgx.Connect(ctx, fixture.AdminDSN())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "create database "+pgx.Identifier{name}.Sanitize()); err != nil {
			t.Fatal(err)
		}
		return dst
	}(), fixture.Size{Vendors: 2, Invoices: 10, LinesPerInvoice: 1}, 99); err != nil {
		t.Fatal(err)
	}
	before := fixture.TableMD5(t, dst)

	// Without Replace: refused, target untouched.
	_, err := Restore(ctx, snap, dst, Options{})
	if !errors.Is(err, source.ErrTargetExists) || !strings.Contains(err.Error(), `database "`+name+`" already exists`) {
		t.Fatalf("restore over an existing database: err = %v, want source.ErrTargetExists", err)
	}

	// A failing replace leaves the target as it was and no temporary database.
	bad := corrupted(snap)
	if _, err := Restore(ctx, bad, dst, Options{Replace: true}); err == nil {
		t.Fatal("replace with a corrupt dump succeeded")
	}
	if got := fixture.TableMD5(t, dst); got["invoice"] != before["invoice"] {
		t.Errorf("failed replace changed the target")
	}
	if l := leftovers(t, name+"_coffer_"); len(l) > 0 {
		t.Errorf("failed replace left databases %v", l)
	}

	// An open connection to the old database does not block the swap.
	hold, err := pgx.Connect(ctx, dst)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close(ctx)
	res, err := Restore(ctx, snap, dst, Options{Replace: true, Jobs: 2})
	if err != nil {
		t.Fatalf("replace: %v", err)
	}
	if !res.Replaced || res.KeptOld != "" {
		t.Errorf("result = %+v, want Replaced and the old database dropped", res)
	}
	assertSameTables(t, srcDSN, dst)
	if l := leftovers(t, name+"_coffer_"); len(l) > 0 {
		t.Errorf("replace left databases %v", l)
	}
}

// corrupted returns a copy of snap whose dump is garbage after its first
// 2 KiB (the header and part of the table of contents stay valid).
func corrupted(snap *memsource.Snap) *memsource.Snap {
	c := memsource.New(snap.Name(), snap.Kind())
	c.List, c.MetaJSON = snap.List, snap.MetaJSON
	for p, b := range snap.Files {
		c.Files[p] = b
	}
	d := append([]byte(nil), snap.Files[DumpPath]...)
	for i := 2048; i < len(d); i++ {
		d[i] = byte(i*7 + 13)
	}
	c.Files[DumpPath] = d
	return c
}

func TestPostgresCorruptDumpLeavesNothing(t *testing.T) {
	ctx := context.Background()
	snap := backupPostgres(t, &Source{SourceName: "invoices", DSN: newInvoiceDB(t, 4)})
	garbage := corrupted(snap)
	garbage.Files[DumpPath] = []byte(strings.Repeat("not a dump ", 1000))
	for _, tc := range []struct {
		name string
		snap *memsource.Snap
		jobs int
		want string
	}{
		{"garbage", garbage, 1, "pg_restore"},
		{"damaged", corrupted(snap), 1, "pg_restore"},
		{"damaged parallel", withoutBlocks(corrupted(snap)), 2, "pg_restore"},
		// The TOC no longer matches the block list.
		{"damaged parallel, block list", corrupted(snap), 2, "list of dump blocks does not match"},
	} {
		dst, name := newTarget(t)
		_, err := Restore(ctx, tc.snap, dst, Options{Jobs: tc.jobs})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
		if fixture.PostgresDatabaseExists(t, name) {
			t.Errorf("%s: failed restore left database %s", tc.name, name)
		}
	}
}

func TestPostgresRestoreOverSource(t *testing.T) {
	ctx := context.Background()
	srcDSN := newInvoiceDB(t, 5)
	snap := backupPostgres(t, &Source{SourceName: "invoices", DSN: srcDSN})
	before := fixture.TableMD5(t, srcDSN)
	for _, opts := range []Options{{}, {Replace: true}} {
		_, err := Restore(ctx, snap, srcDSN, opts)
		if !errors.Is(err, source.ErrRestoreOverSource) || !strings.Contains(err.Error(), "the one the snapshot was taken from") {
			t.Errorf("restore over the source (%+v): err = %v, want source.ErrRestoreOverSource", opts, err)
		}
	}
	if after := fixture.TableMD5(t, srcDSN); after["invoice"] != before["invoice"] {
		t.Error("refused restore changed the source")
	}
	// With Force and Replace it goes ahead.
	if _, err := Restore(ctx, snap, srcDSN, Options{Force: true, Replace: true}); err != nil {
		t.Fatalf("forced restore over the source: %v", err)
	}
	after := fixture.TableMD5(t, srcDSN)
	for _, tab := range fixture.Tables {
		if after[tab] != before[tab] {
			t.Errorf("table %s differs after the forced restore", tab)
		}
	}
}

func TestPostgresFingerprintMismatch(t *testing.T) {
	ctx := context.Background()
	snap := backupPostgres(t, &Source{SourceName: "invoices", DSN: newInvoiceDB(t, 6), Checks: pgChecks})
	var fp fingerprint.Fingerprints
	snap.Meta(fingerprint.MetaKey, &fp)
	fp.Tables["public.payment"]++
	fp.Checks["paid_total"] = []string{"1|2.00"}
	snap.SetMeta(fingerprint.MetaKey, fp)

	dst, name := newTarget(t)
	_, err := Restore(ctx, snap, dst, Options{})
	var me *fingerprint.MismatchError
	if !errors.As(err, &me) || len(me.Diffs) != 2 {
		t.Fatalf("err = %v, want a fingerprint.MismatchError with 2 differences", err)
	}
	if !strings.Contains(err.Error(), "table public.payment: backup") || !strings.Contains(err.Error(), "check paid_total") {
		t.Errorf("error %q does not name the differences", err)
	}
	if fixture.PostgresDatabaseExists(t, name) {
		t.Error("mismatching restore left its database")
	}
}

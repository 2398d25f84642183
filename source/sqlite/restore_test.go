package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/fingerprint"
	"github.com/cofferhq/coffer/internal/testing/fixture"
	"github.com/cofferhq/coffer/internal/testing/memsource"
	"github.com/cofferhq/coffer/source"
)

var sqliteChecks = []fingerprint.Check{
	{Name: "paid_total", Query: "select count(*), sum(total) from invoice where status = 'paid'"},
}

func tableDigest(t *testing.T, path string) map[string]string {
	t.Helper()
	db, err := Open(path, true)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := map[string]string{}
	for _, tab := range fixture.Tables {
		rows, err := db.Query("select name from pragma_table_info(?) order by cid", tab)
		if err != nil {
			t.Fatal(err)
		}
		var cols []string
		for rows.Next() {
			var c string
			rows.Scan(&c)
			cols = append(cols, "quote("+c+")")
		}
		rows.Close()
		// Every column of every row, as SQL literals, in id order.
		var s sql.NullString
		q := fmt.Sprintf("select group_concat(r, '|') from (select %s as r from %s order by id)", strings.Join(cols, " || ',' || "), tab)
		if err := db.QueryRow(q).Scan(&s); err != nil {
			t.Fatalf("digest %s: %v", tab, err)
		}
		out[tab] = s.String
	}
	return out
}

func TestSQLiteRoundTripUnderLoad(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "airflow.db")
	if err := fixture.CreateSQLite(ctx, path, fixture.Size{Vendors: 10, Invoices: 500, LinesPerInvoice: 3}, 1); err != nil {
		t.Fatal(err)
	}
	// A writer in another connection inserts and pays invoices throughout;
	// in WAL mode it does not wait for the backup's read transaction.
	w, err := Open(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Exec("pragma journal_mode = wal; pragma synchronous = off"); err != nil {
		t.Fatal(err)
	}
	var commits atomic.Int64
	var loadErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_, err := w.Exec(`insert into invoice (vendor_id, invoice_number, issue_date, due_date, currency, total, status, created_at, updated_at)
				values (1, ?, '2026-07-01', '2026-07-31', 'EUR', 10.5, 'open', '2026-07-01', '2026-07-01')`, fmt.Sprintf("LOAD-%d", i))
			if err == nil {
				_, err = w.Exec(`update invoice set status = 'paid' where id = (select min(id) from invoice where status = 'open')`)
			}
			if err != nil {
				loadErr.Store(err)
				return
			}
			commits.Add(1)
		}
	}()
	for commits.Load() < 5 {
		if err := loadErr.Load(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}

	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	snap := memsource.New("airflow", "sqlite")
	src := &Source{SourceName: "airflow", Path: path, Checks: sqliteChecks}
	before, start := commits.Load(), time.Now()
	if err := src.Backup(ctx, snap); err != nil {
		t.Fatal(err)
	}
	during := commits.Load() - before
	t.Logf("backup took %v, %d writes committed meanwhile", time.Since(start), during)
	if during == 0 {
		t.Error("no writes committed during the backup")
	}
	close(stop)
	wg.Wait()
	if err := loadErr.Load(); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		t.Errorf("backup left %v in the temporary folder", left)
	}

	target := filepath.Join(dir, "restored.db")
	if err := Restore(ctx, snap, target, false); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(target); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("restored file: %v, %v; want mode 0600", st.Mode(), err)
	}
	if _, err := os.Stat(target + ".coffer-tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary file left behind: %v", err)
	}
	var want fingerprint.Fingerprints
	snap.Meta(fingerprint.MetaKey, &want)
	if want.Tables["invoice"] < 505 || len(want.Tables) != 5 {
		t.Errorf("backup fingerprints = %v", want.Tables)
	}
	// The source moved on after the backup: its counts differ now.
	src2, _ := Open(path, true)
	defer src2.Close()
	now, err := Fingerprints(ctx, src2, sqliteChecks)
	if err != nil {
		t.Fatal(err)
	}
	if len(fingerprint.Compare(want, now)) == 0 {
		t.Error("source fingerprints after the load equal the backup's")
	}

	// Independent of the fingerprints: the restored invoices are a prefix
	// of the source's (the load only appends and pays the oldest open ones,
	// so compare the untouched lines table and the invoice count).
	got, src3 := tableDigest(t, target), tableDigest(t, path)
	if got["invoice_line"] != src3["invoice_line"] || got["vendor"] != src3["vendor"] || got["invoice_line"] == "" {
		t.Error("restored invoice_line or vendor differ from the source")
	}
	if got["invoice"] == src3["invoice"] {
		t.Error("restored invoices equal the source's after the load")
	}

	// An existing target needs force.
	err = Restore(ctx, snap, target, false)
	if !errors.Is(err, source.ErrTargetFileExists) || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("restore over an existing file: err = %v, want source.ErrTargetFileExists", err)
	}
	os.WriteFile(target+"-wal", []byte("stale"), 0o600)
	if err := Restore(ctx, snap, target, true); err != nil {
		t.Fatalf("forced restore: %v", err)
	}
	if _, err := os.Stat(target + "-wal"); !errors.Is(err, os.ErrNotExist) {
		t.Error("forced restore kept the old database's -wal file")
	}
}

func TestSQLiteRestoreDamaged(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "a.db")
	if err := fixture.CreateSQLite(ctx, path, fixture.Size{Vendors: 3, Invoices: 300, LinesPerInvoice: 2}, 2); err != nil {
		t.Fatal(err)
	}
	snap := memsource.New("a", "sqlite")
	if err := (&Source{SourceName: "a", Path: path}).Backup(ctx, snap); err != nil {
		t.Fatal(err)
	}
	good := snap.Files[DatabasePath]

	// Intact: every table equal to the source, column by column.
	okTarget := filepath.Join(dir, "ok.db")
	if err := Restore(ctx, snap, okTarget, false); err != nil {
		t.Fatal(err)
	}
	want, got := tableDigest(t, path), tableDigest(t, okTarget)
	for _, tab := range fixture.Tables {
		if want[tab] != got[tab] || got[tab] == "" {
			t.Errorf("table %s differs after restore", tab)
		}
	}

	// Damaged pages: integrity_check (or opening) fails.
	bad := append([]byte(nil), good...)
	for i := 4096 * 2; i < len(bad) && i < 4096*6; i++ {
		bad[i] ^= 0x5a
	}
	snap.Files[DatabasePath] = bad
	target := filepath.Join(dir, "r.db")
	if err := Restore(ctx, snap, target, false); err == nil {
		t.Fatal("restore of a damaged database succeeded")
	} else {
		t.Logf("damaged: %v", err)
	}
	for _, p := range []string{target, target + ".coffer-tmp"} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s exists after a failed restore", p)
		}
	}

	// Intact file, wrong fingerprints: fingerprint.MismatchError.
	snap.Files[DatabasePath] = good
	var fp fingerprint.Fingerprints
	snap.Meta(fingerprint.MetaKey, &fp)
	fp.Tables["invoice"] = 1
	snap.SetMeta(fingerprint.MetaKey, fp)
	var me *fingerprint.MismatchError
	if err := Restore(ctx, snap, target, false); !errors.As(err, &me) || !strings.Contains(err.Error(), "table invoice: backup 1, restored 300") {
		t.Errorf("err = %v, want fingerprint.MismatchError for table invoice", err)
	}
	if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
		t.Error("target exists after a mismatching restore")
	}

	// A missing source file is an error, not a new empty database.
	if err := (&Source{SourceName: "x", Path: filepath.Join(dir, "nope.db")}).Backup(ctx, memsource.New("x", "sqlite")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing source: err = %v, want ErrNotExist", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "nope.db")); err == nil {
		t.Error("backup of a missing database created it")
	}
}

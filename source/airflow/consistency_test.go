package airflow_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer/backup"
	"github.com/cofferhq/coffer/internal/testing/airflowfixture"
	"github.com/cofferhq/coffer/internal/testing/fixture"
	"github.com/cofferhq/coffer/internal/testing/testrepo"
	"github.com/cofferhq/coffer/restore"
	"github.com/cofferhq/coffer/source"
	"github.com/cofferhq/coffer/source/airflow"
	"github.com/cofferhq/coffer/source/postgres"
	"github.com/cofferhq/coffer/source/registry"
)

// TestMetadataDatabaseFirst is the writer: a task logs a step in
// the metadata database and then inserts the invoice into the store,
// every few milliseconds, during the backup. Named after the store, the
// airflow source is still backed up first, so every step the restored
// metadata database records has its invoice in the restored store (the
// other way round, the store may hold invoices Airflow has no record of,
// which a re-run of the task repairs). The consistent points show the
// order.
func TestMetadataDatabaseFirst(t *testing.T) {
	ctx := context.Background()
	d := airflowfixture.New(t, "postgres", airflowfixture.Options{Runs: 2, NoGit: true})
	metaDSN, err := postgres.DSN(d.URL)
	if err != nil {
		t.Fatal(err)
	}
	storeDSN := fixture.NewPostgresDB(t)
	store, err := pgx.Connect(ctx, storeDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close(ctx)
	if _, err := store.Exec(ctx, "create table invoice (number text primary key, cents bigint)"); err != nil {
		t.Fatal(err)
	}
	meta, err := pgx.Connect(ctx, metaDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer meta.Close(ctx)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var written atomic.Int64
	var werr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			num := fmt.Sprintf("INV-2026-%06d", i)
			if _, werr = meta.Exec(ctx, "insert into log (dttm, dag_id, task_id, event, owner, extra) values (now(), 'invoice_ingest', 'load_invoice', 'invoice_loaded', 'airflow', $1)", num); werr != nil {
				return
			}
			if _, werr = store.Exec(ctx, "insert into invoice values ($1, $2)", num, i*100); werr != nil {
				return
			}
			written.Add(1)
			time.Sleep(2 * time.Millisecond)
		}
	}()
	for written.Load() < 20 {
		time.Sleep(5 * time.Millisecond)
	}

	tr := testrepo.New(t)
	srcs := []source.Source{
		&postgres.Source{SourceName: "invoicedb", DSN: storeDSN},
		&airflow.Source{SourceName: "deploy", Options: airflow.Options{Home: d.Home}},
	}
	registry.BackupOrder(srcs)
	res, err := backup.Run(ctx, backup.Options{Repo: tr.Host(t), Signing: tr.Signing, Sources: srcs})
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if werr != nil {
		t.Fatal(werr)
	}
	if got := res.Manifest.Sources[0].Name; got != "deploy" {
		t.Errorf("first source %s, want deploy", got)
	}

	snap, err := restore.Load(ctx, tr.Operator(t), res.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	dep, err := snap.Source("deploy")
	if err != nil {
		t.Fatal(err)
	}
	inv, err := snap.Source("invoicedb")
	if err != nil {
		t.Fatal(err)
	}
	var m airflow.Meta
	if err := dep.Meta(airflow.MetaKey, &m); err != nil {
		t.Fatal(err)
	}
	var storePoint source.ConsistentPoint
	if err := inv.Meta(source.ConsistentKey, &storePoint); err != nil {
		t.Fatal(err)
	}
	if mp := m.Consistent["metadb"]; !mp.Time.Before(storePoint.Time) || mp.LSN == "" || storePoint.LSN == "" {
		t.Errorf("metadb point %+v, store point %+v: want the metadata database first, with LSNs", mp, storePoint)
	}

	restored := func(src source.Reader) *pgx.Conn {
		var b [4]byte
		rand.Read(b[:])
		name := "coffer_test_restored_" + hex.EncodeToString(b[:])
		t.Cleanup(func() { fixture.DropPostgresDB(t, name) })
		dsn := fixture.WithDatabase(fixture.AdminDSN(), name)
		if _, err := postgres.Restore(ctx, src, dsn, postgres.Options{}); err != nil {
			t.Fatal(err)
		}
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(ctx) })
		return c
	}
	rm, rs := restored(source.Sub(dep, airflow.PartMetaDB, "postgres")), restored(inv)
	var logged, stored int
	if err := rm.QueryRow(ctx, "select count(*) from log where event = 'invoice_loaded'").Scan(&logged); err != nil {
		t.Fatal(err)
	}
	if err := rs.QueryRow(ctx, "select count(*) from invoice").Scan(&stored); err != nil {
		t.Fatal(err)
	}
	rows, err := rm.Query(ctx, "select extra from log where event = 'invoice_loaded'")
	if err != nil {
		t.Fatal(err)
	}
	nums, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	var missing int
	if err := rs.QueryRow(ctx, "select count(*) from unnest($1::text[]) n where not exists (select 1 from invoice where number = n)", nums).Scan(&missing); err != nil {
		t.Fatal(err)
	}
	if missing != 0 || logged < 20 || stored < logged {
		t.Errorf("restored: %d steps logged, %d invoices stored, %d logged steps without their invoice", logged, stored, missing)
	}
	t.Logf("restored: %d steps logged, %d invoices stored (%d written during the test)", logged, stored, written.Load())
}

// Command mkinvoicedb creates or mutates an invoice database for
// scripts/bench-postgres.sh with internal/testing/fixture.
//
//	mkinvoicedb -admin DSN -db NAME -mb 1024 [-seed 1]   create NAME (must not exist)
//	mkinvoicedb -dsn DSN -mutate 0.01 [-seed 2]          one "day" of changes
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer/internal/testing/fixture"
)

func main() {
	admin := flag.String("admin", fixture.AdminDSN(), "maintenance database DSN (create)")
	db := flag.String("db", "", "database to create")
	mb := flag.Int64("mb", 1024, "approximate database size in MiB (pg_database_size)")
	seed := flag.Int64("seed", 1, "seed")
	dsn := flag.String("dsn", "", "database to mutate")
	mutate := flag.Float64("mutate", 0, "fraction of invoice rows to change")
	scattered := flag.Bool("scattered", false, "with -mutate: pay invoices spread over the whole table, not the most recent")
	// fixture.SizeForBytes counts 1040 bytes per invoice, as measured on
	// PostgreSQL 15 (-mb 100 gives a 107 MB database); -scale corrects
	// for a server that stores invoices more or less densely.
	scale := flag.Float64("scale", 1, "multiply the size asked of fixture.SizeForBytes")
	flag.Parse()
	ctx := context.Background()
	start := time.Now()
	switch {
	case *mutate > 0 && *dsn != "":
		mutate1 := fixture.MutatePostgres
		if *scattered {
			mutate1 = fixture.MutatePostgresScattered
		}
		if err := mutate1(ctx, *dsn, *mutate, *seed); err != nil {
			fail(err)
		}
		fmt.Printf("mkinvoicedb: mutated %.1f%% of the invoices in %s\n", *mutate*100, time.Since(start).Round(time.Millisecond))
	case *db != "":
		conn, err := pgx.Connect(ctx, *admin)
		if err != nil {
			fail(err)
		}
		if _, err := conn.Exec(ctx, "create database "+pgx.Identifier{*db}.Sanitize()); err != nil {
			fail(err)
		}
		size := fixture.SizeForBytes(int64(float64(*mb<<20) * *scale))
		target := fixture.WithDatabase(*admin, *db)
		if err := fixture.CreatePostgres(ctx, target, size, *seed); err != nil {
			fail(err)
		}
		var n int64
		if err := conn.QueryRow(ctx, "select pg_database_size($1)", *db).Scan(&n); err != nil {
			fail(err)
		}
		conn.Close(ctx)
		fmt.Printf("mkinvoicedb: %s: %d vendors, %d invoices, %d MiB in %s\n", *db, size.Vendors, size.Invoices, n>>20, time.Since(start).Round(time.Second))
	default:
		fmt.Fprintln(os.Stderr, "usage: mkinvoicedb -db NAME -mb N | -dsn DSN -mutate FRACTION")
		os.Exit(2)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "mkinvoicedb:", err)
	os.Exit(1)
}

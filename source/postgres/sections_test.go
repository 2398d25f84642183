package postgres

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer/internal/fingerprint"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/internal/testing/fixture"
	"github.com/cofferhq/coffer/internal/testing/memsource"
)

// dbState is what a restore must bring back: the schema as pg_dump
// prints it (owners, privileges, indexes, constraints, triggers), each
// table's contents, the large objects and the sequence.
type dbState struct {
	schema string
	data   map[string]string
}

var restrictLine = regexp.MustCompile(`(?m)^\\(un)?restrict .*$`)

func stateOf(t *testing.T, dsn string) dbState {
	t.Helper()
	ctx := context.Background()
	pgDump, _, err := FindTool("pg_dump", "", "0")
	if err != nil {
		t.Fatal(err)
	}
	env, err := CommandEnv(dsn, "")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(pgDump, "--schema-only", "--no-password", env.ConnString)
	cmd.Env = env.Env
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pg_dump --schema-only: %v", err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	st := dbState{schema: restrictLine.ReplaceAllString(string(out), ""), data: map[string]string{}}
	rows, err := conn.Query(ctx, `select c.relname from pg_class c where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'm') order by 1`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	for _, tab := range tables {
		var sum string
		q := fmt.Sprintf("select coalesce(md5(string_agg(x::text, ',' order by x::text)), '') from %s x", pgx.Identifier{tab}.Sanitize())
		if err := conn.QueryRow(ctx, q).Scan(&sum); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		st.data[tab] = sum
	}
	var los, seq string
	if err := conn.QueryRow(ctx, "select count(*) || ':' || coalesce(md5(string_agg(md5(lo_get(oid)), ',' order by oid)), '') from pg_largeobject_metadata").Scan(&los); err != nil {
		t.Fatal(err)
	}
	st.data["large objects"] = los
	if err := conn.QueryRow(ctx, "select last_value::text from s").Scan(&seq); err != nil {
		t.Fatal(err)
	}
	st.data["sequence s"] = seq
	return st
}

// TestPostgresParallelRestoreSameAsBefore restores a database with many
// tables, large objects, grants, comments and a materialized view in every
// way Restore has: streamed with one job; from the dump's block list with
// 2 and 3 jobs (blocks.go), within the memory budget and over it; and, for
// a snapshot without the list (taken before it was recorded), from a
// memory-backed copy of the whole dump with pg_restore --jobs 2, or, for a
// dump larger than the budget, with the pre-data and data sections
// streamed and the post-data section in parallel from the table of
// contents. All must give the same database, with the source's data.
func TestPostgresParallelRestoreSameAsBefore(t *testing.T) {
	ctx := context.Background()
	srcDSN := newRichDB(t)
	snap := backupPostgres(t, &Source{SourceName: "rich", DSN: srcDSN, Checks: pgChecksRich})
	want := stateOf(t, srcDSN)
	if len(want.data) < 124 || !strings.HasPrefix(want.data["large objects"], "3:") {
		t.Fatalf("source state has %d entries, large objects %q: the fixture is not what this test needs", len(want.data), want.data["large objects"])
	}
	old := withoutBlocks(snap)

	dump := int64(len(snap.Files[DumpPath]))
	restoreWith := func(snap *memsource.Snap, jobs int, budget int64) dbState {
		t.Helper()
		dst, _ := newTarget(t)
		res, err := Restore(ctx, snap, dst, Options{Jobs: jobs, MemoryBudget: budget})
		if err != nil {
			t.Fatalf("Restore(jobs %d, budget %d): %v", jobs, budget, err)
		}
		if res.Jobs != jobs || res.DumpBytes != dump {
			t.Errorf("jobs %d, budget %d: result %d jobs, %d dump bytes; want %d, %d", jobs, budget, res.Jobs, res.DumpBytes, jobs, dump)
		}
		return stateOf(t, dst)
	}
	before := restoreWith(snap, 1, 0)
	for name, got := range map[string]dbState{
		"blocks, 2 jobs":                    restoreWith(snap, 2, 0),
		"blocks, 3 jobs, over the budget":   restoreWith(snap, 3, dump-1),
		"no block list: whole dump, 2 jobs": restoreWith(old, 2, 0),
		"no block list: sections, 2 jobs":   restoreWith(old, 2, dump-1),
	} {
		if got.schema != before.schema {
			t.Errorf("%s: schema differs from the one-job restore:\n%s\none-job restore:\n%s", name, got.schema, before.schema)
		}
		for tab, sum := range want.data {
			if got.data[tab] != sum || before.data[tab] != sum {
				t.Errorf("%s: %s is %q (one-job restore %q), source %q", name, tab, got.data[tab], before.data[tab], sum)
			}
		}
	}
	// Indexes, constraints, triggers and grants are all there.
	for _, s := range []string{"CREATE INDEX t119_v", "t119_parent_fkey", "CREATE UNIQUE INDEX mv_n", "CREATE TRIGGER t0_touch",
		"COMMENT ON INDEX public.t7_v IS 'index 7'", "GRANT SELECT ON TABLE public.big TO", "big_payload"} {
		if !strings.Contains(before.schema, s) {
			t.Errorf("restored schema lacks %q", s)
		}
	}
}

// withoutBlocks returns a copy of snap without the dump's block list, as a
// snapshot taken before it was recorded.
func withoutBlocks(snap *memsource.Snap) *memsource.Snap {
	c := memsource.New(snap.Name(), snap.Kind())
	c.List, c.Files = snap.List, snap.Files
	for k, v := range snap.MetaJSON {
		if k != BlocksMetaKey {
			c.MetaJSON[k] = v
		}
	}
	return c
}

var pgChecksRich = []fingerprint.Check{{Name: "big", Query: "select count(*), max(id) from big"}}

// TestPostgresParallelRestoreReadsTOCOnly restores a dump larger than the
// memory budget, from a snapshot without a block list, with 2 jobs, running the real pg_restore through a wrapper
// that records its arguments and the size of the file it is given: the
// data must arrive on standard input, and the parallel post-data run must
// get a file that holds only the header and table of contents, never the
// whole dump. (Before, such a dump was restored with one job.)
func TestPostgresParallelRestoreReadsTOCOnly(t *testing.T) {
	ctx := context.Background()
	srcDSN := newInvoiceDB(t, 12)
	snap := backupPostgres(t, &Source{SourceName: "invoices", DSN: srcDSN, Checks: pgChecks})
	dump := snap.Files[DumpPath]
	tocLen, err := pgArchiveTOCLength(bytes.NewReader(dump))
	if err != nil {
		t.Fatal(err)
	}
	real, _, err := FindTool("pg_restore", "", "0")
	if err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(t.TempDir(), "log")
	wrapper := fakeTool(t, "pg_restore", fmt.Sprintf(`case "$*" in *--version*) ;; *)
  { echo "run: $*" | sed 's/--dbname=[^ ]*//'; [ -e /proc/$$/fd/3 ] && stat -L -c 'fd3: %%s' /proc/$$/fd/3; } >>%s ;;
esac
exec %s "$@"`, log, real))

	dst, _ := newTarget(t)
	res, err := Restore(ctx, withoutBlocks(snap), dst, Options{Jobs: 2, PgRestore: wrapper, MemoryBudget: int64(len(dump)) / 2})
	if err != nil {
		t.Fatal(err)
	}
	assertSameTables(t, srcDSN, dst)
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	t.Logf("dump %d bytes, TOC %d bytes; pg_restore runs:\n%s", len(dump), tocLen, b)
	if len(lines) != 3 || res.Jobs != 2 ||
		!strings.Contains(lines[0], "--section=pre-data --section=data") || strings.Contains(lines[0], "/proc/self/fd/3") ||
		!strings.Contains(lines[1], "--section=post-data --jobs=2 /proc/self/fd/3") ||
		lines[2] != fmt.Sprintf("fd3: %d", tocLen) {
		t.Errorf("pg_restore runs:\n%s\nwant the pre-data and data sections from standard input, then the post-data section with --jobs=2 from a %d-byte file (the TOC; the dump has %d bytes)",
			b, tocLen, len(dump))
	}
}

// TestPostgresRestoreFailsMidway makes the real pg_restore fail in the
// data section (a check constraint whose function cannot see its table
// under pg_restore's empty search_path) and in the post-data section (an
// index on such a function): no database is left behind, and a replaced
// database stays as it was.
func TestPostgresRestoreFailsMidway(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct{ name, ddl, want string }{
		{"data", `alter table invoice add constraint known_vendor check (known(vendor_id))`, "COPY invoice"},
		{"post-data", `create index invoice_known on invoice (known(vendor_id))`, "INDEX invoice_known"},
	} {
		srcDSN := newInvoiceDB(t, 13)
		pgExec(t, srcDSN,
			`create table helper (id bigint)`,
			`insert into helper select id from vendor`,
			`create function known(v bigint) returns boolean language plpgsql immutable as $$ begin return exists (select 1 from helper where id = v); end $$`,
			tc.ddl)
		snap := backupPostgres(t, &Source{SourceName: "invoices", DSN: srcDSN})
		for _, jobs := range []int{1, 2} {
			dst, name := newTarget(t)
			_, err := Restore(ctx, snap, dst, Options{Jobs: jobs})
			if err == nil || !strings.Contains(err.Error(), "pg_restore into") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s, jobs %d: err = %v, want a pg_restore failure at %s", tc.name, jobs, err, tc.want)
			} else {
				t.Logf("%s, jobs %d: %v", tc.name, jobs, err)
			}
			if fixture.PostgresDatabaseExists(t, name) || len(leftovers(t, name)) > 0 {
				t.Errorf("%s, jobs %d: the failed restore left database(s) %v", tc.name, jobs, leftovers(t, name))
			}
		}
		// Replacing: the old database keeps its contents.
		dst, name := newTarget(t)
		pgExec(t, fixture.AdminDSN(), "create database "+pgx.Identifier{name}.Sanitize())
		pgExec(t, dst, "create table kept (v text)", "insert into kept values ('old')")
		if _, err := Restore(ctx, snap, dst, Options{Jobs: 2, Replace: true}); err == nil {
			t.Errorf("%s: replace succeeded", tc.name)
		}
		var v string
		conn, err := pgx.Connect(ctx, dst)
		if err != nil {
			t.Fatal(err)
		}
		err = conn.QueryRow(ctx, "select v from kept").Scan(&v)
		conn.Close(ctx)
		if err != nil || v != "old" {
			t.Errorf("%s: after a failed replace, kept = %q, %v; want the old row", tc.name, v, err)
		}
		if l := leftovers(t, name+"_coffer_"); len(l) > 0 {
			t.Errorf("%s: failed replace left databases %v", tc.name, l)
		}
	}
}

// TestPostgresDamagedChunkMidway restores from a real repository whose pack
// is damaged in the middle of the dump: the restore fails on reading the
// snapshot after pg_restore has started loading, and leaves no database.
func TestPostgresDamagedChunkMidway(t *testing.T) {
	ctx := context.Background()
	dsn := fixture.NewPostgresDB(t)
	if err := fixture.CreatePostgres(ctx, dsn, fixture.Size{Vendors: 50, Invoices: 12000, LinesPerInvoice: 5}, 14); err != nil {
		t.Fatal(err)
	}
	p := newPgRepo(t)
	m := p.backup(t, &Source{SourceName: "invoices", DSN: dsn})
	e, ok := p.source(t, m, "invoices").Entry(DumpPath)
	if !ok || len(e.Chunks) < 4 {
		t.Fatalf("dump has %d chunks, want at least 4", len(e.Chunks))
	}
	// Flip a byte of the ciphertext of the chunk three quarters in: past
	// the header, the TOC and the first tables, in a data block that the
	// parallel restore reads by its range.
	k := len(e.Chunks) * 3 / 4
	c := e.Chunks[k]
	var db DumpBlocks
	if err := p.source(t, m, "invoices").Meta(BlocksMetaKey, &db); err != nil {
		t.Fatal(err)
	}
	var at int64
	for _, c := range e.Chunks[:k] {
		at += c.Raw
	}
	if at <= db.TOC {
		t.Fatalf("chunk %d starts at %d, in the table of contents (%d bytes)", k, at, db.TOC)
	}
	damagePackAt(t, filepath.Join(p.Dir, "repo", filepath.FromSlash(repo.PackName(c.Pack))), c.Offset+c.Length/2)

	for _, jobs := range []int{1, 2} {
		dst, name := newTarget(t)
		_, err := Restore(ctx, p.source(t, m, "invoices"), dst, Options{Jobs: jobs})
		if err == nil || !strings.Contains(err.Error(), "read "+DumpPath) {
			t.Errorf("jobs %d: err = %v, want a failure to read %s", jobs, err, DumpPath)
		} else {
			t.Logf("jobs %d: %v", jobs, err)
		}
		if fixture.PostgresDatabaseExists(t, name) {
			t.Errorf("jobs %d: the failed restore left database %s", jobs, name)
		}
	}
}

// damagePackAt flips the byte of pack file path that holds plaintext
// offset off: the age payload starts after the header and a 16-byte
// nonce, in chunks of 64 KiB plus a 16-byte tag.
func damagePackAt(t *testing.T, path string, off int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	mac := bytes.Index(b, []byte("\n--- "))
	if mac < 0 {
		t.Fatal("pack has no age header")
	}
	payload := int64(mac + 1 + bytes.IndexByte(b[mac+1:], '\n') + 1 + 16)
	i := payload + off/65536*(65536+16) + off%65536
	b[i] ^= 0x40
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

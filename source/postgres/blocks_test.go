package postgres

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer/internal/testing/fixture"
	"github.com/cofferhq/coffer/internal/testing/memsource"
)

// dumpBlocksOf returns the block list a backup recorded.
func dumpBlocksOf(t *testing.T, meta map[string][]byte) *DumpBlocks {
	t.Helper()
	b, ok := meta[BlocksMetaKey]
	if !ok {
		t.Fatalf("the backup recorded no %s", BlocksMetaKey)
	}
	var db DumpBlocks
	if err := json.Unmarshal(b, &db); err != nil {
		t.Fatal(err)
	}
	return &db
}

var listDataLine = regexp.MustCompile(`(?m)^(\d+); \d+ \d+ (TABLE DATA|BLOBS) `)

// TestPgDumpBlocksRealDump checks the blocks a backup records against the
// real pg_restore: one block for each entry that pg_restore --list shows
// with data, tiling the dump after its table of contents, each starting
// with its entry's block header.
func TestPgDumpBlocksRealDump(t *testing.T) {
	dsn := newRichDB(t)
	snap := backupPostgres(t, &Source{SourceName: "rich", DSN: dsn})
	dump := snap.Files[DumpPath]
	db := dumpBlocksOf(t, snap.MetaJSON)
	tocLen, err := pgArchiveTOCLength(bytes.NewReader(dump))
	if err != nil {
		t.Fatal(err)
	}
	if db.Version != 1 || db.TOC != tocLen {
		t.Fatalf("version %d, TOC %d; want 1, %d", db.Version, db.TOC, tocLen)
	}
	pgRestore, _, err := FindTool("pg_restore", "", "0")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(pgRestore, "--list")
	cmd.Stdin = bytes.NewReader(dump)
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	var want []int64
	for _, m := range listDataLine.FindAllStringSubmatch(string(out), -1) {
		id, _ := strconv.ParseInt(m[1], 10, 64)
		want = append(want, id)
	}
	var got []int64
	at := tocLen
	for _, b := range db.Blocks {
		got = append(got, b.ID)
		if b.Offset != at {
			t.Fatalf("block of entry %d at %d, want %d", b.ID, b.Offset, at)
		}
		at += b.Length
		// The header: the type, then the id as a sign byte and 4 bytes.
		h := dump[b.Offset:]
		if id := int64(h[2]) | int64(h[3])<<8 | int64(h[4])<<16 | int64(h[5])<<24; (h[0] != 1 && h[0] != 3) || h[1] != 0 || id != b.ID {
			t.Errorf("block of entry %d starts with % x", b.ID, h[:6])
		}
	}
	if at != int64(len(dump)) {
		t.Errorf("blocks end at %d, the dump at %d", at, len(dump))
	}
	checkPlan(t, dump, db, string(out))
	sort.Slice(want, func(i, j int) bool { return want[i] < want[j] })
	sort.Slice(got, func(i, j int) bool { return got[i] < got[j] })
	if len(want) < 122 || !equalInts(got, want) {
		t.Errorf("blocks of entries %v, pg_restore --list has data for %v", got, want)
	}
}

// checkPlan checks how pgPlanBlocks plans the restore of newRichDB's
// dump with 2 jobs: every data and post-data entry runs exactly once; a
// run reads its blocks in the order of its data entries; a table's index
// comes right after the table's data in its run; a foreign key comes after
// both its tables in one run, or at the end; materialized view data at the
// end.
func checkPlan(t *testing.T, dump []byte, db *DumpBlocks, list string) {
	t.Helper()
	toc, err := pgArchiveReadTOC(bytes.NewReader(dump), true)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := pgPlanBlocks(toc, db, int64(len(dump)), 2)
	if err != nil {
		t.Fatal(err)
	}
	names := map[int64]string{}
	ids := map[string]int64{}
	for _, m := range regexp.MustCompile(`(?m)^(\d+); \d+ \d+ (.*) (\S*)$`).FindAllStringSubmatch(list, -1) {
		id, _ := strconv.ParseInt(m[1], 10, 64)
		names[id], ids[m[2]] = m[2], id
	}
	type at struct{ run, i int }
	where := map[int64]at{}
	for k, r := range plan.runs {
		var blocks []int64
		for i, id := range r.ids {
			if _, dup := where[id]; dup {
				t.Errorf("%s runs twice", names[id])
			}
			where[id] = at{k, i}
			if strings.HasPrefix(names[id], "TABLE DATA") || strings.HasPrefix(names[id], "BLOBS") {
				blocks = append(blocks, id)
			}
		}
		var read []int64
		for _, b := range r.blocks {
			read = append(read, b.ID)
		}
		if !equalInts(blocks, read) {
			t.Errorf("run %d restores data %v, reads blocks %v", k, blocks, read)
		}
	}
	for _, id := range plan.post {
		if _, dup := where[id]; dup {
			t.Errorf("%s runs in a run and at the end", names[id])
		}
		where[id] = at{-1, 0}
	}
	for id, name := range names {
		if _, ok := where[id]; !ok && regexp.MustCompile(`^(TABLE DATA|BLOBS|SEQUENCE SET|INDEX|CONSTRAINT|FK CONSTRAINT|TRIGGER|MATERIALIZED VIEW DATA) `).MatchString(name) {
			t.Errorf("%s does not run", name)
		}
	}
	after := func(a, b string) bool { // b runs after a, in a's run or at the end
		wa, wb := where[ids[a]], where[ids[b]]
		return wb.run == -1 || (wa.run == wb.run && wb.i > wa.i)
	}
	for i := 0; i < 120; i++ {
		tab := fmt.Sprintf("TABLE DATA public t%d", i)
		for _, e := range []string{fmt.Sprintf("INDEX public t%d_v", i), fmt.Sprintf("CONSTRAINT public t%d t%d_pkey", i, i)} {
			if w := where[ids[e]]; w.run != where[ids[tab]].run || !after(tab, e) {
				t.Errorf("%s is not in the run of %s, after it", e, tab)
			}
		}
		if i == 0 {
			continue
		}
		fk := fmt.Sprintf("FK CONSTRAINT public t%d t%d_parent_fkey", i, i)
		parent := fmt.Sprintf("CONSTRAINT public t%d t%d_pkey", i-1, i-1)
		if !after(tab, fk) || !after(parent, fk) {
			t.Errorf("%s is not after %s and %s", fk, tab, parent)
		}
	}
	if where[ids["MATERIALIZED VIEW DATA public mv"]].run != -1 {
		t.Error("the materialized view's data is not left for the end")
	}
	if len(plan.runs) != 2 || len(plan.post) == 0 {
		t.Errorf("%d runs, %d entries at the end; want 2 runs and some at the end", len(plan.runs), len(plan.post))
	}
}

func equalInts(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// pgRestoreLogger returns a pg_restore that runs the real one after
// logging its arguments and the size of the file at descriptor 3, and the
// log.
func pgRestoreLogger(t *testing.T) (wrapper, log string) {
	t.Helper()
	real, _, err := FindTool("pg_restore", "", "0")
	if err != nil {
		t.Fatal(err)
	}
	log = filepath.Join(t.TempDir(), "log")
	wrapper = fakeTool(t, "pg_restore", fmt.Sprintf(`case "$*" in *--version*) ;; *)
  echo "run: $* fd3: $(stat -L -c %%s /proc/$$/fd/3 2>/dev/null)" | sed 's/--dbname=[^ ]*//' >>%s ;;
esac
exec %s "$@"`, log, real))
	return wrapper, log
}

// TestPostgresBlocksRestore restores with 2 and 3 jobs from a snapshot
// with a block list: pg_restore runs the pre-data section from the table
// of contents alone, then one run per job, in parallel, each loading its
// tables from the blocks on its standard input and building their
// indexes, then the rest of the post-data section with the jobs; no run
// is ever given the whole dump (before, with the dump
// within the memory budget, one pg_restore --jobs 2 read a memory-backed
// copy of all of it). The database is the source's.
func TestPostgresBlocksRestore(t *testing.T) {
	ctx := context.Background()
	srcDSN := newRichDB(t)
	snap := backupPostgres(t, &Source{SourceName: "rich", DSN: srcDSN, Checks: pgChecksRich})
	want := stateOf(t, srcDSN)
	dump := int64(len(snap.Files[DumpPath]))
	tocLen := dumpBlocksOf(t, snap.MetaJSON).TOC
	dst, _ := newTarget(t)
	if _, err := Restore(ctx, snap, dst, Options{Jobs: 1}); err != nil {
		t.Fatal(err)
	}
	before := stateOf(t, dst)
	for _, jobs := range []int{2, 3} {
		wrapper, log := pgRestoreLogger(t)
		dst, _ := newTarget(t)
		res, err := Restore(ctx, snap, dst, Options{Jobs: jobs, PgRestore: wrapper})
		if err != nil {
			t.Fatalf("jobs %d: %v", jobs, err)
		}
		if res.Jobs != jobs || res.DumpBytes != dump {
			t.Errorf("jobs %d: result %d jobs, %d dump bytes; want %d, %d", jobs, res.Jobs, res.DumpBytes, jobs, dump)
		}
		b, err := os.ReadFile(log)
		if err != nil {
			t.Fatal(err)
		}
		runs := strings.Split(strings.TrimSpace(string(b)), "\n")
		toc := fmt.Sprintf("/proc/self/fd/3 fd3: %d", tocLen)
		data := regexp.MustCompile(`--section=data --section=post-data --use-list=/proc/self/fd/3 fd3: \d+$`)
		nData := 0
		for _, r := range runs[1 : len(runs)-1] {
			if data.MatchString(r) {
				nData++
			}
		}
		if len(runs) != jobs+2 || !strings.HasSuffix(runs[0], "--section=pre-data "+toc) || nData != jobs ||
			!strings.HasSuffix(runs[len(runs)-1], fmt.Sprintf("--section=post-data --use-list=/proc/self/fd/4 --jobs=%d %s", jobs, toc)) ||
			strings.Contains(string(b), fmt.Sprintf("fd3: %d\n", dump)) {
			t.Errorf("jobs %d: pg_restore runs:\n%s\nwant pre-data from the %d-byte TOC, %d runs of data (from standard input) and post-data, "+
				"then the rest of post-data with --jobs=%d", jobs, b, tocLen, jobs, jobs)
		}
		got := stateOf(t, dst)
		if got.schema != before.schema {
			t.Errorf("jobs %d: schema differs from the one-job restore's:\n%s\none job:\n%s", jobs, got.schema, before.schema)
		}
		for tab, sum := range want.data {
			if got.data[tab] != sum {
				t.Errorf("jobs %d: %s is %q, source %q", jobs, tab, got.data[tab], sum)
			}
		}
	}
}

// withBlocks returns a copy of snap whose block list is db.
func withBlocks(t *testing.T, snap *memsource.Snap, db *DumpBlocks) *memsource.Snap {
	t.Helper()
	c := withoutBlocks(snap)
	b, err := json.Marshal(db)
	if err != nil {
		t.Fatal(err)
	}
	c.MetaJSON[BlocksMetaKey] = b
	return c
}

// TestPostgresBlocksTampered restores from block lists that do not
// describe the dump: checked before anything runs (blocks that do not
// tile the dump, an entry without its block) or as the blocks are read
// (two blocks' entries swapped, a boundary moved). Each is a clear error,
// leaves no database, and a database it was to replace keeps its
// contents.
func TestPostgresBlocksTampered(t *testing.T) {
	ctx := context.Background()
	srcDSN := newRichDB(t)
	snap := backupPostgres(t, &Source{SourceName: "rich", DSN: srcDSN})
	good := dumpBlocksOf(t, snap.MetaJSON)
	n := len(good.Blocks)
	tamper := func(f func(b []DumpBlock)) *DumpBlocks {
		db := *good
		db.Blocks = append([]DumpBlock(nil), good.Blocks...)
		f(db.Blocks)
		return &db
	}
	dropLast := tamper(func(b []DumpBlock) {})
	dropLast.Blocks = dropLast.Blocks[:n-1]
	dropLast.Blocks[n-2].Length += good.Blocks[n-1].Length
	cases := []struct {
		name string
		db   *DumpBlocks
		want string
	}{
		{"offset off by one", tamper(func(b []DumpBlock) { b[5].Offset++ }), "block 5 of entry"},
		{"TOC length", func() *DumpBlocks { db := *good; db.TOC--; return &db }(), "table of contents"},
		{"a block left out", dropLast, "has data but no block"},
		{"entries swapped", tamper(func(b []DumpBlock) { b[3].ID, b[n-3].ID = b[n-3].ID, b[3].ID }), "it is the block of entry"},
		{"boundary moved", tamper(func(b []DumpBlock) { b[7].Length -= 3; b[8].Offset -= 3; b[8].Length += 3 }), "block of entry"},
		{"blobs boundary moved", tamper(func(b []DumpBlock) { b[n-1].Offset += 5; b[n-1].Length -= 5; b[n-2].Length += 5 }), "block of entry"},
	}
	for _, tc := range cases {
		forged := withBlocks(t, snap, tc.db)
		dst, name := newTarget(t)
		_, err := Restore(ctx, forged, dst, Options{Jobs: 2})
		if !errors.Is(err, errBlocksMismatch) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "--jobs 1") {
			t.Errorf("%s: err = %v, want a block list mismatch (%q)", tc.name, err, tc.want)
		} else {
			t.Logf("%s: %v", tc.name, err)
		}
		if fixture.PostgresDatabaseExists(t, name) || len(leftovers(t, name)) > 0 {
			t.Errorf("%s: the failed restore left database(s) %v", tc.name, leftovers(t, name))
		}
	}
	// Replacing: the old database keeps its contents.
	dst, name := newTarget(t)
	pgExec(t, fixture.AdminDSN(), "create database "+pgx.Identifier{name}.Sanitize())
	pgExec(t, dst, "create table kept (v text)", "insert into kept values ('old')")
	forged := withBlocks(t, snap, cases[3].db)
	if _, err := Restore(ctx, forged, dst, Options{Jobs: 2, Replace: true}); !errors.Is(err, errBlocksMismatch) {
		t.Errorf("replace from a forged list: err = %v, want a block list mismatch", err)
	}
	var v string
	conn, err := pgx.Connect(ctx, dst)
	if err != nil {
		t.Fatal(err)
	}
	err = conn.QueryRow(ctx, "select v from kept").Scan(&v)
	conn.Close(ctx)
	if err != nil || v != "old" {
		t.Errorf("after a failed replace, kept = %q, %v; want the old row", v, err)
	}
	if l := leftovers(t, name+"_coffer_"); len(l) > 0 {
		t.Errorf("failed replace left databases %v", l)
	}
	// With one job the list is not used: the forged snapshot restores.
	dst, _ = newTarget(t)
	if _, err := Restore(ctx, withBlocks(t, snap, cases[3].db), dst, Options{Jobs: 1}); err != nil {
		t.Errorf("one job from a snapshot with a forged list: %v", err)
	}
}

// testArchiveBlocks returns an archive of version 1.minor whose TOC (three
// TABLE DATA entries, see testArchive) is followed by the data blocks of
// entries 1 and 2, and a BLOBS block of entry 3 with two large objects,
// and those blocks.
func testArchiveBlocks(minor byte) ([]byte, []DumpBlock) {
	b, toc := testArchive(minor, pgArchiveCustom, 3)
	w := &archiveWriter{minor: minor}
	w.Write(b[:toc])
	var blocks []DumpBlock
	block := func(id int64, f func()) {
		start := int64(w.Len())
		f()
		blocks = append(blocks, DumpBlock{ID: id, Offset: start, Length: int64(w.Len()) - start})
	}
	block(1, func() {
		w.WriteByte(pgBlkData)
		w.int(1)
		w.str("1\tone\n")
		w.str("2\ttwo\n")
		w.int(0)
	})
	block(2, func() {
		w.WriteByte(pgBlkData)
		w.int(2)
		w.int(0) // an empty table
	})
	block(3, func() {
		w.WriteByte(pgBlkBlobs)
		w.int(3)
		w.int(16385) // OID
		w.str("large")
		w.str(" object")
		w.int(0)
		w.int(16386)
		w.int(0) // empty
		w.int(0) // no more
	})
	return w.Bytes(), blocks
}

// pieces reads b in reads of at most n bytes.
type pieces struct {
	b []byte
	n int
}

func (p *pieces) Read(q []byte) (int, error) {
	if len(p.b) == 0 {
		return 0, io.EOF
	}
	k := min(len(q), p.n, len(p.b))
	copy(q, p.b[:k])
	p.b = p.b[k:]
	return k, nil
}

// record passes b through a pgBlockRecorder in reads of n bytes.
func record(t *testing.T, b []byte, n int) (*DumpBlocks, bool) {
	t.Helper()
	r := newPgBlockRecorder(&pieces{b: b, n: n})
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, b) {
		t.Fatalf("the recorder passed %d bytes of %d, %v", len(got), len(b), err)
	}
	return r.result()
}

func TestPgBlockRecorder(t *testing.T) {
	for _, minor := range []byte{12, 14, 15, 16} {
		b, want := testArchiveBlocks(minor)
		_, toc := testArchive(minor, pgArchiveCustom, 3)
		for _, n := range []int{1, 2, 7, 4096} {
			db, ok := record(t, b, n)
			if !ok || db.TOC != int64(toc) || fmt.Sprint(db.Blocks) != fmt.Sprint(want) {
				t.Errorf("version 1.%d, reads of %d: %+v, %v; want TOC %d, blocks %v", minor, n, db, ok, toc, want)
			}
		}
		// No data at all: an empty list.
		if db, ok := record(t, b[:toc], 100); !ok || db.TOC != int64(toc) || db.Blocks == nil || len(db.Blocks) != 0 {
			t.Errorf("version 1.%d without data: %+v, %v; want an empty list", minor, db, ok)
		}
		// Whatever it cannot follow records nothing.
		for name, bad := range map[string][]byte{
			"cut in a block":    b[:len(b)-1],
			"cut in the TOC":    b[:toc-1],
			"a byte too many":   append(append([]byte(nil), b...), 0),
			"unknown block":     append(append([]byte(nil), b...), 2, 0, 4, 0, 0, 0),
			"plain SQL":         []byte("--\n-- PostgreSQL database dump\n--\n"),
			"negative length":   append(append([]byte(nil), b[:toc]...), 1, 0, 1, 0, 0, 0, 1, 5, 0, 0, 0),
			"dump id 0":         append(append([]byte(nil), b[:toc]...), 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
			"version 1.17 data": func() []byte { v, _ := testArchive(17, pgArchiveCustom, 1); return v }(),
		} {
			if db, ok := record(t, bad, 3); ok {
				t.Errorf("version 1.%d, %s: recorded %+v", minor, name, db)
			}
		}
	}
}

func TestPgBlockChecker(t *testing.T) {
	b, blocks := testArchiveBlocks(15)
	read := func(blk DumpBlock, data []byte) error {
		_, err := io.ReadAll(newPgBlockChecker(&pieces{b: data, n: 3}, blk, 4))
		return err
	}
	for _, blk := range blocks {
		data := b[blk.Offset : blk.Offset+blk.Length]
		if err := read(blk, data); err != nil {
			t.Errorf("block %+v: %v", blk, err)
		}
		wrongID := blk
		wrongID.ID++
		short := blk
		short.Length--
		for name, err := range map[string]error{
			"another entry":   read(wrongID, data),
			"cut short":       read(short, data[:len(data)-1]),
			"a byte too many": read(DumpBlock{blk.ID, blk.Offset, blk.Length + 1}, b[blk.Offset:blk.Offset+blk.Length+1]),
			"two blocks":      read(DumpBlock{blk.ID, blk.Offset, int64(len(b)) - blk.Offset}, b[blk.Offset:]),
		} {
			if blk.ID == 3 && name == "two blocks" {
				continue // the last block
			}
			if !errors.Is(err, errBlocksMismatch) {
				t.Errorf("block %+v, %s: err = %v, want a mismatch", blk, name, err)
			}
		}
	}
}

// referenceBlocks reads the data blocks after the TOC the plain way, as
// pg_restore's _skipData and _skipBlobs do.
func referenceBlocks(b []byte) ([]DumpBlock, bool) {
	toc, err := pgArchiveReadTOC(bytes.NewReader(b), false)
	if err != nil {
		return nil, false
	}
	rest := b[toc.Length:]
	a := &archiveReader{r: bufio.NewReader(bytes.NewReader(rest)), intSize: toc.IntSize}
	chunks := func() bool {
		for {
			n, err := a.int()
			if err != nil || n < 0 {
				return false
			}
			if n == 0 {
				return true
			}
			if a.skip(n) != nil {
				return false
			}
		}
	}
	blocks := []DumpBlock{}
	for a.n < int64(len(rest)) {
		start := a.n
		typ, err := a.byte()
		if err != nil || (typ != pgBlkData && typ != pgBlkBlobs) {
			return nil, false
		}
		id, err := a.int()
		if err != nil || id <= 0 {
			return nil, false
		}
		if typ == pgBlkData {
			if !chunks() {
				return nil, false
			}
		} else {
			for {
				oid, err := a.int()
				if err != nil {
					return nil, false
				}
				if oid == 0 {
					break
				}
				if !chunks() {
					return nil, false
				}
			}
		}
		blocks = append(blocks, DumpBlock{ID: id, Offset: toc.Length + start, Length: a.n - start})
	}
	return blocks, true
}

// FuzzPgDumpBlocks feeds the recorder any bytes in reads of any size: it
// never fails a read, records the same whatever the reads, agrees with a
// plain reading of the blocks, and what it records tiles the input after
// the TOC.
func FuzzPgDumpBlocks(f *testing.F) {
	for _, minor := range []byte{12, 14, 15, 16} {
		b, _ := testArchiveBlocks(minor)
		f.Add(b, uint16(1))
		f.Add(b, uint16(100))
	}
	f.Fuzz(func(t *testing.T, b []byte, split uint16) {
		whole, ok := record(t, b, len(b)+1)
		parts, pok := record(t, b, int(split%512)+1)
		if ok != pok || fmt.Sprint(whole) != fmt.Sprint(parts) {
			t.Fatalf("in one read: %+v, %v; in reads of %d: %+v, %v", whole, ok, split%512+1, parts, pok)
		}
		ref, rok := referenceBlocks(b)
		if ok != rok || (ok && fmt.Sprint(whole.Blocks) != fmt.Sprint(ref)) {
			t.Fatalf("recorded %+v, %v; read plainly %v, %v", whole, ok, ref, rok)
		}
		if !ok {
			return
		}
		at := whole.TOC
		for _, blk := range whole.Blocks {
			if blk.Offset != at || blk.Length < 3 || (b[at] != pgBlkData && b[at] != pgBlkBlobs) {
				t.Fatalf("block %+v at %d", blk, at)
			}
			at += blk.Length
		}
		if at != int64(len(b)) {
			t.Fatalf("blocks end at %d of %d bytes", at, len(b))
		}
	})
}

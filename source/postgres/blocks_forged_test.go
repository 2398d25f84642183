package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"sort"
	"testing"

	"github.com/cofferhq/coffer/internal/testing/fixture"
)

// TestPgBlocksForged plans and checks many forged block lists of a dump:
// offsets moved, lengths changed, ids swapped, repeated, negative or huge,
// blocks dropped, added or split, the TOC length changed. None may panic;
// a list pgPlanBlocks accepts must, read through pgBlockChecker, either
// fail or be the dump's true blocks.
func TestPgBlocksForged(t *testing.T) {
	b, good := testArchiveBlocks(15)
	toc, err := pgArchiveReadTOC(bytes.NewReader(b), true)
	if err != nil {
		t.Fatal(err)
	}
	size := int64(len(b))
	huge := []int64{-1, 0, 1, math.MaxInt64, math.MinInt64, math.MaxInt64 / 2, size, size + 1, toc.Length, toc.Length - 1}
	rnd := rand.New(rand.NewPCG(1, 2))
	accepted := 0
	for i := 0; i < 20000; i++ {
		db := &DumpBlocks{Version: 1, TOC: toc.Length, Blocks: append([]DumpBlock(nil), good...)}
		for m := 0; m <= rnd.IntN(3); m++ {
			k := rnd.IntN(len(db.Blocks) + 1)
			if k == len(db.Blocks) {
				db.Blocks = append(db.Blocks, DumpBlock{ID: int64(rnd.IntN(5)), Offset: huge[rnd.IntN(len(huge))], Length: int64(rnd.IntN(40))})
				continue
			}
			blk := &db.Blocks[k]
			switch rnd.IntN(9) {
			case 0:
				blk.Offset += int64(rnd.IntN(11) - 5)
			case 1:
				blk.Length += int64(rnd.IntN(11) - 5)
			case 2:
				blk.ID = int64(rnd.IntN(6) - 1)
			case 3:
				blk.Offset = huge[rnd.IntN(len(huge))]
			case 4:
				blk.Length = huge[rnd.IntN(len(huge))]
			case 5:
				j := rnd.IntN(len(db.Blocks))
				db.Blocks[k].ID, db.Blocks[j].ID = db.Blocks[j].ID, db.Blocks[k].ID
			case 6:
				db.Blocks = append(db.Blocks[:k], db.Blocks[k+1:]...)
			case 7: // split a block in two
				if blk.Length > 1 {
					n := int64(rnd.IntN(int(blk.Length-1))) + 1
					second := DumpBlock{ID: blk.ID + int64(rnd.IntN(2)), Offset: blk.Offset + n, Length: blk.Length - n}
					blk.Length = n
					db.Blocks = append(db.Blocks[:k+1], append([]DumpBlock{second}, db.Blocks[k+1:]...)...)
				}
			case 8:
				db.TOC += int64(rnd.IntN(5) - 2)
			}
		}
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("list %v (TOC %d): panic %v", db.Blocks, db.TOC, r)
				}
			}()
			plan, err := pgPlanBlocks(toc, db, size, 1+rnd.IntN(4))
			if err != nil {
				return
			}
			var read []DumpBlock
			for _, r := range plan.runs {
				for _, blk := range r.blocks {
					if blk.Offset < 0 || blk.Length < 0 || blk.Offset > size-blk.Length {
						t.Fatalf("list %v: planned block %v outside the dump", db.Blocks, blk)
					}
					if _, err := io.ReadAll(newPgBlockChecker(bytes.NewReader(b[blk.Offset:blk.Offset+blk.Length]), blk, toc.IntSize)); err != nil {
						return
					}
					read = append(read, blk)
				}
			}
			accepted++
			sort.Slice(read, func(i, j int) bool { return read[i].Offset < read[j].Offset })
			if fmt.Sprint(read) != fmt.Sprint(good) {
				t.Fatalf("forged list %v (TOC %d) planned and read as %v; the dump's blocks are %v", db.Blocks, db.TOC, read, good)
			}
		}()
	}
	if accepted == 0 {
		t.Error("no list was accepted: the true list must be, when no mutation changed it")
	}
	t.Logf("%d lists accepted and read as the dump's blocks", accepted)
}

// TestPostgresBlocksForgedTOCLength restores from a block list whose TOC
// length is nearly the whole dump: a clear error, and the restore must
// not read that much into memory to find out (it read the whole claimed
// length, tens of MB for a TOC of a few KB; up to the memory budget, 1
// GiB by default, and twice that while io.ReadAll grew its buffer).
func TestPostgresBlocksForgedTOCLength(t *testing.T) {
	ctx := context.Background()
	dsn := fixture.NewPostgresDB(t)
	pgExec(t, dsn, `create table big (v text)`,
		`insert into big select repeat(md5(g::text), 16) from generate_series(1, 80000) g`)
	snap := backupPostgres(t, &Source{SourceName: "big", DSN: dsn})
	good := dumpBlocksOf(t, snap.MetaJSON)
	dump := int64(len(snap.Files[DumpPath]))
	if dump < 32<<20 {
		t.Fatalf("dump of %d bytes, want at least 32 MiB", dump)
	}
	forged := *good
	forged.TOC = dump - 1
	dst, name := newTarget(t)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := Restore(ctx, withBlocks(t, snap, &forged), dst, Options{Jobs: 2})
	runtime.ReadMemStats(&after)
	if !errors.Is(err, errBlocksMismatch) {
		t.Errorf("err = %v, want a block list mismatch", err)
	}
	if fixture.PostgresDatabaseExists(t, name) {
		t.Errorf("the failed restore left database %s", name)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("TOC %d bytes, list says %d: %v; allocated %d bytes", good.TOC, forged.TOC, err, alloc)
	if alloc > uint64(dump/2) {
		t.Errorf("the restore allocated %d bytes for a list claiming a TOC of %d bytes (the TOC is %d)", alloc, forged.TOC, good.TOC)
	}
}

package retention

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/backup"
	"github.com/cofferhq/coffer/internal/inspect"
	"github.com/cofferhq/coffer/internal/keys"
	"github.com/cofferhq/coffer/internal/pathglob"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/internal/testing/testutil"
	"github.com/cofferhq/coffer/restore"
	"github.com/cofferhq/coffer/source"
	dirkind "github.com/cofferhq/coffer/source/dir"
)

// full opens the repository with every key a maintenance host that
// repacks holds: the owner pin, the signing key and the identity.
func (e *env) full() *repo.Repository {
	e.t.Helper()
	r, err := repo.Open(context.Background(), e.tr.Store, repo.OpenOptions{Owner: e.tr.Owner.Public(), Signing: e.tr.Signing,
		Identities: e.tr.Identities})
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// writeFiles writes n random files of size bytes named prefix000.bin ...
// into dir.
func (e *env) writeFiles(dir, prefix string, n, size int) {
	e.t.Helper()
	e.seed++
	rnd := rand.NewChaCha8([32]byte{byte(e.seed), byte(e.seed >> 8), 7})
	for i := range n {
		b := make([]byte, size)
		rnd.Read(b)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s%03d.bin", prefix, i)), b, 0o600); err != nil {
			e.t.Fatal(err)
		}
	}
}

// removeFiles removes prefix001.bin ... prefix(n-1).bin: prefix000.bin
// stays.
func removeFiles(t *testing.T, dir, prefix string, n int) {
	t.Helper()
	for i := 1; i < n; i++ {
		if err := os.Remove(filepath.Join(dir, fmt.Sprintf("%s%03d.bin", prefix, i))); err != nil {
			t.Fatal(err)
		}
	}
}

// backupCached backs up dir as source docs with a change cache in cache.
func (e *env) backupCached(dir, cache string) *backup.Result {
	e.t.Helper()
	res, err := backup.Run(context.Background(), backup.Options{Repo: e.tr.Host(e.t), Signing: e.tr.Signing,
		Sources: []source.Source{&dirkind.Source{SourceName: "docs", Path: dir}}, CacheDir: cache})
	if err != nil {
		e.t.Fatalf("backup: %v", err)
	}
	time.Sleep(2 * time.Millisecond)
	return res
}

// restoreEqual restores source docs of m and checks that it holds exactly
// the files of dir, byte for byte.
func (e *env) restoreEqual(r *repo.Repository, m *repo.Manifest, dir string) {
	e.t.Helper()
	ctx := context.Background()
	snap, err := restore.Load(ctx, r, m)
	if err != nil {
		e.t.Fatalf("load %s: %v", repo.ShortID(m.ID), err)
	}
	src, err := snap.Source("docs")
	if err != nil {
		e.t.Fatal(err)
	}
	target := filepath.Join(e.t.TempDir(), "out")
	if _, err := restore.RestoreDir(ctx, src, target, restore.DirOptions{}); err != nil {
		e.t.Fatalf("restore %s: %v", repo.ShortID(m.ID), err)
	}
	want, _ := os.ReadDir(dir)
	got, _ := os.ReadDir(target)
	if len(got) != len(want) {
		e.t.Fatalf("restored %d files, want %d", len(got), len(want))
	}
	for _, de := range want {
		a, _ := os.ReadFile(filepath.Join(dir, de.Name()))
		b, err := os.ReadFile(filepath.Join(target, de.Name()))
		if err != nil || !bytes.Equal(a, b) {
			e.t.Fatalf("restored %s differs from the original (%v)", de.Name(), err)
		}
	}
}

// partlyUsed makes three snapshots of a folder that changes between them
// and forgets the first two: the packs of the first two backups are then
// used by the kept snapshot for one file of ten each. It returns the
// folder and the kept snapshot.
func (e *env) partlyUsed(cache string) (string, *repo.Manifest) {
	e.t.Helper()
	dir := e.t.TempDir()
	e.writeFiles(dir, "a", 10, 1<<20)
	e.backupCached(dir, cache)
	removeFiles(e.t, dir, "a", 10)
	e.writeFiles(dir, "b", 10, 1<<20)
	e.backupCached(dir, cache)
	removeFiles(e.t, dir, "b", 10)
	e.writeFiles(dir, "c", 4, 1<<20)
	m := e.backupCached(dir, cache).Manifest
	if _, err := Forget(context.Background(), e.tr.Host(e.t), Policy{Last: 1}, ForgetOptions{}); err != nil {
		e.t.Fatal(err)
	}
	return dir, m
}

// testPruneRepacks: after forgetting most snapshots, a prune with the
// identity and the signing key repacks the partly used packs, a later
// prune deletes the old ones, the repository shrinks to about the live
// data, and the kept snapshot restores byte for byte and verifies; a
// backup afterwards deduplicates against the new packs (also through the
// change cache) and stores nothing new but its catalog.
func testPruneRepacks(t *testing.T, e *env) {
	ctx := context.Background()
	cache := t.TempDir()
	dir, m := e.partlyUsed(cache)
	st := e.tr.Store
	before := total(objects(t, st, dataPrefixes...))

	// Without the keys to repack, prune says what repacking would free.
	res, err := Prune(ctx, e.tr.Operator(t), PruneOptions{Now: timeNowPlusHour(), GraceSet: true, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := res.Repack.Candidates, 2; got != want {
		t.Fatalf("dry run: %d repack candidates, want %d (%+v)", got, want, res.Repack)
	}
	if res.Repack.UnusedBytes < 16<<20 || res.Repack.Skipped == "" {
		t.Fatalf("dry run: would free %d bytes (skipped %q), want at least 16 MiB and a reason", res.Repack.UnusedBytes, res.Repack.Skipped)
	}

	res, err = Prune(ctx, e.full(), PruneOptions{Now: timeNowPlusHour(), GraceSet: true, Repack: true})
	if err != nil {
		t.Fatalf("prune with repack: %v", err)
	}
	if res.Repack.Record == "" || res.Repack.Candidates != 2 || res.Repack.Chunks < 2 {
		t.Fatalf("repack = %+v, want a record copying the chunks of 2 packs", res.Repack)
	}
	rks, bad, err := e.tr.Host(t).Repacks(ctx)
	if err != nil || len(bad) > 0 || len(rks) != 1 {
		t.Fatalf("repack records: %v %v %d", err, bad, len(rks))
	}
	// The old packs stay until a later prune (a backup running now may
	// have deduplicated against their other chunks).
	for _, p := range rks[0].Replaces {
		if _, err := st.Stat(ctx, p.Name()); err != nil {
			t.Fatalf("old pack %s removed by the prune that repacked it: %v", repo.ShortID(p.SHA256), err)
		}
	}
	e.mustVerify()

	res, err = Prune(ctx, e.full(), PruneOptions{Now: timeNowPlusHour(), GraceSet: true, Repack: true})
	if err != nil {
		t.Fatalf("second prune: %v", err)
	}
	if got, want := res.Repack.Replaced.Objects, 2; got != want {
		t.Fatalf("second prune removed %d replaced packs, want %d (%+v)", got, want, res.Repack)
	}
	if res.Repack.Record != "" || res.Repack.Candidates != 0 {
		t.Fatalf("second prune repacked again: %+v", res.Repack)
	}
	for _, p := range rks[0].Replaces {
		if _, err := st.Stat(ctx, p.Name()); err == nil {
			t.Fatalf("old pack %s still there after the second prune", repo.ShortID(p.SHA256))
		}
	}
	after := total(objects(t, st, dataPrefixes...))
	liveFiles := int64(6 << 20) // a000, b000, c000..c003
	t.Logf("repository %d -> %d bytes; the kept snapshot's files are %d bytes", before, after, liveFiles)
	if after > liveFiles+liveFiles/10 {
		t.Fatalf("repository is %d bytes after repacking, want about the live %d", after, liveFiles)
	}

	// Every reader follows the record: restore, verify at every depth.
	e.restoreEqual(e.tr.Operator(t), m, dir)
	e.mustVerify()
	for _, d := range []restore.Depth{restore.Quick, restore.Read} {
		rep, err := restore.Verify(ctx, e.tr.Host(t), nil, d)
		if err != nil || len(rep.Problems) > 0 {
			t.Fatalf("verify (depth %d) after the old packs went: %v %+v", d, err, rep.Problems)
		}
		for _, w := range rep.Warnings {
			if strings.HasPrefix(w.Object, repo.DataPrefix) || strings.HasPrefix(w.Object, repo.IndexPrefix) {
				t.Fatalf("verify calls the repack's objects unreferenced: %+v", w)
			}
		}
	}

	// A backup of the unchanged folder, with the change cache that still
	// places a000 and b000 in the old packs, stores nothing new but its
	// catalog and names no old pack.
	r2 := e.backupCached(dir, cache)
	if got := r2.Private.Stats.BytesNew; got != 0 {
		t.Fatalf("backup after the repack stored %d new bytes, want 0 (it must deduplicate against the new packs)", got)
	}
	replaced := map[string]bool{}
	for _, p := range rks[0].Replaces {
		replaced[p.SHA256] = true
	}
	for _, p := range r2.Manifest.Packs {
		if replaced[p.SHA256] {
			t.Fatalf("backup after the repack uses the replaced pack %s", repo.ShortID(p.SHA256))
		}
	}
	e.restoreEqual(e.tr.Operator(t), r2.Manifest, dir)
	e.mustVerify()
}

func TestPruneRepacks(t *testing.T) {
	testPruneRepacks(t, newEnv(t))
}

func TestPruneRepacksS3(t *testing.T) {
	testPruneRepacks(t, newS3Env(t, testutil.StartS3(t)))
}

// TestRepackRecordForged: a repack record not signed by an authorised host
// key moves nothing: readers ignore it, verify reports it (and, when the
// pack it claims to replace is gone, the pack as missing, naming the
// snapshot), and prune refuses to remove anything until it is dealt with.
// A genuine record deleted after the old packs went leaves the snapshot
// reported damaged, naming the pack, not a crash.
func TestRepackRecordForged(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	dir, m := e.partlyUsed(t.TempDir())
	if _, err := Prune(ctx, e.full(), PruneOptions{Now: timeNowPlusHour(), GraceSet: true, Repack: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := Prune(ctx, e.full(), PruneOptions{Now: timeNowPlusHour(), GraceSet: true, Repack: true}); err != nil {
		t.Fatal(err)
	}
	rks, _, err := e.tr.Host(t).Repacks(ctx)
	if err != nil || len(rks) != 1 {
		t.Fatalf("repack records: %v %d", err, len(rks))
	}
	genuine := rks[0]
	doc, err := e.tr.Store.Open(ctx, repo.RepackName(genuine.ID), 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	var saved bytes.Buffer
	saved.ReadFrom(doc)
	doc.Close()

	// The same record signed by a key the config does not authorise.
	_, _, thief, _ := keysIn(t)
	forged := *genuine
	forged.ID = repo.NewID()
	forged.Signer = thief.Public().String()
	if err := e.tr.Host(t).WriteRepack(ctx, &forged, thief); err != nil {
		t.Fatal(err)
	}
	if err := e.tr.Store.Delete(ctx, repo.RepackName(genuine.ID)); err != nil {
		t.Fatal(err)
	}
	r := e.tr.Operator(t)
	good, bad, err := r.Repacks(ctx)
	if err != nil || len(good) != 0 || len(bad) != 1 {
		t.Fatalf("repacks with only a forged record: %d good, %v bad, %v", len(good), bad, err)
	}
	rep, err := restore.Verify(ctx, r, nil, restore.Decrypt)
	if err != nil {
		t.Fatal(err)
	}
	var sawRecord, sawPack bool
	for _, p := range rep.Problems {
		if p.Object == repo.RepackName(forged.ID) {
			sawRecord = true
		}
		for _, old := range genuine.Replaces {
			if p.Object == old.Name() && strings.Contains(p.Error, "missing") && len(p.Snapshots) == 1 && p.Snapshots[0] == repo.ShortID(m.ID) {
				sawPack = true
			}
		}
	}
	if !sawRecord || !sawPack {
		t.Fatalf("verify without the genuine record: problems %+v; want the forged record and the missing pack of snapshot %s", rep.Problems, repo.ShortID(m.ID))
	}
	// A restore fails cleanly, naming a missing old pack.
	snap, err := restore.Load(ctx, r, m)
	if err == nil {
		var src *restore.Source
		if src, err = snap.Source("docs"); err == nil {
			_, err = restore.RestoreDir(ctx, src, filepath.Join(t.TempDir(), "out"), restore.DirOptions{})
		}
	}
	var ie *repo.IntegrityError
	if !errors.As(err, &ie) || !strings.HasPrefix(ie.Object, repo.DataPrefix) || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("restore without the record: %v, want an integrity error naming a missing pack", err)
	}
	// Prune removes nothing while a record does not verify.
	beforeObjs := objects(t, e.tr.Store)
	_, err = Prune(ctx, e.full(), PruneOptions{Now: timeNowPlusHour(), GraceSet: true, Repack: true})
	var rre *RepackRecordError
	if !errors.As(err, &rre) {
		t.Fatalf("prune with a forged record: %v, want RepackRecordError", err)
	}
	if got := objects(t, e.tr.Store); len(got) != len(beforeObjs) {
		t.Fatalf("prune with a forged record changed the store: %d objects, want %d", len(got), len(beforeObjs))
	}

	// With the genuine record back, all is well again.
	if err := e.tr.Store.Delete(ctx, repo.RepackName(forged.ID)); err != nil {
		t.Fatal(err)
	}
	if err := repo.PutObject(ctx, e.tr.Store, repo.RepackName(genuine.ID), saved.Bytes()); err != nil {
		t.Fatal(err)
	}
	e.restoreEqual(e.tr.Operator(t), m, dir)
	e.mustVerify()
}

// keysIn generates a second, unauthorised set of keys.
func keysIn(t *testing.T) (*keys.Generated, *keys.OwnerKey, *keys.SigningKey, error) {
	t.Helper()
	g, err := keys.Generate(filepath.Join(t.TempDir(), "thief"))
	if err != nil {
		t.Fatal(err)
	}
	sk, err := keys.LoadSigningKey(g.SigningKey)
	if err != nil {
		t.Fatal(err)
	}
	return g, nil, sk, nil
}

// moveAll re-encrypts every pack of m (data and catalog) into a new pack,
// publishes a repack record for them signed by the host key, and deletes
// the old packs: from then on every chunk of m is read through the record.
func (e *env) moveAll(m *repo.Manifest) *repo.Repack {
	e.t.Helper()
	ctx := context.Background()
	r := e.full()
	recipients, err := r.Recipients()
	if err != nil {
		e.t.Fatal(err)
	}
	secrets, err := r.Secrets(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	rec := &repo.Repack{Version: repo.Version, ID: repo.NewID(), Repo: r.Config.ID, Time: time.Now().UTC(), ConfigSeq: r.Config.Seq,
		Signer: e.tr.Signing.Public().String(), Snapshots: []string{m.ID}}
	var ix repo.Index
	for _, p := range m.Packs {
		rc, err := r.Store.Open(ctx, p.Name(), 0, -1)
		if err != nil {
			e.t.Fatal(err)
		}
		var ct bytes.Buffer
		ct.ReadFrom(rc)
		rc.Close()
		plain, err := repo.Decrypt(ct.Bytes(), e.tr.Identities...)
		if err != nil {
			e.t.Fatal(err)
		}
		chunks, err := repo.ParsePackTrailer(plain)
		if err != nil {
			e.t.Fatal(err)
		}
		nct, err := repo.Encrypt(plain, recipients...)
		if err != nil {
			e.t.Fatal(err)
		}
		sum := repo.HashHex(nct)
		if err := repo.PutObject(ctx, r.Store, repo.PackName(sum), nct); err != nil {
			e.t.Fatal(err)
		}
		ix.Packs = append(ix.Packs, repo.IndexPack{SHA256: sum, Size: int64(len(nct)), Chunks: chunks})
		rec.Packs = append(rec.Packs, repo.PackRef{SHA256: sum, Size: int64(len(nct))})
		rec.Replaces = append(rec.Replaces, p)
	}
	ix.Version = repo.Version
	ref, err := repo.PutSealed(ctx, r.Store, repo.IndexPrefix, ix, append(recipients, secrets.IndexIdentity.Recipient())...)
	if err != nil {
		e.t.Fatal(err)
	}
	rec.Index = ref
	if err := r.WriteRepack(ctx, rec, e.tr.Signing); err != nil {
		e.t.Fatal(err)
	}
	for _, p := range m.Packs {
		if err := r.Store.Delete(ctx, p.Name()); err != nil {
			e.t.Fatal(err)
		}
	}
	return rec
}

// TestReadersFollowRepackRecord: with every pack of a snapshot (its
// catalog's too) gone and replaced by a repack record, every reader finds
// the chunks through it: restore, verify at every depth, find and stats
// (which read catalogs). Without the record each of them fails, naming a
// missing pack.
func TestReadersFollowRepackRecord(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	dir := e.tree(5, 300_000)
	m := e.backup(nil, false, "docs="+dir)
	// A reader that listed the repack records before the record existed
	// (a long drill) lists them again when it finds a pack gone.
	early := e.tr.Operator(t)
	if rks, _, err := early.Repacks(ctx); err != nil || len(rks) != 0 {
		t.Fatalf("repacks before any: %d, %v", len(rks), err)
	}
	rec := e.moveAll(m)
	e.restoreEqual(early, m, dir)

	op := e.tr.Operator(t)
	e.restoreEqual(op, m, dir)
	for _, d := range []restore.Depth{restore.Quick, restore.Read, restore.Decrypt} {
		rep, err := restore.Verify(ctx, op, nil, d)
		if err != nil || len(rep.Problems) > 0 {
			t.Fatalf("verify (depth %d) through the record: %v %+v", d, err, rep.Problems)
		}
	}
	pat, _ := pathglob.Compile("**")
	found, _, err := inspect.Find(ctx, op, []*repo.Manifest{m}, pat, inspect.Range{})
	if err != nil || len(found) < 5 {
		t.Fatalf("find through the record: %d found, %v", len(found), err)
	}
	if _, _, err := inspect.Collect(ctx, op, []*repo.Manifest{m}); err != nil {
		t.Fatalf("stats through the record: %v", err)
	}

	// Without the record: clear errors naming the missing packs.
	if err := e.tr.Store.Delete(ctx, repo.RepackName(rec.ID)); err != nil {
		t.Fatal(err)
	}
	op = e.tr.Operator(t)
	rep, err := restore.Verify(ctx, op, nil, restore.Quick)
	if err != nil {
		t.Fatal(err)
	}
	missing := 0
	for _, p := range rep.Problems {
		if strings.HasPrefix(p.Object, repo.DataPrefix) && p.Error == "missing" && len(p.Snapshots) == 1 {
			missing++
		}
	}
	if missing != len(m.Packs) {
		t.Fatalf("verify without the record: problems %+v, want the %d missing packs", rep.Problems, len(m.Packs))
	}
	_, err = restore.Load(ctx, op, m)
	var ie *repo.IntegrityError
	if !errors.As(err, &ie) || !strings.HasPrefix(ie.Object, repo.DataPrefix) {
		t.Fatalf("reading the catalog without the record: %v, want an integrity error naming a pack", err)
	}
}

// TestRepackRecordOutlivesItsSnapshots: once the last snapshot that reads
// through a repack record is forgotten, prune removes the record's new
// packs (and keeps the record and its index, which are never removed);
// verify then reports nothing (the record's packs are no one's).
func TestRepackRecordOutlivesItsSnapshots(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	m := e.backup(nil, false, "docs="+e.tree(3, 200_000))
	rec := e.moveAll(m)
	e.backup(nil, false, "docs="+e.tree(2, 100_000))
	if _, err := Forget(ctx, e.tr.Host(t), Policy{Last: 1}, ForgetOptions{}); err != nil {
		t.Fatal(err)
	}
	pruneNow(t, e.full())
	for _, p := range rec.Packs {
		if _, err := e.tr.Store.Stat(ctx, p.Name()); err == nil {
			t.Fatalf("the new pack %s of a record no kept snapshot reads through is still there", repo.ShortID(p.SHA256))
		}
	}
	for _, name := range []string{repo.RepackName(rec.ID), rec.Index.Name} {
		if _, err := e.tr.Store.Stat(ctx, name); err != nil {
			t.Fatalf("%s was removed: %v", name, err)
		}
	}
	e.mustVerify()
}

// hooked is a folder source that calls before once it starts, when the
// backup has announced itself and loaded what it deduplicates against.
type hooked struct {
	*dirkind.Source
	before func()
}

func (s hooked) Backup(ctx context.Context, w source.Writer) error {
	s.before()
	return s.Source.Backup(ctx, w)
}

// TestBackupDedupRecordOfForgottenSnapshots: a repack record whose
// snapshots are all forgotten keeps its new packs only while a kept
// snapshot reads through it, so a backup must not deduplicate against
// them: a prune that runs while the backup runs deletes them (the
// tombstones are older than the backup), and the backup's snapshot would
// name packs that are gone.
func TestBackupDedupRecordOfForgottenSnapshots(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	dir := e.tree(3, 200_000)
	m1 := e.backup(nil, false, "docs="+dir)
	rec := e.moveAll(m1)
	e.backup(nil, false, "docs="+e.tree(2, 100_000))
	if _, err := Forget(ctx, e.tr.Host(t), Policy{Last: 1}, ForgetOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	var pruned *PruneResult
	src := hooked{Source: &dirkind.Source{SourceName: "docs", Path: dir}, before: func() {
		time.Sleep(20 * time.Millisecond)
		res, err := Prune(ctx, e.full(), PruneOptions{Now: time.Now(), GraceSet: true, Skew: time.Millisecond})
		if err != nil {
			t.Errorf("prune while the backup runs: %v", err)
		}
		pruned = res
	}}
	res, err := backup.Run(ctx, backup.Options{Repo: e.tr.Host(t), Signing: e.tr.Signing, Sources: []source.Source{src}})
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	if pruned == nil || len(pruned.Forgotten) != 1 {
		t.Fatalf("the prune during the backup did not drop the forgotten snapshot: %+v", pruned)
	}
	newPacks := map[string]bool{}
	for _, p := range rec.Packs {
		newPacks[p.SHA256] = true
	}
	for _, p := range res.Manifest.Packs {
		if _, err := e.tr.Store.Stat(ctx, p.Name()); err != nil {
			t.Errorf("the new snapshot names pack %s (a repack record's new pack: %v), which is gone: %v",
				repo.ShortID(p.SHA256), newPacks[p.SHA256], err)
		}
	}
	e.restoreEqual(e.tr.Operator(t), res.Manifest, dir)
	e.mustVerify()
}

// TestChunkReaderPackDeletedWhileOpen: a restore (a drill of hours) that
// has a pack open when prune deletes it, because a repack record took
// over, reads the rest of its chunks through the record, as it would have
// had the pack been gone when it opened it; it must not report the
// snapshot damaged ("missing").
func TestChunkReaderPackDeletedWhileOpen(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	m := e.backup(nil, false, "docs="+e.tree(3, 3<<20))
	r := e.full()
	c, err := r.OpenCatalog(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	var refs []repo.ChunkRef
	for {
		if _, err := c.NextSource(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		for {
			var en repo.Entry
			if err := c.NextEntry(&en); err == io.EOF {
				break
			} else if err != nil {
				t.Fatal(err)
			}
			refs = append(refs, en.Chunks...)
		}
	}
	c.Close()
	if len(refs) < 2 || refs[len(refs)-1].Pack != refs[0].Pack || refs[len(refs)-1].Offset < 5<<20 {
		t.Fatalf("want chunks in one pack, the last beyond the read-ahead window: %d chunks", len(refs))
	}
	cr, err := r.NewChunkReader(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cr.Read(ctx, refs[0].Pack, refs[0]); err != nil {
		t.Fatal(err)
	}
	e.moveAll(m) // the record, then the old packs deleted
	last := refs[len(refs)-1]
	if _, err := cr.Read(ctx, last.Pack, last); err != nil {
		t.Fatalf("read a chunk of a pack deleted after it was opened, which a repack record replaces: %v", err)
	}
}

// TestRepackNewPackRepackedBeforeOldGoes: a repack record's new pack N1
// can itself be repacked while the old pack P it replaces still waits for
// its record to age (the prune that repacked N1 counted there only the
// chunks of snapshots that list N1, since a snapshot that lists P finds
// its chunks in P while P is there). A later prune must not delete P and
// N1 together: the snapshot that lists P would read its chunks through N1,
// gone, and the second record, which does not hold them.
func TestRepackNewPackRepackedBeforeOldGoes(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	dir := t.TempDir()
	e.writeFiles(dir, "a", 10, 1<<20)
	e.backupCached(dir, "")
	removeFiles(t, dir, "a", 10)
	// a000 and a001 again, as the second snapshot holds them.
	e.seed--
	e.writeFiles(dir, "a", 2, 1<<20)
	s := e.backupCached(dir, "").Manifest
	if _, err := Forget(ctx, e.tr.Host(t), Policy{Last: 1}, ForgetOptions{}); err != nil {
		t.Fatal(err)
	}
	prune := func(now time.Time, grace time.Duration) *PruneResult {
		t.Helper()
		res, err := Prune(ctx, e.full(), PruneOptions{Now: now, Grace: grace, GraceSet: true, Repack: true, RepackThreshold: 0.3})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := prune(timeNowPlusHour(), 0); res.Repack.Record == "" {
		t.Fatalf("first prune did not repack: %+v", res.Repack)
	}
	// A snapshot of a000 alone deduplicates against the new pack.
	dir2 := t.TempDir()
	b, err := os.ReadFile(filepath.Join(dir, "a000.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir2, "a000.bin"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if n := e.backupCached(dir2, "").Private.Stats.BytesNew; n != 0 {
		t.Fatalf("the backup of a000 stored %d new bytes: it did not deduplicate against the new pack", n)
	}
	// Within the grace period the old pack waits; the new pack is half
	// used by the last snapshot (and whole by the first, through the
	// record).
	t.Logf("second prune: repack %+v", prune(time.Now(), time.Hour).Repack)
	prune(timeNowPlusHour(), 0)
	prune(timeNowPlusHour(), 0)
	e.restoreEqual(e.tr.Operator(t), s, dir)
	e.mustVerify()
}

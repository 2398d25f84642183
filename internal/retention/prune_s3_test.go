package retention

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/cofferhq/coffer/internal/keys"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/internal/testing/testrepo"
	"github.com/cofferhq/coffer/internal/testing/testutil"
	"github.com/cofferhq/coffer/storage"
)

// newS3Env initialises a repository under the prefix "repo" of cfg's
// bucket, with the given init options.
func newS3Env(t *testing.T, cfg storage.S3Config, opts ...repo.InitOption) *env {
	t.Helper()
	ctx := context.Background()
	st, err := storage.Open(ctx, "s3://"+cfg.Bucket+"/repo", cfg)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tr := &testrepo.Repo{Dir: dir, Store: st}
	tr.Keys, tr.Owner, tr.Signing, tr.Identities = testrepo.Keys(t, filepath.Join(dir, "keys"))
	rs, err := keys.LoadRecipientsFile(tr.Keys.Recipients)
	if err != nil {
		t.Fatal(err)
	}
	hp, err := keys.LoadHostPublic(tr.Keys.SigningPub)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Init(ctx, st, repo.InitOptions{Owner: tr.Owner, Recipients: rs, Hosts: []keys.HostPublic{hp}}, opts...); err != nil {
		t.Fatal(err)
	}
	return &env{t: t, tr: tr}
}

// TestPruneObjectLock: in a bucket with object lock, prune never tries to
// delete a version that is still retained (versitygw would refuse, and
// prune would fail), says when it frees up, and removes it once the
// retention has ended: every version, so that the space is really freed.
func TestPruneObjectLock(t *testing.T) {
	ctx := context.Background()
	cfg := testutil.StartS3Locked(t)
	e := newS3Env(t, cfg, repo.WithObjectLock(repo.ObjectLock{Mode: "governance", Days: 1}))
	s1 := e.backup(nil, false, "docs="+e.tree(2, 200_000))
	e.backup(nil, false, "docs="+e.tree(2, 200_000))
	if _, err := Forget(ctx, e.tr.Host(t), Policy{Last: 1}, ForgetOptions{}); err != nil {
		t.Fatal(err)
	}
	// An orphan whose retention ends in a few seconds.
	raw, err := storage.NewS3(ctx, storage.S3Config{Endpoint: cfg.Endpoint, Region: cfg.Region, AccessKey: cfg.AccessKey,
		SecretKey: cfg.SecretKey, Insecure: cfg.Insecure, Bucket: cfg.Bucket, Prefix: "repo"})
	if err != nil {
		t.Fatal(err)
	}
	orphan := []byte("an orphaned pack of a killed backup")
	sum := sha256.Sum256(orphan)
	orphanName := repo.PackName(hex.EncodeToString(sum[:]))
	shortUntil := time.Now().Add(4 * time.Second).UTC()
	if err := raw.Put(ctx, orphanName, bytes.NewReader(orphan), int64(len(orphan)),
		storage.PutOptions{IfNotExists: true, Retention: &storage.Retention{Mode: storage.LockGovernance, Until: shortUntil}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)

	res, err := Prune(ctx, e.tr.Host(t), PruneOptions{GraceSet: true, Skew: time.Millisecond})
	if err != nil {
		t.Fatalf("prune around locked objects: %v", err)
	}
	locked := map[string]time.Time{}
	for _, l := range res.Locked {
		locked[l.Name] = l.Until
	}
	for _, ref := range append(s1.Objects(), repo.ObjectRef{Name: repo.SnapshotName(s1.ID)}) {
		if _, shared := liveObjects(t, e.tr.Host(t))[ref.Name]; shared {
			continue
		}
		u, ok := locked[ref.Name]
		if !ok {
			t.Fatalf("%s of the forgotten snapshot is not reported locked: %+v", ref.Name, res.Locked)
		}
		if u.Before(time.Now().Add(23*time.Hour)) || u.After(time.Now().Add(25*time.Hour)) {
			t.Errorf("%s: locked until %v, want in a day", ref.Name, u)
		}
	}
	if u := locked[orphanName]; !u.Equal(shortUntil.Truncate(time.Second)) && u.Sub(shortUntil).Abs() > time.Second {
		t.Fatalf("orphan locked until %v, want %v", u, shortUntil)
	}
	if res.FreesAt.Before(time.Now().Add(23 * time.Hour)) {
		t.Errorf("frees at %v, want in a day", res.FreesAt)
	}
	if res.RemovedBytes() != 0 {
		t.Errorf("removed %d bytes, all of them locked", res.RemovedBytes())
	}
	e.mustVerify()

	// Once its retention has ended, the orphan goes, with all its
	// versions; the rest stays locked.
	time.Sleep(time.Until(shortUntil.Add(1500 * time.Millisecond)))
	res, err = Prune(ctx, e.tr.Host(t), PruneOptions{GraceSet: true, Skew: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Removed["data"] == nil || res.Removed["data"].Objects != 1 || res.Removed["data"].Bytes != int64(len(orphan)) {
		t.Fatalf("second prune removed %+v, want the orphan", res.Removed)
	}
	c, err := testutil.Client(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for v := range c.ListObjects(ctx, cfg.Bucket, minio.ListObjectsOptions{Prefix: "repo/" + orphanName, WithVersions: true}) {
		if v.Err != nil {
			t.Fatal(v.Err)
		}
		t.Fatalf("a version of the orphan is left: %+v", v)
	}
	if len(res.Locked) == 0 {
		t.Fatal("the forgotten snapshot's objects are no longer reported locked")
	}
	e.mustVerify()
}

// TestPruneIncompleteUploads: prune aborts the multipart uploads that a
// killed write left, once older than its cutoff.
func TestPruneIncompleteUploads(t *testing.T) {
	ctx := context.Background()
	cfg := testutil.StartS3(t)
	e := newS3Env(t, cfg)
	e.backup(nil, false, "docs="+e.tree(1, 1000))
	c, err := testutil.Client(cfg)
	if err != nil {
		t.Fatal(err)
	}
	core := minio.Core{Client: c}
	key := "repo/" + repo.PackName(strings.Repeat("cd", 32))
	id, err := core.NewMultipartUpload(ctx, cfg.Bucket, key, minio.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	part := bytes.Repeat([]byte("x"), 5<<20)
	if _, err := core.PutObjectPart(ctx, cfg.Bucket, key, id, 1, bytes.NewReader(part), int64(len(part)), minio.PutObjectPartOptions{}); err != nil {
		t.Fatal(err)
	}
	uploads := func() int {
		n := 0
		for u := range c.ListIncompleteUploads(ctx, cfg.Bucket, "repo/", true) {
			if u.Err != nil {
				t.Fatal(u.Err)
			}
			n++
		}
		return n
	}
	if uploads() != 1 {
		t.Fatal("the test's incomplete upload is not listed")
	}
	// Within the grace period it stays.
	res, err := Prune(ctx, e.tr.Host(t), PruneOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.StaleUploads != 0 || uploads() != 1 {
		t.Fatalf("prune removed a fresh upload (%d)", res.StaleUploads)
	}
	time.Sleep(1100 * time.Millisecond)
	res, err = Prune(ctx, e.tr.Host(t), PruneOptions{GraceSet: true, Skew: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.StaleUploads != 1 || uploads() != 0 {
		t.Fatalf("prune removed %d uploads; %d left", res.StaleUploads, uploads())
	}
	e.mustVerify()
}

// TestPruneRepackObjectLock: in a bucket with object lock, the old packs
// that a repack record replaces are retained like everything else: prune
// reports them locked, and must not also say it removed them.
func TestPruneRepackObjectLock(t *testing.T) {
	ctx := context.Background()
	cfg := testutil.StartS3Locked(t)
	e := newS3Env(t, cfg, repo.WithObjectLock(repo.ObjectLock{Mode: "governance", Days: 1}))
	e.partlyUsed(t.TempDir())
	for i := range 2 { // the first repacks, the second finds the old packs replaced
		res, err := Prune(ctx, e.full(), PruneOptions{Now: timeNowPlusHour(), GraceSet: true, Repack: true})
		if err != nil {
			t.Fatalf("prune %d: %v", i+1, err)
		}
		if i == 0 && res.Repack.Record == "" {
			t.Fatalf("first prune did not repack: %+v", res.Repack)
		}
		if i == 1 {
			if len(res.Locked) == 0 {
				t.Fatal("nothing reported locked")
			}
			if res.Repack.Replaced.Objects != 0 {
				t.Fatalf("prune says it removed %d replaced packs (%d bytes), all of them retained by object lock (locked: %d objects)",
					res.Repack.Replaced.Objects, res.Repack.Replaced.Bytes, len(res.Locked))
			}
		}
	}
	e.mustVerify()
}

package storage_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/cofferhq/coffer/internal/testing/testutil"
	"github.com/cofferhq/coffer/storage"
)

// TestS3ObjectLock writes locked objects (one request, and multipart) in a
// bucket with object lock and checks that the server locked them: the
// version cannot be deleted. A bucket without object lock refuses locked
// writes and says it has none.
func TestS3ObjectLock(t *testing.T) {
	ctx := context.Background()
	cfg := testutil.StartS3Locked(t)
	cfg.PartSize = 5 << 20
	s, err := storage.NewS3(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if on, err := s.ObjectLockEnabled(ctx); err != nil || !on {
		t.Fatalf("ObjectLockEnabled = %v, %v; want true", on, err)
	}
	st := storage.WithRetention(s, storage.LockCompliance, 1)
	small, big := randBytes(1000), randBytes(11<<20)
	for name, data := range map[string][]byte{"small": small, "big": big} {
		if err := st.Put(ctx, name, bytes.NewReader(data), int64(len(data)), storage.PutOptions{IfNotExists: true}); err != nil {
			t.Fatalf("locked put %s: %v", name, err)
		}
	}
	if err := st.Put(ctx, "stream", io.MultiReader(bytes.NewReader(big)), -1, storage.PutOptions{IfNotExists: true}); err != nil {
		t.Fatalf("locked put of unknown size: %v", err)
	}
	c, err := testutil.Client(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"small", "big", "stream"} {
		oi, err := c.StatObject(ctx, cfg.Bucket, name, minio.StatObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.ToUpper(oi.Metadata.Get("X-Amz-Object-Lock-Mode")); got != "COMPLIANCE" {
			t.Errorf("%s: lock mode %q, want COMPLIANCE", name, got)
		}
		until, err := time.Parse(time.RFC3339, oi.Metadata.Get("X-Amz-Object-Lock-Retain-Until-Date"))
		if err != nil || until.Before(time.Now().Add(23*time.Hour)) || until.After(time.Now().Add(25*time.Hour)) {
			t.Errorf("%s: retained until %v (%v), want in a day", name, until, err)
		}
		err = c.RemoveObject(ctx, cfg.Bucket, name, minio.RemoveObjectOptions{VersionID: oi.VersionID, GovernanceBypass: true})
		if err == nil {
			t.Errorf("%s: deleting the locked version succeeded", name)
		}
	}
	if got := get(t, s, "big"); !bytes.Equal(got, big) {
		t.Error("big object changed")
	}

	// A bucket without object lock.
	plain := cfg
	plain.Bucket = strings.TrimSuffix(cfg.Bucket, "-locked")
	ps, err := storage.NewS3(ctx, plain)
	if err != nil {
		t.Fatal(err)
	}
	if on, err := ps.ObjectLockEnabled(ctx); err != nil || on {
		t.Fatalf("ObjectLockEnabled of a plain bucket = %v, %v; want false", on, err)
	}
	err = storage.WithRetention(ps, storage.LockGovernance, 1).Put(ctx, "x", bytes.NewReader(small), int64(len(small)), storage.PutOptions{})
	if err == nil {
		t.Fatal("locked put in a bucket without object lock succeeded")
	}
	if !strings.Contains(err.Error(), "ObjectLockConfiguration") {
		t.Errorf("locked put in a plain bucket: %v, want the server's refusal", err)
	}
	// versitygw stores the object before it refuses the lock, so whether
	// the object is there is not checked: coffer init refuses a bucket
	// without object lock before it writes anything.
}

// A local store cannot lock objects: it refuses a locked write rather than
// store the object unlocked.
func TestLocalRefusesLock(t *testing.T) {
	ctx := context.Background()
	l, err := storage.NewLocal(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := storage.As[storage.Locker](storage.WithRetry(l, storage.RetryOptions{})); ok {
		t.Fatal("a local store claims to lock objects")
	}
	err = storage.WithRetention(l, storage.LockGovernance, 1).Put(ctx, "x", bytes.NewReader([]byte("x")), 1, storage.PutOptions{})
	if !errors.Is(err, storage.ErrLockUnsupported) {
		t.Fatalf("locked local put = %v, want ErrLockUnsupported", err)
	}
	if _, err := l.Stat(ctx, "x"); !errors.Is(err, storage.ErrNotExist) {
		t.Fatalf("the refused locked put left an object: %v", err)
	}
}

// TestLocalStaleTemp: temporary files a killed process left behind are
// removed once older than StaleAge, by List and by CleanStale; a fresh
// one (a write in progress) stays.
func TestLocalStaleTemp(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "repo")
	s, err := storage.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	put(t, s, "data/ab/obj", []byte("obj"))
	put(t, s, "snapshots/one", []byte("m"))
	old := time.Now().Add(-storage.StaleAge - time.Minute)
	stale := []string{filepath.Join(dir, "data/ab/obj2.tmp-111"), filepath.Join(dir, "snapshots/two.tmp-222")}
	fresh := filepath.Join(dir, "data/ab/obj3.tmp-333")
	for _, p := range append(slices.Clone(stale), fresh) {
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range stale {
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	assertNames(t, s, "data/", []string{"data/ab/obj"})
	if _, err := os.Stat(stale[0]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("List left the stale temp file %s: %v", stale[0], err)
	}
	if _, err := os.Stat(stale[1]); err != nil {
		t.Errorf("List of data/ touched snapshots/: %v", err)
	}
	n, err := storage.CleanStale(ctx, storage.WithRetry(s, storage.RetryOptions{}), storage.StaleAge)
	if err != nil || n != 1 {
		t.Fatalf("CleanStale = %d, %v; want 1 removed", n, err)
	}
	if _, err := os.Stat(stale[1]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("CleanStale left %s: %v", stale[1], err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("a fresh temp file (a write in progress) was removed: %v", err)
	}
}

// TestS3NoIncompleteUploads: a multipart upload that fails midway is
// aborted, and CleanStale aborts the uploads a killed process left.
func TestS3NoIncompleteUploads(t *testing.T) {
	ctx := context.Background()
	cfg := testutil.StartS3(t)
	cfg.PartSize = 5 << 20
	cfg.Prefix = "repo"
	s, err := storage.NewS3(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c, err := testutil.Client(cfg)
	if err != nil {
		t.Fatal(err)
	}
	incomplete := func() []string {
		var keys []string
		for u := range c.ListIncompleteUploads(ctx, cfg.Bucket, "", true) {
			if u.Err != nil {
				t.Fatal(u.Err)
			}
			keys = append(keys, u.Key)
		}
		return keys
	}
	for _, opts := range []storage.PutOptions{{}, {IfNotExists: true}} {
		r := io.MultiReader(bytes.NewReader(randBytes(11<<20)), errReader{})
		if err := s.Put(ctx, "broken", r, -1, opts); err == nil {
			t.Fatal("a put whose reader fails succeeded")
		}
		cctx, cancel := context.WithCancel(ctx)
		cr := &cancelingReader{r: bytes.NewReader(randBytes(12 << 20)), after: 6 << 20, cancel: cancel}
		if err := s.Put(cctx, "canceled", cr, -1, opts); err == nil {
			t.Fatal("a canceled put succeeded")
		}
		if got := incomplete(); len(got) != 0 {
			t.Fatalf("after failed puts (%+v): incomplete uploads %q", opts, got)
		}
	}

	// A killed process: an upload started and never finished.
	core := minio.Core{Client: c}
	if _, err := core.NewMultipartUpload(ctx, cfg.Bucket, "repo/data/ab/killed", minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := core.NewMultipartUpload(ctx, cfg.Bucket, "other/killed", minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if n, err := storage.CleanStale(ctx, storage.WithRetry(s, storage.RetryOptions{}), time.Hour); err != nil || n != 0 {
		t.Fatalf("CleanStale(1h) = %d, %v; want nothing removed (the upload is new)", n, err)
	}
	if n, err := s.CleanStale(ctx, 0); err != nil || n != 1 {
		t.Fatalf("CleanStale(0) = %d, %v; want 1", n, err)
	}
	if got, want := incomplete(), []string{"other/killed"}; !slices.Equal(got, want) {
		t.Fatalf("incomplete uploads %q, want %q (outside the prefix: left alone)", got, want)
	}
}

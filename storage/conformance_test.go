package storage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/config"
	"github.com/cofferhq/coffer/internal/testing/testutil"
	"github.com/cofferhq/coffer/storage"
)

// testStore runs the conformance suite every backend must pass. newStore
// returns an empty store; subtests use distinct names so they may share it.
// A firstVersions store (a versioned bucket read through
// WithFirstVersions) keeps showing what was first written under a name:
// overwrites and deletes do not change what it reads.
func testStore(t *testing.T, newStore func(t *testing.T) storage.Store, firstVersions bool) {
	ctx := context.Background()

	t.Run("roundtrip", func(t *testing.T) {
		s := newStore(t)
		for _, tc := range []struct {
			name string
			size int
		}{
			{"empty", 0},
			{"small", 100},
			{"nested/deeper/obj", 4096},
			{"big", 20 << 20},
		} {
			data := randBytes(tc.size)
			put(t, s, tc.name, data)
			if got := get(t, s, tc.name); !bytes.Equal(got, data) {
				t.Fatalf("get %s: %d bytes differ from the %d put", tc.name, len(got), len(data))
			}
		}
	})

	t.Run("unknown size", func(t *testing.T) {
		s := newStore(t)
		data := randBytes(11 << 20) // more than two 5 MiB parts
		// Hide the size and the Seeker behind a plain reader.
		r := io.MultiReader(bytes.NewReader(data))
		if err := s.Put(ctx, "stream", r, -1, storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		if got := get(t, s, "stream"); !bytes.Equal(got, data) {
			t.Fatalf("got %d bytes differing from the %d put", len(got), len(data))
		}
		fi, err := s.Stat(ctx, "stream")
		if err != nil {
			t.Fatal(err)
		}
		if got, want := fi.Size, int64(len(data)); got != want {
			t.Fatalf("Stat size = %d, want %d", got, want)
		}
	})

	t.Run("ranged open", func(t *testing.T) {
		s := newStore(t)
		data := randBytes(1000)
		put(t, s, "ranged", data)
		put(t, s, "ranged-empty", nil)
		for _, tc := range []struct {
			name        string
			off, length int64
			want        []byte
		}{
			{"ranged", 0, -1, data},
			{"ranged", 100, 200, data[100:300]},
			{"ranged", 900, -1, data[900:]},
			{"ranged", 900, 500, data[900:]},
			{"ranged", 999, 1, data[999:]},
			{"ranged", 1000, -1, nil},
			{"ranged", 1000, 10, nil},
			{"ranged", 5000, 10, nil},
			{"ranged", 10, 0, nil},
			{"ranged-empty", 0, -1, nil},
			{"ranged-empty", 0, 10, nil},
		} {
			rc, err := s.Open(ctx, tc.name, tc.off, tc.length)
			if err != nil {
				t.Fatalf("Open(%s, %d, %d): %v", tc.name, tc.off, tc.length, err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				t.Fatalf("read (%s, %d, %d): %v", tc.name, tc.off, tc.length, err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Errorf("Open(%s, %d, %d) read %d bytes, want %d", tc.name, tc.off, tc.length, len(got), len(tc.want))
			}
		}
	})

	t.Run("stat", func(t *testing.T) {
		s := newStore(t)
		before := time.Now().Add(-time.Minute)
		put(t, s, "dir/stat", randBytes(1234))
		fi, err := s.Stat(ctx, "dir/stat")
		if err != nil {
			t.Fatal(err)
		}
		if got, want := fi.Name, "dir/stat"; got != want {
			t.Errorf("Stat name = %q, want %q", got, want)
		}
		if got, want := fi.Size, int64(1234); got != want {
			t.Errorf("Stat size = %d, want %d", got, want)
		}
		if fi.ModTime.Before(before) || fi.ModTime.After(time.Now().Add(time.Minute)) {
			t.Errorf("Stat modtime = %v, want about now", fi.ModTime)
		}
	})

	t.Run("missing", func(t *testing.T) {
		s := newStore(t)
		put(t, s, "present/x", []byte("x"))
		for _, name := range []string{"missing", "present/missing", "present/x/under-a-file", "present"} {
			_, err := s.Open(ctx, name, 0, -1)
			if !errors.Is(err, storage.ErrNotExist) {
				t.Errorf("Open(%s) error = %v, want ErrNotExist", name, err)
			} else if !strings.Contains(err.Error(), name) {
				t.Errorf("Open(%s) error %q does not name the object", name, err)
			}
			if _, err := s.Open(ctx, name, 10, 5); !errors.Is(err, storage.ErrNotExist) {
				t.Errorf("Open(%s, 10, 5) error = %v, want ErrNotExist", name, err)
			}
			if _, err := s.Stat(ctx, name); !errors.Is(err, storage.ErrNotExist) {
				t.Errorf("Stat(%s) error = %v, want ErrNotExist", name, err)
			} else if !strings.Contains(err.Error(), name) {
				t.Errorf("Stat(%s) error %q does not name the object", name, err)
			}
		}
	})

	t.Run("if not exists", func(t *testing.T) {
		s := newStore(t)
		first := []byte("first")
		if err := s.Put(ctx, "once", bytes.NewReader(first), int64(len(first)), storage.PutOptions{IfNotExists: true}); err != nil {
			t.Fatalf("first Put: %v", err)
		}
		second := []byte("second")
		err := s.Put(ctx, "once", bytes.NewReader(second), int64(len(second)), storage.PutOptions{IfNotExists: true})
		if !errors.Is(err, storage.ErrExists) {
			t.Fatalf("second Put error = %v, want ErrExists", err)
		}
		err = s.Put(ctx, "once", bytes.NewReader(second), -1, storage.PutOptions{IfNotExists: true})
		if !errors.Is(err, storage.ErrExists) {
			t.Fatalf("second Put of unknown size error = %v, want ErrExists", err)
		}
		if got := get(t, s, "once"); !bytes.Equal(got, first) {
			t.Fatalf("content = %q, want %q", got, first)
		}
		assertNames(t, s, "once", []string{"once"})

		// A multipart upload checks too.
		big := randBytes(11 << 20)
		if err := s.Put(ctx, "once-big", io.MultiReader(bytes.NewReader(big)), -1, storage.PutOptions{IfNotExists: true}); err != nil {
			t.Fatalf("first multipart Put: %v", err)
		}
		err = s.Put(ctx, "once-big", io.MultiReader(bytes.NewReader(first)), -1, storage.PutOptions{IfNotExists: true})
		if !errors.Is(err, storage.ErrExists) {
			t.Fatalf("second multipart Put error = %v, want ErrExists", err)
		}
		if got := get(t, s, "once-big"); !bytes.Equal(got, big) {
			t.Fatalf("multipart content changed: %d bytes", len(got))
		}

		// Racing writers: exactly one wins.
		const n = 6
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() {
				data := bytes.Repeat([]byte{byte('a' + i)}, 1000)
				errs[i] = s.Put(ctx, "race", bytes.NewReader(data), int64(len(data)), storage.PutOptions{IfNotExists: true})
			})
		}
		wg.Wait()
		var won int
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, storage.ErrExists):
				t.Errorf("racing Put: %v", err)
			}
		}
		if won != 1 {
			t.Errorf("%d racing writers won, want 1", won)
		}
	})

	t.Run("list", func(t *testing.T) {
		s := newStore(t)
		names := []string{
			"l/a", "l/a-b", "l/a/b", "l/a/c/d", "l/a0", "l/b", "l/data/00/x", "l/data/0f/y", "l/data/ff/z", "l/z",
		}
		shuffled := slices.Clone(names)
		rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		// "l/a" cannot be a file and a folder on a local disk: skip it.
		for _, n := range shuffled {
			if n == "l/a" {
				continue
			}
			put(t, s, n, []byte(n))
		}
		want := slices.DeleteFunc(slices.Clone(names), func(n string) bool { return n == "l/a" })
		assertNames(t, s, "l/", want)
		assertNames(t, s, "l/a", []string{"l/a-b", "l/a/b", "l/a/c/d", "l/a0"})
		assertNames(t, s, "l/a/", []string{"l/a/b", "l/a/c/d"})
		assertNames(t, s, "l/data/0", []string{"l/data/00/x", "l/data/0f/y"})
		assertNames(t, s, "l/nothing", nil)
		assertNames(t, s, "l/z", []string{"l/z"})

		var sizes []int64
		if err := s.List(ctx, "l/data/", func(fi storage.ObjectInfo) error {
			sizes = append(sizes, fi.Size)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if got, want := sizes, []int64{11, 11, 11}; !slices.Equal(got, want) {
			t.Errorf("listed sizes = %v, want %v", got, want)
		}

		stop := errors.New("stop here")
		var seen int
		err := s.List(ctx, "l/", func(storage.ObjectInfo) error {
			seen++
			if seen == 2 {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) {
			t.Errorf("List with failing fn = %v, want %v", err, stop)
		}
		if seen != 2 {
			t.Errorf("fn called %d times after failing, want 2", seen)
		}
	})

	t.Run("delete", func(t *testing.T) {
		s := newStore(t)
		put(t, s, "del/x", []byte("x"))
		put(t, s, "del/y", []byte("y"))
		if err := s.Delete(ctx, "del/x"); err != nil {
			t.Fatal(err)
		}
		if firstVersions {
			// The delete marker hides nothing from this reader.
			if got := get(t, s, "del/x"); string(got) != "x" {
				t.Fatalf("after Delete: %q, want the first version", got)
			}
			if _, err := s.Stat(ctx, "del/x"); err != nil {
				t.Fatalf("Stat after Delete: %v", err)
			}
			assertNames(t, s, "del/", []string{"del/x", "del/y"})
			if _, err := s.Stat(ctx, "del/never"); !errors.Is(err, storage.ErrNotExist) {
				t.Fatalf("Stat of a name never written = %v, want ErrNotExist", err)
			}
			assertShadowed(t, s, "del/x")
			return
		}
		if _, err := s.Stat(ctx, "del/x"); !errors.Is(err, storage.ErrNotExist) {
			t.Fatalf("Stat after Delete = %v, want ErrNotExist", err)
		}
		assertNames(t, s, "del/", []string{"del/y"})
		if err := s.Delete(ctx, "del/x"); err != nil {
			t.Fatalf("second Delete = %v, want nil", err)
		}
		if err := s.Delete(ctx, "never/was"); err != nil {
			t.Fatalf("Delete of missing = %v, want nil", err)
		}
	})

	t.Run("overwrite", func(t *testing.T) {
		s := newStore(t)
		first := randBytes(5000)
		put(t, s, "over", first)
		data := []byte("shorter")
		put(t, s, "over", data)
		if firstVersions {
			data = first // the overwrite is a newer version, which is ignored
			defer assertShadowed(t, s, "over")
		}
		if got := get(t, s, "over"); !bytes.Equal(got, data) {
			t.Fatalf("content = %q, want %q", got, data)
		}
		fi, err := s.Stat(ctx, "over")
		if err != nil {
			t.Fatal(err)
		}
		if got, want := fi.Size, int64(len(data)); got != want {
			t.Fatalf("Stat size = %d, want %d", got, want)
		}
		assertNames(t, s, "over", []string{"over"})
	})

	t.Run("concurrent", func(t *testing.T) {
		s := newStore(t)
		const n = 8
		var wg sync.WaitGroup
		errs := make(chan error, n)
		want := make([]string, n)
		for i := range n {
			name := fmt.Sprintf("conc/%02d", i)
			want[i] = name
			wg.Go(func() {
				data := bytes.Repeat([]byte{byte(i)}, 100_000+i)
				errs <- s.Put(ctx, name, bytes.NewReader(data), int64(len(data)), storage.PutOptions{})
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		assertNames(t, s, "conc/", want)
		for i, name := range want {
			if got := get(t, s, name); len(got) != 100_000+i || got[0] != byte(i) {
				t.Errorf("%s: %d bytes, want %d", name, len(got), 100_000+i)
			}
		}
	})

	t.Run("canceled", func(t *testing.T) {
		s := newStore(t)
		put(t, s, "cancel/x", []byte("x"))
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := s.Put(cctx, "cancel/y", bytes.NewReader([]byte("y")), 1, storage.PutOptions{}); err == nil {
			t.Error("Put with canceled context succeeded")
		}
		if _, err := s.Stat(ctx, "cancel/y"); !errors.Is(err, storage.ErrNotExist) {
			t.Errorf("Stat of canceled Put = %v, want ErrNotExist", err)
		}
		if _, err := s.Stat(cctx, "cancel/x"); err == nil {
			t.Error("Stat with canceled context succeeded")
		}
		if rc, err := s.Open(cctx, "cancel/x", 0, -1); err == nil {
			_, err = io.ReadAll(rc)
			rc.Close()
			if err == nil {
				t.Error("Open and read with canceled context succeeded")
			}
		}
		if err := s.List(cctx, "cancel/", func(storage.ObjectInfo) error { return nil }); err == nil {
			t.Error("List with canceled context succeeded")
		}

		// Cancel in the middle of a stream.
		cctx, cancel = context.WithCancel(ctx)
		r := &cancelingReader{r: bytes.NewReader(randBytes(12 << 20)), after: 1 << 20, cancel: cancel}
		if err := s.Put(cctx, "cancel/z", r, -1, storage.PutOptions{}); err == nil {
			t.Error("Put canceled midway succeeded")
		}
		if _, err := s.Stat(ctx, "cancel/z"); !errors.Is(err, storage.ErrNotExist) {
			t.Errorf("Stat of Put canceled midway = %v, want ErrNotExist", err)
		}
	})

	t.Run("reader at", func(t *testing.T) {
		s := newStore(t)
		data := randBytes(10_000)
		put(t, s, "ra", data)
		ra := storage.NewReaderAt(ctx, s, "ra", int64(len(data)))
		p := make([]byte, 100)
		n, err := ra.ReadAt(p, 5000)
		if err != nil || n != 100 || !bytes.Equal(p, data[5000:5100]) {
			t.Errorf("ReadAt(100, 5000) = %d, %v", n, err)
		}
		n, err = ra.ReadAt(p, 9950)
		if err != io.EOF || n != 50 || !bytes.Equal(p[:n], data[9950:]) {
			t.Errorf("ReadAt(100, 9950) = %d, %v; want 50, EOF", n, err)
		}
		n, err = ra.ReadAt(p, 9900)
		if (err != nil && err != io.EOF) || n != 100 || !bytes.Equal(p, data[9900:]) {
			t.Errorf("ReadAt(100, 9900) = %d, %v; want 100", n, err)
		}
		if n, err = ra.ReadAt(p, 10_000); err != io.EOF || n != 0 {
			t.Errorf("ReadAt(100, 10000) = %d, %v; want 0, EOF", n, err)
		}
		got, err := io.ReadAll(io.NewSectionReader(ra, 0, int64(len(data))))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("reading it all through a SectionReader: %d bytes, %v", len(got), err)
		}
		missing := storage.NewReaderAt(ctx, s, "ra-missing", 100)
		if _, err := missing.ReadAt(p, 0); !errors.Is(err, storage.ErrNotExist) {
			t.Errorf("ReadAt of missing object = %v, want ErrNotExist", err)
		}
	})
}

type cancelingReader struct {
	r      io.Reader
	n      int
	after  int
	cancel func()
}

func (c *cancelingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	if c.n >= c.after {
		c.cancel()
	}
	return n, err
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(n), byte(n >> 8), byte(n >> 16)})
	r.Read(b)
	return b
}

func put(t *testing.T, s storage.Store, name string, data []byte) {
	t.Helper()
	if err := s.Put(context.Background(), name, bytes.NewReader(data), int64(len(data)), storage.PutOptions{}); err != nil {
		t.Fatalf("put %s: %v", name, err)
	}
}

func get(t *testing.T, s storage.Store, name string) []byte {
	t.Helper()
	rc, err := s.Open(context.Background(), name, 0, -1)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return b
}

func listNames(t *testing.T, s storage.Store, prefix string) []string {
	t.Helper()
	var names []string
	err := s.List(context.Background(), prefix, func(fi storage.ObjectInfo) error {
		names = append(names, fi.Name)
		return nil
	})
	if err != nil {
		t.Fatalf("list %q: %v", prefix, err)
	}
	return names
}

func assertNames(t *testing.T, s storage.Store, prefix string, want []string) {
	t.Helper()
	if got := listNames(t, s, prefix); !slices.Equal(got, want) {
		t.Errorf("List(%q) = %q, want %q", prefix, got, want)
	}
}

// assertShadowed checks that a first-versions store reports name as
// overwritten or deleted, and nothing else.
func assertShadowed(t *testing.T, s storage.Store, name string) {
	t.Helper()
	ow, ok := storage.As[storage.Overwrites](s)
	if !ok {
		t.Fatal("the store does not report overwritten objects")
	}
	got, err := ow.Overwritten(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(got, name) {
		t.Errorf("Overwritten() = %q, want it to hold %s", got, name)
	}
	for _, n := range got {
		if n != "del/x" && n != "over" {
			t.Errorf("Overwritten() holds %s, which nobody overwrote or deleted", n)
		}
	}
}

func TestLocal(t *testing.T) {
	testStore(t, func(t *testing.T) storage.Store {
		s, err := storage.NewLocal(filepath.Join(t.TempDir(), "repo"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}, false)
}

func TestS3(t *testing.T) {
	cfg := testutil.StartS3(t)
	cfg.PartSize = 5 << 20
	var n int
	testStore(t, func(t *testing.T) storage.Store {
		c := cfg
		n++
		c.Prefix = fmt.Sprintf("run%d/", n) // each subtest in its own prefix
		s, err := storage.NewS3(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}, false)
}

// TestS3FirstVersions runs the suite in a bucket with object lock (and so
// versioning) opened as storage.Open opens it: read through
// WithFirstVersions.
func TestS3FirstVersions(t *testing.T) {
	cfg := testutil.StartS3Locked(t)
	cfg.PartSize = 5 << 20
	var n int
	testStore(t, func(t *testing.T) storage.Store {
		n++
		s, err := storage.Open(context.Background(), fmt.Sprintf("s3://%s/run%d", cfg.Bucket, n), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := storage.As[storage.Versioned](s); !ok {
			t.Fatal("the store of a versioned bucket is not Versioned")
		}
		return s
	}, true)
}

func TestS3Prefix(t *testing.T) {
	cfg := testutil.StartS3(t)
	ctx := context.Background()
	whole, err := storage.NewS3(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Prefix = "/repo/one/"
	s, err := storage.NewS3(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.Location(), "s3://"+cfg.Bucket+"/repo/one"; got != want {
		t.Errorf("Location() = %q, want %q", got, want)
	}
	put(t, s, "config", []byte("c"))
	put(t, whole, "repo/one-not", []byte("n"))
	assertNames(t, whole, "", []string{"repo/one-not", "repo/one/config"})
	assertNames(t, s, "", []string{"config"})
}

func TestS3BucketMissing(t *testing.T) {
	cfg := testutil.StartS3(t)
	cfg.Bucket = "coffer-no-such-bucket"
	_, err := storage.NewS3(context.Background(), cfg)
	if !errors.Is(err, storage.ErrBucketNotFound) {
		t.Fatalf("NewS3 error = %v, want ErrBucketNotFound", err)
	}
	if !strings.Contains(err.Error(), cfg.Bucket) {
		t.Errorf("error %q does not name the bucket", err)
	}
	if strings.Contains(err.Error(), cfg.SecretKey) || strings.Contains(err.Error(), cfg.AccessKey) {
		t.Errorf("error %q contains credentials", err)
	}
}

func TestS3Unreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // now nothing listens there

	start := time.Now()
	_, err = storage.NewS3(context.Background(), storage.S3Config{
		Endpoint: addr, Bucket: "bucket", Insecure: true, PathStyle: true,
		AccessKey: "AKIDEXAMPLE", SecretKey: "wJalrXUtnFEMI-secret",
	})
	if !errors.Is(err, storage.ErrUnreachable) {
		t.Fatalf("NewS3 error = %v, want ErrUnreachable", err)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("NewS3 took %v to fail, want seconds at most", elapsed)
	}
	if !strings.Contains(err.Error(), addr) {
		t.Errorf("error %q does not name the endpoint", err)
	}
	if strings.Contains(err.Error(), "wJalrXUtnFEMI-secret") || strings.Contains(err.Error(), "AKIDEXAMPLE") {
		t.Errorf("error %q contains credentials", err)
	}
}

func TestOpen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, loc := range []string{dir + "/a", "file://" + dir + "/b"} {
		s, err := storage.Open(ctx, loc, storage.S3Config{})
		if err != nil {
			t.Fatalf("Open(%s): %v", loc, err)
		}
		if _, ok := s.(*storage.Local); !ok {
			t.Errorf("Open(%s) = %T, want *storage.Local", loc, s)
		}
	}
	if _, err := storage.Open(ctx, "ftp://user:hunter2@host/x", storage.S3Config{}); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("Open(ftp://...) error = %v, want an error without the password", err)
	}

	cfg := testutil.StartS3(t)
	s, err := storage.Open(ctx, "s3://"+cfg.Bucket+"/some/prefix", storage.S3Config{
		Endpoint: cfg.Endpoint, AccessKey: cfg.AccessKey, SecretKey: cfg.SecretKey,
		Insecure: true, PathStyle: true, Bucket: "ignored", Prefix: "ignored",
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.Location(), "s3://"+cfg.Bucket+"/some/prefix"; got != want {
		t.Errorf("Location() = %q, want %q", got, want)
	}
	u, ok := s.(interface{ Unwrap() storage.Store })
	if !ok {
		t.Fatalf("Open(s3://...) = %T, want a retrying store", s)
	}
	if _, ok := u.Unwrap().(*storage.S3); !ok {
		t.Errorf("Unwrap() = %T, want *storage.S3", u.Unwrap())
	}
}

func TestParseS3URL(t *testing.T) {
	for _, tc := range []struct {
		in, bucket, prefix string
		ok                 bool
	}{
		{"s3://b", "b", "", true},
		{"s3://b/", "b", "", true},
		{"s3://b/p/q/", "b", "p/q", true},
		{"s3://", "", "", false},
		{"s3:///p", "", "", false},
		{"http://b/p", "", "", false},
		{"s3://AK:hunter2@b/p", "", "", false},
	} {
		bucket, prefix, err := storage.ParseS3URL(tc.in)
		if (err == nil) != tc.ok || bucket != tc.bucket || prefix != tc.prefix {
			t.Errorf("ParseS3URL(%q) = %q, %q, %v", tc.in, bucket, prefix, err)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("ParseS3URL(%q) error %q contains the secret", tc.in, err)
		}
	}
}

// TestOpenIgnoresEnvironment: storage reads no environment. With
// COFFER_S3_ENDPOINT and the AWS_* variables pointing at nothing, Open with
// a config naming the real server works; package config is what reads the
// environment.
func TestOpenIgnoresEnvironment(t *testing.T) {
	ctx := context.Background()
	srv := testutil.StartS3(t)
	t.Setenv("COFFER_S3_ENDPOINT", "http://127.0.0.1:1")
	t.Setenv("AWS_ACCESS_KEY_ID", "env-ak")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "env-sk")
	t.Setenv("AWS_REGION", "env-region")

	s, err := storage.Open(ctx, "s3://"+srv.Bucket+"/noenv", srv)
	if err != nil {
		t.Fatalf("Open with the environment pointing elsewhere: %v", err)
	}
	data := []byte("not from the environment")
	if err := s.Put(ctx, "x", bytes.NewReader(data), int64(len(data)), storage.PutOptions{}); err != nil {
		t.Fatalf("put: %v", err)
	}

	c, err := config.Load(config.LoadOptions{Env: os.Getenv})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.S3Config()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := got.Endpoint, "127.0.0.1:1"; got != want {
		t.Fatalf("config endpoint = %q, want %q from COFFER_S3_ENDPOINT", got, want)
	}
	if got, want := got.AccessKey, "env-ak"; got != want {
		t.Fatalf("config access key = %q, want %q from AWS_ACCESS_KEY_ID", got, want)
	}
	if _, err := storage.Open(ctx, "s3://"+srv.Bucket+"/noenv", got); !errors.Is(err, storage.ErrUnreachable) {
		t.Fatalf("Open with the config from the environment: %v, want %v", err, storage.ErrUnreachable)
	}
}

func TestLocalAtomicity(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "repo")
	s, err := storage.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.Location(), "file://"+dir; got != want {
		t.Errorf("Location() = %q, want %q", got, want)
	}
	put(t, s, "data/ab/obj", randBytes(1000))
	if err := s.Put(ctx, "data/ab/obj", bytes.NewReader([]byte("x")), 1, storage.PutOptions{IfNotExists: true}); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("Put IfNotExists = %v, want ErrExists", err)
	}
	// A failed write: the reader yields fewer bytes than announced.
	if err := s.Put(ctx, "data/ab/short", bytes.NewReader([]byte("abc")), 10, storage.PutOptions{}); err == nil {
		t.Fatal("Put of a short reader succeeded")
	}
	// A failed write: the reader breaks midway.
	if err := s.Put(ctx, "data/ab/broken", io.MultiReader(bytes.NewReader(randBytes(100)), errReader{}), -1, storage.PutOptions{}); err == nil {
		t.Fatal("Put of a failing reader succeeded")
	}
	var files []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if want := []string{"data/ab/obj"}; !slices.Equal(files, want) {
		t.Errorf("files on disk = %q, want %q (no temp files)", files, want)
	}
	for _, p := range []string{dir, filepath.Join(dir, "data/ab")} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("folder %s: mode %v, %v; want 0700", p, fi.Mode().Perm(), err)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "data/ab/obj")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("object file mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}

	// A crash between write and rename leaves a temp file behind.
	if err := os.WriteFile(filepath.Join(dir, "data/ab/crashed.tmp-12345"), []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	assertNames(t, s, "", []string{"data/ab/obj"})
	if _, err := s.Stat(ctx, "data/ab/crashed"); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("Stat of crashed object = %v, want ErrNotExist", err)
	}
	// The store's own temp names are not valid object names.
	if err := s.Put(ctx, "x.tmp-1", bytes.NewReader(nil), 0, storage.PutOptions{}); err == nil {
		t.Error("Put of a temp-like name succeeded")
	}
	for _, bad := range []string{"", "/abs", "../up", "a/../b", "a//b", "dir/"} {
		if err := s.Put(ctx, bad, bytes.NewReader(nil), 0, storage.PutOptions{}); err == nil {
			t.Errorf("Put(%q) succeeded, want an invalid name error", bad)
		}
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

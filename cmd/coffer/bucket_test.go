package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/cofferhq/coffer/internal/testing/testutil"
)

// getCounter is a reverse proxy in front of an S3 server that counts the
// GETs of objects (not listings or bucket queries), by key.
type getCounter struct {
	mu   sync.Mutex
	gets map[string]int
	// failPutsAfter, when positive, makes every PUT after that many fail
	// with AccessDenied (a quota, a policy change in the middle of a
	// restore).
	failPutsAfter, puts int
}

func (g *getCounter) reset() map[string]int {
	g.mu.Lock()
	defer g.mu.Unlock()
	old := g.gets
	g.gets = map[string]int{}
	return old
}

func startGetCounter(t *testing.T, endpoint, bucket string) (*getCounter, string) {
	t.Helper()
	u, err := url.Parse("http://" + endpoint)
	if err != nil {
		t.Fatal(err)
	}
	g := &getCounter{gets: map[string]int{}}
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Path style: /BUCKET/KEY; a GET without a query is an object's.
		if key, ok := strings.CutPrefix(r.URL.Path, "/"+bucket+"/"); ok && r.Method == http.MethodGet && key != "" && r.URL.RawQuery == "" {
			g.mu.Lock()
			g.gets[key]++
			g.mu.Unlock()
		}
		if r.Method == http.MethodPut {
			g.mu.Lock()
			g.puts++
			fail := g.failPutsAfter > 0 && g.puts > g.failPutsAfter
			g.mu.Unlock()
			if fail {
				w.Header().Set("Content-Type", "application/xml")
				w.WriteHeader(http.StatusForbidden)
				io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>denied by the test</Message></Error>`)
				return
			}
		}
		proxy.ServeHTTP(w, r) // keeps the Host the request was signed for
	}))
	t.Cleanup(srv.Close)
	return g, strings.TrimPrefix(srv.URL, "http://")
}

type testObject struct {
	body []byte
	opts minio.PutObjectOptions
}

// TestBucketSource is the acceptance test of the bucket kind: a source
// bucket and a repository bucket on two S3 servers, each configured with
// its own endpoint and credentials. The first backup fetches every object
// under the prefix once; the second fetches only the objects that changed
// or appeared (GETs counted by a proxy). The snapshot restores into a new
// prefix with the objects' content types and metadata, into a folder, and
// never over the source prefix (nor into a non-empty one) without --force.
func TestBucketSource(t *testing.T) {
	repoS3 := testutil.StartS3(t)
	srcS3 := testutil.StartS3(t)
	counter, proxyEP := startGetCounter(t, srcS3.Endpoint, srcS3.Bucket)
	ctx := context.Background()
	cl, err := testutil.Client(srcS3)
	if err != nil {
		t.Fatal(err)
	}
	objects := map[string]testObject{
		"INV-0001.pdf": {randomBytes(t, 70_000), minio.PutObjectOptions{ContentType: "application/pdf",
			CacheControl: "max-age=3600", ContentDisposition: `attachment; filename="INV-0001.pdf"`,
			UserMetadata: map[string]string{"customer": "acme", "invoice-number": "INV-0001"}}},
		"2026/01/INV-0002.xml": {[]byte(`<invoice id="INV-0002"/>`), minio.PutObjectOptions{ContentType: "application/xml",
			ContentLanguage: "de", ContentEncoding: "identity"}},
		"2026/01/scan.tif":  {randomBytes(t, 5<<20+123), minio.PutObjectOptions{ContentType: "image/tiff"}}, // streamed, not buffered
		"2026/02/empty.txt": {nil, minio.PutObjectOptions{ContentType: "text/plain"}},
	}
	for i := range 20 {
		objects[fmt.Sprintf("2026/03/INV-%04d.json", 100+i)] = testObject{[]byte(fmt.Sprintf(`{"invoice": %d, "total": "%d.50"}`, i, i)),
			minio.PutObjectOptions{ContentType: "application/json", UserMetadata: map[string]string{"seq": fmt.Sprint(i)}}}
	}
	put := func(key string, o testObject) {
		t.Helper()
		if _, err := cl.PutObject(ctx, srcS3.Bucket, key, bytes.NewReader(o.body), int64(len(o.body)), o.opts); err != nil {
			t.Fatal(err)
		}
	}
	for k, o := range objects {
		put("invoices/"+k, o)
	}
	put("elsewhere/not-backed-up.txt", testObject{[]byte("no"), minio.PutObjectOptions{}})

	work := t.TempDir()
	keys := filepath.Join(work, "keys")
	mustCoffer(t, "keygen", "--out", keys)
	// The repository's endpoint and credentials, and the source's own:
	// another server. The environment holds neither.
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	t.Setenv("COFFER_S3_ENDPOINT", "")
	conf := filepath.Join(work, "coffer.yaml")
	writeConf := func(sourceEndpoint string) {
		t.Helper()
		c := fmt.Sprintf(`repository: s3://%s/coffer
s3:
  endpoint: http://%s
  access_key_id: %s
  secret_access_key: %s
  iam: false
signing_key: %s
identity: %s
owner_key: %s
cache_dir: %s
sources:
  invoices:
    kind: s3
    location: %s/invoices
    s3:
      endpoint: http://%s
      access_key_id: %s
      secret_access_key: %s
      iam: false
`, repoS3.Bucket, repoS3.Endpoint, repoS3.AccessKey, repoS3.SecretKey,
			filepath.Join(keys, "host", "signing.key"), filepath.Join(keys, "restore", "identity.txt"),
			filepath.Join(keys, "owner.pub"), filepath.Join(work, "cache"),
			srcS3.Bucket, sourceEndpoint, srcS3.AccessKey, srcS3.SecretKey)
		if err := os.WriteFile(conf, []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeConf(proxyEP)
	mustCoffer(t, "--config", conf, "init", "--owner-key", filepath.Join(keys, "owner", "owner.key"),
		"-R", filepath.Join(keys, "recipients.txt"), "--host", filepath.Join(keys, "signing.pub"))

	// First backup: every object under the prefix, once.
	counter.reset()
	mustCoffer(t, "--config", conf, "backup", "invoices")
	gets := counter.reset()
	if len(gets) != len(objects) {
		t.Errorf("first backup fetched %d objects, want %d: %v", len(gets), len(objects), gets)
	}
	for k, n := range gets {
		if _, ok := objects[strings.TrimPrefix(k, "invoices/")]; !ok || n != 1 {
			t.Errorf("first backup: %d GETs of %q", n, k)
		}
	}

	// Change two objects, add one, delete one: the second backup fetches
	// the three that are new or changed, and nothing else.
	changed := map[string]testObject{
		"INV-0001.pdf":          {randomBytes(t, 70_000), objects["INV-0001.pdf"].opts},
		"2026/03/INV-0105.json": {[]byte(`{"invoice": 5, "total": "999.00"}`), objects["2026/03/INV-0105.json"].opts},
		"2026/04/INV-0200.json": {[]byte(`{"invoice": 200}`), minio.PutObjectOptions{ContentType: "application/json",
			CacheControl: "no-cache"}},
	}
	for k, o := range changed {
		put("invoices/"+k, o)
		objects[k] = o
	}
	if err := cl.RemoveObject(ctx, srcS3.Bucket, "invoices/2026/03/INV-0119.json", minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	delete(objects, "2026/03/INV-0119.json")
	mustCoffer(t, "--config", conf, "backup", "invoices")
	gets = counter.reset()
	if len(gets) != len(changed) {
		t.Errorf("second backup fetched %d objects, want only the %d changed: %v", len(gets), len(changed), gets)
	}
	for k := range gets {
		if _, ok := changed[strings.TrimPrefix(k, "invoices/")]; !ok {
			t.Errorf("second backup fetched the unchanged %q", k)
		}
	}

	// A restore whose uploads start failing halfway: it says how many
	// objects it wrote and removes them; the prefix is left empty.
	counter.mu.Lock()
	counter.failPutsAfter, counter.puts = 5, 0
	counter.mu.Unlock()
	code, _, stderr := coffer(t, "--config", conf, "restore", "latest:invoices", "--to-s3", srcS3.Bucket+"/failed")
	if code != 1 || !strings.Contains(stderr, "objects written before the failure") || !strings.Contains(stderr, "were removed") {
		t.Errorf("restore with failing uploads: exit %d, want 1 saying what was written and removed:\n%s", code, stderr)
	}
	if left := listKeys(t, cl, srcS3.Bucket, "failed/"); len(left) != 0 {
		t.Errorf("a failed restore left %d objects: %v", len(left), left)
	}
	counter.mu.Lock()
	counter.failPutsAfter = 0
	counter.mu.Unlock()

	// Restores read the bucket directly (no need for the counting proxy).
	writeConf(srcS3.Endpoint)
	// Never over the source prefix, nor within it, without --force.
	for _, to := range []string{srcS3.Bucket + "/invoices", srcS3.Bucket + "/invoices/restored", srcS3.Bucket} {
		code, _, stderr := coffer(t, "--config", conf, "restore", "latest:invoices", "--to-s3", to)
		if code != 1 || !strings.Contains(stderr, "where the snapshot's objects came from") ||
			!strings.Contains(stderr, "coffer: hint: restore into a new prefix") {
			t.Errorf("restore over the source %s: exit %d, want 1 with a refusal and a hint:\n%s", to, code, stderr)
		}
	}
	if got := listKeys(t, cl, srcS3.Bucket, "invoices/"); len(got) != len(objects) {
		t.Errorf("the refused restores changed the source prefix: %d objects, want %d", len(got), len(objects))
	}

	// Into a new prefix: every object with its metadata.
	out := mustCoffer(t, "--config", conf, "restore", "latest:invoices", "--to-s3", srcS3.Bucket+"/restored/night")
	if !strings.Contains(out, fmt.Sprintf("%d objects", len(objects))) {
		t.Errorf("restore output does not count %d objects:\n%s", len(objects), out)
	}
	compareObjects(t, cl, srcS3.Bucket, "invoices/", "restored/night/", objects)

	// Part of it: --include selects objects as it selects a folder's files.
	mustCoffer(t, "--config", conf, "restore", "latest:invoices", "--to-s3", srcS3.Bucket+"/part", "--include", "2026/03/INV-010*")
	part := map[string]testObject{}
	for k, o := range objects {
		if strings.HasPrefix(k, "2026/03/INV-010") {
			part[k] = o
		}
	}
	if len(part) != 10 {
		t.Fatalf("test setup: %d objects match, want 10", len(part))
	}
	compareObjects(t, cl, srcS3.Bucket, "invoices/", "part/", part)

	// The same prefix again: it is not empty now.
	code, _, stderr = coffer(t, "--config", conf, "restore", "latest:invoices", "--to-s3", srcS3.Bucket+"/restored/night")
	if code != 1 || !strings.Contains(stderr, "target prefix is not empty") || !strings.Contains(stderr, "hint: choose a new prefix") {
		t.Errorf("restore into a non-empty prefix: exit %d, want 1 with a refusal:\n%s", code, stderr)
	}
	// A missing bucket.
	code, _, stderr = coffer(t, "--config", conf, "restore", "latest:invoices", "--to-s3", "no-such-bucket-here/x")
	if code != 1 || !strings.Contains(stderr, `bucket "no-such-bucket-here" does not exist`) {
		t.Errorf("restore into a missing bucket: exit %d:\n%s", code, stderr)
	}
	// With --force, over the source: allowed, and the objects are the same.
	mustCoffer(t, "--config", conf, "restore", "latest:invoices", "--to-s3", srcS3.Bucket+"/invoices", "--force")
	compareObjects(t, cl, srcS3.Bucket, "invoices/", "invoices/", objects)

	// Into a folder: the objects as files, under their keys' folders.
	dir := filepath.Join(work, "restored")
	mustCoffer(t, "--config", conf, "restore", "latest:invoices", "--to", dir)
	n := 0
	err = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		want, ok := objects[filepath.ToSlash(rel)]
		if !ok {
			t.Errorf("restored folder holds %s, which is no object", rel)
			return nil
		}
		got, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, want.body) {
			t.Errorf("restored file %s differs from its object", rel)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != len(objects) {
		t.Errorf("restored folder holds %d files, want %d", n, len(objects))
	}
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func listKeys(t *testing.T, cl *minio.Client, bucket, prefix string) []string {
	t.Helper()
	var keys []string
	for oi := range cl.ListObjects(context.Background(), bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if oi.Err != nil {
			t.Fatal(oi.Err)
		}
		keys = append(keys, oi.Key)
	}
	return keys
}

// compareObjects checks that the objects under prefix are exactly want,
// with their contents and metadata.
func compareObjects(t *testing.T, cl *minio.Client, bucket, wantPrefix, prefix string, want map[string]testObject) {
	t.Helper()
	ctx := context.Background()
	keys := listKeys(t, cl, bucket, prefix)
	if len(keys) != len(want) {
		t.Errorf("%s holds %d objects, want %d: %v", prefix, len(keys), len(want), keys)
	}
	for k, w := range want {
		obj, err := cl.GetObject(ctx, bucket, prefix+k, minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(obj)
		if err != nil {
			t.Errorf("%s%s: %v", prefix, k, err)
			continue
		}
		info, err := obj.Stat()
		obj.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(body, w.body) {
			t.Errorf("%s%s: contents differ", prefix, k)
		}
		wantType := w.opts.ContentType
		if info.ContentType != wantType {
			t.Errorf("%s%s: content type %q, want %q", prefix, k, info.ContentType, wantType)
		}
		for h, v := range map[string]string{"Cache-Control": w.opts.CacheControl, "Content-Disposition": w.opts.ContentDisposition,
			"Content-Language": w.opts.ContentLanguage, "Content-Encoding": w.opts.ContentEncoding} {
			got := info.Metadata.Get(h)
			if h == "Content-Encoding" { // versitygw keeps the upload's aws-chunked
				got = strings.TrimPrefix(strings.TrimPrefix(got, "aws-chunked"), ",")
			}
			if got != v {
				t.Errorf("%s%s: %s %q, want %q", prefix, k, h, got, v)
			}
		}
		for mk, mv := range w.opts.UserMetadata {
			if got := info.UserMetadata[http.CanonicalHeaderKey(mk)]; got != mv {
				t.Errorf("%s%s: user metadata %s = %q, want %q (have %v)", prefix, k, mk, got, mv, info.UserMetadata)
			}
		}
		if len(info.UserMetadata) != len(w.opts.UserMetadata) {
			t.Errorf("%s%s: user metadata %v, want %v", prefix, k, info.UserMetadata, w.opts.UserMetadata)
		}
	}
}

package main

import (
	"bytes"
	"context"
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
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/cofferhq/coffer/internal/testing/testutil"
)

// lateProxy is a reverse proxy in front of an S3 server that makes one
// upload land after the restore gave up on it: it holds the PUT of
// lateKey until the client cancels it, fails the PUT of failKey once the
// late one is held, and forwards the held PUT to the server right after
// the next bulk delete, before answering that delete. So the server
// completes an upload the client canceled, after the client's cleanup
// removed the keys it had begun, as a real server may when it had the
// whole body.
type lateProxy struct {
	lateKey, failKey string
	held             chan struct{}
	mu               sync.Mutex
	replay           *http.Request
	replayed         int
}

func startLateProxy(t *testing.T, endpoint, bucket, lateKey, failKey string) (*lateProxy, string) {
	t.Helper()
	u, err := url.Parse("http://" + endpoint)
	if err != nil {
		t.Fatal(err)
	}
	p := &lateProxy{lateKey: bucket + "/" + lateKey, failKey: bucket + "/" + failKey, held: make(chan struct{})}
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := strings.TrimPrefix(r.URL.Path, "/")
		switch {
		case r.Method == http.MethodPut && key == p.lateKey:
			body, err := io.ReadAll(r.Body)
			if err != nil {
				return
			}
			close(p.held)
			<-r.Context().Done() // the client gave up on it
			r2 := r.Clone(context.Background())
			r2.Body = io.NopCloser(bytes.NewReader(body))
			p.mu.Lock()
			p.replay = r2
			p.mu.Unlock()
			return
		case r.Method == http.MethodPut && key == p.failKey:
			select {
			case <-p.held:
			case <-time.After(30 * time.Second):
			}
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>denied by the test</Message></Error>`)
			return
		case r.Method == http.MethodPost && r.URL.Query().Has("delete"):
			rec := httptest.NewRecorder()
			proxy.ServeHTTP(rec, r)
			// The held upload may still be on its way here: the
			// client canceled it, and the handler stores it then.
			deadline := time.Now().Add(10 * time.Second)
			for {
				p.mu.Lock()
				r2 := p.replay
				p.replay = nil
				p.mu.Unlock()
				if r2 != nil {
					late := httptest.NewRecorder()
					proxy.ServeHTTP(late, r2)
					p.mu.Lock()
					if late.Code == http.StatusOK {
						p.replayed++
					}
					p.mu.Unlock()
					break
				}
				if time.Now().After(deadline) {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			w.Write(rec.Body.Bytes())
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return p, strings.TrimPrefix(srv.URL, "http://")
}

// TestBucketRestoreLateUpload repeats what TestBucketSource once showed:
// a restore into a bucket whose uploads fail halfway said it removed the
// objects it had written, yet left one behind (failed/2026/03/INV-0103.json):
// an upload it had canceled completed on the server after its cleanup
// deleted the keys it had begun. The restore now looks at the prefix again
// after the cleanup and removes what landed late.
func TestBucketRestoreLateUpload(t *testing.T) {
	s3 := testutil.StartS3(t)
	ctx := context.Background()
	cl, err := testutil.Client(s3)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a.json", "b.json"} {
		body := []byte(fmt.Sprintf(`{"invoice": %q}`, k))
		if _, err := cl.PutObject(ctx, s3.Bucket, "invoices/"+k, bytes.NewReader(body), int64(len(body)),
			minio.PutObjectOptions{ContentType: "application/json"}); err != nil {
			t.Fatal(err)
		}
	}
	lp, proxyEP := startLateProxy(t, s3.Endpoint, s3.Bucket, "failed/a.json", "failed/b.json")

	work := t.TempDir()
	keys := filepath.Join(work, "keys")
	mustCoffer(t, "keygen", "--out", keys)
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	t.Setenv("COFFER_S3_ENDPOINT", "")
	conf := filepath.Join(work, "coffer.yaml")
	writeConf := func(endpoint string) {
		t.Helper()
		c := fmt.Sprintf(`repository: %s
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
`, filepath.Join(work, "repo"), filepath.Join(keys, "host", "signing.key"), filepath.Join(keys, "restore", "identity.txt"),
			filepath.Join(keys, "owner.pub"), filepath.Join(work, "cache"), s3.Bucket, endpoint, s3.AccessKey, s3.SecretKey)
		if err := os.WriteFile(conf, []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeConf(s3.Endpoint)
	mustCoffer(t, "--config", conf, "init", "--owner-key", filepath.Join(keys, "owner", "owner.key"),
		"-R", filepath.Join(keys, "recipients.txt"), "--host", filepath.Join(keys, "signing.pub"))
	mustCoffer(t, "--config", conf, "backup", "invoices")

	writeConf(proxyEP)
	code, _, stderr := coffer(t, "--config", conf, "restore", "latest:invoices", "--to-s3", s3.Bucket+"/failed")
	if code != 1 || !strings.Contains(stderr, "were removed") {
		t.Errorf("restore with a failing upload: exit %d, want 1 saying the objects were removed:\n%s", code, stderr)
	}
	lp.mu.Lock()
	replayed := lp.replayed
	lp.mu.Unlock()
	if replayed != 1 {
		t.Fatalf("test setup: the late upload landed %d times, want 1", replayed)
	}
	if left := listKeys(t, cl, s3.Bucket, "failed/"); len(left) != 0 {
		t.Errorf("a failed restore said it removed its objects, yet left %d: %v", len(left), left)
	}
}

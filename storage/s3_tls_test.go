package storage_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cofferhq/coffer/internal/config"
	"github.com/cofferhq/coffer/internal/testing/testutil"
	"github.com/cofferhq/coffer/storage"
)

// tlsRoundTrip puts an object in s and reads it back.
func tlsRoundTrip(t *testing.T, s storage.Store, name string) {
	t.Helper()
	ctx := context.Background()
	data := []byte("secret backup bytes for " + name)
	if err := s.Put(ctx, name, bytes.NewReader(data), int64(len(data)), storage.PutOptions{}); err != nil {
		t.Fatalf("put %s: %v", name, err)
	}
	rc, err := s.Open(ctx, name, 0, -1)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("read %s: got %q, want %q", name, got, data)
	}
}

// noCredentials fails the test if err shows cfg's keys.
func noCredentials(t *testing.T, err error, cfg storage.S3Config) {
	t.Helper()
	for _, secret := range []string{cfg.AccessKey, cfg.SecretKey} {
		if secret != "" && strings.Contains(err.Error(), secret) {
			t.Errorf("error %q contains credentials", err)
		}
	}
}

// sniffProxy forwards connections to backend and records the first byte
// each client sent: 0x16 opens a TLS handshake, a letter a plain http
// request.
type sniffProxy struct {
	addr string
	mu   sync.Mutex
	seen []byte
}

func newSniffProxy(t *testing.T, backend string) *sniffProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &sniffProxy{addr: l.Addr().String()}
	var wg sync.WaitGroup
	var conns sync.Map
	t.Cleanup(func() {
		l.Close()
		conns.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns.Store(c, nil)
			wg.Go(func() {
				defer c.Close()
				first := make([]byte, 1)
				if _, err := io.ReadFull(c, first); err != nil {
					return
				}
				p.mu.Lock()
				p.seen = append(p.seen, first[0])
				p.mu.Unlock()
				b, err := net.Dial("tcp", backend)
				if err != nil {
					return
				}
				conns.Store(b, nil)
				defer b.Close()
				if _, err := b.Write(first); err != nil {
					return
				}
				go func() { io.Copy(c, b); c.Close() }()
				io.Copy(b, c)
				b.Close()
			})
		}
	})
	return p
}

func (p *sniffProxy) firstBytes() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return bytes.Clone(p.seen)
}

func TestS3TLS(t *testing.T) {
	ctx := context.Background()
	caFile, certFile, keyFile := testutil.NewCA(t)
	tlsCfg := testutil.StartS3TLS(t, caFile, certFile, keyFile)
	_, port, err := net.SplitHostPort(tlsCfg.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file %s: mode %v, %v; want 0600", keyFile, fi.Mode().Perm(), err)
	}

	t.Run("ca file", func(t *testing.T) {
		for _, ep := range []string{
			tlsCfg.Endpoint,
			"localhost:" + port,
			"https://" + tlsCfg.Endpoint,
			"https://localhost:" + port + "/",
		} {
			cfg := tlsCfg
			cfg.Endpoint = ep
			s, err := storage.NewS3(ctx, cfg)
			if err != nil {
				t.Fatalf("NewS3(%s) with ca_file: %v", ep, err)
			}
			tlsRoundTrip(t, s, "ca-file/"+strings.NewReplacer(":", "_", "/", "_").Replace(ep))
		}
	})

	t.Run("untrusted", func(t *testing.T) {
		proxy := newSniffProxy(t, tlsCfg.Endpoint)
		cfg := tlsCfg
		cfg.Endpoint, cfg.CAFile = proxy.addr, ""
		s, err := storage.NewS3(ctx, cfg)
		if err == nil {
			t.Fatalf("NewS3 without ca_file succeeded (%v), want a certificate error", s.Location())
		}
		msg := err.Error()
		for _, want := range []string{"not trusted", "s3.ca_file", "s3.skip_verify", proxy.addr} {
			if !strings.Contains(msg, want) {
				t.Errorf("error %q does not say %q", msg, want)
			}
		}
		var ua x509.UnknownAuthorityError
		var cve *tls.CertificateVerificationError
		if !errors.As(err, &ua) || !errors.As(err, &cve) {
			t.Errorf("error %q does not wrap the x509 UnknownAuthorityError and tls.CertificateVerificationError", msg)
		}
		if errors.Is(err, storage.ErrUnreachable) {
			t.Errorf("error %q wraps ErrUnreachable; the server was reached", msg)
		}
		noCredentials(t, err, cfg)
		// Never plain http: every connection began with a TLS handshake.
		seen := proxy.firstBytes()
		if len(seen) == 0 {
			t.Fatal("the proxy saw no connection")
		}
		for _, b := range seen {
			if b != 0x16 {
				t.Errorf("a connection began with %q, not a TLS handshake (0x16): fell back to plain http?", b)
			}
		}
	})

	t.Run("wrong ca file", func(t *testing.T) {
		otherCA, _, _ := testutil.NewCA(t)
		cfg := tlsCfg
		cfg.CAFile = otherCA
		_, err := storage.NewS3(ctx, cfg)
		if err == nil {
			t.Fatal("NewS3 with another CA's file succeeded, want a certificate error")
		}
		for _, want := range []string{"not trusted", otherCA} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
		}
		noCredentials(t, err, cfg)
	})

	t.Run("skip verify", func(t *testing.T) {
		cfg := tlsCfg
		cfg.CAFile, cfg.SkipVerify = "", true
		s, err := storage.NewS3(ctx, cfg)
		if err != nil {
			t.Fatalf("NewS3 with skip_verify: %v", err)
		}
		tlsRoundTrip(t, s, "skip-verify")
	})

	t.Run("bad ca file", func(t *testing.T) {
		dir := t.TempDir()
		notPEM := filepath.Join(dir, "not.pem")
		if err := os.WriteFile(notPEM, []byte("this is not a certificate\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct{ name, file, want string }{
			{"missing", filepath.Join(dir, "missing.pem"), "no such file"},
			{"not pem", notPEM, "no PEM certificates"},
			{"key only", keyFile, "no PEM certificates"},
			{"folder", dir, "is a directory"},
		} {
			cfg := tlsCfg
			cfg.CAFile = tc.file
			_, err := storage.NewS3(ctx, cfg)
			if err == nil {
				t.Errorf("%s: NewS3 succeeded, want an error", tc.name)
				continue
			}
			for _, want := range []string{"ca_file", tc.file, tc.want} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("%s: error %q does not say %q", tc.name, err, want)
				}
			}
			if errors.Is(err, storage.ErrUnreachable) {
				t.Errorf("%s: error %q wraps ErrUnreachable", tc.name, err)
			}
			noCredentials(t, err, cfg)
		}
	})

	t.Run("plain http to tls server", func(t *testing.T) {
		for _, cfg := range []storage.S3Config{
			func() storage.S3Config { c := tlsCfg; c.CAFile, c.Insecure = "", true; return c }(),
			func() storage.S3Config { c := tlsCfg; c.Endpoint = "http://" + c.Endpoint; return c }(),
		} {
			_, err := storage.NewS3(ctx, cfg)
			if err == nil {
				t.Fatalf("NewS3(%s) over plain http to a TLS server succeeded", cfg.Endpoint)
			}
			for _, want := range []string{"speaks https", "plain http", tlsCfg.Endpoint} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			noCredentials(t, err, cfg)
		}
	})

	t.Run("https to plain http server", func(t *testing.T) {
		cfg := testutil.StartS3(t)
		cfg.Insecure = false
		if _, err := storage.NewS3(ctx, cfg); err == nil {
			t.Fatal("NewS3 over https to a plain http server succeeded: fell back to http?")
		}
		cfg.Endpoint = "https://" + cfg.Endpoint
		if _, err := storage.NewS3(ctx, cfg); err == nil {
			t.Fatal("NewS3(https://...) to a plain http server succeeded: fell back to http?")
		}
	})
}

// TestS3TLSOpenFromEnv goes the way the command does: COFFER_S3_ENDPOINT
// with an https:// URL, read by package config, then storage.Open.
func TestS3TLSOpenFromEnv(t *testing.T) {
	ctx := context.Background()
	caFile, certFile, keyFile := testutil.NewCA(t)
	srv := testutil.StartS3TLS(t, caFile, certFile, keyFile)
	_, port, err := net.SplitHostPort(srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	location := "s3://" + srv.Bucket + "/env/prefix"

	for _, ep := range []string{"https://" + srv.Endpoint, "https://localhost:" + port + "/"} {
		env := map[string]string{"COFFER_S3_ENDPOINT": ep, "AWS_ACCESS_KEY_ID": srv.AccessKey, "AWS_SECRET_ACCESS_KEY": srv.SecretKey}
		c, err := config.Load(config.LoadOptions{Env: func(k string) string { return env[k] }})
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := c.S3Config()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Insecure || strings.Contains(cfg.Endpoint, "://") || strings.HasSuffix(cfg.Endpoint, "/") || !cfg.PathStyle {
			t.Fatalf("COFFER_S3_ENDPOINT=%s: config %+v, want a bare host:port, TLS and path style", ep, cfg)
		}

		// Without the CA: refused, over TLS.
		_, err = storage.Open(ctx, location, cfg)
		if err == nil || !strings.Contains(err.Error(), "not trusted") || !strings.Contains(err.Error(), "s3.ca_file") {
			t.Fatalf("Open with COFFER_S3_ENDPOINT=%s and no ca_file: error %v, want one saying the certificate is not trusted", ep, err)
		}
		noCredentials(t, err, cfg)

		cfg.CAFile = caFile
		s, err := storage.Open(ctx, location, cfg)
		if err != nil {
			t.Fatalf("Open with COFFER_S3_ENDPOINT=%s and ca_file: %v", ep, err)
		}
		if got, want := s.Location(), "s3://"+srv.Bucket+"/env/prefix"; got != want {
			t.Errorf("Location() = %q, want %q", got, want)
		}
		tlsRoundTrip(t, s, "from-env-"+port)
	}
}

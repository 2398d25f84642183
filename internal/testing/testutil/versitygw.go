package testutil

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/cofferhq/coffer/storage"
)

const (
	s3AccessKey = "coffertest"
	s3SecretKey = "coffertestsecret"
)

// ModuleRoot returns the folder holding go.mod, found by walking up from the
// working directory, or "" if there is none.
func ModuleRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// FindBinary looks for name on PATH, then in <module root>/bin.
func FindBinary(name string) (string, bool) {
	if p, err := exec.LookPath(name); err == nil {
		return p, true
	}
	if root := ModuleRoot(); root != "" {
		p := filepath.Join(root, "bin", name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, true
		}
	}
	return "", false
}

// StartS3 starts a versitygw S3 gateway (posix backend, with versioning) on
// a free loopback port for this test, creates a fresh bucket in it and
// returns the config to reach it. The gateway is killed when the test ends.
// Without versitygw the test is skipped (or fails, see Missing).
func StartS3(t testing.TB) storage.S3Config {
	t.Helper()
	bin, ok := FindBinary("versitygw")
	if !ok {
		Missing(t, "versitygw not installed: run make tools")
	}
	var lastErr error
	for range 3 { // the free port may be taken between probe and start
		cfg, err := startVersityGW(t, bin, nil)
		if err == nil {
			return cfg
		}
		lastErr = err
	}
	t.Fatalf("start versitygw: %v", lastErr)
	return storage.S3Config{}
}

// gatewayTLS holds the files of a gateway serving https.
type gatewayTLS struct{ caFile, certFile, keyFile string }

// StartS3TLS is StartS3 with the gateway serving https with certFile and
// keyFile (see NewCA). The returned config trusts caFile (CAFile set,
// Insecure false); the bucket is created over verified TLS.
func StartS3TLS(t testing.TB, caFile, certFile, keyFile string) storage.S3Config {
	t.Helper()
	bin, ok := FindBinary("versitygw")
	if !ok {
		Missing(t, "versitygw not installed: run make tools")
	}
	var lastErr error
	for range 3 { // the free port may be taken between probe and start
		cfg, err := startVersityGW(t, bin, &gatewayTLS{caFile, certFile, keyFile})
		if err == nil {
			return cfg
		}
		lastErr = err
	}
	t.Fatalf("start versitygw with tls: %v", lastErr)
	return storage.S3Config{}
}

// syncBuffer collects a process's output for error messages.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startVersityGW(t testing.TB, bin string, tlsFiles *gatewayTLS) (storage.S3Config, error) {
	t.Helper()
	port, err := freePort()
	if err != nil {
		return storage.S3Config{}, err
	}
	base := t.TempDir()
	root, vdir := filepath.Join(base, "root"), filepath.Join(base, "versions")
	for _, d := range []string{root, vdir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return storage.S3Config{}, err
		}
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	args := []string{"--access", s3AccessKey, "--secret", s3SecretKey, "--port", addr}
	if tlsFiles != nil {
		args = append(args, "--cert", tlsFiles.certFile, "--key", tlsFiles.keyFile)
	}
	args = append(args, "posix", "--versioning-dir", vdir, root)
	cmd := exec.Command(bin, args...)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return storage.S3Config{}, err
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	stop := func() {
		cmd.Process.Kill()
		<-exited
	}

	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-exited:
			return storage.S3Config{}, fmt.Errorf("versitygw exited: %s", strings.TrimSpace(out.String()))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			return storage.S3Config{}, fmt.Errorf("versitygw not listening on %s after 10s: %s", addr, out.String())
		}
	}
	t.Cleanup(stop)

	cfg := storage.S3Config{
		Endpoint:  addr,
		Region:    "us-east-1",
		Bucket:    "coffer-test-" + randomHex(6),
		AccessKey: s3AccessKey,
		SecretKey: s3SecretKey,
		PathStyle: true,
		Insecure:  true,
	}
	if tlsFiles != nil {
		cfg.Insecure, cfg.CAFile = false, tlsFiles.caFile
	}
	if err := MakeBucket(cfg); err != nil {
		return storage.S3Config{}, fmt.Errorf("%w: %s", err, out.String())
	}
	return cfg, nil
}

// MakeBucket creates cfg.Bucket on cfg's server. Over https it trusts
// only cfg.CAFile when it is set, and honours cfg.SkipVerify.
func MakeBucket(cfg storage.S3Config) error { return makeBucket(cfg, false) }

// MakeLockedBucket creates cfg.Bucket with object lock enabled (which
// turns versioning on).
func MakeLockedBucket(cfg storage.S3Config) error { return makeBucket(cfg, true) }

func makeBucket(cfg storage.S3Config, lock bool) error {
	c, err := Client(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.MakeBucket(ctx, cfg.Bucket, minio.MakeBucketOptions{Region: cfg.Region, ObjectLocking: lock}); err != nil {
		return fmt.Errorf("make bucket %s: %w", cfg.Bucket, err)
	}
	return nil
}

// StartS3Locked is StartS3 with a bucket created with object lock
// enabled, and so with versioning.
func StartS3Locked(t testing.TB) storage.S3Config {
	t.Helper()
	cfg := StartS3(t)
	cfg.Bucket += "-locked"
	if err := MakeLockedBucket(cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// Client is a minio-go client of cfg's server with cfg's credentials: what
// anyone holding them (an attacker on the backup host) can do directly.
// Over https it trusts only cfg.CAFile when it is set, and honours
// cfg.SkipVerify.
func Client(cfg storage.S3Config) (*minio.Client, error) {
	opts := &minio.Options{
		Creds:        credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:       !cfg.Insecure,
		Region:       cfg.Region,
		BucketLookup: minio.BucketLookupPath,
	}
	if !cfg.Insecure && (cfg.CAFile != "" || cfg.SkipVerify) {
		tr, err := minio.DefaultTransport(true)
		if err != nil {
			return nil, err
		}
		if cfg.CAFile != "" {
			pem, err := os.ReadFile(cfg.CAFile)
			if err != nil {
				return nil, err
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("%s: no PEM certificates", cfg.CAFile)
			}
			tr.TLSClientConfig.RootCAs = pool
		}
		tr.TLSClientConfig.InsecureSkipVerify = cfg.SkipVerify
		opts.Transport = tr
	}
	return minio.New(cfg.Endpoint, opts)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	addr, ok := l.Addr().(*net.TCPAddr)
	if !ok {
		return 0, errors.New("not a tcp address")
	}
	return addr.Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

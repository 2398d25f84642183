package testutil

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cofferhq/coffer/storage"
)

// S3Server is a versitygw gateway that a test can stop and start again on
// the same port and data folder: a storage outage.
type S3Server struct {
	Config storage.S3Config

	bin, addr, root, vdir string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	out    syncBuffer
}

// StartS3Server is StartS3 with a gateway the test can Stop and Start. It
// is stopped when the test ends.
func StartS3Server(t testing.TB) *S3Server {
	t.Helper()
	bin, ok := FindBinary("versitygw")
	if !ok {
		Missing(t, "versitygw not installed: run make tools")
	}
	base := t.TempDir()
	s := &S3Server{bin: bin, root: filepath.Join(base, "root"), vdir: filepath.Join(base, "versions")}
	for _, d := range []string{s.root, s.vdir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	var err error
	for range 3 { // the free port may be taken between probe and start
		var port int
		if port, err = freePort(); err != nil {
			continue
		}
		s.addr = fmt.Sprintf("127.0.0.1:%d", port)
		if err = s.Start(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("start versitygw: %v", err)
	}
	t.Cleanup(s.Stop)
	s.Config = storage.S3Config{Endpoint: s.addr, Region: "us-east-1", Bucket: "coffer-test-" + randomHex(6),
		AccessKey: s3AccessKey, SecretKey: s3SecretKey, PathStyle: true, Insecure: true}
	if err := MakeBucket(s.Config); err != nil {
		t.Fatalf("%v: %s", err, s.out.String())
	}
	return s
}

// Start starts the gateway (again) and waits until it listens.
func (s *S3Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cmd := exec.Command(s.bin, "--access", s3AccessKey, "--secret", s3SecretKey, "--port", s.addr,
		"posix", "--versioning-dir", s.vdir, s.root)
	cmd.Stdout, cmd.Stderr = &s.out, &s.out
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-exited:
			return fmt.Errorf("versitygw exited: %s", strings.TrimSpace(s.out.String()))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-exited
			return fmt.Errorf("versitygw not listening on %s after 20s", s.addr)
		}
	}
	s.cmd, s.exited = cmd, exited
	return nil
}

// Stop kills the gateway (an outage); Start brings it back.
func (s *S3Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

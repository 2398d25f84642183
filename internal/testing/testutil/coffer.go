package testutil

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var cofferBuild struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// CofferBinary builds cmd/coffer once per test binary (without the race
// detector, so that its timing is that of a release build) and returns its
// path. TestMain calls RemoveCofferBinary after the tests.
func CofferBinary(t testing.TB) string {
	t.Helper()
	cofferBuild.once.Do(func() {
		root := ModuleRoot()
		if root == "" {
			cofferBuild.err = errors.New("no module root")
			return
		}
		dir, err := os.MkdirTemp("", "coffer-bin-")
		if err != nil {
			cofferBuild.err = err
			return
		}
		cofferBuild.dir = dir
		out := filepath.Join(dir, "coffer")
		cmd := exec.Command("go", "build", "-o", out, "./cmd/coffer")
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			cofferBuild.err = fmt.Errorf("go build: %v\n%s", err, b)
			return
		}
		cofferBuild.path = out
	})
	if cofferBuild.err != nil {
		t.Fatal(cofferBuild.err)
	}
	return cofferBuild.path
}

// RemoveCofferBinary removes what CofferBinary built, if it built anything.
func RemoveCofferBinary() {
	if cofferBuild.dir != "" {
		os.RemoveAll(cofferBuild.dir)
	}
}

// PlaceBinary puts the executable src at dst as a hard link, or as a copy
// when src is on another file system. A copy is written through a
// descriptor that a parallel test's fork may inherit for a moment, and
// exec of a file open for writing fails with "text file busy" (ETXTBSY);
// a link opens nothing for writing.
func PlaceBinary(t testing.TB, src, dst string) {
	t.Helper()
	if err := os.Link(src, dst); err == nil {
		return
	}
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

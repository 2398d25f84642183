// Package attacks is coffer's attack suite: each test performs one attack
// on a real repository (local files, or a real versitygw for S3) as an
// attacker with the access the test names would, and records whether coffer
// refused or detected it and whether any data already backed up was lost.
// TestMain prints one summary line:
//
//	attacks: tried N, detected N, data lost 0
//
// An attack that is not detected, or that loses data, also fails its test.
package attacks

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/cofferhq/coffer/internal/testing/testutil"
)

type outcome struct {
	detected, lost bool
}

var (
	mu      sync.Mutex
	results = map[string]outcome{}
	// cleanups run after every test (for example, removing a coffer
	// binary built for the attacks that run the command).
	cleanups []func()
)

// record notes the outcome of the attack called name and fails t when the
// attack went undetected or lost data.
func record(t *testing.T, name string, detected, lost bool) {
	t.Helper()
	mu.Lock()
	results[name] = outcome{detected, lost}
	mu.Unlock()
	if !detected {
		t.Errorf("attack %q was not detected", name)
	}
	if lost {
		t.Errorf("attack %q lost data that was backed up", name)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, f := range cleanups {
		f()
	}
	testutil.RemoveCofferBinary()
	mu.Lock()
	var names []string
	tried, detected, lost := 0, 0, 0
	for n, o := range results {
		names = append(names, n)
		tried++
		if o.detected {
			detected++
		}
		if o.lost {
			lost++
		}
	}
	mu.Unlock()
	sort.Strings(names)
	if testing.Verbose() {
		for _, n := range names {
			o := results[n]
			fmt.Printf("attack %-60s detected=%v lost=%v\n", n, o.detected, o.lost)
		}
	}
	fmt.Printf("attacks: tried %d, detected %d, data lost %d\n", tried, detected, lost)
	os.Exit(code)
}

// runCommand runs cmd and returns its output and exit status; a command
// that cannot be run at all fails the test.
func runCommand(t *testing.T, cmd *exec.Cmd) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("%s: %v", strings.Join(cmd.Args, " "), err)
	}
	return o.String(), e.String(), code
}

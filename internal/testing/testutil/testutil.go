// Package testutil holds helpers shared by coffer's tests: finding real
// servers and binaries, and failing instead of skipping when CI demands
// that every server be there.
package testutil

import (
	"os"
	"testing"
)

// RequireServers reports whether COFFER_TEST_REQUIRE_SERVERS is set, in which
// case a missing server or binary fails the test instead of skipping it.
func RequireServers() bool {
	return os.Getenv("COFFER_TEST_REQUIRE_SERVERS") == "1"
}

// Missing skips the test with a message saying what is missing, or fails it
// when RequireServers is set.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if RequireServers() {
		t.Fatalf("required by COFFER_TEST_REQUIRE_SERVERS=1: "+format, args...)
	}
	t.Skipf("skipped: "+format, args...)
}

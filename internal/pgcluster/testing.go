package pgcluster

import (
	"context"
	"errors"
	"testing"

	"github.com/cofferhq/coffer/internal/testutil"
)

// StartForTest starts a private cluster (Fast, random password) for the
// test and stops it, removing its directory, when the test ends. Without
// initdb the test is skipped, or fails under COFFER_TEST_REQUIRE_SERVERS=1.
func StartForTest(t testing.TB) *Cluster {
	t.Helper()
	if _, err := FindBinDir(); err != nil {
		if errors.Is(err, ErrNoInitdb) {
			testutil.Missing(t, "PostgreSQL server binaries: %v", err)
		}
		t.Fatal(err)
	}
	c, err := Start(context.Background(), Options{Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Stop(context.Background()); err != nil {
			t.Errorf("stop test cluster: %v", err)
		}
	})
	return c
}

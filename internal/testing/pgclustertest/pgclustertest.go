// Package pgclustertest starts private PostgreSQL clusters for tests.
package pgclustertest

import (
	"context"
	"errors"
	"testing"

	"github.com/cofferhq/coffer/internal/pgcluster"
	"github.com/cofferhq/coffer/internal/testing/testutil"
)

// Start starts a private cluster (Fast, random password) for the
// test and stops it, removing its directory, when the test ends. Without
// initdb the test is skipped, or fails under COFFER_TEST_REQUIRE_SERVERS=1.
func Start(t testing.TB) *pgcluster.Cluster {
	t.Helper()
	if _, err := pgcluster.FindBinDir(); err != nil {
		if errors.Is(err, pgcluster.ErrNoInitdb) {
			testutil.Missing(t, "PostgreSQL server binaries: %v", err)
		}
		t.Fatal(err)
	}
	c, err := pgcluster.Start(context.Background(), pgcluster.Options{Fast: true})
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

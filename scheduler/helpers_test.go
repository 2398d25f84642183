package scheduler_test

import (
	"net"
	"os"
	"strconv"
	"testing"

	"github.com/cofferhq/coffer/internal/testing/fixture"
)

// outageSize is the size of the outage test's backup: 1 GiB as the issue
// asks, or COFFER_TEST_OUTAGE_BYTES.
var outageSize = func() int64 {
	if n, err := strconv.ParseInt(os.Getenv("COFFER_TEST_OUTAGE_BYTES"), 10, 64); err == nil && n > 0 {
		return n
	}
	return 1 << 30
}()

// pgDSN is a fresh database on the test PostgreSQL server with a table.
func pgDSN(t *testing.T) string {
	t.Helper()
	return fixture.NewPostgresDB(t)
}

func netListen() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

package drill

import (
	"testing"

	"github.com/cofferhq/coffer/internal/mariadbcluster"
)

// WithoutMariaDB makes the drills of test t find no MariaDB server
// binaries, as on a machine without them.
func WithoutMariaDB(t *testing.T) {
	old := findMariaDB
	findMariaDB = func() (string, string, error) { return "", "", mariadbcluster.ErrNotFound }
	t.Cleanup(func() { findMariaDB = old })
}

package restore

import (
	"fmt"
	"strings"

	"github.com/cofferhq/coffer/internal/fingerprint"
)

// FingerprintMismatchError reports a restored database whose fingerprints
// differ from those taken at backup time (exit code 3).
type FingerprintMismatchError struct {
	Diffs []fingerprint.Diff
}

func (e *FingerprintMismatchError) Error() string {
	parts := make([]string, len(e.Diffs))
	for i, d := range e.Diffs {
		parts[i] = d.String()
	}
	return fmt.Sprintf("restored database differs from the backup: %s", strings.Join(parts, "; "))
}

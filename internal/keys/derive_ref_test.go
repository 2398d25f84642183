package keys

import (
	"crypto/sha256"
	"io"
	"testing"

	"golang.org/x/crypto/hkdf"
)

// deriveReference computes the MarshalBinary encoding of the derived
// secrets with x/crypto's HKDF, independently of derive.go.
func deriveReference(t *testing.T, seed, repoID []byte) []byte {
	t.Helper()
	out := []byte("coffer-derived-v1\n")
	for _, l := range []struct {
		info string
		n    int
	}{{"coffer chunk-id v1", 32}, {"coffer chunker-polynomial v1", 64}, {"coffer index-identity v1", 32}} {
		b := make([]byte, l.n)
		if _, err := io.ReadFull(hkdf.New(sha256.New, seed, repoID, []byte(l.info)), b); err != nil {
			t.Fatal(err)
		}
		out = append(out, b...)
	}
	return out
}

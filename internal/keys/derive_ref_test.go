package keys

import (
	"crypto/sha256"
	"io"
	"testing"

	"golang.org/x/crypto/hkdf"
)

// boxReference computes a box identity's X25519 scalar with x/crypto's
// HKDF, independently of box.go: HKDF-SHA256 over the Ed25519 seed, empty
// salt, the given info, 32 bytes.
func boxReference(t *testing.T, seed []byte, info string) []byte {
	t.Helper()
	b := make([]byte, 32)
	if _, err := io.ReadFull(hkdf.New(sha256.New, seed, nil, []byte(info)), b); err != nil {
		t.Fatal(err)
	}
	return b
}

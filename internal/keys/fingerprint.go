package keys

import (
	"crypto/sha256"
	"encoding/hex"
)

// RecipientFingerprint returns a short, stable fingerprint of a recipient's
// text form (as the repository config stores it): the first 16 hex digits
// of its SHA-256. It names a recipient in lists and on command lines; it
// is not meant to resist a deliberate collision.
func RecipientFingerprint(text string) string {
	s := sha256.Sum256([]byte(text))
	return hex.EncodeToString(s[:8])
}

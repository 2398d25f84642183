package keys

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

const (
	signingKeyPrefix = "coffer-signing-key-v1:"
	signingPubPrefix = "coffer-signing-pub-v1:"
	signingFileLimit = 1 << 16
)

// SigningKey is a backup host's Ed25519 signing key. It signs snapshot
// manifests, and its seed derives the host's box identity (see
// [SigningKey.BoxIdentity]).
type SigningKey struct {
	priv ed25519.PrivateKey
}

// LoadSigningKey reads a signing key file (see the package documentation
// for its format) after checking its permissions with [CheckPrivate].
// Errors never include key material.
func LoadSigningKey(path string) (*SigningKey, error) {
	b, err := readPrivate(path, signingFileLimit)
	if err != nil {
		return nil, err
	}
	line, n, err := keyLine(b)
	if err != nil {
		return nil, fmt.Errorf("signing key file %s: %w", path, err)
	}
	if what := keyKind(line); what != "host signing key" {
		return nil, fmt.Errorf("signing key file %s: line %d: found %s, not a host signing key", path, n, article(what))
	}
	seed, ok := decodeKey(line, signingKeyPrefix)
	if !ok || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("signing key file %s: line %d: malformed signing key", path, n)
	}
	return &SigningKey{priv: ed25519.NewKeyFromSeed(seed)}, nil
}

// text returns the signing key file contents; with an owner, the file
// carries the owner's public key on a comment line.
func (k *SigningKey) text(owner OwnerPublic) string {
	s := "# coffer host signing key (Ed25519): signs snapshots; keep it on the backup host\n"
	if owner != nil {
		s += OwnerLinePrefix + owner.String() + "\n"
	}
	return s + signingKeyPrefix + base64.StdEncoding.EncodeToString(k.priv.Seed()) + "\n"
}

// Public returns the public key of k.
func (k *SigningKey) Public() PublicKey {
	return PublicKey(bytes.Clone(k.priv.Public().(ed25519.PublicKey)))
}

// Sign returns the Ed25519 signature of msg.
func (k *SigningKey) Sign(msg []byte) []byte {
	return ed25519.Sign(k.priv, msg)
}

// PublicKey is an Ed25519 public key that verifies coffer's signatures.
type PublicKey []byte

// String returns the text form of p, "coffer-signing-pub-v1:" followed by
// the base64 of the key.
func (p PublicKey) String() string {
	return signingPubPrefix + base64.StdEncoding.EncodeToString(p)
}

// ParsePublicKey parses the text form of a public key, as returned by
// [PublicKey.String]. Surrounding white space is ignored.
func ParsePublicKey(s string) (PublicKey, error) {
	s = strings.TrimSpace(s)
	if what := keyKind(s); what != "host public key" {
		if what == "" {
			return nil, errors.New("malformed signing public key")
		}
		return nil, fmt.Errorf("found %s, not a host public key", article(what))
	}
	b, ok := decodeKey(s, signingPubPrefix)
	if !ok || len(b) != ed25519.PublicKeySize {
		return nil, errors.New("malformed signing public key")
	}
	return PublicKey(b), nil
}

// LoadPublicKey reads the signing public key of a host public key file
// (signing.pub; see [LoadHostPublic]).
func LoadPublicKey(path string) (PublicKey, error) {
	h, err := LoadHostPublic(path)
	if err != nil {
		return nil, err
	}
	return h.Key, nil
}

// Verify reports whether sig is a valid signature of msg by p.
func (p PublicKey) Verify(msg, sig []byte) bool {
	if len(p) != ed25519.PublicKeySize {
		return false
	}
	return ed25519.Verify(ed25519.PublicKey(p), msg, sig)
}

// Fingerprint returns "SHA256:" and the unpadded base64 of the SHA-256 of
// the raw 32-byte key, as [OwnerPublic.Fingerprint].
func (p PublicKey) Fingerprint() string { return OwnerPublic(p).Fingerprint() }

// Equal reports whether p and q are the same key.
func (p PublicKey) Equal(q PublicKey) bool {
	return bytes.Equal(p, q)
}

// keyLine returns the single line of b that is neither blank nor a comment,
// with its 1-based line number.
func keyLine(b []byte) (string, int, error) {
	var found string
	var at int
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if at != 0 {
			return "", 0, fmt.Errorf("line %d: more than one key", i+1)
		}
		found, at = line, i+1
	}
	if at == 0 {
		return "", 0, errors.New("no key found")
	}
	return found, at, nil
}

func decodeKey(s, prefix string) ([]byte, bool) {
	rest, ok := strings.CutPrefix(s, prefix)
	if !ok {
		return nil, false
	}
	b, err := base64.StdEncoding.Strict().DecodeString(rest)
	return b, err == nil
}

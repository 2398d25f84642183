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

// SigningKey is coffer's Ed25519 signing key. It also seeds the derived
// repository secrets (see [SigningKey.Derive]).
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
	if strings.HasPrefix(line, signingPubPrefix) {
		return nil, fmt.Errorf("signing key file %s: line %d: found a public key, not a signing key", path, n)
	}
	seed, ok := decodeKey(line, signingKeyPrefix)
	if !ok || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("signing key file %s: line %d: malformed signing key", path, n)
	}
	return &SigningKey{priv: ed25519.NewKeyFromSeed(seed)}, nil
}

// text returns the signing key file contents.
func (k *SigningKey) text() string {
	return "# coffer signing key (Ed25519): keep it secret\n" +
		signingKeyPrefix + base64.StdEncoding.EncodeToString(k.priv.Seed()) + "\n"
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
	if strings.HasPrefix(s, signingKeyPrefix) {
		return nil, errors.New("found a signing key, not a public key")
	}
	b, ok := decodeKey(s, signingPubPrefix)
	if !ok || len(b) != ed25519.PublicKeySize {
		return nil, errors.New("malformed signing public key")
	}
	return PublicKey(b), nil
}

// LoadPublicKey reads a public key file such as signing.pub.
func LoadPublicKey(path string) (PublicKey, error) {
	b, err := readLimited(path, signingFileLimit)
	if err != nil {
		return nil, err
	}
	line, n, err := keyLine(b)
	if err != nil {
		return nil, fmt.Errorf("public key file %s: %w", path, err)
	}
	p, err := ParsePublicKey(line)
	if err != nil {
		return nil, fmt.Errorf("public key file %s: line %d: %w", path, n, err)
	}
	return p, nil
}

// Verify reports whether sig is a valid signature of msg by p.
func (p PublicKey) Verify(msg, sig []byte) bool {
	if len(p) != ed25519.PublicKeySize {
		return false
	}
	return ed25519.Verify(ed25519.PublicKey(p), msg, sig)
}

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

package keys

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"filippo.io/age"
)

const (
	ownerKeyPrefix = "coffer-owner-key-v1:"
	ownerPubPrefix = "coffer-owner-pub-v1:"
	// OwnerLinePrefix starts the comment line that carries the owner's
	// public key in identity.txt and signing.key, so that the pin travels
	// with the files operators keep.
	OwnerLinePrefix = "# coffer owner: "
)

// OwnerKey is a repository owner's Ed25519 key. It signs the repository
// config and nothing else; kept offline. From its seed HKDF derives the
// owner's box identity, which decrypts the repository secrets when the
// owner rotates keys (see the package documentation).
type OwnerKey struct {
	priv ed25519.PrivateKey
}

// LoadOwnerKey reads an owner key file (owner.key) after checking its
// permissions with [CheckPrivate]. A host signing key, a public key or an
// age identity is refused with an error that says which it is. Errors
// never include key material.
func LoadOwnerKey(path string) (*OwnerKey, error) {
	b, err := readPrivate(path, signingFileLimit)
	if err != nil {
		return nil, err
	}
	line, n, err := keyLine(b)
	if err != nil {
		return nil, fmt.Errorf("owner key file %s: %w", path, err)
	}
	if what := keyKind(line); what != "owner key" {
		return nil, fmt.Errorf("owner key file %s: line %d: found %s, not an owner key", path, n, article(what))
	}
	seed, ok := decodeKey(line, ownerKeyPrefix)
	if !ok || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("owner key file %s: line %d: malformed owner key", path, n)
	}
	return &OwnerKey{priv: ed25519.NewKeyFromSeed(seed)}, nil
}

// text returns the owner key file contents.
func (k *OwnerKey) text() string {
	return "# coffer owner key (Ed25519): signs the repository config; keep it offline\n" +
		ownerKeyPrefix + base64.StdEncoding.EncodeToString(k.priv.Seed()) + "\n"
}

// Public returns the public key of k.
func (k *OwnerKey) Public() OwnerPublic {
	return OwnerPublic(bytes.Clone(k.priv.Public().(ed25519.PublicKey)))
}

// Sign returns the Ed25519 signature of msg.
func (k *OwnerKey) Sign(msg []byte) []byte { return ed25519.Sign(k.priv, msg) }

// BoxIdentity returns the owner's X25519 box identity, derived from the
// seed with HKDF-SHA256 (info "coffer owner box v2").
func (k *OwnerKey) BoxIdentity() *age.X25519Identity {
	return boxIdentity(k.priv.Seed(), ownerBoxInfo)
}

// OwnerPublic is an owner's Ed25519 public key: the pin every reader of a
// repository checks its config against.
type OwnerPublic []byte

// String returns the text form, "coffer-owner-pub-v1:" and the base64 of
// the key.
func (p OwnerPublic) String() string {
	return ownerPubPrefix + base64.StdEncoding.EncodeToString(p)
}

// Fingerprint returns "SHA256:" and the unpadded base64 of the SHA-256 of
// the raw 32-byte key, in the style of ssh-keygen -l, for people to
// compare.
func (p OwnerPublic) Fingerprint() string {
	s := sha256.Sum256(p)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(s[:])
}

// Verify reports whether sig is a valid signature of msg by p.
func (p OwnerPublic) Verify(msg, sig []byte) bool {
	if len(p) != ed25519.PublicKeySize {
		return false
	}
	return ed25519.Verify(ed25519.PublicKey(p), msg, sig)
}

// Equal reports whether p and q are the same key.
func (p OwnerPublic) Equal(q OwnerPublic) bool { return bytes.Equal(p, q) }

// ParseOwnerPublic parses the text form of an owner public key.
// Surrounding white space is ignored; a host key or a private key is
// refused with an error that says which it is.
func ParseOwnerPublic(s string) (OwnerPublic, error) {
	s = strings.TrimSpace(s)
	if what := keyKind(s); what != "owner public key" {
		if what == "" {
			return nil, errors.New("malformed owner public key")
		}
		return nil, fmt.Errorf("found %s, not an owner public key", article(what))
	}
	b, ok := decodeKey(s, ownerPubPrefix)
	if !ok || len(b) != ed25519.PublicKeySize {
		return nil, errors.New("malformed owner public key")
	}
	return OwnerPublic(b), nil
}

// LoadOwnerPublic reads an owner public key file such as owner.pub.
func LoadOwnerPublic(path string) (OwnerPublic, error) {
	b, err := readLimited(path, signingFileLimit)
	if err != nil {
		return nil, err
	}
	line, n, err := keyLine(b)
	if err != nil {
		return nil, fmt.Errorf("owner public key file %s: %w", path, err)
	}
	p, err := ParseOwnerPublic(line)
	if err != nil {
		return nil, fmt.Errorf("owner public key file %s: line %d: %w", path, n, err)
	}
	return p, nil
}

// LoadOwner reads what an --owner-key flag names: the text form of an
// owner public key, a file holding one (owner.pub), or an owner key file
// (owner.key). The private key is returned only for the last; the public
// key always.
func LoadOwner(arg string) (*OwnerKey, OwnerPublic, error) {
	if strings.HasPrefix(strings.TrimSpace(arg), ownerPubPrefix) {
		p, err := ParseOwnerPublic(arg)
		return nil, p, err
	}
	b, err := readLimited(arg, signingFileLimit)
	if err != nil {
		return nil, nil, err
	}
	if line, _, err := keyLine(b); err == nil && strings.HasPrefix(line, ownerKeyPrefix) {
		k, err := LoadOwnerKey(arg)
		if err != nil {
			return nil, nil, err
		}
		return k, k.Public(), nil
	}
	p, err := LoadOwnerPublic(arg)
	return nil, p, err
}

// OwnerPin returns the owner public key that a key file (identity.txt or
// signing.key) carries on its "# coffer owner: " line, or nil if it has
// none. Two lines naming different keys, or a malformed one, are errors.
// The file's permissions are not checked here; loading its key does that.
func OwnerPin(path string) (OwnerPublic, error) {
	b, err := readLimited(path, identityFileSizeLimit)
	if err != nil {
		return nil, err
	}
	var pin OwnerPublic
	for n, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), strings.TrimSpace(OwnerLinePrefix))
		if !ok {
			continue
		}
		p, err := ParseOwnerPublic(rest)
		if err != nil {
			return nil, fmt.Errorf("key file %s: line %d: %w", path, n+1, err)
		}
		if pin != nil && !pin.Equal(p) {
			return nil, fmt.Errorf("key file %s: line %d: a second, different owner key", path, n+1)
		}
		pin = p
	}
	return pin, nil
}

// keyKind names the kind of key a line holds, or "" if it holds none that
// coffer knows.
func keyKind(line string) string {
	switch {
	case strings.HasPrefix(line, ownerKeyPrefix):
		return "owner key"
	case strings.HasPrefix(line, ownerPubPrefix):
		return "owner public key"
	case strings.HasPrefix(line, signingKeyPrefix):
		return "host signing key"
	case strings.HasPrefix(line, signingPubPrefix):
		return "host public key"
	case strings.HasPrefix(line, hostBoxPrefix):
		return "host box recipient"
	case strings.HasPrefix(strings.ToUpper(line), "AGE-SECRET-KEY-"):
		return "age identity"
	case strings.HasPrefix(line, "age1"):
		return "age recipient"
	}
	return ""
}

func article(what string) string {
	if what == "" {
		return "no key coffer knows"
	}
	if strings.ContainsRune("aeiou", rune(what[0])) {
		return "an " + what
	}
	return "a " + what
}

package keys

import (
	"errors"
	"fmt"
	"strings"

	"filippo.io/age"
)

// HKDF info labels of the box identities. The salt is empty: a key's box
// is the same in every repository, so that a host's public file can carry
// it.
const (
	ownerBoxInfo = "coffer owner box v2"
	hostBoxInfo  = "coffer host box v2"

	hostBoxPrefix = "coffer-host-box-v1:"
)

// boxIdentity derives an X25519 identity from an Ed25519 seed.
func boxIdentity(seed []byte, info string) *age.X25519Identity {
	id, err := identityFromScalar(mustHKDF(seed, nil, info, 32))
	if err != nil {
		panic("keys: internal error: " + err.Error())
	}
	return id
}

// BoxIdentity returns the host's X25519 box identity, derived from the
// seed with HKDF-SHA256 (info "coffer host box v2"). The repository
// secrets are encrypted to its recipient, so that a backup host decrypts
// them without an age identity.
func (k *SigningKey) BoxIdentity() *age.X25519Identity {
	return boxIdentity(k.priv.Seed(), hostBoxInfo)
}

// HostPublic is what a repository's owner needs to authorise a backup
// host: its signing public key and its box recipient. signing.pub holds
// both.
type HostPublic struct {
	Key PublicKey
	Box *age.X25519Recipient
}

// HostPublic returns k's public half.
func (k *SigningKey) HostPublic() HostPublic {
	return HostPublic{Key: k.Public(), Box: k.BoxIdentity().Recipient()}
}

// text returns the contents of signing.pub.
func (h HostPublic) text() string {
	return "# coffer host public key: signs snapshots (Ed25519), and its box recipient (X25519)\n" +
		h.Key.String() + "\n" + hostBoxPrefix + h.Box.String() + "\n"
}

// ParseHostBox parses the box recipient of a host, as a config stores it
// (an age1... X25519 recipient).
func ParseHostBox(s string) (*age.X25519Recipient, error) {
	r, err := age.ParseX25519Recipient(strings.TrimSpace(s))
	if err != nil {
		return nil, errors.New("malformed host box recipient")
	}
	return r, nil
}

// LoadHostPublic reads a host public key file (signing.pub): comment
// lines, the "coffer-signing-pub-v1:" line and the "coffer-host-box-v1:"
// line, in any order.
func LoadHostPublic(path string) (HostPublic, error) {
	var h HostPublic
	b, err := readLimited(path, signingFileLimit)
	if err != nil {
		return h, err
	}
	for n, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		switch kind := keyKind(line); kind {
		case "host public key":
			if h.Key != nil {
				return h, fmt.Errorf("host public key file %s: line %d: more than one key", path, n+1)
			}
			if h.Key, err = ParsePublicKey(line); err != nil {
				return h, fmt.Errorf("host public key file %s: line %d: %w", path, n+1, err)
			}
		case "host box recipient":
			if h.Box != nil {
				return h, fmt.Errorf("host public key file %s: line %d: more than one box recipient", path, n+1)
			}
			if h.Box, err = ParseHostBox(strings.TrimPrefix(line, hostBoxPrefix)); err != nil {
				return h, fmt.Errorf("host public key file %s: line %d: %w", path, n+1, err)
			}
		default:
			return h, fmt.Errorf("host public key file %s: line %d: found %s, not a host public key", path, n+1, article(kind))
		}
	}
	switch {
	case h.Key == nil:
		return h, fmt.Errorf("host public key file %s: no host public key found", path)
	case h.Box == nil:
		return h, fmt.Errorf("host public key file %s: no %s line (the host's box recipient)", path, strings.TrimSuffix(hostBoxPrefix, ":"))
	}
	return h, nil
}

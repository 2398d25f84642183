package keys

import (
	"bytes"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"

	"filippo.io/age"
)

const (
	polySeedSize = 64
	derivedMagic = "coffer-derived-v1\n"
	identityHRP  = "AGE-SECRET-KEY-"
)

// Derived holds a repository's secrets: the key of the chunk ids, the
// chunker secret (gear table or polynomial) and the index identity. They are random,
// made once at init and never derived from any key, so that recipients and
// host keys can change without changing them (and deduplication survives).
// The name is historical. The repository stores them in its secrets
// object, encrypted to the recipients, the owner's box and every
// authorised host's box.
type Derived struct {
	ChunkKey      [32]byte // key for chunk ids
	PolySeed      []byte   // 64 bytes: the chunker secret (gear table or polynomial)
	IndexIdentity *age.X25519Identity
}

// NewDerived returns fresh random repository secrets.
func NewDerived() (*Derived, error) {
	d := &Derived{PolySeed: make([]byte, polySeedSize)}
	if _, err := rand.Read(d.ChunkKey[:]); err != nil {
		return nil, err
	}
	if _, err := rand.Read(d.PolySeed); err != nil {
		return nil, err
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return nil, err
	}
	d.IndexIdentity = id
	return d, nil
}

func mustHKDF(secret, salt []byte, info string, n int) []byte {
	b, err := hkdf.Key(sha256.New, secret, salt, info, n)
	if err != nil {
		// Only possible for lengths above 255*32 bytes.
		panic("keys: internal error: " + err.Error())
	}
	return b
}

// IndexRecipient returns the recipient of the index identity.
func (d *Derived) IndexRecipient() *age.X25519Recipient {
	return d.IndexIdentity.Recipient()
}

// MarshalBinary encodes d (see the package documentation for the format).
// The result is secret.
func (d *Derived) MarshalBinary() ([]byte, error) {
	if len(d.PolySeed) != polySeedSize {
		return nil, fmt.Errorf("marshal derived secrets: poly seed is %d bytes, want %d", len(d.PolySeed), polySeedSize)
	}
	if d.IndexIdentity == nil {
		return nil, errors.New("marshal derived secrets: no index identity")
	}
	scalar, err := identityScalar(d.IndexIdentity)
	if err != nil {
		return nil, fmt.Errorf("marshal derived secrets: %w", err)
	}
	b := make([]byte, 0, len(derivedMagic)+32+polySeedSize+32)
	b = append(b, derivedMagic...)
	b = append(b, d.ChunkKey[:]...)
	b = append(b, d.PolySeed...)
	b = append(b, scalar...)
	return b, nil
}

// UnmarshalDerived decodes secrets encoded by [Derived.MarshalBinary].
func UnmarshalDerived(b []byte) (*Derived, error) {
	rest, ok := bytes.CutPrefix(b, []byte(derivedMagic))
	if !ok {
		return nil, errors.New("unmarshal derived secrets: bad magic")
	}
	if len(rest) != 32+polySeedSize+32 {
		return nil, fmt.Errorf("unmarshal derived secrets: %d bytes after magic, want %d", len(rest), 32+polySeedSize+32)
	}
	d := &Derived{}
	copy(d.ChunkKey[:], rest[:32])
	d.PolySeed = bytes.Clone(rest[32 : 32+polySeedSize])
	id, err := identityFromScalar(rest[32+polySeedSize:])
	if err != nil {
		return nil, fmt.Errorf("unmarshal derived secrets: %w", err)
	}
	d.IndexIdentity = id
	return d, nil
}

// identityFromScalar builds an age X25519 identity from a raw 32-byte
// scalar via its Bech32 encoding, as age has no raw-bytes constructor.
func identityFromScalar(scalar []byte) (*age.X25519Identity, error) {
	if len(scalar) != 32 {
		return nil, errors.New("x25519 scalar must be 32 bytes")
	}
	s, err := bech32Encode(identityHRP, scalar)
	if err != nil {
		return nil, err
	}
	id, err := age.ParseX25519Identity(s)
	if err != nil {
		return nil, errors.New("cannot build age identity from scalar")
	}
	return id, nil
}

// identityScalar returns the raw scalar of id.
func identityScalar(id *age.X25519Identity) ([]byte, error) {
	hrp, b, err := bech32Decode(id.String())
	if err != nil || strings.ToUpper(hrp) != identityHRP || len(b) != 32 {
		return nil, errors.New("cannot decode age identity")
	}
	return b, nil
}

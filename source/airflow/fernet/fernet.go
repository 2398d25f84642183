// Package fernet reads and writes Fernet tokens (the Fernet spec,
// github.com/fernet/spec), the encryption Apache Airflow uses for
// connection passwords and extras, variable values and trigger kwargs in
// its metadata database. Only the standard library is used.
//
// # Format
//
// A key is the URL-safe base64 encoding of 32 bytes: the first 16 are the
// HMAC-SHA256 signing key, the last 16 the AES-128 key. A token is the
// URL-safe base64 encoding (with padding) of
//
//	0x80 || timestamp (uint64, big endian, Unix seconds) || IV (16 bytes) ||
//	AES-128-CBC(PKCS#7(plaintext)) || HMAC-SHA256(signing key, everything before)
//
// Airflow's [core] fernet_key may hold several keys separated by commas
// (MultiFernet): the first encrypts, any of them decrypts.
package fernet

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Key is one Fernet key.
type Key struct {
	sign [16]byte
	enc  [16]byte
}

const (
	version   = 0x80
	headerLen = 1 + 8 + aes.BlockSize
	macLen    = sha256.Size
)

// ErrInvalidToken is returned for a token that no key authenticates or that
// is malformed. Like the Python implementation, it does not say which.
var ErrInvalidToken = errors.New("invalid Fernet token")

// ParseKey decodes one key (URL-safe base64 of 32 bytes; surrounding space
// is ignored). Its error never contains the key.
func ParseKey(s string) (Key, error) {
	s = strings.TrimSpace(s)
	b, err := decodeBase64(s)
	if err != nil || len(b) != 32 {
		return Key{}, errors.New("a Fernet key must be 32 bytes in URL-safe base64")
	}
	var k Key
	copy(k.sign[:], b[:16])
	copy(k.enc[:], b[16:])
	return k, nil
}

// ParseKeys decodes a comma-separated list of keys, as Airflow's
// fernet_key holds them. Empty elements are refused; the error names the
// position of a bad key, never its text.
func ParseKeys(s string) ([]Key, error) {
	parts := strings.Split(s, ",")
	keys := make([]Key, 0, len(parts))
	for i, p := range parts {
		k, err := ParseKey(p)
		if err != nil {
			if len(parts) == 1 {
				return nil, err
			}
			return nil, fmt.Errorf("key %d of %d: %w", i+1, len(parts), err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// GenerateKey returns a new random key in its text form.
func GenerateKey() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return base64.URLEncoding.EncodeToString(b[:])
}

// String returns the key's text form.
func (k Key) String() string {
	return base64.URLEncoding.EncodeToString(append(k.sign[:], k.enc[:]...))
}

// Encrypt returns the token of plaintext made at time t with a random IV.
func (k Key) Encrypt(plaintext []byte, t time.Time) string {
	var iv [aes.BlockSize]byte
	if _, err := rand.Read(iv[:]); err != nil {
		panic(err)
	}
	return k.EncryptWithIV(plaintext, t, iv)
}

// EncryptWithIV is Encrypt with a given IV; it exists for the spec's test
// vectors and must never be called with a repeated IV otherwise.
func (k Key) EncryptWithIV(plaintext []byte, t time.Time, iv [aes.BlockSize]byte) string {
	block, _ := aes.NewCipher(k.enc[:])
	pad := aes.BlockSize - len(plaintext)%aes.BlockSize
	msg := make([]byte, headerLen, headerLen+len(plaintext)+pad+macLen)
	msg[0] = version
	binary.BigEndian.PutUint64(msg[1:9], uint64(t.Unix()))
	copy(msg[9:headerLen], iv[:])
	body := append(bytes.Clone(plaintext), bytes.Repeat([]byte{byte(pad)}, pad)...)
	cipher.NewCBCEncrypter(block, iv[:]).CryptBlocks(body, body)
	msg = append(msg, body...)
	mac := hmac.New(sha256.New, k.sign[:])
	mac.Write(msg)
	msg = mac.Sum(msg)
	return base64.URLEncoding.EncodeToString(msg)
}

// Decrypt authenticates and decrypts a token with k. Tokens never expire
// here (Airflow sets no TTL).
func (k Key) Decrypt(token string) ([]byte, error) {
	raw, err := decodeBase64(strings.TrimSpace(token))
	if err != nil || len(raw) < headerLen+aes.BlockSize+macLen || raw[0] != version {
		return nil, ErrInvalidToken
	}
	body, tag := raw[:len(raw)-macLen], raw[len(raw)-macLen:]
	mac := hmac.New(sha256.New, k.sign[:])
	mac.Write(body)
	if !hmac.Equal(mac.Sum(nil), tag) {
		return nil, ErrInvalidToken
	}
	ct := body[headerLen:]
	if len(ct)%aes.BlockSize != 0 {
		return nil, ErrInvalidToken
	}
	block, _ := aes.NewCipher(k.enc[:])
	var iv [aes.BlockSize]byte
	copy(iv[:], body[9:headerLen])
	pt := make([]byte, len(ct))
	cipher.NewCBCDecrypter(block, iv[:]).CryptBlocks(pt, ct)
	pad := int(pt[len(pt)-1])
	if pad < 1 || pad > aes.BlockSize {
		return nil, ErrInvalidToken
	}
	for _, c := range pt[len(pt)-pad:] {
		if int(c) != pad {
			return nil, ErrInvalidToken
		}
	}
	return pt[:len(pt)-pad], nil
}

// Decrypt tries every key in turn (MultiFernet) and returns the plaintext
// of the first that authenticates the token.
func Decrypt(keys []Key, token string) ([]byte, error) {
	for _, k := range keys {
		if pt, err := k.Decrypt(token); err == nil {
			return pt, nil
		}
	}
	return nil, ErrInvalidToken
}

// Timestamp returns the time a token says it was made, without
// authenticating it.
func Timestamp(token string) (time.Time, error) {
	raw, err := decodeBase64(strings.TrimSpace(token))
	if err != nil || len(raw) < 9 || raw[0] != version {
		return time.Time{}, ErrInvalidToken
	}
	return time.Unix(int64(binary.BigEndian.Uint64(raw[1:9])), 0), nil
}

// LooksLikeToken reports whether s has the shape of a token: URL-safe
// base64 starting with the version byte ("gAAAAA").
func LooksLikeToken(s string) bool {
	return strings.HasPrefix(strings.TrimSpace(s), "gAAAAA")
}

// decodeBase64 accepts URL-safe base64 with or without padding.
func decodeBase64(s string) ([]byte, error) {
	if b, err := base64.URLEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

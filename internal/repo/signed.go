package repo

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
)

// A signed document is two header lines followed by a JSON body:
//
//	coffer-signed-v1 <kind>
//	<base64 Ed25519 signature over "coffer-signed-v1 <kind>\n" || body>
//	<JSON body>
//
// The body is kept byte for byte, so the signature covers exactly what is
// parsed.
const signedMagic = "coffer-signed-v1"

// Document kinds.
const (
	KindConfig   = "config"
	KindManifest = "manifest"
)

// ErrBadSignature is returned when a signed document's signature does not
// verify under the expected key.
var ErrBadSignature = errors.New("signature does not verify")

// Signer signs messages.
type Signer interface {
	Sign(msg []byte) []byte
}

// Verifier verifies signatures.
type Verifier interface {
	Verify(msg, sig []byte) bool
}

// IsSignedDocument reports whether doc starts like a coffer signed
// document of any kind, so that another tool's file is told apart from a
// damaged coffer document.
func IsSignedDocument(doc []byte) bool {
	return bytes.HasPrefix(doc, []byte(signedMagic+" "))
}

func signedPrefix(kind string) []byte {
	return []byte(signedMagic + " " + kind + "\n")
}

// Sign encodes v as JSON and returns the signed document.
func Sign(kind string, v any, s Signer) ([]byte, error) {
	body, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	prefix := signedPrefix(kind)
	sig := s.Sign(append(append([]byte{}, prefix...), body...))
	var b bytes.Buffer
	b.Write(prefix)
	b.WriteString(base64.StdEncoding.EncodeToString(sig))
	b.WriteByte('\n')
	b.Write(body)
	b.WriteByte('\n')
	return b.Bytes(), nil
}

// openSigned parses a signed document of the given kind, checks its signature
// with key and decodes the body into v. With a nil key the signature is not
// checked (callers that do so must say so to the user).
func openSigned(kind string, doc []byte, key Verifier, v any) error {
	prefix := signedPrefix(kind)
	if !bytes.HasPrefix(doc, prefix) {
		return fmt.Errorf("not a signed coffer %s", kind)
	}
	rest := doc[len(prefix):]
	nl := bytes.IndexByte(rest, '\n')
	if nl < 0 {
		return fmt.Errorf("truncated signed %s", kind)
	}
	sig, err := base64.StdEncoding.DecodeString(string(rest[:nl]))
	if err != nil {
		return fmt.Errorf("malformed signature in %s", kind)
	}
	body := bytes.TrimSuffix(rest[nl+1:], []byte("\n"))
	if key != nil && !key.Verify(append(append([]byte{}, prefix...), body...), sig) {
		return ErrBadSignature
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decode %s: %w", kind, err)
	}
	return nil
}

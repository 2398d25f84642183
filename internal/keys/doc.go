// Package keys is coffer's key handling: generating a key folder, parsing
// recipients and identities, signing, and deriving the per-repository
// secrets that an encrypt-only backup host needs.
//
// # Key management
//
// A key folder holds four files with fixed names, which scripts rely on:
//
//	identity.txt    age X25519 identity, exactly as age-keygen writes it (0600)
//	recipients.txt  the matching age1... recipient, one line (0644)
//	signing.key     Ed25519 signing key (0600)
//	signing.pub     Ed25519 public key (0644)
//
// A backup host needs only recipients.txt and signing.key: it encrypts to the
// recipients, signs what it writes, and derives the keyed chunk-id key, the
// chunker polynomial seed and the index identity from the signing key (see
// [SigningKey.Derive]). identity.txt is needed only to restore; keep it
// offline. Files holding secrets must not be accessible by group or others;
// [CheckPrivate] enforces this before any secret is read.
//
// Recipients may be age X25519 (age1...), ssh-ed25519 and ssh-rsa public
// keys; post-quantum age1pq1... recipients are refused (ErrPostQuantum). Identities may be age
// identity files and unencrypted ssh-ed25519 or ssh-rsa private keys.
//
// # Format
//
// signing.key is a text file: comment lines starting with "#", blank lines,
// and exactly one key line
//
//	coffer-signing-key-v1:<base64 of the 32-byte Ed25519 seed>
//
// signing.pub has the same shape with one line
//
//	coffer-signing-pub-v1:<base64 of the 32-byte Ed25519 public key>
//
// Base64 is standard encoding with padding (RFC 4648, section 4). The
// public-key line is also the text form returned by [PublicKey.String] and
// accepted by [ParsePublicKey].
//
// Derived secrets come from HKDF-SHA256 over the Ed25519 seed, with the
// repository id as salt and these info labels:
//
//	"coffer chunk-id v1"           32-byte ChunkKey
//	"coffer chunker-polynomial v1" 64-byte PolySeed
//	"coffer index-identity v1"     32-byte X25519 scalar of IndexIdentity
//
// [Derived.MarshalBinary] encodes them as the 18-byte magic
// "coffer-derived-v1\n" followed by ChunkKey (32 bytes), PolySeed (64 bytes)
// and the index identity's scalar (32 bytes).
package keys

// Package keys is coffer's key handling: the key folder of the three
// roles, owner and host keys and their box identities, recipients and
// identities, and the encoding of the repository secrets.
//
// # Key management
//
// Three roles, each with its secret in a folder of its own (see
// [Generate]; scripts rely on the names):
//
//	DIR/owner/owner.key       owner key (0600; folder 0700): signs the repository config; keep it offline
//	DIR/host/signing.key      the backup host's signing key (0600; folder 0700): signs snapshots
//	DIR/restore/identity.txt  age X25519 identity (0600; folder 0700): decrypts; never on a backup host
//	DIR/owner.pub             the owner public key: the pin every reader checks the config against
//	DIR/signing.pub           the host's public key and box recipient, for the owner to authorise it
//	DIR/recipients.txt        the identity's age1... recipient, one line
//
// identity.txt and signing.key carry the owner public key on a comment
// line, "# coffer owner: coffer-owner-pub-v1:...", so that the pin travels
// with the files the operators keep ([OwnerPin] reads it). A backup host
// needs only signing.key: the repository config, signed by the owner,
// gives it the recipients, and its box identity opens the repository
// secrets. Files holding secrets must not be accessible by group or
// others; [CheckPrivate] enforces this before any secret is read. Each
// loader refuses the other roles' keys, saying what it found, and errors
// never include key material.
//
// Recipients may be age X25519 (age1...), ssh-ed25519 and ssh-rsa public
// keys; post-quantum age1pq1... recipients are refused ([ErrPostQuantum]).
// Identities may be age identity files and unencrypted ssh-ed25519 or
// ssh-rsa private keys.
//
// # Format
//
// owner.key, owner.pub, signing.key and signing.pub are text files:
// comment lines starting with "#", blank lines, and key lines
//
//	coffer-owner-key-v1:<base64 of the 32-byte Ed25519 seed>        owner.key
//	coffer-owner-pub-v1:<base64 of the 32-byte Ed25519 public key>  owner.pub
//	coffer-signing-key-v1:<base64 of the 32-byte Ed25519 seed>      signing.key
//	coffer-signing-pub-v1:<base64 of the 32-byte Ed25519 public key> signing.pub, with
//	coffer-host-box-v1:<age1... X25519 recipient>                   signing.pub
//
// Base64 is standard encoding with padding (RFC 4648, section 4). The
// public-key lines are also the text forms of [OwnerPublic.String] and
// [PublicKey.String]. Fingerprints ([OwnerPublic.Fingerprint]) are
// "SHA256:" and the unpadded base64 of the SHA-256 of the raw public key,
// as ssh-keygen -l prints them; a recipient's ([RecipientFingerprint]) is
// the first 16 hex digits of the SHA-256 of its text.
//
// Box identities are X25519 identities derived from a key's Ed25519 seed
// with HKDF-SHA256, empty salt, 32 bytes used as the X25519 scalar:
//
//	"coffer owner box v2"  the owner's box ([OwnerKey.BoxIdentity])
//	"coffer host box v2"   a host's box ([SigningKey.BoxIdentity])
//
// The repository secrets ([Derived]: chunk-id key, chunker secret (it keys
// the gear table or seeds the Rabin polynomial), index identity) are random
// ([NewDerived]), never derived from a key. [Derived.MarshalBinary] encodes them as the 18-byte magic
// "coffer-derived-v1\n" followed by ChunkKey (32 bytes), PolySeed (64
// bytes) and the index identity's scalar (32 bytes).
package keys

package keys_test

import (
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"

	"filippo.io/age"
	"github.com/cofferhq/coffer/internal/keys"
)

// A backup host holds recipients.txt and signing.key; it encrypts to the
// recipients and derives the repository's secrets from the signing key.
func Example() {
	dir, err := os.MkdirTemp("", "coffer-keys")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if _, err := keys.Generate(dir); err != nil {
		log.Fatal(err)
	}

	rs, err := keys.LoadRecipientsFile(filepath.Join(dir, keys.RecipientsFile))
	if err != nil {
		log.Fatal(err)
	}
	sk, err := keys.LoadSigningKey(filepath.Join(dir, keys.SigningKeyFile))
	if err != nil {
		log.Fatal(err)
	}
	d := sk.Derive([]byte("repository id"))
	w, err := age.Encrypt(io.Discard, append(keys.AgeRecipients(rs), d.IndexRecipient())...)
	if err != nil {
		log.Fatal(err)
	}
	if err := w.Close(); err != nil { // after writing the index
		log.Fatal(err)
	}

	sig := sk.Sign([]byte("manifest"))
	fmt.Println(sk.Public().Verify([]byte("manifest"), sig))
	// Output: true
}

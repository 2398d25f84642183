package keys_test

import (
	"fmt"
	"log"
	"os"

	"filippo.io/age"
	"github.com/cofferhq/coffer/internal/keys"
)

// A key folder holds the three roles. The owner signs the repository
// config; the backup host signs snapshots and opens the repository secrets
// with its box identity; the restore operator's identity decrypts.
func Example() {
	dir, err := os.MkdirTemp("", "coffer-keys")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	g, err := keys.Generate(dir)
	if err != nil {
		log.Fatal(err)
	}

	owner, err := keys.LoadOwnerKey(g.OwnerKey)
	if err != nil {
		log.Fatal(err)
	}
	host, err := keys.LoadSigningKey(g.SigningKey)
	if err != nil {
		log.Fatal(err)
	}
	// The pin travels with the host's key file.
	pin, err := keys.OwnerPin(g.SigningKey)
	if err != nil {
		log.Fatal(err)
	}
	sig := owner.Sign([]byte("config"))
	fmt.Println(pin.Verify([]byte("config"), sig))

	// The owner encrypts the secrets to the host's box, published in
	// signing.pub; the host decrypts them with the identity its seed gives.
	hp, err := keys.LoadHostPublic(g.SigningPub)
	if err != nil {
		log.Fatal(err)
	}
	var _ age.Recipient = hp.Box
	fmt.Println(hp.Box.String() == host.BoxIdentity().Recipient().String())
	// Output:
	// true
	// true
}

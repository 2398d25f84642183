package backup_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/cofferhq/coffer/backup"
	"github.com/cofferhq/coffer/internal/keys"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/restore"
	"github.com/cofferhq/coffer/source"
	dirkind "github.com/cofferhq/coffer/source/dir"
	"github.com/cofferhq/coffer/storage"
)

// The owner key signs the repository config; the backup host holds its
// signing key only (the owner's pin travels in it); the restore operator
// holds the identity. Both run the same library code.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "coffer-example-")
	defer os.RemoveAll(dir)
	os.MkdirAll(filepath.Join(dir, "dags"), 0o755)
	os.WriteFile(filepath.Join(dir, "dags", "invoice_ingest.py"), []byte("# a DAG\n"), 0o644)

	gen, err := keys.Generate(filepath.Join(dir, "keys"))
	if err != nil {
		log.Fatal(err)
	}
	owner, _ := keys.LoadOwnerKey(gen.OwnerKey)
	recipients, _ := keys.LoadRecipientsFile(gen.Recipients)
	hostPub, _ := keys.LoadHostPublic(gen.SigningPub)
	st, _ := storage.NewLocal(filepath.Join(dir, "repo"))
	if _, err := repo.Init(ctx, st, repo.InitOptions{Owner: owner, Recipients: recipients, Hosts: []keys.HostPublic{hostPub}}); err != nil {
		log.Fatal(err)
	}

	// The backup host.
	sk, _ := keys.LoadSigningKey(gen.SigningKey)
	pin, _ := keys.OwnerPin(gen.SigningKey)
	host, err := repo.Open(ctx, st, repo.OpenOptions{Owner: pin, Signing: sk})
	if err != nil {
		log.Fatal(err)
	}
	res, err := backup.Run(ctx, backup.Options{Repo: host, Signing: sk,
		Sources: []source.Source{&dirkind.Source{SourceName: "dags", Path: filepath.Join(dir, "dags")}}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("sources:", res.Manifest.Sources[0].Name, res.Manifest.Sources[0].Kind)

	// The restore operator.
	ids, _ := keys.LoadIdentities(gen.Identity)
	pin, _ = keys.OwnerPin(gen.Identity)
	op, err := repo.Open(ctx, st, repo.OpenOptions{Owner: pin, Identities: ids})
	if err != nil {
		log.Fatal(err)
	}
	m, _ := restore.Resolve(ctx, op, "latest", res.Manifest.Time.AddDate(1, 0, 0))
	snap, err := restore.Load(ctx, op, m)
	if err != nil {
		log.Fatal(err)
	}
	src, _ := snap.Source("dags")
	out, err := restore.RestoreDir(ctx, src, filepath.Join(dir, "restored"), restore.DirOptions{})
	if err != nil {
		log.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "restored", "invoice_ingest.py"))
	fmt.Printf("restored %d file: %q\n", out.Files, b)
	// Output:
	// sources: dags dir
	// restored 1 file: "# a DAG\n"
}

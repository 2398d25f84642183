// Package testrepo makes a fresh local repository with fresh keys for
// tests, and opens it as the backup host and as the restore operator.
package testrepo

import (
	"context"
	"path/filepath"
	"testing"

	"filippo.io/age"

	"github.com/cofferhq/coffer/internal/keys"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/storage"
)

// Repo is an initialised repository in a temporary folder.
type Repo struct {
	Dir        string
	Store      storage.Store
	Signing    *keys.SigningKey
	Identities []age.Identity
}

// New generates keys and initialises a local repository.
func New(t testing.TB) *Repo {
	t.Helper()
	dir := t.TempDir()
	g, err := keys.Generate(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	sk, err := keys.LoadSigningKey(filepath.Join(g.Dir, keys.SigningKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	rs, err := keys.LoadRecipientsFile(filepath.Join(g.Dir, keys.RecipientsFile))
	if err != nil {
		t.Fatal(err)
	}
	ids, err := keys.LoadIdentities(filepath.Join(g.Dir, keys.IdentityFile))
	if err != nil {
		t.Fatal(err)
	}
	st, err := storage.NewLocal(filepath.Join(dir, "repo"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Init(context.Background(), st, rs, sk); err != nil {
		t.Fatal(err)
	}
	return &Repo{Dir: dir, Store: st, Signing: sk, Identities: ids}
}

// Host opens the repository as an encrypt-only backup host: signing key,
// no identity.
func (r *Repo) Host(t testing.TB) *repo.Repository {
	t.Helper()
	return r.open(t, repo.OpenOptions{Signing: r.Signing})
}

// Operator opens the repository as a restore operator: identity and the
// pinned signing public key.
func (r *Repo) Operator(t testing.TB) *repo.Repository {
	t.Helper()
	return r.open(t, repo.OpenOptions{Pin: r.Signing.Public(), Identities: r.Identities})
}

func (r *Repo) open(t testing.TB, o repo.OpenOptions) *repo.Repository {
	t.Helper()
	rp, err := repo.Open(context.Background(), r.Store, o)
	if err != nil {
		t.Fatal(err)
	}
	return rp
}

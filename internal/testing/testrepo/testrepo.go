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
	Keys       *keys.Generated
	Owner      *keys.OwnerKey
	Signing    *keys.SigningKey
	Identities []age.Identity
}

// New generates keys and initialises a local repository in a temporary
// folder, with opts.
func New(t testing.TB, opts ...repo.InitOption) *Repo {
	t.Helper()
	return NewIn(t, t.TempDir(), opts...)
}

// NewIn generates keys in dir/keys and initialises a local repository in
// dir/repo.
func NewIn(t testing.TB, dir string, opts ...repo.InitOption) *Repo {
	t.Helper()
	st, err := storage.NewLocal(filepath.Join(dir, "repo"))
	if err != nil {
		t.Fatal(err)
	}
	return NewOn(t, dir, st, opts...)
}

// NewOn generates keys in dir/keys and initialises a repository in st (an
// S3 bucket, say).
func NewOn(t testing.TB, dir string, st storage.Store, opts ...repo.InitOption) *Repo {
	t.Helper()
	r := &Repo{Dir: dir, Store: st}
	r.Keys, r.Owner, r.Signing, r.Identities = Keys(t, filepath.Join(dir, "keys"))
	rs, err := keys.LoadRecipientsFile(r.Keys.Recipients)
	if err != nil {
		t.Fatal(err)
	}
	hp, err := keys.LoadHostPublic(r.Keys.SigningPub)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Init(context.Background(), st, repo.InitOptions{Owner: r.Owner, Recipients: rs, Hosts: []keys.HostPublic{hp}}, opts...); err != nil {
		t.Fatal(err)
	}
	return r
}

// Keys generates a key folder of all three roles in dir and loads its
// owner key, host signing key and identities.
func Keys(t testing.TB, dir string) (*keys.Generated, *keys.OwnerKey, *keys.SigningKey, []age.Identity) {
	t.Helper()
	g, err := keys.Generate(dir)
	if err != nil {
		t.Fatal(err)
	}
	ok, err := keys.LoadOwnerKey(g.OwnerKey)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := keys.LoadSigningKey(g.SigningKey)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := keys.LoadIdentities(g.Identity)
	if err != nil {
		t.Fatal(err)
	}
	return g, ok, sk, ids
}

// Host opens the repository as an encrypt-only backup host: the owner pin
// and the signing key, no identity.
func (r *Repo) Host(t testing.TB) *repo.Repository {
	t.Helper()
	return r.open(t, repo.OpenOptions{Owner: r.Owner.Public(), Signing: r.Signing})
}

// Operator opens the repository as a restore operator: the owner pin and
// the identity.
func (r *Repo) Operator(t testing.TB) *repo.Repository {
	t.Helper()
	return r.open(t, repo.OpenOptions{Owner: r.Owner.Public(), Identities: r.Identities})
}

func (r *Repo) open(t testing.TB, o repo.OpenOptions) *repo.Repository {
	t.Helper()
	rp, err := repo.Open(context.Background(), r.Store, o)
	if err != nil {
		t.Fatal(err)
	}
	return rp
}

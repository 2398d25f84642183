package e2e

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/cofferhq/coffer/backup"
	"github.com/cofferhq/coffer/internal/keys"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/restore"
	"github.com/cofferhq/coffer/source"
	dirkind "github.com/cofferhq/coffer/source/dir"
	"github.com/cofferhq/coffer/storage"
)

// otherKeys is a second, unrelated key set (an attacker's, or a mix-up).
type otherKeys struct {
	dir        string
	recipients []keys.Recipient
	signing    *keys.SigningKey
	ids        []age.Identity
}

func newOtherKeys(t *testing.T) *otherKeys {
	t.Helper()
	o := &otherKeys{dir: filepath.Join(t.TempDir(), "other-keys")}
	if _, err := keys.Generate(o.dir); err != nil {
		t.Fatal(err)
	}
	var err error
	if o.recipients, err = keys.LoadRecipientsFile(filepath.Join(o.dir, keys.RecipientsFile)); err != nil {
		t.Fatal(err)
	}
	if o.signing, err = keys.LoadSigningKey(filepath.Join(o.dir, keys.SigningKeyFile)); err != nil {
		t.Fatal(err)
	}
	if o.ids, err = keys.LoadIdentities(filepath.Join(o.dir, keys.IdentityFile)); err != nil {
		t.Fatal(err)
	}
	return o
}

// TestE2EWrongIdentity: a repository opened with an identity it is not
// encrypted to opens (the config is public and signed) but every decrypting
// operation fails with *repo.WrongIdentityError, not an integrity error.
func TestE2EWrongIdentity(t *testing.T) {
	t.Parallel()
	e := localEnv(t)
	dir, _ := tree(t, smallTree)
	m := e.backupDir(t, dir, false).Manifest
	other := newOtherKeys(t)
	ctx := ctxT(t)
	r, err := repo.Open(ctx, e.store, repo.OpenOptions{Identities: other.ids, Pin: e.pub})
	if err != nil {
		t.Fatalf("open with another identity: %v", err)
	}
	var wi *repo.WrongIdentityError
	_, err = restore.Load(ctx, r, m)
	if !errors.As(err, &wi) {
		t.Errorf("restore.Load: %v (%T), want *repo.WrongIdentityError", err, err)
	} else {
		t.Logf("restore.Load: %v", err)
	}
	if _, err := r.NewChunkReader(ctx, m); !errors.As(err, &wi) {
		t.Errorf("NewChunkReader: %v, want *repo.WrongIdentityError", err)
	}
	if _, err := restore.Verify(ctx, r, nil, restore.Decrypt); !errors.As(err, &wi) {
		t.Errorf("verify --decrypt: %v, want *repo.WrongIdentityError", err)
	}
}

// TestE2EWrongSigningKey: opening a repository with another signing key or
// pinning another public key gives *repo.KeyMismatchError; backup.Run with
// a signing key other than the one the repository was opened with fails and
// publishes nothing.
func TestE2EWrongSigningKey(t *testing.T) {
	t.Parallel()
	e := localEnv(t)
	other := newOtherKeys(t)
	ctx := ctxT(t)
	var km *repo.KeyMismatchError
	if _, err := repo.Open(ctx, e.store, repo.OpenOptions{Signing: other.signing}); !errors.As(err, &km) {
		t.Errorf("open with another signing key: %v, want *repo.KeyMismatchError", err)
	} else {
		t.Logf("open with another signing key: %v", err)
	}
	if _, err := repo.Open(ctx, e.store, repo.OpenOptions{Pin: other.signing.Public(), Identities: e.ids}); !errors.As(err, &km) {
		t.Errorf("open pinning another public key: %v, want *repo.KeyMismatchError", err)
	}

	dir, _ := tree(t, smallTree)
	_, err := backup.Run(ctx, backup.Options{Repo: e.backupRepo, Signing: other.signing, Host: "e2e-host",
		Sources: []source.Source{&dirkind.Source{SourceName: sourceName, Path: dir}}})
	if !errors.As(err, &km) {
		t.Errorf("backup.Run with the repository opened by one key and signing with another: %v, want *repo.KeyMismatchError", err)
	}
	if ids, _ := e.backupRepo.SnapshotIDs(ctx); len(ids) != 0 {
		t.Errorf("a mixed-key backup published snapshots %v", ids)
	}
}

// TestE2ESwappedConfig: someone with write access to the bucket replaces
// the config to have backups encrypt to their recipients. A config of
// another repository (signed by its own key) and our config with their
// recipients re-signed by their key are both refused by the backup host,
// which pins its own signing key, and by a restore operator pinning the
// public key.
func TestE2ESwappedConfig(t *testing.T) {
	t.Parallel()
	e := localEnv(t)
	other := newOtherKeys(t)
	ctx := ctxT(t)
	orig := readObject(t, e.store, repo.ConfigName)

	// Their own repository's config.
	theirs, err := storage.NewLocal(filepath.Join(t.TempDir(), "theirs"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Init(ctx, theirs, other.recipients, other.signing); err != nil {
		t.Fatal(err)
	}
	foreign := readObject(t, theirs, repo.ConfigName)

	// Our config with their recipient, signed by their key.
	var cfg repo.Config
	if err := repo.ParseConfig(orig, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg.Recipients = []string{other.recipients[0].Text}
	resigned, err := repo.Sign(repo.KindConfig, &cfg, other.signing)
	if err != nil {
		t.Fatal(err)
	}
	// Our config with their recipient, our signature kept.
	edited := bytes.Replace(orig, []byte(e.keys.Recipient), []byte(other.recipients[0].Text), 1)

	cases := []struct {
		name string
		doc  []byte
		want func(error) bool
	}{
		{"another repository's config", foreign, func(err error) bool {
			var km *repo.KeyMismatchError
			return errors.As(err, &km)
		}},
		{"our config re-signed by another key", resigned, isConfigSignatureError},
		{"our config with edited recipients", edited, isConfigSignatureError},
	}
	dir, _ := tree(t, smallTree)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			replaceObject(t, e.store, repo.ConfigName, c.doc)
			defer replaceObject(t, e.store, repo.ConfigName, orig)
			_, err := repo.Open(ctx, e.store, repo.OpenOptions{Signing: e.signing})
			if !c.want(err) {
				t.Errorf("backup host opened the swapped config: %v", err)
			} else {
				t.Logf("backup host: %v", err)
			}
			if _, err := repo.Open(ctx, e.store, repo.OpenOptions{Pin: e.pub, Identities: e.ids}); !c.want(err) {
				t.Errorf("restore operator opened the swapped config: %v", err)
			}
		})
	}
	// With the original config back, the backup host works.
	e.backupDir(t, dir, false)
}

func isConfigSignatureError(err error) bool {
	return integrityObject(err) == repo.ConfigName && strings.Contains(err.Error(), "signature does not verify")
}

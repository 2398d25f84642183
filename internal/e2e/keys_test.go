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
	"github.com/cofferhq/coffer/internal/testing/testrepo"
	"github.com/cofferhq/coffer/restore"
	"github.com/cofferhq/coffer/source"
	dirkind "github.com/cofferhq/coffer/source/dir"
	"github.com/cofferhq/coffer/storage"
)

// otherKeys is a second, unrelated key set (an attacker's, or a mix-up).
type otherKeys struct {
	gen        *keys.Generated
	recipients []keys.Recipient
	owner      *keys.OwnerKey
	signing    *keys.SigningKey
	ids        []age.Identity
}

func newOtherKeys(t *testing.T) *otherKeys {
	t.Helper()
	o := &otherKeys{}
	o.gen, o.owner, o.signing, o.ids = testrepo.Keys(t, filepath.Join(t.TempDir(), "other-keys"))
	var err error
	if o.recipients, err = keys.LoadRecipientsFile(o.gen.Recipients); err != nil {
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
	r, err := repo.Open(ctx, e.store, repo.OpenOptions{Identities: other.ids, Owner: e.owner.Public()})
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

// TestE2EWrongKeys: opening a repository with a host key its config does
// not authorise gives *repo.HostError, pinning another owner
// *repo.OwnerMismatchError; backup.Run with a signing key other than the
// one the repository was opened with fails and publishes nothing.
func TestE2EWrongKeys(t *testing.T) {
	t.Parallel()
	e := localEnv(t)
	other := newOtherKeys(t)
	ctx := ctxT(t)
	var he *repo.HostError
	if _, err := repo.Open(ctx, e.store, repo.OpenOptions{Owner: e.owner.Public(), Signing: other.signing}); !errors.As(err, &he) {
		t.Errorf("open with another signing key: %v, want *repo.HostError", err)
	} else {
		t.Logf("open with another signing key: %v", err)
	}
	var om *repo.OwnerMismatchError
	if _, err := repo.Open(ctx, e.store, repo.OpenOptions{Owner: other.owner.Public(), Identities: e.ids}); !errors.As(err, &om) {
		t.Errorf("open pinning another owner: %v, want *repo.OwnerMismatchError", err)
	}

	dir, _ := tree(t, smallTree)
	_, err := backup.Run(ctx, backup.Options{Repo: e.backupRepo, Signing: other.signing, Host: "e2e-host",
		Sources: []source.Source{&dirkind.Source{SourceName: sourceName, Path: dir}}})
	if err == nil || !strings.Contains(err.Error(), "opened with another host key") {
		t.Errorf("backup.Run with the repository opened by one key and signing with another: %v", err)
	}
	if ids, _ := e.backupRepo.SnapshotIDs(ctx); len(ids) != 0 {
		t.Errorf("a mixed-key backup published snapshots %v", ids)
	}
}

// TestE2ESwappedConfig: someone with write access to the bucket replaces
// the config to have backups encrypt to their recipients. Another
// repository's config, our config with their recipients re-signed by
// their key, and our config edited in place are all refused or passed
// over by the backup host and by a restore operator, both pinning the
// owner key: backups keep encrypting to our recipients only.
func TestE2ESwappedConfig(t *testing.T) {
	t.Parallel()
	e := localEnv(t)
	other := newOtherKeys(t)
	ctx := ctxT(t)
	name := repo.ConfigName(1)
	orig := readObject(t, e.store, name)

	// Their own repository's config.
	theirs, err := storage.NewLocal(filepath.Join(t.TempDir(), "theirs"))
	if err != nil {
		t.Fatal(err)
	}
	hp, _ := keys.LoadHostPublic(other.gen.SigningPub)
	if _, err := repo.Init(ctx, theirs, repo.InitOptions{Owner: other.owner, Recipients: other.recipients, Hosts: []keys.HostPublic{hp}}); err != nil {
		t.Fatal(err)
	}
	foreign := readObject(t, theirs, name)

	// Our config with their recipient, signed by their owner key.
	var cfg repo.Config
	if err := repo.ParseConfig(orig, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg.Recipients = []string{other.recipients[0].Text}
	resigned, err := repo.Sign(repo.KindConfig, &cfg, other.owner)
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
			var om *repo.OwnerMismatchError
			return errors.As(err, &om)
		}},
		{"our config re-signed by another key", resigned, notSignedByOwner(name)},
		{"our config with edited recipients", edited, notSignedByOwner(name)},
	}
	dir, _ := tree(t, smallTree)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			replaceObject(t, e.store, name, c.doc)
			defer replaceObject(t, e.store, name, orig)
			_, err := repo.Open(ctx, e.store, repo.OpenOptions{Owner: e.owner.Public(), Signing: e.signing})
			if !c.want(err) {
				t.Errorf("backup host opened the swapped config: %v", err)
			} else {
				t.Logf("backup host: %v", err)
			}
			if _, err := repo.Open(ctx, e.store, repo.OpenOptions{Owner: e.owner.Public(), Identities: e.ids}); !c.want(err) {
				t.Errorf("restore operator opened the swapped config: %v", err)
			}
		})
	}
	// Their config added as the next seq (not replacing ours) is passed
	// over: the backup host keeps our recipients.
	if err := e.store.Put(ctx, repo.ConfigName(2), bytes.NewReader(resigned), int64(len(resigned)), storage.PutOptions{IfNotExists: true}); err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(ctx, e.store, repo.OpenOptions{Owner: e.owner.Public(), Signing: e.signing})
	if err != nil {
		t.Fatal(err)
	}
	if r.Config.Seq != 1 || len(r.Config.Recipients) != 1 || r.Config.Recipients[0] != e.keys.Recipient || len(r.Problems) != 1 {
		t.Fatalf("backup host took config %d with recipients %v (problems %v)", r.Config.Seq, r.Config.Recipients, r.Problems)
	}
	e.backupRepo = r
	m := e.backupDir(t, dir, false).Manifest
	if _, err := e.trySource(t, e.openRestore(t), m.ID); err != nil {
		t.Errorf("our identity cannot read the snapshot made after the attack: %v", err)
	}
	r2, _ := repo.Open(ctx, e.store, repo.OpenOptions{Owner: e.owner.Public(), Identities: other.ids})
	if _, err := restore.Load(ctx, r2, m); !errors.As(err, new(*repo.WrongIdentityError)) {
		t.Errorf("their identity reads the snapshot made after the attack: %v", err)
	}
}

func notSignedByOwner(name string) func(error) bool {
	return func(err error) bool {
		return integrityObject(err) == name && strings.Contains(err.Error(), "no config is signed by the owner key")
	}
}

// TestE2ERotation: the owner adds a recipient and a host key and revokes
// the first host key. Deduplication survives (the new host's backup of
// unchanged data stores no new chunk), the new recipient reads both
// snapshots (the data it deduplicates against was stored before it was
// added: the data key hands it on), the snapshot the revoked key signed
// stays valid, and the revoked host can no longer back up.
func TestE2ERotation(t *testing.T) {
	t.Parallel()
	e := localEnv(t)
	ctx := ctxT(t)
	dir, _ := tree(t, smallTree)
	first := e.backupDir(t, dir, false).Manifest

	newer := newOtherKeys(t) // a new operator identity and a new host key of the same owner
	hp, _ := keys.LoadHostPublic(newer.gen.SigningPub)
	owner, err := repo.Open(ctx, e.store, repo.OpenOptions{Owner: e.owner.Public(), OwnerKey: e.owner, Identities: e.ids})
	if err != nil {
		t.Fatal(err)
	}
	keep, err := owner.SignedBy(ctx, e.signing.Public())
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := repo.UpdateConfig(ctx, owner, e.owner, func(c *repo.Config) error {
		c.Recipients = append(c.Recipients, newer.gen.Recipient)
		c.Hosts = []repo.Host{{Key: hp.Key.String(), Box: hp.Box.String()}}
		c.Revoked = append(c.Revoked, repo.Revocation{Key: e.signing.Public().String(), Keep: keep})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("config %d: %d recipients, %d hosts, %d revoked", cfg.Seq, len(cfg.Recipients), len(cfg.Hosts), len(cfg.Revoked))

	if _, err := repo.Open(ctx, e.store, repo.OpenOptions{Owner: e.owner.Public(), Signing: e.signing}); !errors.As(err, new(*repo.HostError)) {
		t.Errorf("the revoked host opens the repository: %v", err)
	}
	host, err := repo.Open(ctx, e.store, repo.OpenOptions{Owner: e.owner.Public(), Signing: newer.signing})
	if err != nil {
		t.Fatal(err)
	}
	res, err := backup.Run(ctx, backup.Options{Repo: host, Signing: newer.signing, Host: "new-host",
		Sources: []source.Source{&dirkind.Source{SourceName: sourceName, Path: dir}}})
	if err != nil {
		t.Fatal(err)
	}
	s := res.Private.Stats
	t.Logf("backup after rotation: read %s, new %s, stored %s", mib(s.BytesRead), mib(s.BytesNew), mib(s.BytesStored))
	if s.BytesNew != 0 || s.ChunksNew > 1 {
		t.Errorf("backup of unchanged data after rotation stored %d new bytes in %d new chunks: deduplication lost", s.BytesNew, s.ChunksNew)
	}
	if s.BytesStored > 64<<10 {
		t.Errorf("backup of unchanged data after rotation stored %d bytes", s.BytesStored)
	}

	// The new operator reads the new snapshot; the old one reads both.
	rn, err := repo.Open(ctx, e.store, repo.OpenOptions{Owner: e.owner.Public(), Identities: newer.ids})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{first.ID, res.Manifest.ID} {
		if _, err := e.trySource(t, rn, id); err != nil {
			t.Errorf("the new recipient cannot read snapshot %s: %v", repo.ShortID(id), err)
		}
	}
	if rep, err := restore.Verify(ctx, rn, nil, restore.Decrypt); err != nil || !rep.OK() {
		t.Errorf("verify --decrypt by the new recipient: %v %+v", err, rep)
	}
	ro := e.openRestore(t)
	for _, id := range []string{first.ID, res.Manifest.ID} {
		src, err := e.trySource(t, ro, id)
		if err != nil {
			t.Fatalf("snapshot %s: %v", repo.ShortID(id), err)
		}
		out := filepath.Join(t.TempDir(), "out")
		if _, err := restore.RestoreDir(ctx, src, out, restore.DirOptions{}); err != nil {
			t.Fatal(err)
		}
		compareTrees(t, dir, out)
	}
	if rep, err := restore.Verify(ctx, ro, nil, restore.Decrypt); err != nil || !rep.OK() {
		t.Errorf("verify --decrypt after rotation: %v %+v", err, rep)
	}
}

package repo_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/keys"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/internal/testing/testrepo"
	"github.com/cofferhq/coffer/storage"
)

func readDoc(t *testing.T, st storage.Store, name string) []byte {
	t.Helper()
	rc, err := st.Open(context.Background(), name, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(rc); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func put(t *testing.T, st storage.Store, name string, b []byte) {
	t.Helper()
	if err := st.Put(context.Background(), name, bytes.NewReader(b), int64(len(b)), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
}

func otherKeys(t *testing.T) (*keys.Generated, *keys.OwnerKey, *keys.SigningKey) {
	t.Helper()
	g, ok, sk, _ := testrepo.Keys(t, filepath.Join(t.TempDir(), "other"))
	return g, ok, sk
}

func TestInitOpen(t *testing.T) {
	ctx := context.Background()
	tr := testrepo.New(t)
	host, op := tr.Host(t), tr.Operator(t)
	if got, want := host.Config.Seq, int64(1); got != want {
		t.Fatalf("seq = %d, want %d", got, want)
	}
	if host.Config.Prev != "" || host.Config.Owner != tr.Owner.Public().String() || len(host.Config.Hosts) != 1 ||
		host.Config.Hosts[0].Key != tr.Signing.Public().String() || len(host.Problems) != 0 {
		t.Fatalf("config = %+v, problems %v", host.Config, host.Problems)
	}
	// The host's box, the identity and the owner's box open the same
	// random secrets.
	hs, err := host.Secrets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	os, err := op.Secrets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	owner, err := repo.Open(ctx, tr.Store, repo.OpenOptions{Owner: tr.Owner.Public(), OwnerKey: tr.Owner})
	if err != nil {
		t.Fatal(err)
	}
	ws, err := owner.Secrets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if hs.ChunkKey != os.ChunkKey || hs.ChunkKey != ws.ChunkKey || !bytes.Equal(hs.PolySeed, os.PolySeed) {
		t.Error("host, operator and owner see different secrets")
	}
	// A second repository of the same keys has other secrets.
	st2, _ := storage.NewLocal(filepath.Join(t.TempDir(), "repo2"))
	rs, _ := keys.LoadRecipientsFile(tr.Keys.Recipients)
	hp, _ := keys.LoadHostPublic(tr.Keys.SigningPub)
	if _, err := repo.Init(ctx, st2, repo.InitOptions{Owner: tr.Owner, Recipients: rs, Hosts: []keys.HostPublic{hp}}); err != nil {
		t.Fatal(err)
	}
	r2, err := repo.Open(ctx, st2, repo.OpenOptions{Owner: tr.Owner.Public(), Signing: tr.Signing})
	if err != nil {
		t.Fatal(err)
	}
	s2, _ := r2.Secrets(ctx)
	if s2.ChunkKey == hs.ChunkKey {
		t.Error("two repositories share a chunk key: secrets derived, not random")
	}
	// Twice: refused.
	if _, err := repo.Init(ctx, tr.Store, repo.InitOptions{Owner: tr.Owner, Recipients: rs, Hosts: []keys.HostPublic{hp}}); err == nil ||
		!strings.Contains(err.Error(), "already holds a coffer repository") {
		t.Errorf("second Init = %v", err)
	}
	if _, err := repo.Init(ctx, st2, repo.InitOptions{Owner: tr.Owner, Recipients: rs}); !errors.Is(err, repo.ErrNoHosts) {
		t.Errorf("Init without hosts = %v", err)
	}
}

func TestOpenPins(t *testing.T) {
	ctx := context.Background()
	tr := testrepo.New(t)
	_, other, otherHost := otherKeys(t)

	_, err := repo.Open(ctx, tr.Store, repo.OpenOptions{Identities: tr.Identities})
	var ue *repo.UnpinnedError
	if !errors.As(err, &ue) || !ue.Claimed.Equal(tr.Owner.Public()) {
		t.Fatalf("Open without a pin = %v, want *UnpinnedError claiming the owner", err)
	}
	if !strings.Contains(err.Error(), tr.Owner.Public().Fingerprint()) {
		t.Errorf("%v does not name the fingerprint", err)
	}
	var om *repo.OwnerMismatchError
	if _, err := repo.Open(ctx, tr.Store, repo.OpenOptions{Owner: other.Public()}); !errors.As(err, &om) {
		t.Errorf("Open with another owner pin = %v, want *OwnerMismatchError", err)
	}
	var he *repo.HostError
	if _, err := repo.Open(ctx, tr.Store, repo.OpenOptions{Owner: tr.Owner.Public(), Signing: otherHost}); !errors.As(err, &he) || he.Revoked != nil {
		t.Errorf("Open with an unlisted host key = %v, want *HostError", err)
	}

	empty, _ := storage.NewLocal(filepath.Join(t.TempDir(), "empty"))
	if _, err := repo.Open(ctx, empty, repo.OpenOptions{Owner: tr.Owner.Public()}); !errors.Is(err, repo.ErrNotInitialized) {
		t.Errorf("Open(empty) = %v", err)
	}
	put(t, empty, "config", []byte("coffer-signed-v1 config\n"))
	if _, err := repo.Open(ctx, empty, repo.OpenOptions{Owner: tr.Owner.Public()}); err == nil || !strings.Contains(err.Error(), "format version 1 is not supported") {
		t.Errorf("Open(version 1) = %v", err)
	}
}

// TestUpdateConfig: the owner adds a recipient; the next config chains to
// the first, the secrets stay the same, the new recipient opens them; a
// concurrent change loses with ErrConfigChanged.
func TestUpdateConfig(t *testing.T) {
	ctx := context.Background()
	tr := testrepo.New(t)
	first := readDoc(t, tr.Store, repo.ConfigName(1))
	g2, _, _, ids2 := testrepo.Keys(t, filepath.Join(t.TempDir(), "k2"))
	open := func() *repo.Repository {
		r, err := repo.Open(ctx, tr.Store, repo.OpenOptions{Owner: tr.Owner.Public(), OwnerKey: tr.Owner, Identities: tr.Identities})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	a, b := open(), open()
	before, _ := a.Secrets(ctx)
	cfg, err := repo.UpdateConfig(ctx, a, tr.Owner, func(c *repo.Config) error {
		c.Recipients = append(c.Recipients, g2.Recipient)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Seq != 2 || cfg.Prev != repo.HashHex(first) {
		t.Errorf("seq %d prev %s, want 2 and the first config's hash", cfg.Seq, cfg.Prev)
	}
	_, err = repo.UpdateConfig(ctx, b, tr.Owner, func(c *repo.Config) error { return nil })
	if !errors.Is(err, repo.ErrConfigChanged) {
		t.Errorf("concurrent UpdateConfig = %v, want ErrConfigChanged", err)
	}
	r, err := repo.Open(ctx, tr.Store, repo.OpenOptions{Owner: tr.Owner.Public(), Identities: ids2, MinSeq: 2})
	if err != nil {
		t.Fatal(err)
	}
	if r.Config.Seq != 2 || len(r.Problems) != 0 {
		t.Fatalf("seq %d, problems %v", r.Config.Seq, r.Problems)
	}
	after, err := r.Secrets(ctx)
	if err != nil {
		t.Fatalf("the new recipient cannot open the secrets: %v", err)
	}
	if after.ChunkKey != before.ChunkKey || after.IndexIdentity.String() != before.IndexIdentity.String() {
		t.Error("a recipient change changed the secrets")
	}
	if _, err := tr.Host(t).Secrets(ctx); err != nil {
		t.Errorf("host after the change: %v", err)
	}
	if cfg.DataRecipient != a.Config.DataRecipient || r.Config.DataKeys == (repo.ObjectRef{}) {
		t.Error("adding a recipient changed the data key")
	}

	// Without a recipient's identity the owner cannot change recipients.
	noID, err := repo.Open(ctx, tr.Store, repo.OpenOptions{Owner: tr.Owner.Public(), OwnerKey: tr.Owner})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.UpdateConfig(ctx, noID, tr.Owner, func(c *repo.Config) error {
		c.Recipients = c.Recipients[:1]
		return nil
	}); !errors.Is(err, repo.ErrNeedRecipientIdentity) {
		t.Errorf("UpdateConfig without an identity = %v, want ErrNeedRecipientIdentity", err)
	}
	// Removing a recipient makes a new data key; the newest is the config's.
	cfg3, err := repo.UpdateConfig(ctx, open(), tr.Owner, func(c *repo.Config) error {
		c.Recipients = c.Recipients[:1]
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg3.DataRecipient == cfg.DataRecipient {
		t.Error("removing a recipient kept the data key")
	}
	if _, err := repo.Open(ctx, tr.Store, repo.OpenOptions{Owner: tr.Owner.Public(), Identities: ids2}); err != nil {
		t.Errorf("the removed recipient cannot even open (the config is public): %v", err)
	}
}

// TestForgedConfig: a config signed by a host key (stolen) above the
// owner's is passed over and reported; the owner's next change goes
// after it and chains to the last valid one.
func TestForgedConfig(t *testing.T) {
	ctx := context.Background()
	tr := testrepo.New(t)
	g2, _, _, _ := testrepo.Keys(t, filepath.Join(t.TempDir(), "thief"))
	var c repo.Config
	if err := repo.ParseConfig(readDoc(t, tr.Store, repo.ConfigName(1)), &c); err != nil {
		t.Fatal(err)
	}
	c.Seq, c.Recipients = 2, append(c.Recipients, g2.Recipient)
	doc, err := repo.Sign(repo.KindConfig, &c, tr.Signing)
	if err != nil {
		t.Fatal(err)
	}
	put(t, tr.Store, repo.ConfigName(2), doc)
	r := tr.Host(t)
	if r.Config.Seq != 1 || len(r.Config.Recipients) != 1 {
		t.Fatalf("the host took the forged config: %+v", r.Config)
	}
	if len(r.Problems) != 1 || !strings.Contains(r.Problems[0].Error(), "config/0000000002: not signed by the owner key") {
		t.Fatalf("problems = %v", r.Problems)
	}
	owner, err := repo.Open(ctx, tr.Store, repo.OpenOptions{Owner: tr.Owner.Public(), OwnerKey: tr.Owner})
	if err != nil {
		t.Fatal(err)
	}
	next, err := repo.UpdateConfig(ctx, owner, tr.Owner, func(*repo.Config) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if next.Seq != 3 {
		t.Errorf("seq after a forged 2 = %d, want 3", next.Seq)
	}
	r = tr.Host(t)
	if r.Config.Seq != 3 || len(r.Problems) != 1 {
		t.Errorf("seq %d problems %v, want 3 and the forged one", r.Config.Seq, r.Problems)
	}

	// Rollback: a client that saw 3 refuses a newest config of 1.
	if err := tr.Store.Delete(ctx, repo.ConfigName(3)); err != nil {
		t.Fatal(err)
	}
	_, err = repo.Open(ctx, tr.Store, repo.OpenOptions{Owner: tr.Owner.Public(), MinSeq: 3})
	var rb *repo.RollbackError
	var ie *repo.IntegrityError
	if !errors.As(err, &rb) || !errors.As(err, &ie) || rb.Newest != 1 || rb.Seen != 3 {
		t.Errorf("Open after rollback = %v, want an IntegrityError wrapping *RollbackError", err)
	}
}

// TestManifestSigners: manifests are accepted only from authorised host
// keys, and from a revoked key only those on its keep list.
func TestManifestSigners(t *testing.T) {
	ctx := context.Background()
	tr := testrepo.New(t)
	_, _, thief := otherKeys(t)
	repoID := tr.Host(t).Config.ID
	write := func(sk *keys.SigningKey, seq int64, at time.Time) string {
		sum := strings.Repeat("ab", 32)
		m := &repo.Manifest{Version: repo.Version, ID: repo.NewID(), Repo: repoID, Time: at, ConfigSeq: seq,
			Signer: sk.Public().String(), Sources: []repo.ManifestSource{{Name: "d", Kind: "dir"}},
			Catalog: repo.ObjectRef{Name: repo.CatalogPrefix + sum, Size: 1, SHA256: sum},
			Private: repo.ObjectRef{Name: repo.PrivatePrefix + sum, Size: 1, SHA256: sum}}
		if err := repo.WriteManifest(ctx, tr.Store, m, sk); err != nil {
			t.Fatal(err)
		}
		return m.ID
	}
	now := time.Now().UTC()
	good := write(tr.Signing, 1, now)
	foreign := write(thief, 1, now)
	future := write(tr.Signing, 7, now)
	r := tr.Operator(t)
	if _, err := r.ReadManifest(ctx, good); err != nil {
		t.Fatalf("authorised manifest: %v", err)
	}
	if _, err := r.ReadManifest(ctx, foreign); err == nil || !strings.Contains(err.Error(), "which the repository config does not authorise") {
		t.Errorf("manifest of an unlisted key: %v", err)
	}
	if _, err := r.ReadManifest(ctx, future); err == nil || !strings.Contains(err.Error(), "names config 7, but the newest config that verifies is 1: a newer config was removed (rollback)") {
		t.Errorf("manifest of a newer config: %v", err)
	}
	// A forged signer field does not help: the signature is checked with
	// the key the field names.
	doc := readDoc(t, tr.Store, repo.SnapshotName(foreign))
	doc = bytes.Replace(doc, []byte(thief.Public().String()), []byte(tr.Signing.Public().String()), 1)
	put(t, tr.Store, repo.SnapshotName(foreign), doc)
	if _, err := r.ReadManifest(ctx, foreign); err == nil || !strings.Contains(err.Error(), "signature does not verify") {
		t.Errorf("manifest with a forged signer field: %v", err)
	}

	// Revoke the host key: the snapshot it signed stays, a later one (even
	// backdated) is refused, and the host cannot back up any more.
	owner, err := repo.Open(ctx, tr.Store, repo.OpenOptions{Owner: tr.Owner.Public(), OwnerKey: tr.Owner})
	if err != nil {
		t.Fatal(err)
	}
	keep, err := owner.SignedBy(ctx, tr.Signing.Public())
	if err != nil || len(keep) != 1 || keep[0].ID != good {
		t.Fatalf("SignedBy = %v, %v; want [%s]", keep, err, good)
	}
	if _, err := repo.UpdateConfig(ctx, owner, tr.Owner, func(c *repo.Config) error {
		c.Hosts = nil
		c.Revoked = append(c.Revoked, repo.Revocation{Key: tr.Signing.Public().String(), Time: now, Keep: keep})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	late := write(tr.Signing, 1, now.Add(-time.Hour))
	r = tr.Operator(t)
	if _, err := r.ReadManifest(ctx, good); err != nil {
		t.Errorf("kept manifest after revocation: %v", err)
	}
	if _, err := r.ReadManifest(ctx, late); err == nil || !strings.Contains(err.Error(), "revoked on") {
		t.Errorf("backdated manifest of a revoked key: %v", err)
	}
	var he *repo.HostError
	if _, err := repo.Open(ctx, tr.Store, repo.OpenOptions{Owner: tr.Owner.Public(), Signing: tr.Signing}); !errors.As(err, &he) || he.Revoked == nil {
		t.Errorf("revoked host opens: %v", err)
	}
}

package attacks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/minio/minio-go/v7"

	"github.com/cofferhq/coffer/backup"
	"github.com/cofferhq/coffer/internal/keys"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/internal/testing/fixture"
	"github.com/cofferhq/coffer/internal/testing/testutil"
	"github.com/cofferhq/coffer/restore"
	"github.com/cofferhq/coffer/source"
	dirkind "github.com/cofferhq/coffer/source/dir"
	"github.com/cofferhq/coffer/storage"
)

// The append-only attacks: whoever holds the backup host's storage
// credentials tries to change history, through coffer's own write path
// and, on an S3 repository with object lock, straight through the S3 API.
// After each attack the snapshot must verify and restore as it was backed
// up.

// aoRepo is a repository with one snapshot of a small tree.
type aoRepo struct {
	store   storage.Store
	signing *keys.SigningKey
	ids     []age.Identity
	tree    string
	snap    *repo.Manifest
}

func aoNewRepo(t *testing.T, st storage.Store, opts ...repo.InitOption) *aoRepo {
	t.Helper()
	ctx := t.Context()
	g, err := keys.Generate(filepath.Join(t.TempDir(), "keys"))
	if err != nil {
		t.Fatal(err)
	}
	rs, err := keys.LoadRecipientsFile(filepath.Join(g.Dir, keys.RecipientsFile))
	if err != nil {
		t.Fatal(err)
	}
	a := &aoRepo{store: st, tree: filepath.Join(t.TempDir(), "tree")}
	if a.signing, err = keys.LoadSigningKey(filepath.Join(g.Dir, keys.SigningKeyFile)); err != nil {
		t.Fatal(err)
	}
	if a.ids, err = keys.LoadIdentities(filepath.Join(g.Dir, keys.IdentityFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Init(ctx, st, rs, a.signing, opts...); err != nil {
		t.Fatalf("init: %v", err)
	}
	if _, err := fixture.WriteTree(a.tree, fixture.TreeSpec{Files: 30, BigFileSize: 3 << 20, Seed: 7}); err != nil {
		t.Fatal(err)
	}
	host, err := repo.Open(ctx, st, repo.OpenOptions{Signing: a.signing})
	if err != nil {
		t.Fatal(err)
	}
	res, err := backup.Run(ctx, backup.Options{Repo: host, Signing: a.signing, Host: "attacks",
		Sources: []source.Source{&dirkind.Source{SourceName: "docs", Path: a.tree}}})
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	a.snap = res.Manifest
	if len(a.snap.Packs) == 0 || len(a.snap.Indexes) == 0 {
		t.Fatalf("the snapshot has %d packs and %d indexes, want some of each", len(a.snap.Packs), len(a.snap.Indexes))
	}
	return a
}

// intact verifies every snapshot (decrypting) and restores the snapshot
// into a fresh folder. It returns the verify report and whether the data
// backed up before the attack is lost.
func (a *aoRepo) intact(t *testing.T) (rep *restore.Report, lost bool) {
	t.Helper()
	ctx := t.Context()
	r, err := repo.Open(ctx, a.store, repo.OpenOptions{Pin: a.signing.Public(), Identities: a.ids})
	if err != nil {
		t.Errorf("open after the attack: %v", err)
		return nil, true
	}
	rep, err = restore.Verify(ctx, r, nil, restore.Decrypt)
	if err != nil {
		t.Errorf("verify after the attack: %v", err)
		return nil, true
	}
	if !rep.OK() || rep.Snapshots != 1 {
		t.Errorf("verify after the attack: %d snapshots, problems %+v", rep.Snapshots, rep.Problems)
	}
	m, err := restore.Resolve(ctx, r, "latest", time.Time{})
	if err != nil {
		t.Errorf("resolve latest after the attack: %v", err)
		return rep, true
	}
	if m.ID != a.snap.ID {
		t.Errorf("latest is %s, want %s", repo.ShortID(m.ID), repo.ShortID(a.snap.ID))
		return rep, true
	}
	snap, err := restore.Load(ctx, r, m)
	if err != nil {
		t.Errorf("load after the attack: %v", err)
		return rep, true
	}
	src, err := snap.Source("docs")
	if err != nil {
		t.Errorf("source after the attack: %v", err)
		return rep, true
	}
	out := filepath.Join(t.TempDir(), "out")
	if _, err := restore.RestoreDir(ctx, src, out, restore.DirOptions{}); err != nil {
		t.Errorf("restore after the attack: %v", err)
		return rep, true
	}
	if err := fixture.CompareTrees(a.tree, out); err != nil {
		t.Errorf("restored tree differs: %v", err)
		return rep, true
	}
	return rep, false
}

// targets are one object of each kind the attacks try to replace.
func (a *aoRepo) targets() map[string]string {
	return map[string]string{
		"pack":     a.snap.Packs[0].Name(),
		"index":    a.snap.Indexes[0].Name,
		"manifest": repo.SnapshotName(a.snap.ID),
	}
}

// TestAttackAppendOnlyWritePath: the host's own write path (repo.PutObject,
// which every object of a backup goes through) is asked to replace an
// existing pack, index and manifest with other bytes of the same and of
// another size. It refuses with an integrity error naming the object, on a
// local folder and on an S3 bucket (If-None-Match).
func TestAttackAppendOnlyWritePath(t *testing.T) {
	for _, where := range []string{"local", "s3"} {
		t.Run(where, func(t *testing.T) {
			var st storage.Store
			if where == "local" {
				l, err := storage.NewLocal(filepath.Join(t.TempDir(), "repo"))
				if err != nil {
					t.Fatal(err)
				}
				st = l
			} else {
				cfg := testutil.StartS3(t)
				s, err := storage.Open(t.Context(), "s3://"+cfg.Bucket+"/repo", cfg)
				if err != nil {
					t.Fatal(err)
				}
				st = s
			}
			a := aoNewRepo(t, st)
			for _, kind := range []string{"index", "manifest", "pack"} {
				name := a.targets()[kind]
				orig := aoRead(t, st, name)
				detected := true
				for _, forged := range [][]byte{aoFlip(orig), []byte("short forged object")} {
					err := repo.PutObject(t.Context(), st, name, forged)
					var ie *repo.IntegrityError
					ok := errors.As(err, &ie) && ie.Object == name && errors.Is(err, storage.ErrExists) &&
						strings.Contains(err.Error(), "coffer never replaces an object")
					if !ok {
						t.Errorf("replacing %s %s: err = %v, want an integrity error naming it", kind, name, err)
						detected = false
					}
				}
				if got := aoRead(t, st, name); !bytes.Equal(got, orig) {
					t.Errorf("%s %s changed", kind, name)
				}
				_, lost := a.intact(t)
				record(t, fmt.Sprintf("appendonly: replace a %s through coffer's write path (%s)", kind, where), detected, lost)
			}
		})
	}
}

// TestAttackAppendOnlyS3Lock: a repository made with init --object-lock-days
// in a bucket with object lock (compliance mode), attacked straight through
// the S3 API with the backup host's credentials. Conditional overwrites and
// deletes of the locked versions are refused by the server; a plain
// overwrite or delete only adds a newer version or a delete marker, which
// coffer sees through (it reads the first version, the one it wrote) and
// verify names. After each attack the snapshot verifies and restores.
func TestAttackAppendOnlyS3Lock(t *testing.T) {
	ctx := t.Context()
	cfg := testutil.StartS3Locked(t)
	const prefix = "repo"
	st, err := storage.Open(ctx, "s3://"+cfg.Bucket+"/"+prefix, cfg)
	if err != nil {
		t.Fatal(err)
	}
	a := aoNewRepo(t, st, repo.WithObjectLock(repo.ObjectLock{Mode: "compliance", Days: 1}))
	c, err := testutil.Client(cfg) // the attacker: same credentials, minio-go
	if err != nil {
		t.Fatal(err)
	}
	key := func(name string) string { return prefix + "/" + name }
	version := func(name string) string {
		t.Helper()
		oi, err := c.StatObject(ctx, cfg.Bucket, key(name), minio.StatObjectOptions{})
		if err != nil {
			t.Fatalf("stat %s: %v", name, err)
		}
		if got := strings.ToUpper(oi.Metadata.Get("X-Amz-Object-Lock-Mode")); got != "COMPLIANCE" {
			t.Fatalf("%s: lock mode %q, want COMPLIANCE", name, got)
		}
		return oi.VersionID
	}
	targets := a.targets()
	// Every object coffer wrote is locked, the config and secrets included.
	for _, name := range append(slices.Collect(mapValues(targets)), repo.ConfigName, a.snapConfigSecrets(t)) {
		version(name)
	}
	// The first versions, before any attack.
	first := map[string]string{}
	for kind, name := range targets {
		first[kind] = version(name)
	}
	forged := []byte("forged by whoever holds the host's S3 credentials")

	for _, kind := range []string{"pack", "index", "manifest"} {
		name := targets[kind]

		// 1. A conditional overwrite (what coffer's write path sends).
		po := minio.PutObjectOptions{}
		po.SetMatchETagExcept("*")
		_, err := c.PutObject(ctx, cfg.Bucket, key(name), bytes.NewReader(forged), int64(len(forged)), po)
		var er minio.ErrorResponse
		detected := errors.As(err, &er) && er.StatusCode == 412
		if !detected {
			t.Errorf("conditional overwrite of the %s: %v, want 412 Precondition Failed", kind, err)
		}
		_, lost := a.intact(t)
		record(t, fmt.Sprintf("appendonly: overwrite a locked %s with If-None-Match through the S3 API", kind), detected, lost)

		// 2. Deleting the locked version, with and without asking to
		// bypass governance retention.
		for _, bypass := range []bool{false, true} {
			err := c.RemoveObject(ctx, cfg.Bucket, key(name), minio.RemoveObjectOptions{VersionID: first[kind], GovernanceBypass: bypass})
			detected := err != nil && strings.Contains(strings.ToLower(err.Error()), "object lock")
			if !detected {
				t.Errorf("delete of the locked %s version (bypass %v): %v, want a refusal naming object lock", kind, bypass, err)
			}
			_, lost := a.intact(t)
			how := "delete"
			if bypass {
				how = "delete with governance bypass"
			}
			record(t, fmt.Sprintf("appendonly: %s the locked version of a %s through the S3 API", how, kind), detected, lost)
		}

		// 3. Shortening the retention, to delete after.
		err = c.PutObjectRetention(ctx, cfg.Bucket, key(name), minio.PutObjectRetentionOptions{
			Mode: aoPtr(minio.Governance), RetainUntilDate: aoPtr(time.Now().Add(time.Second)), VersionID: first[kind], GovernanceBypass: true})
		detected = err != nil
		if !detected {
			t.Errorf("shortening the retention of the %s: accepted", kind)
		}
		_, lost = a.intact(t)
		record(t, fmt.Sprintf("appendonly: shorten the compliance retention of a %s through the S3 API", kind), detected, lost)

		// 4. A plain overwrite: S3 keeps the locked version and adds a
		// newer one; coffer reads the first, and verify names the object.
		if _, err := c.PutObject(ctx, cfg.Bucket, key(name), bytes.NewReader(forged), int64(len(forged)), minio.PutObjectOptions{}); err != nil {
			t.Fatalf("plain overwrite of the %s: %v", kind, err)
		}
		rep, lost := a.intact(t)
		detected = rep != nil && slices.Contains(rep.Overwritten, name)
		if !detected {
			t.Errorf("verify after a plain overwrite of the %s: overwritten = %v, want %s", kind, rep, name)
		}
		record(t, fmt.Sprintf("appendonly: overwrite a locked %s through the S3 API (a newer version)", kind), detected, lost)
	}

	// 5. Plain deletes (delete markers) of the manifest, the pack and the
	// config: the snapshot is still listed, verifies and restores.
	for _, name := range []string{targets["manifest"], targets["pack"], repo.ConfigName} {
		if err := c.RemoveObject(ctx, cfg.Bucket, key(name), minio.RemoveObjectOptions{}); err != nil {
			t.Fatalf("plain delete of %s: %v", name, err)
		}
		// A reader that ignores versions no longer sees the object.
		if _, err := c.StatObject(ctx, cfg.Bucket, key(name), minio.StatObjectOptions{}); err == nil {
			t.Fatalf("%s still current after a plain delete", name)
		}
		rep, lost := a.intact(t)
		detected := rep != nil && slices.Contains(rep.Overwritten, name)
		if !detected {
			t.Errorf("verify after a plain delete of %s: overwritten = %v", name, rep)
		}
		record(t, fmt.Sprintf("appendonly: delete a locked %s through the S3 API (a delete marker)", aoKind(name)), detected, lost)
	}
}

// snapConfigSecrets returns the name of the secrets object.
func (a *aoRepo) snapConfigSecrets(t *testing.T) string {
	t.Helper()
	r, err := repo.Open(t.Context(), a.store, repo.OpenOptions{Pin: a.signing.Public()})
	if err != nil {
		t.Fatal(err)
	}
	return r.Config.Secrets.Name
}

func aoKind(name string) string {
	switch {
	case name == repo.ConfigName:
		return "config"
	case strings.HasPrefix(name, repo.SnapshotsPrefix):
		return "manifest"
	case strings.HasPrefix(name, repo.IndexPrefix):
		return "index"
	}
	return "pack"
}

func aoRead(t *testing.T, st storage.Store, name string) []byte {
	t.Helper()
	rc, err := st.Open(context.WithoutCancel(t.Context()), name, 0, -1)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	defer rc.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(rc); err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return b.Bytes()
}

// aoFlip returns b with one byte changed: the same size, other contents.
func aoFlip(b []byte) []byte {
	c := bytes.Clone(b)
	c[len(c)/2] ^= 0x40
	return c
}

func aoPtr[T any](v T) *T { return &v }

func mapValues(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for _, v := range m {
			if !yield(v) {
				return
			}
		}
	}
}

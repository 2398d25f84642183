package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"filippo.io/age"

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

// sourceName is the name of the folder source in every snapshot here.
const sourceName = "docs"

// env is one repository with its keys, opened twice: as the encrypt-only
// backup host (signing key, no identity) and as the restore operator
// (identity, pinned signing public key).
type env struct {
	keyDir   string
	keys     *keys.Generated
	store    storage.Store
	signing  *keys.SigningKey
	pub      keys.PublicKey
	ids      []age.Identity
	cacheDir string

	backupRepo  *repo.Repository // Signing only
	restoreRepo *repo.Repository // Identities + Pin
}

func ctxT(t *testing.T) context.Context { return t.Context() }

// newEnv generates keys, initialises a repository in st and opens it for
// backup and for restore.
func newEnv(t *testing.T, st storage.Store) *env {
	t.Helper()
	ctx := ctxT(t)
	e := &env{keyDir: filepath.Join(t.TempDir(), "keys"), store: st, cacheDir: filepath.Join(t.TempDir(), "cache")}
	g, err := keys.Generate(e.keyDir)
	if err != nil {
		t.Fatalf("keys.Generate: %v", err)
	}
	e.keys = g
	rs, err := keys.LoadRecipientsFile(filepath.Join(e.keyDir, keys.RecipientsFile))
	if err != nil {
		t.Fatal(err)
	}
	if e.signing, err = keys.LoadSigningKey(filepath.Join(e.keyDir, keys.SigningKeyFile)); err != nil {
		t.Fatal(err)
	}
	if e.pub, err = keys.LoadPublicKey(filepath.Join(e.keyDir, keys.SigningPubFile)); err != nil {
		t.Fatal(err)
	}
	if e.ids, err = keys.LoadIdentities(filepath.Join(e.keyDir, keys.IdentityFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Init(ctx, st, rs, e.signing); err != nil {
		t.Fatalf("repo.Init: %v", err)
	}
	if e.backupRepo, err = repo.Open(ctx, st, repo.OpenOptions{Signing: e.signing}); err != nil {
		t.Fatalf("open for backup: %v", err)
	}
	if e.backupRepo.HasIdentity() {
		t.Fatal("backup repository holds an identity")
	}
	e.restoreRepo = e.openRestore(t)
	return e
}

// openRestore opens the repository as a restore operator would, afresh.
func (e *env) openRestore(t *testing.T) *repo.Repository {
	t.Helper()
	r, err := repo.Open(ctxT(t), e.store, repo.OpenOptions{Identities: e.ids, Pin: e.pub})
	if err != nil {
		t.Fatalf("open for restore: %v", err)
	}
	return r
}

// localEnv is an env on a Local store.
func localEnv(t *testing.T) *env {
	t.Helper()
	st, err := storage.NewLocal(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	return newEnv(t, st)
}

// s3Env is an env in a fresh bucket of a versitygw started for the test,
// reached through the retry decorator as the CLI does.
func s3Env(t *testing.T) *env {
	t.Helper()
	cfg := testutil.StartS3(t)
	cfg.Prefix = "coffer/e2e"
	st, err := storage.NewS3(ctxT(t), cfg)
	if err != nil {
		t.Fatalf("NewS3: %v", err)
	}
	return newEnv(t, storage.WithRetry(st, storage.RetryOptions{}))
}

// backupDir backs up dir as source "docs"; cache selects the change cache.
func (e *env) backupDir(t *testing.T, dir string, cache bool) *backup.Result {
	t.Helper()
	res, err := e.tryBackup(t, dir, cache)
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	return res
}

func (e *env) tryBackup(t *testing.T, dir string, cache bool) (*backup.Result, error) {
	t.Helper()
	opts := backup.Options{Repo: e.backupRepo, Signing: e.signing, Host: "e2e-host",
		Sources: []source.Source{&dirkind.Source{SourceName: sourceName, Path: dir}}}
	if cache {
		opts.CacheDir = e.cacheDir
	}
	start := time.Now()
	res, err := backup.Run(ctxT(t), opts)
	if err == nil {
		s := res.Private.Stats
		t.Logf("backup %s (cache %v): %.1fs, read %s, new %s, stored %s, skipped %s, chunks %d (%d new), packs %d",
			repo.ShortID(res.Manifest.ID), cache, time.Since(start).Seconds(), mib(s.BytesRead), mib(s.BytesNew),
			mib(s.BytesStored), mib(res.BytesSkipped), s.Chunks, s.ChunksNew, len(res.Manifest.Packs))
	}
	return res, err
}

// source loads snapshot id with the restore repository and returns its
// folder source.
func (e *env) source(t *testing.T, id string) *restore.Source {
	t.Helper()
	src, err := e.trySource(t, e.restoreRepo, id)
	if err != nil {
		t.Fatalf("load snapshot %s: %v", repo.ShortID(id), err)
	}
	return src
}

func (e *env) trySource(t *testing.T, r *repo.Repository, id string) (*restore.Source, error) {
	t.Helper()
	ctx := ctxT(t)
	m, err := restore.Resolve(ctx, r, id, time.Time{})
	if err != nil {
		return nil, err
	}
	s, err := restore.Load(ctx, r, m)
	if err != nil {
		return nil, err
	}
	return s.Source(sourceName)
}

// restoreTo restores snapshot id into target and returns the error.
func (e *env) restoreTo(t *testing.T, id, target string, opts restore.DirOptions) (*restore.DirResult, error) {
	t.Helper()
	src, err := e.trySource(t, e.openRestore(t), id)
	if err != nil {
		return nil, err
	}
	return restore.RestoreDir(ctxT(t), src, target, opts)
}

// tree writes a fixture tree into a temp folder.
func tree(t *testing.T, spec fixture.TreeSpec) (string, fixture.TreeStats) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tree")
	start := time.Now()
	st, err := fixture.WriteTree(dir, spec)
	if err != nil {
		t.Fatalf("WriteTree: %v", err)
	}
	t.Logf("tree: %d files (%d empty), %d folders (%d empty), %d symlinks, %s, written in %.1fs",
		st.Files, st.EmptyFiles, st.Dirs, st.EmptyDirs, st.Symlinks, mib(st.Bytes), time.Since(start).Seconds())
	return dir, st
}

func compareTrees(t *testing.T, want, got string) {
	t.Helper()
	start := time.Now()
	if err := fixture.CompareTrees(want, got); err != nil {
		t.Fatal(err)
	}
	t.Logf("trees identical (compared in %.1fs)", time.Since(start).Seconds())
}

func mib(n int64) string { return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20)) }

// Object helpers that work on any store.

func readObject(t *testing.T, st storage.Store, name string) []byte {
	t.Helper()
	rc, err := st.Open(ctxT(t), name, 0, -1)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return b
}

// replaceObject overwrites an object in place (what an attacker with write
// access to the bucket can do).
func replaceObject(t *testing.T, st storage.Store, name string, b []byte) {
	t.Helper()
	if err := st.Delete(ctxT(t), name); err != nil {
		t.Fatalf("delete %s: %v", name, err)
	}
	if err := st.Put(ctxT(t), name, bytes.NewReader(b), int64(len(b)), storage.PutOptions{}); err != nil {
		t.Fatalf("write %s: %v", name, err)
	}
}

func deleteObject(t *testing.T, st storage.Store, name string) {
	t.Helper()
	if err := st.Delete(ctxT(t), name); err != nil {
		t.Fatalf("delete %s: %v", name, err)
	}
}

func listObjects(t *testing.T, st storage.Store, prefix string) []storage.ObjectInfo {
	t.Helper()
	var out []storage.ObjectInfo
	if err := st.List(ctxT(t), prefix, func(oi storage.ObjectInfo) error {
		out = append(out, oi)
		return nil
	}); err != nil {
		t.Fatalf("list %q: %v", prefix, err)
	}
	return out
}

// integrityObject returns the object an IntegrityError names, or "".
func integrityObject(err error) string {
	var ie *repo.IntegrityError
	if errors.As(err, &ie) {
		return ie.Object
	}
	return ""
}

// writeFile writes a file, creating its folder.
func writeFile(t *testing.T, p, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

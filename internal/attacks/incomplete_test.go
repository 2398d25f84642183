package attacks

// Attacks on what a backup reads and deduplicates against (issue 7, items
// 8 and 9 and the small findings): a local user who makes part of a
// backed-up tree unreadable, a same-size pack swap, an index rewritten by
// an identity holder, junk under snapshots/. Each runs the real coffer
// command (built once per test) against a real repository: local folders,
// or a versitygw where S3 matters (a bucket writer cannot set an object's
// modification time there).

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/cofferhq/coffer/internal/keys"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/internal/testing/fixture"
	"github.com/cofferhq/coffer/internal/testing/testutil"
	"github.com/cofferhq/coffer/storage"
)

// incNobody is the user the unreadable-tree attack runs coffer as when the
// tests run as root (root reads every file whatever its mode).
const incNobody = 65534

// incCLI runs the coffer command with one repository and its keys.
type incCLI struct {
	t   *testing.T
	bin string
	dir string
	env []string
	// asNobody runs coffer as incNobody (tests running as root).
	asNobody bool
}

// newIncCLI builds coffer, makes keys with `coffer keygen` and initialises
// the repository repoURL ("" for a local folder in the test's folder).
// extraEnv comes last and wins.
func newIncCLI(t *testing.T, asNobody bool, repoURL string, extraEnv ...string) *incCLI {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs coffer")
	}
	dir := t.TempDir()
	// A copy of the package's binary in the work folder, which nobody
	// can reach.
	bin := filepath.Join(dir, "bin", "coffer")
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	testutil.PlaceBinary(t, testutil.CofferBinary(t), bin)
	if asNobody {
		// nobody must reach the binary and own the work folder.
		for _, d := range []string{filepath.Dir(dir), dir, filepath.Dir(bin)} {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chown(dir, incNobody, incNobody); err != nil {
			t.Fatal(err)
		}
	}
	// Restores bring back folders of mode 0000: open them for the
	// removal of the test's folder.
	t.Cleanup(func() {
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				os.Chmod(p, 0o700)
			}
			return nil
		})
	})
	if repoURL == "" {
		repoURL = filepath.Join(dir, "repo")
	}
	path := os.Getenv("PATH")
	if p, ok := testutil.FindBinary("pg_dump"); ok {
		path = filepath.Dir(p) + string(os.PathListSeparator) + path
	}
	c := &incCLI{t: t, bin: bin, dir: dir, asNobody: asNobody}
	c.env = append([]string{
		"PATH=" + path,
		"HOME=" + filepath.Join(dir, "home"),
		"XDG_CACHE_HOME=" + filepath.Join(dir, "cache"),
		"TMPDIR=" + os.TempDir(),
		"TZ=UTC",
		"COFFER_REPO=" + repoURL,
		"COFFER_SIGNING_KEY=" + keys.Path(filepath.Join(dir, "keys"), keys.SigningKeyFile),
		"COFFER_IDENTITY=" + keys.Path(filepath.Join(dir, "keys"), keys.IdentityFile),
	}, extraEnv...)
	c.must("keygen", "--out", filepath.Join(dir, "keys"))
	c.must("init", "--owner-key", c.keyFile(keys.OwnerKeyFile), "-R", c.keyFile(keys.RecipientsFile), "--host", c.keyFile(keys.SigningPubFile))
	return c
}

func (c *incCLI) keyFile(name string) string { return keys.Path(filepath.Join(c.dir, "keys"), name) }

// owner is the owner public key that pins the repository.
func (c *incCLI) owner() keys.OwnerPublic {
	c.t.Helper()
	p, err := keys.LoadOwnerPublic(c.keyFile(keys.OwnerPubFile))
	if err != nil {
		c.t.Fatal(err)
	}
	return p
}

// run runs coffer and returns its stdout, stderr and exit code.
func (c *incCLI) run(args ...string) (stdout, stderr string, code int) {
	c.t.Helper()
	cmd := exec.Command(c.bin, args...)
	cmd.Dir = c.dir
	cmd.Env = c.env
	if c.asNobody {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: incNobody, Gid: incNobody}}
	}
	return runCommand(c.t, cmd)
}

func (c *incCLI) must(args ...string) string {
	c.t.Helper()
	out, errOut, code := c.run(args...)
	if code != 0 {
		c.t.Fatalf("coffer %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

var incSnapshotLine = regexp.MustCompile(`(?m)^snapshot ([0-9a-f]{64}) saved`)

// backup runs a backup that must exit with code want and returns the
// snapshot id and stderr.
func (c *incCLI) backup(want int, sources ...string) (id, stderr string) {
	c.t.Helper()
	out, errOut, code := c.run(append([]string{"backup"}, sources...)...)
	if code != want {
		c.t.Fatalf("backup %s: exit %d, want %d\n%s%s", strings.Join(sources, " "), code, want, out, errOut)
	}
	m := incSnapshotLine.FindStringSubmatch(out)
	if m == nil {
		c.t.Fatalf("backup printed no snapshot id:\n%s", out)
	}
	return m[1], errOut
}

// restoresSame restores spec into a new folder and reports whether every
// regular file of want is there with the same contents (what differs is
// logged).
func (c *incCLI) restoresSame(spec, want string) bool {
	c.t.Helper()
	out := filepath.Join(c.dir, "restored-"+strings.NewReplacer(":", "-", "/", "-").Replace(spec)+"-"+incRandom())
	if o, e, code := c.run("restore", spec, "--to", out); code != 0 {
		c.t.Logf("restore %s: exit %d\n%s%s", spec, code, o, e)
		return false
	}
	if err := incSameFiles(want, out); err != nil {
		c.t.Logf("restore %s: %v", spec, err)
		return false
	}
	return true
}

// incSameFiles checks that every regular file under want is under got with
// the same contents.
func incSameFiles(want, got string) error {
	return filepath.WalkDir(want, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(want, p)
		a, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(filepath.Join(got, rel))
		if err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		if !bytes.Equal(a, b) {
			return fmt.Errorf("%s: contents differ", rel)
		}
		return nil
	})
}

func incRandom() string {
	b := make([]byte, 4)
	rand.Read(b)
	return fmt.Sprintf("%x", b)
}

func incTree(t *testing.T, dir string, seed int64) {
	t.Helper()
	if _, err := fixture.WriteTree(dir, fixture.TreeSpec{Files: 40, BigFileSize: 1 << 20, Seed: seed}); err != nil {
		t.Fatal(err)
	}
}

// TestAttackUnreadablePaths: a local user who can write into a backed-up
// tree makes a file and a folder in it unreadable to the backup. Before,
// the backup failed as a whole: every source of the run, the invoice
// database included, went unsaved, night after night. Now both paths are
// left out with warnings that name them, the snapshot of everything else
// (another folder and a PostgreSQL database among its sources) is saved and
// marked incomplete, and the backup exits 4; every source restores.
func TestAttackUnreadablePaths(t *testing.T) {
	t.Parallel()
	root := os.Geteuid() == 0
	dsn := fixture.NewPostgresDB(t)
	for _, tool := range []string{"pg_dump", "pg_restore"} {
		if _, ok := testutil.FindBinary(tool); !ok {
			testutil.Missing(t, "%s not installed", tool)
		}
	}
	ctx := context.Background()
	if err := fixture.CreatePostgres(ctx, dsn, fixture.Size{Vendors: 3, Invoices: 200, LinesPerInvoice: 3}, 11); err != nil {
		t.Fatal(err)
	}
	c := newIncCLI(t, root, "")
	docs, dags := filepath.Join(c.dir, "docs"), filepath.Join(c.dir, "dags")
	incTree(t, docs, 1)
	incTree(t, dags, 2)
	if root {
		filepath.WalkDir(c.dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !strings.HasPrefix(p, filepath.Join(c.dir, "bin")) {
				os.Lchown(p, incNobody, incNobody)
			}
			return err
		})
	}
	sources := []string{"docs=dir:" + docs, "metadb=postgres:" + dsn, "dags=dir:" + dags}
	before, _ := c.backup(0, sources...)

	// The attack: another local user (root, when the tests run as root;
	// else the same user, for whom mode 0000 also denies reading) adds an
	// unreadable file and an unreadable folder.
	if err := os.WriteFile(filepath.Join(docs, "zz-unreadable.pdf"), []byte("no one reads me\n"), 0o000); err != nil {
		t.Fatal(err)
	}
	locked := filepath.Join(docs, "locked")
	if err := os.Mkdir(locked, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(locked, "inside.txt"), []byte("hidden\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(locked, 0o000); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(locked, 0o700) })

	// --strict keeps today's refusal: nothing is saved, exit 1.
	if _, e, code := c.run(append([]string{"backup", "--strict"}, sources...)...); code != 1 ||
		!strings.Contains(e, `coffer: error: source docs: "locked": read folder: permission denied (warning is an error in a strict backup)`) {
		t.Errorf("strict backup: exit %d, want 1 naming \"locked\"\n%s", code, e)
	}

	after, stderr := c.backup(4, sources...)
	detected := true
	for _, want := range []string{
		`coffer: warning: docs: skipped "locked": read folder: permission denied`,
		`coffer: warning: docs: skipped "zz-unreadable.pdf": open: permission denied`,
		`is incomplete: 2 paths could not be read and are not in it (exit 4; --strict fails instead)`,
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("backup stderr lacks %q:\n%s", want, stderr)
			detected = false
		}
	}
	if out := c.must("snapshots", "--json"); !strings.Contains(out, `"incomplete": true`) {
		t.Errorf("snapshots does not mark the snapshot incomplete:\n%s", out)
		detected = false
	}

	// What the snapshot from before the attack restores is the tree as it
	// was; the incomplete one holds all of it too.
	lost := false
	ref := filepath.Join(c.dir, "docs-before")
	if _, e, code := c.run("restore", before+":docs", "--to", ref); code != 0 {
		t.Fatalf("restore the snapshot from before the attack: exit %d\n%s", code, e)
	}
	if err := incSameFiles(ref, docs); err != nil {
		t.Errorf("the first snapshot does not hold the tree: %v", err)
		lost = true
	}
	if !c.restoresSame(after+":docs", ref) || !c.restoresSame(after+":dags", dags) {
		lost = true
	}
	for i, snap := range []string{before, after} {
		// The name, not the DSN's last path element: that holds the
		// query too (?sslmode=disable), and the drop found nothing.
		name := fmt.Sprintf("coffer_attack_unreadable_%s_%d", incRandom(), i)
		target := fixture.WithDatabase(fixture.AdminDSN(), name)
		t.Cleanup(func() { fixture.DropPostgresDB(t, name) })
		out, e, code := c.run("restore", snap+":metadb", "--to-postgres", target)
		if code != 0 || !strings.Contains(out, "fingerprints match the backup") {
			t.Errorf("restore %s:metadb: exit %d\n%s%s", snap[:8], code, out, e)
			lost = true
			continue
		}
		if got, want := fixture.TableMD5(t, target), fixture.TableMD5(t, dsn); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("restored database differs: %v, want %v", got, want)
			lost = true
		}
	}
	record(t, "local user makes a file and a folder unreadable in a backed-up tree", detected, lost)
}

// incPackSwap replaces the largest pack of the repository replaced by an object of the
// same size: a valid age file, encrypted to the repository's public
// recipients, of random plaintext.
func incPackSwap(t *testing.T, st storage.Store, recipients []age.Recipient) (name string) {
	t.Helper()
	ctx := context.Background()
	var biggest storage.ObjectInfo
	if err := st.List(ctx, repo.DataPrefix, func(oi storage.ObjectInfo) error {
		if oi.Size > biggest.Size {
			biggest = oi
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if biggest.Name == "" {
		t.Fatal("no pack to swap")
	}
	// age's size is header + 16 + P + 16 per 64 KiB chunk: find the P
	// that gives the pack's size.
	empty, err := repo.Encrypt(nil, recipients...)
	if err != nil {
		t.Fatal(err)
	}
	header := int64(len(empty)) - 32
	var forged []byte
	for p := biggest.Size - header - 16 - 16*(biggest.Size/65536+1); p <= biggest.Size; p++ {
		if n := (p + 65535) / 65536; header+16+p+16*max(1, n) == biggest.Size {
			plain := make([]byte, p)
			rand.Read(plain)
			if forged, err = repo.Encrypt(plain, recipients...); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if int64(len(forged)) != biggest.Size {
		t.Fatalf("cannot forge a pack of %d bytes (got %d)", biggest.Size, len(forged))
	}
	if err := st.Put(ctx, biggest.Name, bytes.NewReader(forged), int64(len(forged)), storage.PutOptions{}); err != nil {
		t.Fatalf("swap %s: %v", biggest.Name, err)
	}
	return biggest.Name
}

func incRecipients(t *testing.T, c *incCLI, st storage.Store) []age.Recipient {
	t.Helper()
	// What a backup encrypts packs to (the recipients and the data key, all
	// public), so that a forged pack has the original's size.
	r, err := repo.Open(t.Context(), st, repo.OpenOptions{Owner: c.owner()})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := r.Recipients()
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// TestAttackSamePackSwapS3: a bucket writer replaces a pack with a valid
// age file of the same size. Before, the next backup deduplicated against
// it (the index checks existence and size only) and made a new snapshot
// that could not be restored either. Now the backup host, which remembers
// each pack's size and modification time (a bucket writer cannot set the
// time on S3), does not deduplicate against it and says so; its snapshot
// restores; verify names the pack and says to run coffer repair; after the
// repair, backups leave the pack out for good. (The snapshot made before
// the swap stays damaged: the swap destroyed its data in the bucket, and
// verify names it; the files it held are restorable from the new
// snapshots. The bucket here keeps no versions; in one that does, coffer
// reads the first version of every object and the swap changes nothing
// it reads: see the append-only attacks. Object lock is the defence
// against the swap itself.)
func TestAttackSamePackSwapS3(t *testing.T) {
	t.Parallel()
	cfg := testutil.StartS3(t)
	cfg.Prefix = "coffer"
	c := newIncCLI(t, false, "s3://"+cfg.Bucket+"/coffer", "COFFER_S3_ENDPOINT=http://"+cfg.Endpoint,
		"AWS_ACCESS_KEY_ID="+cfg.AccessKey, "AWS_SECRET_ACCESS_KEY="+cfg.SecretKey, "AWS_REGION="+cfg.Region)
	src := filepath.Join(c.dir, "src")
	incTree(t, src, 3)
	c.backup(0, "docs=dir:"+src)

	st, err := storage.NewS3(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // S3 times are in seconds
	pack := incPackSwap(t, st, incRecipients(t, c, st))

	second, stderr := c.backup(0, "docs=dir:"+src)
	detected := strings.Contains(stderr, "coffer: warning: 1 packs changed in the store since this host first saw them ("+pack+"): not deduplicated against, their chunks are stored again; run coffer verify, and coffer repair if it finds damage")
	if !detected {
		t.Errorf("the backup after the swap did not report the pack:\n%s", stderr)
	}
	lost := false
	if out, e, code := c.run("verify", "--decrypt", second); code != 0 {
		t.Errorf("the snapshot after the swap does not verify (deduplicated against the swapped pack?): exit %d\n%s%s", code, out, e)
		lost = true
	}
	if !c.restoresSame("latest", src) {
		lost = true
	}
	out, e, code := c.run("verify")
	if code != 3 || !strings.Contains(out, "BAD "+pack+": content hash does not match") ||
		!strings.Contains(e, "coffer: hint: a pack is damaged: run coffer repair") {
		t.Errorf("verify after the swap: exit %d, want 3 naming %s and the repair hint\n%s%s", code, pack, out, e)
		detected = false
	}
	if out := c.must("repair"); !strings.Contains(out, "DAMAGED "+pack+": content does not match its name") {
		t.Errorf("repair did not name the swapped pack:\n%s", out)
		detected = false
	}
	third, stderr := c.backup(0, "docs=dir:"+src)
	if stderr != "" {
		t.Errorf("backup after the repair: stderr %q, want none (the repair names the pack damaged)", stderr)
	}
	if out, e, code := c.run("verify", "--decrypt", third); code != 0 {
		t.Errorf("the snapshot after the repair does not verify: exit %d\n%s%s", code, out, e)
		lost = true
	}
	if !c.restoresSame("latest", src) {
		lost = true
	}
	record(t, "same-size pack swap, then backup (S3)", detected, lost)
}

// TestAttackSamePackSwapKeptTime: the same swap on a local repository by
// someone who also sets the file's modification time back, seen by a
// backup host without memory of the pack (a new host, a lost cache): the
// next backup cannot tell and deduplicates against it. verify (read depth,
// no key) finds the pack and every snapshot it breaks and says to run
// coffer repair; the repair record makes the next backup store the lost
// chunks again, and that snapshot restores.
func TestAttackSamePackSwapKeptTime(t *testing.T) {
	t.Parallel()
	c := newIncCLI(t, false, "")
	src := filepath.Join(c.dir, "src")
	incTree(t, src, 4)
	c.backup(0, "docs=dir:"+src)
	st, err := storage.NewLocal(filepath.Join(c.dir, "repo"))
	if err != nil {
		t.Fatal(err)
	}
	oi := incLargestPack(t, st)
	pack := incPackSwap(t, st, incRecipients(t, c, st))
	p := filepath.Join(c.dir, "repo", filepath.FromSlash(pack))
	if err := os.Chtimes(p, oi.ModTime, oi.ModTime); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(c.dir, "cache")); err != nil {
		t.Fatal(err)
	}
	second, _ := c.backup(0, "docs=dir:"+src)

	out, e, code := c.run("verify")
	detected := code == 3 && strings.Contains(out, "BAD "+pack+": content hash does not match") &&
		strings.Contains(out, second[:8]) && strings.Contains(e, "coffer: hint: a pack is damaged: run coffer repair")
	if !detected {
		t.Errorf("verify after the swap: exit %d, want 3 naming %s, breaking %s, and the repair hint\n%s%s", code, pack, second[:8], out, e)
	}
	c.must("repair")
	third, _ := c.backup(0, "docs=dir:"+src)
	lost := false
	if out, e, code := c.run("verify", "--decrypt", third); code != 0 {
		t.Errorf("the snapshot after the repair does not verify: exit %d\n%s%s", code, out, e)
		lost = true
	}
	if !c.restoresSame("latest", src) {
		lost = true
	}
	record(t, "same-size pack swap with its time kept, new backup host (local)", detected, lost)
}

func incLargestPack(t *testing.T, st storage.Store) storage.ObjectInfo {
	t.Helper()
	var biggest storage.ObjectInfo
	if err := st.List(context.Background(), repo.DataPrefix, func(oi storage.ObjectInfo) error {
		if oi.Size > biggest.Size {
			biggest = oi
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return biggest
}

// TestAttackIndexRewrite: an identity holder (who can decrypt the secrets
// object, and so read and write index objects) replaces the index with one
// whose chunk locations are wrong. Before, every later backup loaded any
// index object whose name matched its hash, deduplicated against the lies,
// and made snapshots that could not be restored. Now a backup reads only
// the index objects that verified (signed) manifests reference, at the
// size and hash they record: the forged one is never read, the chunks of
// the missing original are stored again, and verify names the missing
// index object.
func TestAttackIndexRewrite(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newIncCLI(t, false, "")
	src := filepath.Join(c.dir, "src")
	incTree(t, src, 5)
	first, _ := c.backup(0, "docs=dir:"+src)

	// The identity holder's rewrite.
	st, err := storage.NewLocal(filepath.Join(c.dir, "repo"))
	if err != nil {
		t.Fatal(err)
	}
	ids, err := keys.LoadIdentities(c.keyFile(keys.IdentityFile))
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(ctx, st, repo.OpenOptions{Owner: c.owner(), Identities: ids})
	if err != nil {
		t.Fatal(err)
	}
	secrets, err := r.Secrets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	recipients, err := r.Recipients()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	if err := st.List(ctx, repo.IndexPrefix, func(oi storage.ObjectInfo) error {
		names = append(names, oi.Name)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	if len(names) != 1 {
		t.Fatalf("index objects %v, want 1", names)
	}
	rc, err := st.Open(ctx, names[0], 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	ct, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	var ix repo.Index
	if err := repo.Unseal(ct, &ix, secrets.IndexIdentity); err != nil {
		t.Fatalf("the identity holder cannot read the index: %v", err)
	}
	for i := range ix.Packs {
		for j := range ix.Packs[i].Chunks {
			ix.Packs[i].Chunks[j].Offset++ // every location a byte off
		}
	}
	if _, err := repo.PutSealed(ctx, st, repo.IndexPrefix, ix, append(recipients, secrets.IndexIdentity.Recipient())...); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, names[0]); err != nil {
		t.Fatal(err)
	}
	// A new host (or a lost cache) reads every file again.
	if err := os.RemoveAll(filepath.Join(c.dir, "cache")); err != nil {
		t.Fatal(err)
	}

	second, _ := c.backup(0, "docs=dir:"+src)
	lost := false
	if out, e, code := c.run("verify", "--decrypt", second); code != 0 {
		t.Errorf("the snapshot after the rewrite does not verify (it used the forged locations?): exit %d\n%s%s", code, out, e)
		lost = true
	}
	out, e, code := c.run("verify", first)
	detected := code == 3 && strings.Contains(out, "BAD "+names[0]+": missing")
	if !detected {
		t.Errorf("verify after the rewrite: exit %d, want 3 naming %s missing\n%s%s", code, names[0], out, e)
	}
	for _, snap := range []string{first, second} {
		if !c.restoresSame(snap, src) {
			lost = true
		}
	}
	record(t, "identity holder rewrites the index", detected, lost)
}

// TestAttackJunkSnapshot: a bucket writer puts objects under snapshots/
// whose names are not snapshot ids. Before, every `restore latest` failed
// ("cannot tell which snapshot is latest"). Now they are ignored by every
// command but verify, which names them (exit 3).
func TestAttackJunkSnapshot(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newIncCLI(t, false, "")
	src := filepath.Join(c.dir, "src")
	incTree(t, src, 6)
	c.backup(0, "docs=dir:"+src)
	st, err := storage.NewLocal(filepath.Join(c.dir, "repo"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"snapshots/junk", "snapshots/README.txt"} {
		if err := st.Put(ctx, name, strings.NewReader("junk\n"), 5, storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	out, e, code := c.run("verify")
	detected := code == 3 &&
		strings.Contains(out, "BAD snapshots/junk: not a snapshot: its name is not a snapshot id (ignored by every other command)") &&
		strings.Contains(out, "BAD snapshots/README.txt: not a snapshot")
	if !detected {
		t.Errorf("verify: exit %d, want 3 naming both junk objects\n%s%s", code, out, e)
	}
	if out := c.must("snapshots"); !strings.Contains(out, "\n1 snapshot\n") {
		t.Errorf("snapshots:\n%s", out)
	}
	lost := !c.restoresSame("latest", src)
	record(t, "junk objects under snapshots/", detected, lost)
}

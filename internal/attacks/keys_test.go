package attacks

// Attacks on the keys (issue 7, findings 1 to 3): a forged repository, a
// stolen host signing key, a tampered known-repositories store and a
// config rollback. Each runs the real coffer command (built once for the
// package) against a real local repository, as the operators in the
// README would, and checks the exit code and the error it prints.
//
// "Lost" means that a snapshot backed up before the attack can no longer
// be restored by its legitimate operator from what is in the repository.
// Where the attacker overwrites an object by raw write access to the
// bucket (only the forged repository does: its config has the name of the
// victim's), the victim's object is put back first, as the bucket's
// object lock or versioning keeps it (doc/security.md); the attacker's
// other objects stay.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/cofferhq/coffer/internal/keys"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/internal/testing/testutil"
)

// keysHost is one machine: a folder to work in and its own
// known-repositories store.
type keysHost struct {
	t    *testing.T
	bin  string
	dir  string
	name string
}

func newKeysHost(t *testing.T, dir, name string) *keysHost {
	t.Helper()
	h := &keysHost{t: t, bin: testutil.CofferBinary(t), dir: filepath.Join(dir, name), name: name}
	if err := os.MkdirAll(h.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return h
}

// state is the host's known-repositories store.
func (h *keysHost) state() string { return filepath.Join(h.dir, "state") }

// run runs coffer on the host, in its folder, and returns its output and
// exit code.
func (h *keysHost) run(args ...string) (stdout, stderr string, code int) {
	h.t.Helper()
	cmd := exec.Command(h.bin, args...)
	cmd.Dir = h.dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + filepath.Join(h.dir, "home"), "TZ=UTC",
		"XDG_CACHE_HOME=" + filepath.Join(h.dir, "cache"), "COFFER_STATE_DIR=" + h.state()}
	stdout, stderr, code = runCommand(h.t, cmd)
	h.t.Logf("%s$ coffer %s  (exit %d)\n%s%s", h.name, strings.Join(args, " "), code, stdout, stderr)
	return stdout, stderr, code
}

func (h *keysHost) mustRun(args ...string) string {
	h.t.Helper()
	out, errOut, code := h.run(args...)
	if code != 0 {
		h.t.Fatalf("%s: coffer %s: exit %d\n%s", h.name, strings.Join(args, " "), code, errOut)
	}
	return out
}

// keysVictim is a repository with one snapshot of a small invoice tree,
// and the keys of its three roles.
type keysVictim struct {
	dir      string
	repo     string // the repository folder
	keys     string // the key folder (the owner's machine)
	src      string
	orig     string // a copy of src as first backed up
	snapshot string
	owner    *keysHost // the owner's machine: keygen, init, coffer key
	backup   *keysHost // the backup host: host/signing.key only
}

var snapshotLine = regexp.MustCompile(`(?m)^snapshot ([0-9a-f]{64}) saved$`)

func newKeysVictim(t *testing.T) *keysVictim {
	t.Helper()
	v := &keysVictim{dir: t.TempDir()}
	v.repo = filepath.Join(v.dir, "bucket")
	v.owner = newKeysHost(t, v.dir, "owner")
	v.keys = filepath.Join(v.owner.dir, "keys")
	v.owner.mustRun("keygen", "--out", "keys")
	v.owner.mustRun("init", "--repo", v.repo, "--owner-key", "keys/owner/owner.key", "-R", "keys/recipients.txt", "--host", "keys/signing.pub")
	v.backup = newKeysHost(t, v.dir, "backup-host")
	copyKeysFile(t, filepath.Join(v.keys, "host", "signing.key"), filepath.Join(v.backup.dir, "signing.key"))
	v.src = filepath.Join(v.dir, "invoices")
	writeKeysTree(t, v.src, "INV-2026-000121", "total: 1190.00 EUR")
	v.snapshot = v.backupNow(t)
	v.orig = filepath.Join(v.dir, "invoices-as-backed-up")
	copyKeysTree(t, v.src, v.orig)
	return v
}

// backupNow backs up the invoice tree from the backup host and returns
// the snapshot id.
func (v *keysVictim) backupNow(t *testing.T) string {
	t.Helper()
	out := v.backup.mustRun("--repo", v.repo, "--signing-key", "signing.key", "backup", "docs=dir:"+v.src)
	m := snapshotLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no snapshot id in %q", out)
	}
	return m[1]
}

// restoreHost is a restore host that holds the victim's identity.txt, as
// keygen wrote it (with the owner line) unless stripped, and has never
// seen the repository.
func (v *keysVictim) restoreHost(t *testing.T, name string, stripOwner bool) *keysHost {
	t.Helper()
	h := newKeysHost(t, v.dir, name)
	b, err := os.ReadFile(filepath.Join(v.keys, "restore", "identity.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if stripOwner {
		b = regexp.MustCompile(`(?m)^# coffer owner: .*\n`).ReplaceAll(b, nil)
	}
	if err := os.WriteFile(filepath.Join(h.dir, "identity.txt"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return h
}

// restorable reports whether the operator restores snapshot id and gets
// the victim's tree as backed up first (checked on a fresh host that pins
// the owner).
func (v *keysVictim) restorable(t *testing.T, id string) bool {
	t.Helper()
	return v.restorableAs(t, id, v.orig)
}

func (v *keysVictim) restorableAs(t *testing.T, id, want string) bool {
	t.Helper()
	h := v.restoreHost(t, fmt.Sprintf("check-%d", time.Now().UnixNano()), false)
	_, _, code := h.run("--repo", v.repo, "--identity", "identity.txt", "restore", id+":docs", "--to", "out")
	if code != 0 {
		return false
	}
	return sameKeysTree(t, want, filepath.Join(h.dir, "out"))
}

func writeKeysTree(t *testing.T, dir, name, body string) {
	t.Helper()
	for p, data := range map[string]string{
		"2026/11/" + name + ".json": `{"invoice": "` + name + `", ` + body + "}\n",
		"2026/11/customers.csv":     "id;name\n1;ACME GmbH\n",
	} {
		p = filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// sameKeysTree compares the regular files of two trees.
func sameKeysTree(t *testing.T, a, b string) bool {
	t.Helper()
	files := func(root string) map[string]string {
		out := map[string]string{}
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				data, _ := os.ReadFile(p)
				rel, _ := filepath.Rel(root, p)
				out[rel] = string(data)
			}
			return nil
		})
		return out
	}
	fa, fb := files(a), files(b)
	if len(fa) != len(fb) || len(fa) == 0 {
		return false
	}
	for k, v := range fa {
		if fb[k] != v {
			return false
		}
	}
	return true
}

func copyKeysFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// copyKeysTree copies every file of from into to, overwriting, and returns
// the relative names of the files it overwrote.
func copyKeysTree(t *testing.T, from, to string) []string {
	t.Helper()
	var over []string
	err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if _, err := os.Stat(filepath.Join(to, rel)); err == nil {
			over = append(over, rel)
		}
		copyKeysFile(t, p, filepath.Join(to, rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return over
}

// objects lists the files under dir by relative name.
func keysObjects(t *testing.T, dir string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out[filepath.ToSlash(rel)] = true
		}
		return nil
	})
	return out
}

func expect(t *testing.T, what, text string, pattern string) bool {
	t.Helper()
	if !regexp.MustCompile(pattern).MatchString(text) {
		t.Errorf("%s: no match for %q in:\n%s", what, pattern, text)
		return false
	}
	return true
}

func fingerprintOf(t *testing.T, pubFile string) string {
	t.Helper()
	p, err := keys.LoadOwnerPublic(pubFile)
	if err != nil {
		t.Fatal(err)
	}
	return p.Fingerprint()
}

// forgeRepository makes the attacker's repository: their own owner and
// host keys, the victim's public recipients, a snapshot of their files
// under the victim's source name; and copies it over the victim's
// bucket. It returns what it overwrote, saved.
func forgeRepository(t *testing.T, v *keysVictim) (attacker *keysHost, saved map[string][]byte) {
	t.Helper()
	attacker = newKeysHost(t, v.dir, "attacker")
	attacker.mustRun("keygen", "--out", "keys")
	forged := filepath.Join(attacker.dir, "forged")
	attacker.mustRun("init", "--repo", forged, "--owner-key", "keys/owner/owner.key",
		"-R", filepath.Join(v.keys, "recipients.txt"), "--host", "keys/signing.pub")
	evil := filepath.Join(attacker.dir, "evil")
	writeKeysTree(t, evil, "INV-2026-000121", `"total": "0.00 EUR", "pay_to": "attacker"`)
	attacker.mustRun("--repo", forged, "--signing-key", "keys/host/signing.key", "backup", "docs=dir:"+evil)

	saved = map[string][]byte{}
	for name := range keysObjects(t, forged) {
		if b, err := os.ReadFile(filepath.Join(v.repo, name)); err == nil {
			saved[name] = b
		}
	}
	if over := copyKeysTree(t, forged, v.repo); len(over) != 1 || over[0] != filepath.FromSlash(repo.ConfigName(1)) {
		t.Fatalf("the forgery overwrote %v, want only the config", over)
	}
	return attacker, saved
}

// putBack restores objects the attacker overwrote (object lock or
// versioning keeps them on a real bucket).
func putBack(t *testing.T, v *keysVictim, saved map[string][]byte) {
	t.Helper()
	for name, b := range saved {
		if err := os.WriteFile(filepath.Join(v.repo, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestAttackForgedRepositoryPinTravels: finding 1. A bucket writer makes a
// repository with their own owner and host keys and the victim's public
// recipients, and copies it over the victim's. A restore host that has
// never seen the repository, holding only identity.txt as keygen wrote it
// and the URL, refuses it (the owner pin travels in identity.txt): restore
// and verify --decrypt exit 3 naming both owners, nothing is written to
// the target, and an existing target given --force is left alone.
func TestAttackForgedRepositoryPinTravels(t *testing.T) {
	t.Parallel()
	v := newKeysVictim(t)
	_, saved := forgeRepository(t, v)
	victimFP := fingerprintOf(t, filepath.Join(v.keys, "owner.pub"))

	h := v.restoreHost(t, "restore-host", false)
	before := keysObjects(t, v.repo)
	_, stderr, code := h.run("--repo", v.repo, "--identity", "identity.txt", "restore", "latest:docs", "--to", "out")
	detected := code == 3 &&
		expect(t, "restore", stderr, `(?m)^coffer: error: the repository at file://\S+ is owned by SHA256:\S+, not by the pinned owner key `+regexp.QuoteMeta(victimFP)+` \(a forged or another repository\?\)$`) &&
		expect(t, "restore", stderr, `(?m)^coffer: hint: do not restore from it`)
	if _, err := os.Stat(filepath.Join(h.dir, "out")); err == nil {
		t.Error("the refused restore wrote its target")
		detected = false
	}
	// An existing target (the live folder) with --force stays as it was.
	writeKeysTree(t, filepath.Join(h.dir, "live"), "INV-2026-000121", "total: 1190.00 EUR")
	_, _, code = h.run("--repo", v.repo, "--identity", "identity.txt", "restore", "latest:docs", "--to", "live", "--force")
	detected = detected && code == 3 && sameKeysTree(t, v.src, filepath.Join(h.dir, "live"))
	_, stderr, code = h.run("--repo", v.repo, "--identity", "identity.txt", "verify", "--decrypt")
	detected = detected && code == 3 && expect(t, "verify", stderr, `is owned by SHA256:\S+, not by the pinned owner key`)
	if after := keysObjects(t, v.repo); len(after) != len(before) {
		t.Errorf("refused commands changed the repository: %d objects, then %d", len(before), len(after))
	}

	putBack(t, v, saved)
	record(t, "keys: forged repository, restore host holds identity.txt (the owner pin travels)", detected, !v.restorable(t, v.snapshot))
}

// TestAttackForgedRepositoryUnpinned: finding 1, a restore host with only
// the URL and an identity without the owner line (an age-keygen identity,
// or one the operator edited): refused, exit 1, with a hint that names the
// fingerprint the forged config claims, which differs from the victim's
// owner.pub.
func TestAttackForgedRepositoryUnpinned(t *testing.T) {
	t.Parallel()
	v := newKeysVictim(t)
	attacker, saved := forgeRepository(t, v)
	attackerFP := fingerprintOf(t, filepath.Join(attacker.dir, "keys", "owner.pub"))

	h := v.restoreHost(t, "restore-host", true)
	_, stderr, code := h.run("--repo", v.repo, "--identity", "identity.txt", "restore", "latest:docs", "--to", "out")
	detected := code == 1 &&
		expect(t, "restore", stderr, `(?m)^coffer: error: the repository at file://\S+ is not pinned to an owner key; its config claims owner `+regexp.QuoteMeta(attackerFP)+`$`) &&
		expect(t, "restore", stderr, `(?m)^coffer: hint: if `+regexp.QuoteMeta(attackerFP)+` is your owner key's fingerprint .*pass --owner-key owner.pub`)
	if _, err := os.Stat(filepath.Join(h.dir, "out")); err == nil {
		t.Error("the refused restore wrote its target")
		detected = false
	}
	// The operator compares the fingerprint with the victim's owner.pub,
	// which keygen printed and which the file holds, and pins it: refused.
	owner, _ := os.ReadFile(filepath.Join(v.keys, "owner.pub"))
	if strings.Contains(string(owner), attackerFP) {
		t.Error("the forged fingerprint is the victim's")
		detected = false
	}
	_, stderr, code = h.run("--repo", v.repo, "--identity", "identity.txt", "--owner-key", filepath.Join(v.keys, "owner.pub"), "restore", "latest:docs", "--to", "out")
	detected = detected && code == 3 && expect(t, "restore --owner-key", stderr, `not by the pinned owner key`)

	putBack(t, v, saved)
	record(t, "keys: forged repository, restore host has the URL and an identity without the owner line", detected, !v.restorable(t, v.snapshot))
}

// TestAttackStolenHostKeyAddsRecipient: finding 2. A thief with the backup
// host's signing key and write access to the bucket publishes the next
// config with their recipient added, signed with the host key (as format
// 1 allowed). The real backup host passes it over with a warning and keeps
// encrypting to the real recipients only (the thief's identity opens
// nothing the next backup writes); verify exits 3 naming it.
func TestAttackStolenHostKeyAddsRecipient(t *testing.T) {
	t.Parallel()
	v := newKeysVictim(t)
	thief := newKeysHost(t, v.dir, "thief")
	thief.mustRun("keygen", "--out", "keys", "--role", "restore", "--owner-key", filepath.Join(v.keys, "owner.pub"))
	stolen, err := keys.LoadSigningKey(filepath.Join(v.backup.dir, "signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	first, err := os.ReadFile(filepath.Join(v.repo, repo.ConfigName(1)))
	if err != nil {
		t.Fatal(err)
	}
	var cfg repo.Config
	if err := repo.ParseConfig(first, &cfg); err != nil {
		t.Fatal(err)
	}
	thiefRecipient := strings.TrimSpace(readKeysFile(t, filepath.Join(thief.dir, "keys", "recipients.txt")))
	cfg.Seq, cfg.Prev = 2, repo.HashHex(first)
	cfg.Recipients = append(cfg.Recipients, thiefRecipient)
	doc, err := repo.Sign(repo.KindConfig, &cfg, stolen)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(v.repo, repo.ConfigName(2)), doc, 0o600); err != nil {
		t.Fatal(err)
	}

	before := keysObjects(t, v.repo)
	writeKeysTree(t, v.src, "INV-2026-000122", "total: 99.00 EUR")
	out, stderr, code := v.backup.run("--repo", v.repo, "--signing-key", "signing.key", "backup", "docs=dir:"+v.src)
	detected := code == 0 &&
		expect(t, "backup", stderr, `(?m)^coffer: warning: integrity: config/0000000002: not signed by the owner key SHA256:\S+: passed over \(run coffer verify\)$`)
	second := snapshotLine.FindStringSubmatch(out)
	if second == nil {
		t.Fatal("the backup after the attack published no snapshot")
	}
	ids, err := keys.LoadIdentities(filepath.Join(thief.dir, "keys", "restore", "identity.txt"))
	if err != nil {
		t.Fatal(err)
	}
	newObjects := 0
	for name := range keysObjects(t, v.repo) {
		if before[name] || !strings.HasPrefix(name, repo.DataPrefix) && !strings.HasPrefix(name, repo.CatalogPrefix) &&
			!strings.HasPrefix(name, repo.IndexPrefix) && !strings.HasPrefix(name, repo.KeysPrefix) {
			continue
		}
		newObjects++
		b, _ := os.ReadFile(filepath.Join(v.repo, name))
		if r, err := age.Decrypt(bytes.NewReader(b), ids...); err == nil {
			io.Copy(io.Discard, r)
			t.Errorf("the thief's identity decrypts %s, written after the attack", name)
			detected = false
		}
	}
	if newObjects == 0 {
		t.Error("the backup after the attack wrote no encrypted object to check")
	}
	_, stderr, code = v.owner.run("--repo", v.repo, "--owner-key", "keys/owner.pub", "verify")
	detected = detected && code == 3 && expect(t, "verify", stderr+out, `coffer: error: integrity check failed`)
	vout, _, _ := v.owner.run("--repo", v.repo, "--owner-key", "keys/owner.pub", "verify")
	detected = detected && expect(t, "verify", vout, `(?m)^BAD config/0000000002: not signed by the owner key SHA256:\S+: passed over$`) &&
		expect(t, "verify", vout, `(?m)^recipients \(config 1\): [0-9a-f]{16}$`)

	record(t, "keys: stolen host key signs a config that adds a recipient", detected,
		!v.restorable(t, v.snapshot) || !v.restorableAs(t, second[1], v.src))
}

func readKeysFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestAttackStolenHostKeyAfterRevocation: finding 3. The owner revokes the
// stolen host key (coffer key revoke-host) and authorises a new one. The
// thief, with the stolen key and write access to the bucket, makes a
// complete snapshot of their files the way the backup host would (against
// a copy of the bucket as it was before the revocation) and copies it in;
// then re-signs it dated before the revocation. Both are refused: restore
// and verify exit 3 naming the manifest, `restore latest` does not pick
// it; the snapshot the key signed before its revocation stays valid, and
// the stolen key cannot back up through coffer.
func TestAttackStolenHostKeyAfterRevocation(t *testing.T) {
	t.Parallel()
	v := newKeysVictim(t)
	// The owner rotates: a new host key, the old one revoked.
	v.owner.mustRun("keygen", "--out", "newhost", "--role", "host", "--owner-key", "keys/owner.pub")
	v.owner.mustRun("--repo", v.repo, "--owner-key", "keys/owner/owner.key", "key", "add-host", "newhost/signing.pub")
	out := v.owner.mustRun("--repo", v.repo, "--owner-key", "keys/owner/owner.key", "key", "revoke-host", "keys/signing.pub")
	expect(t, "revoke-host", out, `(?m)^config 3: revoked host key SHA256:\S+; the 1 snapshots it signed stay valid$`)
	revoked := time.Now().UTC()
	newHost := newKeysHost(t, v.dir, "new-backup-host")
	copyKeysFile(t, filepath.Join(v.owner.dir, "newhost", "host", "signing.key"), filepath.Join(newHost.dir, "signing.key"))
	out = newHost.mustRun("--repo", v.repo, "--signing-key", "signing.key", "backup", "docs=dir:"+v.src)
	after := snapshotLine.FindStringSubmatch(out)[1]

	// The stolen key cannot back up through coffer.
	_, stderr, code := v.backup.run("--repo", v.repo, "--signing-key", "signing.key", "backup", "docs=dir:"+v.src)
	detected := code == 1 && expect(t, "backup with the revoked key", stderr, `(?m)^coffer: error: host key SHA256:\S+ was revoked on \S+: it may not back up into this repository$`)

	// The thief forges a snapshot against the bucket as it was.
	thief := newKeysHost(t, v.dir, "thief")
	copyKeysFile(t, filepath.Join(v.backup.dir, "signing.key"), filepath.Join(thief.dir, "signing.key"))
	old := filepath.Join(thief.dir, "old-bucket")
	copyKeysTree(t, v.repo, old)
	for _, seq := range []int64{2, 3} {
		os.Remove(filepath.Join(old, repo.ConfigName(seq)))
	}
	evil := filepath.Join(thief.dir, "evil")
	writeKeysTree(t, evil, "INV-2026-000121", `"total": "0.00 EUR", "pay_to": "attacker"`)
	out = thief.mustRun("--repo", old, "--signing-key", "signing.key", "backup", "docs=dir:"+evil)
	forged := snapshotLine.FindStringSubmatch(out)[1]
	for name := range keysObjects(t, old) {
		if _, err := os.Stat(filepath.Join(v.repo, name)); errors.Is(err, fs.ErrNotExist) {
			copyKeysFile(t, filepath.Join(old, name), filepath.Join(v.repo, name))
		}
	}

	check := func(what string) bool {
		h := v.restoreHost(t, fmt.Sprintf("restore-%s-%d", what, time.Now().UnixNano()), false)
		ok := true
		_, stderr, code := h.run("--repo", v.repo, "--identity", "identity.txt", "restore", forged, "--to", "out")
		ok = ok && code == 3 && expect(t, what+": restore", stderr,
			`(?m)^coffer: error: integrity: snapshots/`+forged+`: signed by host key SHA256:\S+, revoked on \S+, and not among the snapshots it signed before \(backdated or forged\)$`)
		_, _, code = h.run("--repo", v.repo, "--identity", "identity.txt", "restore", "latest", "--to", "out2")
		ok = ok && code == 3
		vout, _, code := h.run("--repo", v.repo, "--identity", "identity.txt", "verify")
		ok = ok && code == 3 && expect(t, what+": verify", vout, `(?m)^BAD snapshots/`+forged+`: signed by host key`)
		for _, d := range []string{"out", "out2"} {
			if _, err := os.Stat(filepath.Join(h.dir, d)); err == nil {
				t.Errorf("%s: the refused restore wrote %s", what, d)
				ok = false
			}
		}
		return ok
	}
	lost := !v.restorable(t, v.snapshot) || !v.restorable(t, after)
	record(t, "keys: stolen host key publishes a snapshot after revoke-host", detected && check("forged"), lost)

	// Backdated: the same snapshot, dated a day before the revocation.
	name := filepath.Join(v.repo, repo.SnapshotName(forged))
	doc, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	var m repo.Manifest
	if parts := bytes.SplitN(doc, []byte("\n"), 3); len(parts) != 3 || json.Unmarshal(parts[2], &m) != nil {
		t.Fatal("cannot decode the forged manifest")
	}
	m.Time = revoked.Add(-24 * time.Hour)
	stolen, err := keys.LoadSigningKey(filepath.Join(thief.dir, "signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	if doc, err = repo.Sign(repo.KindManifest, &m, stolen); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	lost = !v.restorable(t, v.snapshot) || !v.restorable(t, after)
	record(t, "keys: stolen host key publishes a backdated snapshot after revoke-host", check("backdated"), lost)
}

// TestAttackSwappedOwnerInStore: someone who can write the restore host's
// known-repositories store (and the bucket) swaps the owner key it
// remembers for theirs, and the repository for their forgery. The
// operator's identity.txt carries the real owner: refused, exit 3, "owner
// key changed"; so is an explicit --owner-key.
func TestAttackSwappedOwnerInStore(t *testing.T) {
	t.Parallel()
	v := newKeysVictim(t)
	h := v.restoreHost(t, "restore-host", false)
	h.mustRun("--repo", v.repo, "--identity", "identity.txt", "snapshots")
	attacker, saved := forgeRepository(t, v)

	records, err := filepath.Glob(filepath.Join(h.state(), "*.json"))
	if err != nil || len(records) != 1 {
		t.Fatalf("store records %v, %v", records, err)
	}
	victimOwner := strings.TrimSpace(lastKeyLine(readKeysFile(t, filepath.Join(v.keys, "owner.pub"))))
	attackerOwner := strings.TrimSpace(lastKeyLine(readKeysFile(t, filepath.Join(attacker.dir, "keys", "owner.pub"))))
	rec := readKeysFile(t, records[0])
	if !strings.Contains(rec, victimOwner) {
		t.Fatalf("the store does not hold the owner: %s", rec)
	}
	// The forged repository has its own id: the attacker writes a record
	// for it too, and rewrites the victim's.
	if err := os.WriteFile(records[0], []byte(strings.ReplaceAll(rec, victimOwner, attackerOwner)), 0o600); err != nil {
		t.Fatal(err)
	}
	var forgedCfg repo.Config
	if err := repo.ParseConfig([]byte(readKeysFile(t, filepath.Join(v.repo, repo.ConfigName(1)))), &forgedCfg); err != nil {
		t.Fatal(err)
	}
	forgedRec := strings.ReplaceAll(strings.ReplaceAll(rec, victimOwner, attackerOwner),
		filepath.Base(strings.TrimSuffix(records[0], ".json")), forgedCfg.ID)
	if err := os.WriteFile(filepath.Join(h.state(), forgedCfg.ID+".json"), []byte(forgedRec), 0o600); err != nil {
		t.Fatal(err)
	}

	_, stderr, code := h.run("--repo", v.repo, "--identity", "identity.txt", "restore", "latest:docs", "--to", "out")
	detected := code == 3 && expect(t, "restore", stderr,
		`(?m)^coffer: error: owner key changed: repository [0-9a-f]{8} is pinned to owner SHA256:\S+, but identity.txt names `+regexp.QuoteMeta(fingerprintOf(t, filepath.Join(v.keys, "owner.pub")))+`$`)
	_, _, code = h.run("--repo", v.repo, "--owner-key", filepath.Join(v.keys, "owner.pub"), "snapshots")
	detected = detected && code == 3
	if _, err := os.Stat(filepath.Join(h.dir, "out")); err == nil {
		t.Error("the refused restore wrote its target")
		detected = false
	}
	putBack(t, v, saved)
	record(t, "keys: owner key swapped in the known-repositories store", detected, !v.restorable(t, v.snapshot))
}

func lastKeyLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// TestAttackConfigRollback: the owner revokes a stolen host key (config
// 2); a bucket writer deletes config 2 to undo the revocation. A restore
// host that saw config 2 refuses the repository (exit 3, rollback); a host
// that never saw it still finds the rollback in the repository: a snapshot
// written under config 2 names a config newer than the newest one (verify
// exits 3 naming it).
func TestAttackConfigRollback(t *testing.T) {
	t.Parallel()
	v := newKeysVictim(t)
	v.owner.mustRun("keygen", "--out", "newhost", "--role", "host", "--owner-key", "keys/owner.pub")
	v.owner.mustRun("--repo", v.repo, "--owner-key", "keys/owner/owner.key", "key", "add-host", "newhost/signing.pub")
	newHost := newKeysHost(t, v.dir, "new-backup-host")
	copyKeysFile(t, filepath.Join(v.owner.dir, "newhost", "host", "signing.key"), filepath.Join(newHost.dir, "signing.key"))
	out := newHost.mustRun("--repo", v.repo, "--signing-key", "signing.key", "backup", "docs=dir:"+v.src)
	after := snapshotLine.FindStringSubmatch(out)[1]
	h := v.restoreHost(t, "restore-host", false)
	h.mustRun("--repo", v.repo, "--identity", "identity.txt", "snapshots")

	saved := readKeysFile(t, filepath.Join(v.repo, repo.ConfigName(2)))
	if err := os.Remove(filepath.Join(v.repo, repo.ConfigName(2))); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := h.run("--repo", v.repo, "--identity", "identity.txt", "restore", "latest:docs", "--to", "out")
	detected := code == 3 && expect(t, "restore", stderr,
		`(?m)^coffer: error: integrity: config/0000000002: rollback: the newest config is 1, but config 2 was seen before \(a newer config was removed\)$`)
	fresh := v.restoreHost(t, "fresh-host", false)
	vout, _, code := fresh.run("--repo", v.repo, "--identity", "identity.txt", "verify")
	detected = detected && code == 3 && expect(t, "verify on a fresh host", vout,
		`(?m)^BAD snapshots/`+after+`: names config 2, but the newest config that verifies is 1: a newer config was removed \(rollback\), or the manifest is forged$`)

	if err := os.WriteFile(filepath.Join(v.repo, repo.ConfigName(2)), []byte(saved), 0o600); err != nil {
		t.Fatal(err)
	}
	record(t, "keys: config rollback (a newer config deleted)", detected, !v.restorable(t, v.snapshot) || !v.restorable(t, after))
}

// TestAttackConfigSeqOverflow: a bucket writer copies config 1 to the
// highest config name, config/9999999999. The owner's revoke-host would
// write config 10000000000, a name no reader lists, and report success
// while the stolen key stays authorised. It is refused instead, naming the
// object to remove, and nothing is written; once it is removed the
// revocation goes through.
func TestAttackConfigSeqOverflow(t *testing.T) {
	t.Parallel()
	v := newKeysVictim(t)
	top := filepath.Join(v.repo, repo.ConfigName(9999999999))
	copyKeysFile(t, filepath.Join(v.repo, repo.ConfigName(1)), top)
	before := keysObjects(t, v.repo)
	_, stderr, code := v.owner.run("--repo", v.repo, "--owner-key", "keys/owner/owner.key", "key", "revoke-host", "keys/signing.pub")
	detected := code != 0 && expect(t, "revoke-host", stderr,
		`config/9999999999 is not a config signed by the owner key \(forged or damaged\).*remove config/9999999999`)
	for name := range keysObjects(t, v.repo) {
		if strings.HasPrefix(name, "config/") && !before[name] {
			t.Errorf("the refused revoke-host wrote %s", name)
			detected = false
		}
	}
	// Still authorised: the backup host backs up.
	v.backupNow(t)
	if err := os.Remove(top); err != nil {
		t.Fatal(err)
	}
	out := v.owner.mustRun("--repo", v.repo, "--owner-key", "keys/owner/owner.key", "key", "revoke-host", "keys/signing.pub")
	detected = detected && expect(t, "revoke-host after the removal", out, `(?m)^config 2: revoked host key`)
	_, _, code = v.backup.run("--repo", v.repo, "--signing-key", "signing.key", "backup", "docs=dir:"+v.src)
	detected = detected && code == 1
	record(t, "keys: forged config/9999999999 makes key changes invisible", detected, !v.restorable(t, v.snapshot))
}

// TestAttackRevokedKeyResignsKeptSnapshot: the owner revokes a stolen host
// key; the snapshot it signed before stays valid (on the revocation's keep
// list). The thief, with the key and delete rights on the bucket, replaces
// that snapshot's manifest with one of the same id that points at their
// own files. Restore and verify refuse it (exit 3): the keep list holds the
// kept manifest's hash, not just its id.
func TestAttackRevokedKeyResignsKeptSnapshot(t *testing.T) {
	t.Parallel()
	v := newKeysVictim(t)
	v.owner.mustRun("keygen", "--out", "newhost", "--role", "host", "--owner-key", "keys/owner.pub")
	v.owner.mustRun("--repo", v.repo, "--owner-key", "keys/owner/owner.key", "key", "add-host", "newhost/signing.pub")
	v.owner.mustRun("--repo", v.repo, "--owner-key", "keys/owner/owner.key", "key", "revoke-host", "keys/signing.pub")

	// The thief backs up their files against a copy of the bucket from
	// before the revocation, then publishes that manifest, re-signed
	// under the kept snapshot's id, in place of the kept one.
	thief := newKeysHost(t, v.dir, "thief")
	copyKeysFile(t, filepath.Join(v.backup.dir, "signing.key"), filepath.Join(thief.dir, "signing.key"))
	old := filepath.Join(thief.dir, "old-bucket")
	copyKeysTree(t, v.repo, old)
	for _, seq := range []int64{2, 3} {
		os.Remove(filepath.Join(old, repo.ConfigName(seq)))
	}
	evil := filepath.Join(thief.dir, "evil")
	writeKeysTree(t, evil, "INV-2026-000121", `"total": "0.00 EUR", "pay_to": "attacker"`)
	out := thief.mustRun("--repo", old, "--signing-key", "signing.key", "backup", "docs=dir:"+evil)
	forged := snapshotLine.FindStringSubmatch(out)[1]
	for name := range keysObjects(t, old) {
		if _, err := os.Stat(filepath.Join(v.repo, name)); errors.Is(err, fs.ErrNotExist) && name != repo.SnapshotName(forged) {
			copyKeysFile(t, filepath.Join(old, name), filepath.Join(v.repo, name))
		}
	}
	kept := filepath.Join(v.repo, repo.SnapshotName(v.snapshot))
	saved := readKeysFile(t, kept)
	doc := []byte(readKeysFile(t, filepath.Join(old, repo.SnapshotName(forged))))
	var m repo.Manifest
	if parts := bytes.SplitN(doc, []byte("\n"), 3); len(parts) != 3 || json.Unmarshal(parts[2], &m) != nil {
		t.Fatal("cannot decode the thief's manifest")
	}
	m.ID = v.snapshot
	stolen, err := keys.LoadSigningKey(filepath.Join(thief.dir, "signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	if doc, err = repo.Sign(repo.KindManifest, &m, stolen); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kept, doc, 0o600); err != nil {
		t.Fatal(err)
	}

	h := v.restoreHost(t, "restore-host", false)
	_, stderr, code := h.run("--repo", v.repo, "--identity", "identity.txt", "restore", v.snapshot+":docs", "--to", "out")
	detected := code == 3 && expect(t, "restore", stderr,
		`(?m)^coffer: error: integrity: snapshots/`+v.snapshot+`: signed by host key SHA256:\S+, revoked on \S+, and not among the snapshots it signed before`)
	vout, _, code := h.run("--repo", v.repo, "--identity", "identity.txt", "verify")
	detected = detected && code == 3 && expect(t, "verify", vout, `(?m)^BAD snapshots/`+v.snapshot+`: signed by host key`)
	if _, err := os.Stat(filepath.Join(h.dir, "out")); err == nil {
		t.Error("the refused restore wrote its target")
		detected = false
	}
	// The kept manifest, put back (object lock or versioning), still restores.
	if err := os.WriteFile(kept, []byte(saved), 0o600); err != nil {
		t.Fatal(err)
	}
	record(t, "keys: revoked host key re-signs a kept snapshot", detected, !v.restorable(t, v.snapshot))
}

// TestAttackJunkConfig: a bucket writer puts an object that is not a
// config at all (junk) under the next config name. Every command passes it
// over with a warning naming it (design 2.1) instead of stopping: the
// backup host still backs up, a restore host still restores, and the
// owner can still revoke a host key.
func TestAttackJunkConfig(t *testing.T) {
	t.Parallel()
	v := newKeysVictim(t)
	junk := repo.ConfigName(2)
	if err := os.WriteFile(filepath.Join(v.repo, junk), []byte("not a config\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	warned := `(?m)^coffer: warning: .*` + regexp.QuoteMeta(junk)
	_, stderr, code := v.owner.run("--repo", v.repo, "--owner-key", "keys/owner/owner.key", "key", "revoke-host", "keys/signing.pub")
	detected := code == 0 && expect(t, "revoke-host", stderr, warned)
	_, _, code = v.backup.run("--repo", v.repo, "--signing-key", "signing.key", "backup", "docs=dir:"+v.src)
	detected = detected && code == 1 // revoked, and the backup host is told so
	h := v.restoreHost(t, "restore-host", false)
	_, stderr, code = h.run("--repo", v.repo, "--identity", "identity.txt", "restore", v.snapshot+":docs", "--to", "out")
	detected = detected && code == 0 && expect(t, "restore", stderr, warned) && sameKeysTree(t, v.orig, filepath.Join(h.dir, "out"))
	record(t, "keys: a junk config object stops every command", detected, !v.restorable(t, v.snapshot))
}

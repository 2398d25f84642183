package attacks

// Attacks on what manifests say and on which manifests exist (issue 7,
// items 4 and 6): deleting snapshots, a manifest dated in the future signed
// with a stolen host key, and what a reader of the bucket learns from a
// manifest. Each runs the real coffer binary against a real local
// repository and changes the repository's files as an attacker with the
// named access would.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/keys"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/internal/testing/testutil"
	"github.com/cofferhq/coffer/restore"
	"github.com/cofferhq/coffer/storage"
)

// mfRepo is a local repository with its keys, used through the real
// command line.
type mfRepo struct {
	t    *testing.T
	bin  string
	dir  string // working folder: keys/, repo/, sources and restores
	repo string
	env  []string
}

func newMfRepo(t *testing.T) *mfRepo {
	t.Helper()
	dir := t.TempDir()
	e := &mfRepo{t: t, bin: testutil.CofferBinary(t), dir: dir, repo: filepath.Join(dir, "repo")}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "COFFER_") {
			e.env = append(e.env, kv)
		}
	}
	e.env = append(e.env, "COFFER_REPO="+e.repo, "HOME="+dir,
		"XDG_CACHE_HOME="+filepath.Join(dir, "cache"), "XDG_STATE_HOME="+filepath.Join(dir, "state"))
	e.must("keygen", "--out", "keys")
	e.must("init", "--owner-key", "keys/owner/owner.key", "-R", "keys/recipients.txt", "--host", "keys/signing.pub")
	return e
}

// run runs coffer in e.dir and returns its output and exit code.
func (e *mfRepo) run(args ...string) (stdout, stderr string, code int) {
	e.t.Helper()
	cmd := exec.Command(e.bin, args...)
	cmd.Dir, cmd.Env = e.dir, e.env
	return runCommand(e.t, cmd)
}

func (e *mfRepo) must(args ...string) string {
	e.t.Helper()
	out, errOut, code := e.run(args...)
	if code != 0 {
		e.t.Fatalf("coffer %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// backup backs up the folder src (relative to e.dir) as source docs and
// returns the snapshot id and the warnings about the repository that the
// backup printed.
func (e *mfRepo) backup(src string, tags ...string) (string, string) {
	e.t.Helper()
	args := []string{"--json", "backup", "--signing-key", "keys/host/signing.key"}
	for _, tag := range tags {
		args = append(args, "--tag", tag)
	}
	out, errOut, code := e.run(append(args, "docs=dir:"+src)...)
	if code != 0 {
		e.t.Fatalf("backup: exit %d\n%s%s", code, out, errOut)
	}
	var res struct {
		Snapshot     string
		RepoWarnings []string `json:"repository_warnings"`
	}
	if err := json.Unmarshal(endResult(out), &res); err != nil || res.Snapshot == "" {
		e.t.Fatalf("backup output %q: %v", out, err)
	}
	return res.Snapshot, strings.Join(res.RepoWarnings, "\n")
}

// endResult returns the result of the end event of a --json backup,
// restore or verify (nil when there is none).
func endResult(out string) []byte {
	for _, l := range strings.Split(out, "\n") {
		var ev struct {
			Event  string
			Result json.RawMessage
		}
		if json.Unmarshal([]byte(l), &ev) == nil && ev.Event == "end" {
			return ev.Result
		}
	}
	return nil
}

// read runs a pinned read command with the identity.
func (e *mfRepo) read(args ...string) (stdout, stderr string, code int) {
	e.t.Helper()
	return e.run(append([]string{"--owner-key", "keys/owner.pub", "--identity", "keys/restore/identity.txt"}, args...)...)
}

func (e *mfRepo) writeFiles(folder string, files map[string]string) {
	e.t.Helper()
	for name, content := range files {
		p := filepath.Join(e.dir, folder, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			e.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			e.t.Fatal(err)
		}
	}
}

// sameFiles reports whether folder (relative to e.dir) holds every file of
// want with its content.
func (e *mfRepo) sameFiles(folder string, want map[string]string) bool {
	e.t.Helper()
	ok := true
	for name, content := range want {
		b, err := os.ReadFile(filepath.Join(e.dir, folder, name))
		if err != nil || string(b) != content {
			e.t.Errorf("%s/%s: %q, %v; want %q", folder, name, b, err, content)
			ok = false
		}
	}
	return ok
}

func short(id string) string { return repo.ShortID(id) }

// TestAttackDeleteMiddleSnapshot: a bucket writer deletes the manifest of a
// snapshot that is neither the first nor the newest. The next snapshot's
// manifest names it in "seen", so verify finds the deletion from the
// repository alone (exit 3), and a restore of "latest" warns. The deleted
// snapshot's files are also in the newest snapshot here, so nothing is
// lost; a snapshot whose files no other holds would be lost (object lock
// is the defence against deletion, not this).
func TestAttackDeleteMiddleSnapshot(t *testing.T) {
	t.Parallel()
	e := newMfRepo(t)
	files := map[string]string{"a.txt": "invoice 1\n"}
	e.writeFiles("src", files)
	first, _ := e.backup("src")
	files["b.txt"] = "invoice 2\n"
	e.writeFiles("src", files)
	middle, _ := e.backup("src")
	files["c.txt"] = "invoice 3\n"
	e.writeFiles("src", files)
	newest, _ := e.backup("src")

	if err := os.Remove(filepath.Join(e.repo, "snapshots", middle)); err != nil {
		t.Fatal(err)
	}

	out, errOut, code := e.run("--owner-key", "keys/owner.pub", "verify")
	want := fmt.Sprintf("BAD snapshots/%s: snapshot %s was deleted: named by %s\n", middle, short(middle), short(newest))
	detected := code == 3 && strings.Contains(out, want) &&
		strings.Contains(errOut, "coffer: hint: snapshots were deleted, a manifest is dated in the future")
	if !detected {
		t.Errorf("verify after deleting %s: exit %d, want 3 and %q\n%s%s", short(middle), code, want, out, errOut)
	}
	// The deleted snapshot's objects are now referenced by no manifest:
	// warnings, not further problems.
	if !strings.Contains(out, ": 1 problems, ") {
		t.Errorf("verify: want exactly the deletion as a problem:\n%s", out)
	}

	// A restore of latest still works, and says what it noticed.
	out, errOut, code = e.read("restore", "latest", "--to", "latest")
	wantWarn := fmt.Sprintf("coffer: warning: snapshot %s was deleted: named by %s", short(middle), short(newest))
	if code != 0 || !strings.Contains(errOut, wantWarn) {
		t.Errorf("restore latest: exit %d, want 0 and %q\n%s%s", code, wantWarn, out, errOut)
		detected = false
	}
	lost := !e.sameFiles("latest", files)
	if _, errOut, code := e.read("restore", first, "--to", "first"); code != 0 {
		t.Errorf("restore the first snapshot: exit %d\n%s", code, errOut)
		lost = true
	}
	lost = lost || !e.sameFiles("first", map[string]string{"a.txt": "invoice 1\n"})
	record(t, "bucket writer deletes a middle snapshot's manifest", detected, lost)
}

// TestAttackDeleteEveryManifest: a bucket writer deletes every manifest.
// Before, verify said "0 snapshots ... 0 problems" and exited 0. Now the
// catalog roots, indexes and private parts that no snapshot references are
// one problem when no snapshot exists at all (exit 3); with snapshots left
// they are warnings, because a killed backup leaves them too. The data is
// not gone: an identity holder rebuilds every snapshot's files from the
// catalog roots and packs still in the bucket (the path of
// doc/recover-without-coffer.md from step 3), which is what "lost" checks
// here.
func TestAttackDeleteEveryManifest(t *testing.T) {
	t.Parallel()
	e := newMfRepo(t)
	v1 := map[string]string{"a.txt": "invoice 1\n", "sub/b.txt": "invoice 2\n"}
	e.writeFiles("src", v1)
	e.backup("src")
	v2 := map[string]string{"a.txt": "invoice 1\n", "sub/b.txt": "invoice 2 (paid)\n", "c.txt": "invoice 3\n"}
	e.writeFiles("src", v2)
	e.backup("src")

	ms, err := filepath.Glob(filepath.Join(e.repo, "snapshots", "*"))
	if err != nil || len(ms) != 2 {
		t.Fatalf("manifests %v, %v", ms, err)
	}
	for _, m := range ms {
		if err := os.Remove(m); err != nil {
			t.Fatal(err)
		}
	}

	out, errOut, code := e.run("--owner-key", "keys/owner.pub", "verify")
	re := regexp.MustCompile(`(?m)^BAD snapshots/: no snapshot, but 2 catalog roots, \d+ indexes and 2 private parts that no snapshot references: the manifests were deleted`)
	detected := code == 3 && re.MatchString(out) && !strings.Contains(out, ": 0 problems")
	if !detected {
		t.Errorf("verify after deleting every manifest: exit %d\n%s%s", code, out, errOut)
	}

	// Every snapshot's files can still be rebuilt by the identity holder.
	got := recoverFromCatalogRoots(t, e)
	lost := len(got) != 2
	for _, want := range []map[string]string{v1, v2} {
		found := false
		for _, files := range got {
			if mapsEqual(files, want) {
				found = true
			}
		}
		if !found {
			t.Errorf("no catalog root rebuilds %v (got %v)", want, got)
			lost = true
		}
	}
	record(t, "bucket writer deletes every manifest", detected, lost)
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// recoverFromCatalogRoots rebuilds, with the identity, the files of every
// catalog root in the repository, without any manifest: it decrypts the
// root to learn its snapshot id, then reads the catalog and its files from
// the packs present (every chunk checked against its keyed id, every file
// against its SHA-256).
func recoverFromCatalogRoots(t *testing.T, e *mfRepo) []map[string]string {
	t.Helper()
	ctx := context.Background()
	st, err := storage.NewLocal(e.repo)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := keys.LoadIdentities(filepath.Join(e.dir, "keys", "restore", "identity.txt"))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := keys.LoadOwnerPublic(filepath.Join(e.dir, "keys", "owner.pub"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(ctx, st, repo.OpenOptions{Owner: pub, Identities: ids})
	if err != nil {
		t.Fatal(err)
	}
	var packs []repo.PackRef
	var roots []repo.ObjectRef
	err = st.List(ctx, "", func(oi storage.ObjectInfo) error {
		sum := oi.Name[strings.LastIndexByte(oi.Name, '/')+1:]
		switch {
		case strings.HasPrefix(oi.Name, repo.DataPrefix):
			packs = append(packs, repo.PackRef{SHA256: sum, Size: oi.Size})
		case strings.HasPrefix(oi.Name, repo.CatalogPrefix):
			roots = append(roots, repo.ObjectRef{Name: oi.Name, Size: oi.Size, SHA256: sum})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]string
	for _, ref := range roots {
		ct, err := r.ReadObject(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		var root repo.CatalogRoot
		if err := repo.Unseal(ct, &root, ids...); err != nil {
			t.Fatalf("decrypt %s: %v", ref.Name, err)
		}
		m := &repo.Manifest{ID: root.Snapshot, Repo: r.Config.ID, Catalog: ref, Packs: packs}
		snap, err := restore.Load(ctx, r, m)
		if err != nil {
			t.Fatalf("catalog %s: %v", ref.Name, err)
		}
		src, err := snap.Source("docs")
		if err != nil {
			t.Fatal(err)
		}
		files := map[string]string{}
		for _, en := range src.Entries() {
			if en.Type != "file" {
				continue
			}
			rc, err := src.Open(ctx, en.Path)
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			_, err = b.ReadFrom(rc)
			rc.Close()
			if err != nil {
				t.Fatalf("%s: %v", en.Path, err)
			}
			files[en.Path] = b.String()
		}
		out = append(out, files)
	}
	return out
}

// TestAttackFutureManifestStolenHostKey: the thief of the backup host's
// signing key publishes a complete snapshot of their own files and dates
// its manifest 2099, so that it would stay "latest" after every real
// backup. Manifests dated more than repo.MaxClockSkew in the future are
// skipped by "latest" (with a warning), reported by verify (exit 3), and
// not counted as seen by the next real backup.
func TestAttackFutureManifestStolenHostKey(t *testing.T) {
	t.Parallel()
	e := newMfRepo(t)
	e.writeFiles("real", map[string]string{"ledger.txt": "ledger v1\n"})
	e.backup("real")

	// The thief: a real backup of their files with the stolen key, then
	// the same manifest re-signed with time 2099 and written over the
	// original (bucket write access). The catalog still belongs to the
	// snapshot id, so the snapshot is complete and valid but for its date.
	e.writeFiles("evil", map[string]string{"ledger.txt": "attacker's ledger\n", "run-me.sh": "#!/bin/sh\n"})
	forged, _ := e.backup("evil")
	future := time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
	forgeTime(t, e, forged, future)

	// The real host backs up again; it sees the forged manifest and does
	// not count it.
	real2 := map[string]string{"ledger.txt": "ledger v2\n"}
	e.writeFiles("real", real2)
	latest, backupErr := e.backup("real")
	if !strings.Contains(backupErr, "snapshot "+short(forged)+" is dated 2099-01-01T00:00:00Z, in the future") {
		t.Errorf("backup does not warn about the future manifest:\n%s", backupErr)
	}

	out, errOut, code := e.run("--owner-key", "keys/owner.pub", "verify")
	want := fmt.Sprintf("BAD snapshots/%s: snapshot %s is dated 2099-01-01T00:00:00Z, more than 5m0s in the future", forged, short(forged))
	detected := code == 3 && strings.Contains(out, want)
	if !detected {
		t.Errorf("verify: exit %d, want 3 and %q\n%s%s", code, want, out, errOut)
	}

	out, errOut, code = e.read("--json", "restore", "latest", "--to", "restored")
	// Under --json the warning is an event on stdout.
	wantWarn := `{"event":"warning","message":"snapshot ` + short(forged) + " is dated 2099-01-01T00:00:00Z"
	if code != 0 || !strings.Contains(string(endResult(out)), `"snapshot":"`+latest+`"`) || !strings.Contains(out, wantWarn) {
		t.Errorf("restore latest: exit %d, want the real snapshot %s and a warning\n%s%s", code, short(latest), out, errOut)
		detected = false
	}
	lost := !e.sameFiles("restored", real2)
	if _, err := os.Stat(filepath.Join(e.dir, "restored", "run-me.sh")); err == nil {
		t.Error("restore latest wrote the attacker's file")
		lost = true
	}
	record(t, "stolen host key: manifest dated 2099 to stay latest", detected, lost)
}

// forgeTime re-signs snapshot id's manifest with the repository's own
// signing key (stolen) and time t, and writes it over the original.
func forgeTime(t *testing.T, e *mfRepo, id string, when time.Time) {
	t.Helper()
	ctx := context.Background()
	st, err := storage.NewLocal(e.repo)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := keys.LoadSigningKey(filepath.Join(e.dir, "keys", "host", "signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	pin, err := keys.OwnerPin(filepath.Join(e.dir, "keys", "host", "signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(ctx, st, repo.OpenOptions{Owner: pin, Signing: sk})
	if err != nil {
		t.Fatal(err)
	}
	m, err := r.ReadManifest(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	m.Time = when
	doc, err := repo.Sign(repo.KindManifest, m, sk)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.repo, "snapshots", id), doc, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestAttackBucketReaderReadsManifest: someone with read access to the
// bucket reads a manifest of a backup of 37 small invoices, tagged. Before,
// it showed the host, the tags, each source's exact size, bytes_new (a
// deduplication oracle), the duration and "chunks: 37". Now the manifest
// holds ids, the time, source names and kinds and object references only;
// the rest is in the private part, sealed to the recipients, which the
// identity holder still sees.
func TestAttackBucketReaderReadsManifest(t *testing.T) {
	t.Parallel()
	e := newMfRepo(t)
	invoices := map[string]string{}
	for i := 1; i <= 37; i++ {
		invoices[fmt.Sprintf("invoice-%04d.txt", i)] = fmt.Sprintf("invoice %d: ACME GmbH, %d.00 EUR\n", i, 100*i)
	}
	e.writeFiles("src", invoices)
	const tag = "acme-quarterly"
	id, _ := e.backup("src", tag)
	host, _ := os.Hostname()

	doc, err := os.ReadFile(filepath.Join(e.repo, "snapshots", id))
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitN(doc, []byte("\n"), 3)
	var body map[string]any
	if len(lines) != 3 || json.Unmarshal(lines[2], &body) != nil {
		t.Fatalf("manifest is not a signed JSON document:\n%s", doc)
	}
	var leaks []string
	forbidden := map[string]bool{"host": true, "tags": true, "stats": true, "duration_ns": true, "bytes_read": true,
		"bytes_new": true, "bytes_stored": true, "chunks": true, "chunks_new": true, "warnings": true}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if forbidden[k] {
					leaks = append(leaks, path+"."+k)
				}
				walk(path+"."+k, x)
			}
		case []any:
			for i, x := range v {
				walk(fmt.Sprintf("%s[%d]", path, i), x)
			}
		case float64:
			// Numbers are versions and object sizes (public anyway, as
			// object sizes in a listing); never a count of files or chunks.
			k := path[strings.LastIndexByte(path, '.')+1:]
			if (k != "size" && k != "version" && k != "config_seq") || v == 37 {
				leaks = append(leaks, fmt.Sprintf("%s = %v", path, v))
			}
		case string:
			if (host != "" && v == host) || strings.Contains(v, tag) || strings.Contains(v, "invoice") {
				leaks = append(leaks, fmt.Sprintf("%s = %q", path, v))
			}
		}
	}
	walk("", body)
	for _, s := range body["sources"].([]any) {
		if n := len(s.(map[string]any)); n != 2 {
			leaks = append(leaks, fmt.Sprintf("a source has %d fields, want name and kind", n))
		}
	}
	detected := len(leaks) == 0
	if !detected {
		t.Errorf("the manifest tells a bucket reader: %s\n%s", strings.Join(leaks, "; "), doc)
	}

	// The identity holder still sees all of it.
	out, errOut, code := e.read("--json", "snapshots")
	var list []struct {
		Host string
		Tags []string
		Size int64
	}
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list) != 1 ||
		list[0].Host != host || len(list[0].Tags) != 1 || list[0].Tags[0] != tag || list[0].Size == 0 {
		t.Errorf("snapshots --identity: exit %d\n%s%s", code, out, errOut)
		detected = false
	}
	record(t, "bucket reader reads a manifest: host, tags, sizes, stats, chunk counts", detected, false)
}

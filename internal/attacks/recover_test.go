package attacks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/backup"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/internal/retention"
	"github.com/cofferhq/coffer/internal/testing/fixture"
	"github.com/cofferhq/coffer/internal/testing/testrepo"
	"github.com/cofferhq/coffer/internal/testing/testutil"
	"github.com/cofferhq/coffer/source"
	dirkind "github.com/cofferhq/coffer/source/dir"
)

// The recovery script of doc/recover-without-coffer.md is run as printed
// there, against real repositories, with the real age, zstd, jq and
// openssl.

// recoverScript writes coffer-recover.sh, extracted from the document, into
// a temporary folder and returns its path.
func recoverScript(t testing.TB) string {
	t.Helper()
	for _, tool := range []string{"bash", "age", "zstd", "jq", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			testutil.Missing(t, "%s is not installed (make test installs it)", tool)
		}
	}
	doc, err := os.ReadFile(filepath.Join(testutil.ModuleRoot(), "doc", "recover-without-coffer.md"))
	if err != nil {
		t.Fatal(err)
	}
	const open = "```bash\n#!/usr/bin/env bash\n# coffer-recover.sh"
	i := bytes.Index(doc, []byte(open))
	if i < 0 {
		t.Fatal("doc/recover-without-coffer.md has no coffer-recover.sh block")
	}
	body := doc[i+len("```bash\n"):]
	j := bytes.Index(body, []byte("\n```\n"))
	if j < 0 {
		t.Fatal("coffer-recover.sh block is not closed")
	}
	p := filepath.Join(t.TempDir(), "coffer-recover.sh")
	if err := os.WriteFile(p, body[:j+1], 0o700); err != nil {
		t.Fatal(err)
	}
	return p
}

// runRecover runs the script and returns its stderr and exit status.
func runRecover(t *testing.T, script string, args ...string) (stderr string, code int) {
	t.Helper()
	cmd := exec.Command("bash", append([]string{script}, args...)...)
	var errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &errb, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return errb.String(), 0
	case errors.As(err, &ee):
		return errb.String(), ee.ExitCode()
	}
	t.Fatalf("run coffer-recover.sh: %v", err)
	return "", 0
}

// TestAttackRecoverScriptCraftedCatalog: a thief of the host key publishes
// a snapshot whose catalog holds a symlink "evil" to a folder outside the
// output and a symlink "evil/pwned" below it. The recovery script created
// symlinks last, in catalog order, so it created "evil" and then
// "pwned" through it, outside its output folder; it must refuse the
// catalog before writing anything. The genuine
// snapshot still restores with the script, identical to the original.
func TestAttackRecoverScriptCraftedCatalog(t *testing.T) {
	script := recoverScript(t)
	ctx := context.Background()
	dir := t.TempDir()
	writeRecoverTree(t, dir)
	n := backupFolder(t, dir)
	repoDir := filepath.Join(n.tr.Dir, "repo")
	identity := n.tr.Keys.Identity

	// The genuine snapshot restores with the script alone.
	good := filepath.Join(t.TempDir(), "good")
	if out, code := runRecover(t, script, "dir", repoDir, identity, n.m.ID, "docs", good); code != 0 {
		t.Fatalf("recover the genuine snapshot: exit %d: %s", code, out)
	}
	if err := fixture.CompareTrees(dir, good); err != nil {
		t.Fatalf("the script's restore differs from the original: %v", err)
	}

	// The crafted snapshot, signed with the real host key.
	r, err := repo.Open(ctx, n.tr.Store, repo.OpenOptions{Owner: n.tr.Owner.Public(), Identities: n.tr.Identities})
	if err != nil {
		t.Fatal(err)
	}
	cat, err := r.ReadCatalog(ctx, n.m)
	if err != nil {
		t.Fatal(err)
	}
	outside := t.TempDir()
	src := &cat.Sources[0]
	var file repo.Entry
	for _, e := range src.Entries {
		if e.Type == "file" && e.Size > 0 {
			file = e
			break
		}
	}
	link := repo.Entry{Path: "evil", Type: "symlink", Mode: 0o777, ModTime: file.ModTime, Link: outside}
	pwned := repo.Entry{Path: "evil/pwned", Type: "symlink", Mode: 0o777, ModTime: file.ModTime, Link: "/etc/passwd"}
	src.Entries = append(src.Entries, link, pwned)
	forged := forgeSnapshot(t, n, n.m, cat)

	out := filepath.Join(t.TempDir(), "crafted")
	stderr, code := runRecover(t, script, "dir", repoDir, identity, forged.ID, "docs", out)
	t.Logf("exit %d: %s", code, stderr)
	_, statErr := os.Lstat(filepath.Join(outside, "pwned"))
	wroteOutside := statErr == nil
	if wroteOutside {
		t.Errorf("the script wrote %s outside its output folder", filepath.Join(outside, "pwned"))
	}
	refused := code == 3 && strings.Contains(stderr, "not a folder listed before it")
	if !refused {
		t.Errorf("crafted catalog: exit %d, want 3 with a refusal naming the folder rule: %s", code, stderr)
	}
	record(t, "recovery script: crafted catalog creates a link through its own symlink", refused && !wroteOutside, n.lost(t))
}

// TestAttackRecoverScriptEditedManifest: a bucket writer edits a manifest
// (here its time, to make it the latest) without the host key. The script
// checks the signature against the host key the owner-signed config
// authorises and refuses.
func TestAttackRecoverScriptEditedManifest(t *testing.T) {
	script := recoverScript(t)
	dir := t.TempDir()
	writeRecoverTree(t, dir)
	n := backupFolder(t, dir)
	repoDir := filepath.Join(n.tr.Dir, "repo")
	name := filepath.Join(repoDir, "snapshots", n.m.ID)
	doc, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	year := []byte(n.m.Time.Format("2006") + "-")
	if !bytes.Contains(doc, year) {
		t.Fatalf("manifest has no %q", year)
	}
	edited := bytes.Replace(doc, year, []byte("2099-"), 1)
	if err := os.Chmod(name, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, edited, 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "edited")
	stderr, code := runRecover(t, script, "dir", repoDir, n.tr.Keys.Identity, n.m.ID, "docs", out)
	t.Logf("exit %d: %s", code, stderr)
	refused := code == 3 && strings.Contains(stderr, "signature does not verify")
	if !refused {
		t.Errorf("edited manifest: exit %d, want 3 naming the signature: %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(out, "a.txt")); err == nil {
		t.Error("the script restored files from an edited manifest")
	}
	// Put the genuine manifest back: the data was never at risk.
	if err := os.WriteFile(name, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	record(t, "recovery script: bucket writer edits a manifest", refused, n.lost(t))
}

func writeRecoverTree(t *testing.T, dir string) {
	t.Helper()
	for name, body := range map[string]string{
		"a.txt":               "invoice INV-2026-000121\n",
		"sub/b.csv":           strings.Repeat("vendor;amount\n", 500),
		"sub/deeper/c.json":   `{"invoice": "INV-2026-000122", "total": "12.50"}`,
		"Ünïcødé/naïve ü.txt": "unicode name\n",
	} {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("sub/b.csv", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
}

// TestRecoverScriptWholeTree: the script's dir mode rebuilds a generated
// tree (nested folders of several modes, a 3 MiB random file, compressible
// and empty files, unicode names, relative, dangling and absolute
// symlinks, sub-second times) and names that a shell must not
// misread (a newline, a backslash, quotes, a leading dash, $(...)), byte
// for byte with modes and times. A pack whose bytes changed stops it with
// exit status 3 before any file is written.
func TestRecoverScriptWholeTree(t *testing.T) {
	script := recoverScript(t)
	dir := filepath.Join(t.TempDir(), "tree")
	if _, err := fixture.WriteTree(dir, fixture.TreeSpec{Files: 300, BigFileSize: 3 << 20, Seed: 11}); err != nil {
		t.Fatal(err)
	}
	odd := filepath.Join(dir, "odd names")
	if err := os.Mkdir(odd, 0o750); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"line\nbreak.txt", `back\slash.txt`, "-dash.txt", `it's "quoted" $(touch pwned) ;.txt`, "tab\there"} {
		if err := os.WriteFile(filepath.Join(odd, name), []byte("invoice "+name), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	sticky := filepath.Join(dir, "sticky")
	if err := os.Mkdir(sticky, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(sticky, 0o1777); err != nil {
		t.Fatal(err)
	}
	n := backupFolder(t, dir)
	repoDir := filepath.Join(n.tr.Dir, "repo")
	out := filepath.Join(t.TempDir(), "out")
	if stderr, code := runRecover(t, script, "dir", repoDir, n.tr.Keys.Identity, n.m.ID, "docs", out); code != 0 {
		t.Fatalf("recover: exit %d: %s", code, stderr)
	}
	if err := fixture.CompareTrees(dir, out); err != nil {
		t.Fatalf("the script's restore differs from the original: %v", err)
	}

	// One changed byte in a data pack: refused before anything is written.
	packs, err := filepath.Glob(filepath.Join(repoDir, "data", "*", "*"))
	if err != nil || len(packs) == 0 {
		t.Fatalf("no packs: %v", err)
	}
	for _, p := range packs {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 1
		os.Chmod(p, 0o600)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad")
	stderr, code := runRecover(t, script, "dir", repoDir, n.tr.Keys.Identity, n.m.ID, "docs", bad)
	if code != 3 || !strings.Contains(stderr, "does not match its name") {
		t.Errorf("changed packs: exit %d, want 3 naming the pack: %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(bad, "odd names")); err == nil {
		t.Error("the script wrote files from changed packs")
	}
}

// BenchmarkRecoverScript times the script's dir mode on a generated tree
// of COFFER_RECOVER_FILES files (default 2,000; doc/recover-without-coffer.md
// reports 20,000) plus one random file of COFFER_RECOVER_BIG bytes, with
// COFFER_RECOVER_SCRIPT instead of the document's
// script (to time an older version of it). The tree is written and backed
// up once, outside the timing.
func BenchmarkRecoverScript(b *testing.B) {
	files := 2000
	if s := os.Getenv("COFFER_RECOVER_FILES"); s != "" {
		if _, err := fmt.Sscan(s, &files); err != nil {
			b.Fatalf("COFFER_RECOVER_FILES: %v", err)
		}
	}
	var big int64
	if s := os.Getenv("COFFER_RECOVER_BIG"); s != "" {
		if _, err := fmt.Sscan(s, &big); err != nil {
			b.Fatalf("COFFER_RECOVER_BIG: %v", err)
		}
	}
	dir := filepath.Join(b.TempDir(), "tree")
	st, err := fixture.WriteTree(dir, fixture.TreeSpec{Files: files, BigFileSize: big, Seed: 20000})
	if err != nil {
		b.Fatal(err)
	}
	tr := testrepo.New(b)
	if _, err := backup.Run(context.Background(), backup.Options{Repo: tr.Host(b), Signing: tr.Signing,
		Sources: []source.Source{&dirkind.Source{SourceName: "docs", Path: dir}}}); err != nil {
		b.Fatalf("backup: %v", err)
	}
	n := tr
	script := os.Getenv("COFFER_RECOVER_SCRIPT")
	if script == "" {
		script = recoverScript(b)
	}
	repoDir := filepath.Join(n.Dir, "repo")
	b.Logf("tree: %d files, %d folders, %d symlinks, %d bytes", st.Files, st.Dirs, st.Symlinks, st.Bytes)
	b.ResetTimer()
	for i := range b.N {
		out := filepath.Join(b.TempDir(), fmt.Sprint("out", i))
		start := time.Now()
		cmd := exec.Command("bash", script, "dir", repoDir, n.Keys.Identity, "latest", "docs", out)
		if msg, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("recover: %v: %s", err, msg)
		}
		b.Logf("recovered %d files in %s", st.Files, time.Since(start).Round(time.Millisecond))
		b.StopTimer()
		if err := fixture.CompareTrees(dir, out); err != nil {
			b.Fatal(err)
		}
		os.RemoveAll(out)
		b.StartTimer()
	}
}

// TestRecoverScriptRepacked: after coffer prune repacked the packs a kept
// snapshot uses only partly and a later prune deleted them, the recovery
// script finds the chunks through the signed repack record (step 1b), in
// both its dir and file modes, and rebuilds the folder identically.
func TestRecoverScriptRepacked(t *testing.T) {
	script := recoverScript(t)
	ctx := context.Background()
	dir := t.TempDir()
	writeRecoverTree(t, dir)
	big := make([]byte, 3<<20)
	for i := range big {
		big[i] = byte(i*7 + i/4096)
	}
	if err := os.WriteFile(filepath.Join(dir, "big.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	tr := testrepo.New(t)
	run := func() *repo.Manifest {
		res, err := backup.Run(ctx, backup.Options{Repo: tr.Host(t), Signing: tr.Signing,
			Sources: []source.Source{&dirkind.Source{SourceName: "docs", Path: dir}}})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
		return res.Manifest
	}
	// The first snapshot also holds 8 MiB that the second does not.
	extra := filepath.Join(dir, "extra.bin")
	noise := make([]byte, 8<<20)
	for i := range noise {
		noise[i] = byte(i*13 + i/999 + i/65536)
	}
	if err := os.WriteFile(extra, noise, 0o644); err != nil {
		t.Fatal(err)
	}
	run()
	if err := os.Remove(extra); err != nil {
		t.Fatal(err)
	}
	m := run()
	full, err := repo.Open(ctx, tr.Store, repo.OpenOptions{Owner: tr.Owner.Public(), Signing: tr.Signing, Identities: tr.Identities})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := retention.Forget(ctx, full, retention.Policy{Last: 1}, retention.ForgetOptions{}); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the first repacks, the second deletes the old packs
		res, err := retention.Prune(ctx, full, retention.PruneOptions{Now: time.Now().Add(time.Hour), GraceSet: true,
			Repack: true, RepackThreshold: 0.3})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("prune: repack %+v", res.Repack)
	}
	gone := 0
	for _, p := range m.Packs {
		if _, err := tr.Store.Stat(ctx, p.Name()); err != nil {
			gone++
		}
	}
	if gone == 0 {
		t.Fatal("no pack of the kept snapshot was repacked: the test tests nothing")
	}
	repoDir := filepath.Join(tr.Dir, "repo")
	out := filepath.Join(t.TempDir(), "out")
	if stderr, code := runRecover(t, script, "dir", repoDir, tr.Keys.Identity, m.ID, "docs", out); code != 0 {
		t.Fatalf("recover a snapshot whose packs were repacked: exit %d: %s", code, stderr)
	}
	if err := fixture.CompareTrees(dir, out); err != nil {
		t.Fatalf("the script's restore differs from the original: %v", err)
	}
	one := filepath.Join(t.TempDir(), "big.bin")
	if stderr, code := runRecover(t, script, "file", repoDir, tr.Keys.Identity, m.ID, "docs", "big.bin", one); code != 0 {
		t.Fatalf("recover one file: exit %d: %s", code, stderr)
	}
	if b, err := os.ReadFile(one); err != nil || !bytes.Equal(b, big) {
		t.Fatalf("recovered big.bin differs (%v)", err)
	}
}

// TestRecoverScriptRepackedTwice: a pack that a repack record wrote can be
// repacked in turn and deleted. A snapshot that lists the first old pack
// then reads through both records (old pack → first record's new pack,
// gone → second record's new pack); the script must follow the chain as
// coffer does.
func TestRecoverScriptRepackedTwice(t *testing.T) {
	script := recoverScript(t)
	ctx := context.Background()
	dir := t.TempDir()
	fill := func(name string, n, mul int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i*mul + i/4093 + i/65521)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
		return b
	}
	x := fill("x.bin", 300_000, 3)
	fill("y.bin", 3<<20, 5)
	fill("z.bin", 8<<20, 13)
	tr := testrepo.New(t)
	run := func() *repo.Manifest {
		res, err := backup.Run(ctx, backup.Options{Repo: tr.Host(t), Signing: tr.Signing,
			Sources: []source.Source{&dirkind.Source{SourceName: "docs", Path: dir}}})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
		return res.Manifest
	}
	run() // x, y, z
	os.Remove(filepath.Join(dir, "z.bin"))
	run() // x, y
	os.Remove(filepath.Join(dir, "y.bin"))
	m := run() // x: lists the first backup's pack
	full, err := repo.Open(ctx, tr.Store, repo.OpenOptions{Owner: tr.Owner.Public(), Signing: tr.Signing, Identities: tr.Identities})
	if err != nil {
		t.Fatal(err)
	}
	prune := func() {
		t.Helper()
		res, err := retention.Prune(ctx, full, retention.PruneOptions{Now: time.Now().Add(time.Hour), GraceSet: true,
			Repack: true, RepackThreshold: 0.3})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("prune: repack %+v", res.Repack)
	}
	for _, keep := range []int{2, 1} {
		if _, err := retention.Forget(ctx, full, retention.Policy{Last: keep}, retention.ForgetOptions{}); err != nil {
			t.Fatal(err)
		}
		prune() // repacks
		prune() // deletes the old packs
	}
	rks, bad, err := full.Repacks(ctx)
	if err != nil || len(bad) > 0 {
		t.Fatal(err, bad)
	}
	chained := false
	for _, rk := range rks {
		for _, p := range rk.Packs {
			if _, err := tr.Store.Stat(ctx, p.Name()); err != nil {
				chained = true
			}
		}
	}
	if len(rks) < 2 || !chained {
		t.Fatalf("%d repack records, a new pack repacked in turn: %v: the test tests nothing", len(rks), chained)
	}
	repoDir := filepath.Join(tr.Dir, "repo")
	one := filepath.Join(t.TempDir(), "x.bin")
	if stderr, code := runRecover(t, script, "file", repoDir, tr.Keys.Identity, m.ID, "docs", "x.bin", one); code != 0 {
		t.Fatalf("recover a file repacked twice: exit %d: %s", code, stderr)
	}
	if b, err := os.ReadFile(one); err != nil || !bytes.Equal(b, x) {
		t.Fatalf("recovered x.bin differs (%v)", err)
	}
}

package attacks

// NAMES: names that are not UTF-8, names that try to forge log lines, and
// restores that a catalog signed by the backup host (what a thief of the
// host key can publish) or a local user racing the restore tries to turn
// against the restore host.

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cofferhq/coffer/backup"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/internal/testing/fixture"
	"github.com/cofferhq/coffer/internal/testing/testrepo"
	"github.com/cofferhq/coffer/internal/testing/testutil"
	"github.com/cofferhq/coffer/restore"
	"github.com/cofferhq/coffer/source"
	dirkind "github.com/cofferhq/coffer/source/dir"
	"github.com/cofferhq/coffer/storage"
)

// namesRepo is a repository with one snapshot of a folder source "docs".
type namesRepo struct {
	tr   *testrepo.Repo
	dir  string // the backed-up folder
	m    *repo.Manifest
	ctx  context.Context
	host *repo.Repository
}

func backupFolder(t *testing.T, dir string) *namesRepo {
	t.Helper()
	ctx := context.Background()
	tr := testrepo.New(t)
	host := tr.Host(t)
	res, err := backup.Run(ctx, backup.Options{Repo: host, Signing: tr.Signing,
		Sources: []source.Source{&dirkind.Source{SourceName: "docs", Path: dir}}})
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	return &namesRepo{tr: tr, dir: dir, m: res.Manifest, ctx: ctx, host: host}
}

// source opens the source "docs" of m as a restore operator, over st (the
// repository's own store when nil).
func (n *namesRepo) source(t *testing.T, m *repo.Manifest, st storage.Store) (*restore.Source, error) {
	t.Helper()
	if st == nil {
		st = n.tr.Store
	}
	r, err := repo.Open(n.ctx, st, repo.OpenOptions{Owner: n.tr.Owner.Public(), Identities: n.tr.Identities})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := restore.Load(n.ctx, r, m)
	if err != nil {
		return nil, err
	}
	return snap.Source("docs")
}

// lost reports whether the backed-up folder no longer restores exactly.
func (n *namesRepo) lost(t *testing.T) bool {
	t.Helper()
	src, err := n.source(t, n.m, nil)
	if err != nil {
		t.Logf("lost: %v", err)
		return true
	}
	out := filepath.Join(t.TempDir(), "check")
	if _, err := restore.RestoreDir(n.ctx, src, out, restore.DirOptions{}); err != nil {
		t.Logf("lost: restore: %v", err)
		return true
	}
	if err := fixture.CompareTrees(n.dir, out); err != nil {
		t.Logf("lost: %v", err)
		return true
	}
	return false
}

// TestAttackNonUTF8Names: two files whose names are not UTF-8 and differ
// only in one byte, in one folder (with json.Marshal alone both became
// "invoice-\uFFFD.pdf": the source could not be restored while backup and
// verify --decrypt reported success), a folder and a link target that are
// not UTF-8. Backup, verify --decrypt and restore keep every byte.
// Detected here means defeated: the names come back exactly.
func TestAttackNonUTF8Names(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"invoice-\xff.pdf", "invoice-\xfe.pdf", "latin1-\xe9t\xe9.csv"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("contents of "+name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "dir-\x80"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "dir-\x80", "in-\x81"), []byte("inside"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("invoice-\xff.pdf", filepath.Join(dir, "link-\xfe")); err != nil {
		t.Fatal(err)
	}
	n := backupFolder(t, dir)

	r, err := repo.Open(n.ctx, n.tr.Store, repo.OpenOptions{Owner: n.tr.Owner.Public(), Identities: n.tr.Identities})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := restore.Verify(n.ctx, r, nil, restore.Decrypt)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Errorf("verify --decrypt: %+v", rep.Problems)
	}
	out := filepath.Join(t.TempDir(), "out")
	src, err := n.source(t, n.m, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, rerr := restore.RestoreDir(n.ctx, src, out, restore.DirOptions{})
	exact := rerr == nil && fixture.CompareTrees(dir, out) == nil
	if exact {
		// CompareTrees keys paths by their bytes; check the names too.
		got, want := listNames(t, out), listNames(t, dir)
		exact = strings.Join(got, "\x00") == strings.Join(want, "\x00")
		if !exact {
			t.Errorf("names differ: got %q, want %q", got, want)
		}
	} else {
		t.Errorf("restore: %v; compare: %v", rerr, fixture.CompareTrees(dir, out))
	}
	record(t, "names: two non-UTF-8 names in one folder restore byte for byte", exact && rep.OK(), !exact || n.lost(t))
}

func listNames(t *testing.T, root string) []string {
	t.Helper()
	var names []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil {
			rel, _ := filepath.Rel(root, p)
			names = append(names, rel)
		}
		return nil
	})
	sort.Strings(names)
	return names
}

// forgeSnapshot publishes, with the backup host's keys only (signing key,
// recipients, derived chunk key: what a thief of the host holds), a
// snapshot of the same packs as base whose catalog is cat.
func forgeSnapshot(t *testing.T, n *namesRepo, base *repo.Manifest, cat *repo.Catalog) *repo.Manifest {
	t.Helper()
	ctx := n.ctx
	id := repo.NewID()
	var buf bytes.Buffer
	enc := repo.NewCatalogEncoder(&buf, id)
	for _, s := range cat.Sources {
		if err := enc.Source(s.Name, s.Kind, s.Meta); err != nil {
			t.Fatal(err)
		}
		for i := range s.Entries {
			if err := enc.Entry(&s.Entries[i]); err != nil {
				t.Fatal(err)
			}
		}
	}
	srcs, sizes, err := enc.Close()
	if err != nil {
		t.Fatal(err)
	}
	plain := buf.Bytes()
	idf, err := n.host.ChunkIDFunc(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rcpts, err := n.host.Recipients()
	if err != nil {
		t.Fatal(err)
	}
	pb := repo.NewPackBuilder(len(plain) + 4096)
	ic := pb.Add(idf(plain), plain, int64(len(plain)), false)
	ct, err := repo.Encrypt(pb.Finish(), rcpts...)
	if err != nil {
		t.Fatal(err)
	}
	sum := repo.HashHex(ct)
	if err := n.tr.Store.Put(ctx, repo.PackName(sum), bytes.NewReader(ct), int64(len(ct)), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	root := repo.CatalogRoot{Version: repo.Version, Snapshot: id, Size: int64(len(plain)), SHA256: repo.HashHex(plain),
		Chunks: []repo.ChunkRef{{ID: ic.ID, Pack: sum, Offset: ic.Offset, Length: ic.Length, Raw: ic.Raw}}}
	ref, err := repo.PutSealed(ctx, n.tr.Store, repo.CatalogPrefix, root, rcpts...)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := repo.PutPrivate(ctx, n.tr.Store, &repo.Private{Version: repo.Version, Snapshot: id, Host: "forged", Sources: sizes}, rcpts...)
	if err != nil {
		t.Fatal(err)
	}
	m := *base
	m.ID, m.Time, m.Catalog, m.Sources, m.Indexes, m.Private, m.Seen = id, time.Now().UTC(), ref, srcs, nil, priv, []string{base.ID}
	m.Packs = append(append([]repo.PackRef(nil), base.Packs...), repo.PackRef{SHA256: sum, Size: int64(len(ct))})
	sort.Slice(m.Packs, func(i, j int) bool { return m.Packs[i].SHA256 < m.Packs[j].SHA256 })
	if err := repo.WriteManifest(ctx, n.tr.Store, &m, n.tr.Signing); err != nil {
		t.Fatal(err)
	}
	return &m
}

// TestAttackDuplicateNames: a catalog signed by the host key that lists
// one name twice (what the old encoding made of two non-UTF-8 names, or
// what a thief of the host key writes) is reported by verify --decrypt as
// a source that would not restore, and a restore refuses it before
// writing anything.
func TestAttackDuplicateNames(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"invoice-1.pdf", "invoice-2.pdf"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("contents of "+name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	n := backupFolder(t, dir)
	src, err := n.source(t, n.m, nil)
	if err != nil {
		t.Fatal(err)
	}
	sc := *src.Catalog()
	sc.Entries = append([]repo.Entry(nil), sc.Entries...)
	for i := range sc.Entries {
		if strings.HasPrefix(sc.Entries[i].Path, "invoice-") {
			sc.Entries[i].Path = "invoice-\ufffd.pdf"
		}
	}
	forged := forgeSnapshot(t, n, n.m, &repo.Catalog{Version: repo.Version, Sources: []repo.SourceCatalog{sc}})

	r, err := repo.Open(n.ctx, n.tr.Store, repo.OpenOptions{Owner: n.tr.Owner.Public(), Identities: n.tr.Identities})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := restore.Verify(n.ctx, r, []string{forged.ID}, restore.Decrypt)
	if err != nil {
		t.Fatal(err)
	}
	verifyFound := false
	for _, p := range rep.Problems {
		if strings.Contains(p.Error, `source "docs" would not restore: "invoice-`+"\ufffd"+`.pdf" is listed twice`) &&
			len(p.Snapshots) == 1 && p.Snapshots[0] == repo.ShortID(forged.ID) {
			verifyFound = true
		}
	}
	if !verifyFound {
		t.Errorf("verify --decrypt did not report the duplicate: %+v", rep.Problems)
	}
	fsrc, err := n.source(t, forged, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	_, rerr := restore.RestoreDir(n.ctx, fsrc, out, restore.DirOptions{})
	var ie *repo.IntegrityError
	restoreRefused := errors.As(rerr, &ie) && strings.Contains(rerr.Error(), "is listed twice")
	if !restoreRefused {
		t.Errorf("restore of the forged snapshot: %v, want an integrity error naming the duplicate", rerr)
	}
	if _, err := os.Lstat(out); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the refused restore created its target: %v", err)
	}
	record(t, "names: catalog listing one name twice (host key) is reported by verify --decrypt and refused by restore",
		verifyFound && restoreRefused, n.lost(t))
}

func runCoffer(t *testing.T, bin, dir string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "COFFER_CONFIG=", "COFFER_REPO=", "COFFER_IDENTITY=", "COFFER_SIGNING_KEY=", "COFFER_OWNER_KEY=",
		"COFFER_STATE_DIR="+filepath.Join(dir, "state"))
	return runCommand(t, cmd)
}

// TestAttackNewlineForgesLogLine: a local user who can write into a
// backed-up folder names a file so that the backup's warning about it
// would print a second line, "coffer: error: ...", that log scrapers and
// operators read as coffer's own. Every name in a message is quoted, so
// the forged text stays inside one warning line.
func TestAttackNewlineForgesLogLine(t *testing.T) {
	work := t.TempDir()
	bin := testutil.CofferBinary(t)
	if _, e, code := runCoffer(t, bin, work, "keygen", "--out", "keys"); code != 0 {
		t.Fatalf("keygen: %s", e)
	}
	if _, e, code := runCoffer(t, bin, work, "--repo", "repo", "init", "--owner-key", "keys/owner/owner.key", "-R", "keys/recipients.txt", "--host", "keys/signing.pub"); code != 0 {
		t.Fatalf("init: %s", e)
	}
	src := filepath.Join(work, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "invoice.pdf"), []byte("invoice"), 0o644); err != nil {
		t.Fatal(err)
	}
	const forged = "coffer: error: backup failed, restore from tape"
	// A named pipe is skipped with a warning that names it.
	if err := unix.Mkfifo(filepath.Join(src, "x\n"+forged+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := runCoffer(t, bin, work, "--repo", "repo", "backup", "--signing-key", "keys/host/signing.key", "docs=dir:src")
	forgedLine := false
	warned := false
	for _, line := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(line, "coffer: error:") {
			forgedLine = true
		}
		if strings.HasPrefix(line, "coffer: warning:") && strings.Contains(line, `"x\n`+forged+`\n"`) {
			warned = true
		}
	}
	if forgedLine || !warned {
		t.Errorf("backup (exit %d) stderr:\n%s", code, stderr)
	}
	if code != 0 {
		t.Errorf("backup exit %d, want 0 (a skipped pipe is a warning)", code)
	}
	record(t, "names: a file name with a newline cannot forge a coffer: error line", !forgedLine && warned, false)
}

// hostileSource writes the entries given, files with their path as
// content: what any code running on the backup host (a thief of the host
// key included) can make a snapshot hold, signed by the host key.
type hostileSource []source.Entry

func (s hostileSource) Name() string { return "docs" }
func (s hostileSource) Kind() string { return "dir" }
func (s hostileSource) Backup(ctx context.Context, w source.Writer) error {
	for _, e := range s {
		var err error
		if e.Type == source.TypeFile {
			err = w.WriteFile(ctx, e, strings.NewReader("#!/bin/sh\nid\n"))
		} else {
			err = w.WriteEntry(ctx, e)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// TestAttackSetuidFromHostCatalog: a thief of the host key publishes a
// snapshot holding a setuid root-owned executable (and a setuid and a
// setgid file owned by another user). A restore without --preserve-owner
// gives every file to the restoring user and clears setuid and setgid, so
// the least trusted machine cannot plant a setuid binary on a restore
// host.
func TestAttackSetuidFromHostCatalog(t *testing.T) {
	ctx := context.Background()
	tr := testrepo.New(t)
	mt := time.Unix(1_700_000_000, 0)
	res, err := backup.Run(ctx, backup.Options{Repo: tr.Host(t), Signing: tr.Signing, Sources: []source.Source{hostileSource{
		{Path: ".", Type: source.TypeDir, Mode: 0o755, ModTime: mt},
		{Path: "rootshell", Type: source.TypeFile, Mode: 0o755 | fs.ModeSetuid, ModTime: mt, UID: 0, GID: 0, User: "root", Group: "root"},
		{Path: "othershell", Type: source.TypeFile, Mode: 0o755 | fs.ModeSetuid, ModTime: mt, UID: 4242, GID: 4242},
		{Path: "groupshell", Type: source.TypeFile, Mode: 0o755 | fs.ModeSetgid, ModTime: mt, UID: 0, GID: 0},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(ctx, tr.Store, repo.OpenOptions{Owner: tr.Owner.Public(), Identities: tr.Identities})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := restore.Load(ctx, r, res.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	src, err := snap.Source("docs")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	if _, err := restore.RestoreDir(ctx, src, out, restore.DirOptions{}); err != nil {
		t.Fatal(err)
	}
	me := uint32(os.Geteuid())
	safe := true
	for _, name := range []string{"rootshell", "othershell", "groupshell"} {
		fi, err := os.Lstat(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode()&(fs.ModeSetuid|fs.ModeSetgid) != 0 || st.Uid != me {
			t.Errorf("%s: mode %v, owner %d; want no setuid/setgid bit and owner %d (the restoring user)", name, fi.Mode(), st.Uid, me)
			safe = false
		}
	}
	record(t, "restore: setuid root-owned file from a host-key catalog, restored without --preserve-owner", safe, false)
}

// TestAttackForceOverMount: the old target of a forced restore holds a
// mount point (a tmpfs with data). The restore refuses before anything is
// moved; nothing on the mounted file system is removed.
func TestAttackForceOverMount(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root (CI runs as root); the attack was not tried")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "invoice.pdf"), []byte("invoice"), 0o644); err != nil {
		t.Fatal(err)
	}
	n := backupFolder(t, dir)
	target := filepath.Join(t.TempDir(), "target")
	mnt := filepath.Join(target, "shared", "mnt")
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=4m"); err != nil {
		t.Skipf("cannot mount a tmpfs (%v); the attack was not tried", err)
	}
	// Unmount wherever the mount ended up (a restore that moved the old
	// target aside moved the mount with it): never leave one behind.
	t.Cleanup(func() { unmountBelow(t, filepath.Dir(target)) })
	precious := filepath.Join(mnt, "other-filesystem.db")
	if err := os.WriteFile(precious, []byte("not coffer's"), 0o600); err != nil {
		t.Fatal(err)
	}
	src, err := n.source(t, n.m, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, rerr := restore.RestoreDir(n.ctx, src, target, restore.DirOptions{Force: true})
	refused := errors.Is(rerr, restore.ErrTargetMount) &&
		strings.Contains(rerr.Error(), "target holds a mount point: \""+mnt+"\" is mounted inside") &&
		strings.Contains(rerr.Error(), "nothing was changed")
	if !refused {
		t.Errorf("restore --force over a mount point: %v", rerr)
	}
	b, err := os.ReadFile(precious)
	kept := err == nil && string(b) == "not coffer's"
	if !kept {
		t.Errorf("the mounted file system lost its file: %v", err)
	}
	record(t, "restore: --force over a target holding a mount point", refused && kept, !kept || n.lost(t))
}

// unmountBelow unmounts every mount point below root.
func unmountBelow(t *testing.T, root string) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Errorf("read the mount table: %v", err)
		return
	}
	var mps []string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], root+"/") {
			mps = append(mps, f[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(mps))) // deepest first
	for _, mp := range mps {
		if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", mp, err)
		}
	}
}

// swapStore calls hook before a pack is first looked at, until the hook
// reports it did its work: by then the restore has created every folder
// of the tree and opened at most one file.
type swapStore struct {
	storage.Store
	mu   sync.Mutex
	hook func() bool
	done bool
}

func (s *swapStore) Stat(ctx context.Context, name string) (storage.ObjectInfo, error) {
	s.mu.Lock()
	if !s.done && strings.HasPrefix(name, repo.DataPrefix) {
		s.done = s.hook()
	}
	s.mu.Unlock()
	return s.Store.Stat(ctx, name)
}

// TestAttackParentSwappedDuringRestore: while a restore runs, a folder it
// created is swapped for a symlink to a folder outside the target (by a
// process of the restoring user, or anyone who can write there). The
// restore creates everything relative to the staging folder's handle
// without following symlinks, so it fails instead of writing outside.
func TestAttackParentSwappedDuringRestore(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"a.txt", "sub/b.txt", "sub/c.txt"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("contents of "+f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	n := backupFolder(t, dir)
	outside := t.TempDir()
	parent := t.TempDir()
	st := &swapStore{Store: n.tr.Store}
	st.hook = func() bool {
		subs, _ := filepath.Glob(filepath.Join(parent, ".coffer-restore-*", "sub"))
		if len(subs) != 1 {
			return false
		}
		if err := os.Rename(subs[0], subs[0]+".moved"); err != nil {
			t.Error(err)
		}
		if err := os.Symlink(outside, subs[0]); err != nil {
			t.Error(err)
		}
		return true
	}
	src, err := n.source(t, n.m, st)
	if err != nil {
		t.Fatal(err)
	}
	_, rerr := restore.RestoreDir(n.ctx, src, filepath.Join(parent, "target"), restore.DirOptions{})
	if !st.done {
		t.Fatal("the folder was never swapped")
	}
	des, _ := os.ReadDir(outside)
	refused := errors.Is(rerr, restore.ErrPathSwapped) && strings.Contains(rerr.Error(), `create "sub/`)
	if !refused || len(des) > 0 {
		t.Errorf("restore: %v; files written outside the target: %d", rerr, len(des))
	}
	record(t, "restore: parent folder swapped for a symlink during the restore", refused && len(des) == 0, n.lost(t))
}

// TestAttackTargetSymlink: a restore target that is a symlink (planted by
// someone who can write beside it) is refused as such, even with --force,
// and what it points to is untouched.
func TestAttackTargetSymlink(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "invoice.pdf"), []byte("invoice"), 0o644); err != nil {
		t.Fatal(err)
	}
	n := backupFolder(t, dir)
	victim := t.TempDir()
	if err := os.WriteFile(filepath.Join(victim, "config.yaml"), []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(t.TempDir(), "restore-here")
	if err := os.Symlink(victim, target); err != nil {
		t.Fatal(err)
	}
	src, err := n.source(t, n.m, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, rerr := restore.RestoreDir(n.ctx, src, target, restore.DirOptions{Force: true})
	refused := errors.Is(rerr, restore.ErrTargetSymlink) && strings.HasPrefix(rerr.Error(), "target is a symlink: ")
	b, err := os.ReadFile(filepath.Join(victim, "config.yaml"))
	l, lerr := os.Readlink(target)
	untouched := err == nil && string(b) == "keep me" && lerr == nil && l == victim
	if !refused || !untouched {
		t.Errorf("restore --force into a symlink: %v (victim untouched: %v)", rerr, untouched)
	}
	record(t, "restore: target is a symlink", refused && untouched, n.lost(t))
}

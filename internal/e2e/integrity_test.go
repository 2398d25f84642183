package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/internal/testing/fixture"
	"github.com/cofferhq/coffer/restore"
)

// damageEnv is a small repository with two snapshots: the first of a tree
// with ~40 MB of mostly random data (>= 3 packs of the default 16 MiB; the
// pack size is fixed in the signed config), the second after adding 1% new
// files.
type damageEnv struct {
	*env
	dir           string
	first, second *repo.Manifest
}

func newDamageEnv(t *testing.T) *damageEnv {
	t.Helper()
	e := localEnv(t)
	dir, _ := tree(t, fixture.TreeSpec{Files: 200, BigFileSize: 36 << 20, Seed: 11})
	d := &damageEnv{env: e, dir: dir}
	d.first = e.backupDir(t, dir, true).Manifest
	if _, err := fixture.AddFiles(dir, 0.01, 3); err != nil {
		t.Fatal(err)
	}
	d.second = e.backupDir(t, dir, true).Manifest
	if n := len(d.first.Packs); n < 3 {
		t.Fatalf("first snapshot has %d packs, want >= 3", n)
	}
	return d
}

// verify runs restore.Verify over every snapshot at depth with the restore
// repository (Decrypt) or the encrypt-only one (Quick, Read: no identity
// needed).
func (d *damageEnv) verify(t *testing.T, depth restore.Depth) *restore.Report {
	t.Helper()
	r := d.backupRepo
	if depth == restore.Decrypt {
		r = d.openRestore(t)
	}
	rep, err := restore.Verify(ctxT(t), r, nil, depth)
	if err != nil {
		t.Fatalf("verify %s: %v", depthName(depth), err)
	}
	return rep
}

func depthName(d restore.Depth) string { return [...]string{"quick", "read", "decrypt"}[d] }

// wantProblem asserts that rep names object (and, if given, that the
// problem lists snapshot) and returns the problem's error text.
func wantProblem(t *testing.T, rep *restore.Report, object, snapshot string) string {
	t.Helper()
	for _, p := range rep.Problems {
		if p.Object != object {
			continue
		}
		if snapshot != "" && !slices.Contains(p.Snapshots, repo.ShortID(snapshot)) {
			t.Errorf("verify %s: problem %q lists snapshots %v, want %s", rep.Depth, object, p.Snapshots, repo.ShortID(snapshot))
		}
		return p.Error
	}
	t.Errorf("verify %s: no problem names %s; problems: %+v", rep.Depth, object, rep.Problems)
	return ""
}

func wantClean(t *testing.T, rep *restore.Report) {
	t.Helper()
	if !rep.OK() {
		t.Fatalf("verify %s found problems: %+v", rep.Depth, rep.Problems)
	}
}

// dirState describes every entry below dir (path, mode, mtime, content
// hash or link target) so a test can tell whether anything changed.
func dirState(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintf(&b, "%s %v %d", rel, fi.Mode(), fi.ModTime().UnixNano())
		switch {
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, " %x", sha256.Sum256(data))
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			fmt.Fprintf(&b, " -> %s", l)
		}
		b.WriteByte('\n')
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, de := range des {
		out = append(out, de.Name())
	}
	sort.Strings(out)
	return out
}

// wantRestoreFails restores snapshot id (resolve, load, RestoreDir) twice:
// with Force over an existing target holding one file, and into an absent
// target. Both must fail, naming object when it is not ""; the existing
// target must be byte-identical afterwards, the absent one still absent,
// and no staging or old-target folder may be left beside them. When more
// than one object is damaged, objects lists every one the error may name.
func (d *damageEnv) wantRestoreFails(t *testing.T, id string, objects ...string) {
	t.Helper()
	parent := t.TempDir()
	existing := filepath.Join(parent, "existing")
	writeFile(t, filepath.Join(existing, "keep.txt"), "precious data that must survive\n")
	before := dirState(t, existing)
	_, err := d.restoreTo(t, id, existing, restore.DirOptions{Force: true})
	if err == nil {
		t.Fatalf("restore %s with --force over an existing target succeeded", repo.ShortID(id))
	}
	t.Logf("restore over existing target: %v", err)
	if len(objects) > 0 && !slices.Contains(objects, integrityObject(err)) {
		t.Errorf("restore error %q names %q, want an integrity error naming one of %s", err, integrityObject(err), objects)
	}
	if after := dirState(t, existing); after != before {
		t.Errorf("failed restore changed the target:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	absent := filepath.Join(parent, "absent")
	_, err = d.restoreTo(t, id, absent, restore.DirOptions{})
	if err == nil {
		t.Fatalf("restore %s into a new folder succeeded", repo.ShortID(id))
	}
	if len(objects) > 0 && !slices.Contains(objects, integrityObject(err)) {
		t.Errorf("restore error %q names %q, want one of %s", err, integrityObject(err), objects)
	}
	if _, err := os.Lstat(absent); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("failed restore left the target %s: %v", absent, err)
	}
	if got := names(t, parent); !slices.Equal(got, []string{"existing"}) {
		t.Errorf("failed restores left %v beside the target, want only [existing]", got)
	}
}

// flipByte returns b with the byte at i inverted.
func flipByte(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0xff
	return c
}

// TestE2EIntegrity damages a repository in each way of the acceptance
// list, one at a time (each undone and checked undone before the next), and
// checks that verify names the damaged object and that a restore of an
// affected snapshot fails without touching its target; then the verify
// depths (see testVerifyDepths) on the same repository.
func TestE2EIntegrity(t *testing.T) {
	t.Parallel()
	d := newDamageEnv(t)
	st := d.store
	wantClean(t, d.verify(t, restore.Decrypt))
	// The two biggest packs of the first snapshot (full 16 MiB packs).
	packs := slices.Clone(d.first.Packs)
	slices.SortFunc(packs, func(a, b repo.PackRef) int { return int(b.Size - a.Size) })
	pack0, pack1 := packs[0].Name(), packs[1].Name()
	t.Logf("packs: %s (%d bytes), %s (%d bytes)", pack0, packs[0].Size, pack1, packs[1].Size)
	firstName, secondName := repo.SnapshotName(d.first.ID), repo.SnapshotName(d.second.ID)

	// put replaces an object and returns how to undo it.
	put := func(t *testing.T, name string, b []byte) func() {
		orig := readObject(t, st, name)
		replaceObject(t, st, name, b)
		return func() { replaceObject(t, st, name, orig) }
	}
	del := func(t *testing.T, name string) func() {
		orig := readObject(t, st, name)
		deleteObject(t, st, name)
		return func() { replaceObject(t, st, name, orig) }
	}
	replayed := repo.NewID()

	cases := []struct {
		name     string
		damage   func(t *testing.T) (undo func())
		object   string // the object verify and restore must name
		other    string // a second damaged object a restore may name first
		snapshot string // the affected snapshot
		listed   bool   // verify lists snapshot beside the object (not for a manifest, which names it)
		restore  bool   // a restore of snapshot must fail
		errText  string // part of verify's error
		decrypt  bool   // also verify at decrypt depth
	}{
		{"flip a byte in the middle of a pack", func(t *testing.T) func() {
			b := readObject(t, st, pack0)
			return put(t, pack0, flipByte(b, len(b)/2))
		}, pack0, "", d.first.ID, true, true, "content hash does not match", true},
		{"truncate a pack", func(t *testing.T) func() {
			b := readObject(t, st, pack0)
			return put(t, pack0, b[:len(b)/2])
		}, pack0, "", d.first.ID, true, true, "size", false},
		{"delete a pack", func(t *testing.T) func() {
			return del(t, pack0)
		}, pack0, "", d.first.ID, true, true, "missing", false},
		{"swap two packs", func(t *testing.T) func() {
			a, b := readObject(t, st, pack0), readObject(t, st, pack1)
			replaceObject(t, st, pack0, b)
			replaceObject(t, st, pack1, a)
			return func() { replaceObject(t, st, pack0, a); replaceObject(t, st, pack1, b) }
		}, pack0, pack1, d.first.ID, true, true, "", true},
		{"replay an older manifest under a new name", func(t *testing.T) func() {
			name := repo.SnapshotName(replayed)
			replaceObject(t, st, name, readObject(t, st, firstName))
			return func() { deleteObject(t, st, name) }
		}, repo.SnapshotName(replayed), "", replayed, false, true, "replayed", false},
		{"edit a manifest field", func(t *testing.T) func() {
			b := readObject(t, st, secondName)
			edited := bytes.Replace(b, []byte(`"kind": "dir"`), []byte(`"kind": "diR"`), 1)
			if bytes.Equal(b, edited) {
				t.Fatalf("manifest has no source kind to edit:\n%s", b)
			}
			return put(t, secondName, edited)
		}, secondName, "", d.second.ID, false, true, "signature does not verify", false},
		{"flip a byte in the catalog", func(t *testing.T) func() {
			b := readObject(t, st, d.second.Catalog.Name)
			return put(t, d.second.Catalog.Name, flipByte(b, len(b)/2))
		}, d.second.Catalog.Name, "", d.second.ID, true, true, "content hash does not match", true},
		{"delete the index", func(t *testing.T) func() {
			return del(t, d.first.Indexes[0].Name)
		}, d.first.Indexes[0].Name, "", d.first.ID, true, false, "missing", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			undo := c.damage(t)
			defer func() {
				undo()
				wantClean(t, d.verify(t, restore.Read))
			}()
			depths := []restore.Depth{restore.Read}
			if c.decrypt {
				depths = append(depths, restore.Decrypt)
			}
			for _, depth := range depths {
				rep := d.verify(t, depth)
				listed := ""
				if c.listed {
					listed = c.snapshot
				}
				msg := wantProblem(t, rep, c.object, listed)
				if !strings.Contains(msg, c.errText) {
					t.Errorf("verify %s: problem %q, want it to say %q", depthName(depth), msg, c.errText)
				}
				t.Logf("verify %s: %d problem(s); %s: %s", depthName(depth), len(rep.Problems), c.object, msg)
			}
			if c.restore {
				objects := []string{c.object}
				if c.other != "" {
					objects = append(objects, c.other)
				}
				d.wantRestoreFails(t, c.snapshot, objects...)
			} else {
				// The index only serves deduplication; the catalog locates
				// every chunk, so the snapshot still restores intact.
				target := filepath.Join(t.TempDir(), "restored")
				if _, err := d.restoreTo(t, c.snapshot, target, restore.DirOptions{}); err != nil {
					t.Fatalf("restore without the index: %v", err)
				}
			}
		})
	}
	t.Run("depths", func(t *testing.T) { testVerifyDepths(t, d, packs[0]) })
}

// testVerifyDepths: Quick sees a deleted pack but not a flipped byte (the
// size is unchanged); Read sees the flipped byte; a pack replaced by a
// valid age file of the same size, encrypted to the repository's own
// recipient (the recipients are public), is caught by Read (ciphertext
// hash), by Decrypt, and by the chunk-id check of every restore path, which
// does not hash whole packs.
func testVerifyDepths(t *testing.T, d *damageEnv, ref repo.PackRef) {
	st := d.store
	pack := ref.Name()
	orig := readObject(t, st, pack)
	undo := func() { replaceObject(t, st, pack, orig) }

	t.Run("deleted", func(t *testing.T) {
		deleteObject(t, st, pack)
		defer undo()
		wantProblem(t, d.verify(t, restore.Quick), pack, d.first.ID)
	})
	t.Run("flipped", func(t *testing.T) {
		replaceObject(t, st, pack, flipByte(orig, len(orig)/2))
		defer undo()
		if rep := d.verify(t, restore.Quick); !rep.OK() {
			t.Errorf("quick verify read the contents? problems %+v", rep.Problems)
		}
		wantProblem(t, d.verify(t, restore.Read), pack, d.first.ID)
	})
	t.Run("forged", func(t *testing.T) {
		forged, chunk := forgePack(t, d.env, orig)
		if len(forged) != len(orig) {
			t.Fatalf("forged pack has %d bytes, the original %d", len(forged), len(orig))
		}
		replaceObject(t, st, pack, forged)
		defer undo()
		if rep := d.verify(t, restore.Quick); !rep.OK() {
			t.Errorf("quick verify: %+v", rep.Problems)
		}
		wantProblem(t, d.verify(t, restore.Read), pack, d.first.ID)
		wantProblem(t, d.verify(t, restore.Decrypt), pack, d.first.ID)

		// The restore path reads chunks by range and checks each chunk's
		// keyed id: the forged chunk must be refused there.
		r := d.openRestore(t)
		cr, err := r.NewChunkReader(ctxT(t), d.first)
		if err != nil {
			t.Fatal(err)
		}
		cref := repo.ChunkRef{ID: chunk.ID, Offset: chunk.Offset, Length: chunk.Length, Raw: chunk.Raw, Zstd: chunk.Zstd}
		_, err = cr.Read(ctxT(t), ref.SHA256, cref)
		if integrityObject(err) != pack || !strings.Contains(err.Error(), "does not match its id") {
			t.Errorf("ChunkReader.Read of the forged chunk: %v; want an integrity error naming %s: does not match its id", err, pack)
		}
		d.wantRestoreFails(t, d.first.ID, pack)
	})
}

// forgePack decrypts a pack with the identity, changes one byte in the
// middle of an uncompressed chunk and encrypts it again to the
// repository's recipients: a valid age file of the same size that an
// attacker who knows the recipients could write. It returns the forgery
// and the changed chunk.
func forgePack(t *testing.T, e *env, ct []byte) ([]byte, repo.IndexChunk) {
	t.Helper()
	r, err := age.Decrypt(bytes.NewReader(ct), e.ids...)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	chunks, err := repo.ParsePackTrailer(plain)
	if err != nil {
		t.Fatal(err)
	}
	var chunk repo.IndexChunk
	for _, c := range chunks {
		if !c.Zstd && c.Length > 1000 {
			chunk = c
			break
		}
	}
	if chunk.Length == 0 {
		t.Fatal("no uncompressed chunk in the pack")
	}
	plain[chunk.Offset+chunk.Length/2] ^= 0x01
	rcpt, err := age.ParseX25519Recipient(e.keys.Recipient)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	w, err := age.Encrypt(&out, rcpt)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(plain)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(out.Bytes())
	t.Logf("forged pack %s... (was %s...), chunk %s at %d", hex.EncodeToString(sum[:4]), repo.HashHex(ct)[:8], repo.ShortID(chunk.ID.String()), chunk.Offset)
	return out.Bytes(), chunk
}

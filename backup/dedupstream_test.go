package backup_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/backup"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/internal/testing/testrepo"
	"github.com/cofferhq/coffer/source"
	dirkind "github.com/cofferhq/coffer/source/dir"
)

// TestLoadDedupStreamed: the index a backup loads as a stream
// (LoadDedupFunc) is the one LoadDedup reads whole, pack for pack and
// chunk for chunk; an index object whose content does not match its
// reference is skipped by both, before any of its packs is passed on.
func TestLoadDedupStreamed(t *testing.T) {
	ctx := context.Background()
	tr := testrepo.New(t)
	data := t.TempDir()
	var refs []repo.ObjectRef
	for i := range 3 {
		if err := os.WriteFile(filepath.Join(data, "f"+string(rune('a'+i))), []byte(strings.Repeat("data of file ", 1000*(i+1))), 0o644); err != nil {
			t.Fatal(err)
		}
		res, err := backup.Run(ctx, backup.Options{Repo: tr.Host(t), Signing: tr.Signing,
			Sources: []source.Source{&dirkind.Source{SourceName: "docs", Path: data}}})
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, res.Manifest.Indexes...)
	}
	load := func() (whole, streamed *repo.Dedup, passed []repo.IndexPack) {
		t.Helper()
		r := tr.Host(t)
		ms, _, err := r.Manifests(ctx)
		if err != nil {
			t.Fatal(err)
		}
		s, err := r.Secrets(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if whole, err = r.LoadDedup(ctx, s.IndexIdentity, ms); err != nil {
			t.Fatal(err)
		}
		streamed, err = r.LoadDedupFunc(ctx, s.IndexIdentity, ms, func(ip *repo.IndexPack) error {
			passed = append(passed, *ip)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return whole, streamed, passed
	}
	same := func(what string, whole, streamed *repo.Dedup, passed []repo.IndexPack, packs int) {
		t.Helper()
		if len(passed) != len(whole.Packs) || len(passed) != packs || len(streamed.Packs) != 0 {
			t.Fatalf("%s: %d packs streamed (%d listed), %d read whole, want %d", what, len(passed), len(streamed.Packs), len(whole.Packs), packs)
		}
		for i, p := range passed {
			w := whole.Packs[i]
			if p.SHA256 != w.SHA256 || p.Size != w.Size || len(p.Chunks) != len(w.Chunks) {
				t.Fatalf("%s: pack %d streamed as %s (%d chunks), read whole as %s (%d)", what, i, p.SHA256, len(p.Chunks), w.SHA256, len(w.Chunks))
			}
			for j := range p.Chunks {
				if p.Chunks[j] != w.Chunks[j] {
					t.Fatalf("%s: pack %s chunk %d: %+v streamed, %+v whole", what, p.SHA256, j, p.Chunks[j], w.Chunks[j])
				}
			}
		}
		if strings.Join(whole.Skipped, "\n") != strings.Join(streamed.Skipped, "\n") || len(streamed.Retracted) != 0 {
			t.Fatalf("%s: skipped %q whole, %q streamed (retracted %q)", what, whole.Skipped, streamed.Skipped, streamed.Retracted)
		}
	}
	whole, streamed, passed := load()
	same("sound", whole, streamed, passed, 6) // each snapshot: a data pack, a catalog pack
	// The second snapshot's index object, replaced by the first's bytes.
	b, err := os.ReadFile(filepath.Join(tr.Dir, "repo", refs[0].Name))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tr.Dir, "repo", refs[1].Name), b, 0o644); err != nil {
		t.Fatal(err)
	}
	whole, streamed, passed = load()
	same("damaged", whole, streamed, passed, 4)
	if len(streamed.Skipped) != 1 || !strings.Contains(streamed.Skipped[0], refs[1].Name) {
		t.Fatalf("skipped %q, want the damaged index %s", streamed.Skipped, refs[1].Name)
	}
}

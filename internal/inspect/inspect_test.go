package inspect_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cofferhq/coffer/backup"
	"github.com/cofferhq/coffer/internal/fingerprint"
	"github.com/cofferhq/coffer/internal/inspect"
	"github.com/cofferhq/coffer/internal/keys"
	"github.com/cofferhq/coffer/internal/pathglob"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/internal/testing/countstore"
	"github.com/cofferhq/coffer/internal/testing/testrepo"
	"github.com/cofferhq/coffer/restore"
	"github.com/cofferhq/coffer/source"
	dirkind "github.com/cofferhq/coffer/source/dir"
	"github.com/cofferhq/coffer/storage"
)

// nights backs up a folder of invoices three times into a repository of
// small packs: night 2 changes INV-02, night 3 loses INV-03. It returns
// the repository opened with the identity through a store that counts
// reads, and the snapshots' manifests in time order.
func nights(t *testing.T) (*countstore.Store, *repo.Repository, []*repo.Manifest) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := storage.NewLocal(filepath.Join(dir, "repo"))
	if err != nil {
		t.Fatal(err)
	}
	g, owner, signing, ids := testrepo.Keys(t, filepath.Join(dir, "keys"))
	rs, err := keys.LoadRecipientsFile(g.Recipients)
	if err != nil {
		t.Fatal(err)
	}
	hp, err := keys.LoadHostPublic(g.SigningPub)
	if err != nil {
		t.Fatal(err)
	}
	small := func(c *repo.Config) { c.Packs.TargetSize = 64 << 10 }
	if _, err := repo.Init(ctx, st, repo.InitOptions{Owner: owner, Recipients: rs, Hosts: []keys.HostPublic{hp}}, small); err != nil {
		t.Fatal(err)
	}
	host, err := repo.Open(ctx, st, repo.OpenOptions{Owner: owner.Public(), Signing: signing})
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "src")
	rnd := rand.New(rand.NewPCG(3, 5))
	write := func(name string, n int) {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(rnd.Uint32())
		}
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 8 {
		write(fmt.Sprintf("inv/2026/INV-%02d.pdf", i), 90<<10)
	}
	var ms []*repo.Manifest
	night := func() {
		res, err := backup.Run(ctx, backup.Options{Repo: host, Signing: signing, Sources: []source.Source{&dirkind.Source{SourceName: "docs", Path: src}}})
		if err != nil {
			t.Fatalf("backup: %v", err)
		}
		ms = append(ms, res.Manifest)
		time.Sleep(10 * time.Millisecond) // distinct times
	}
	night()
	write("inv/2026/INV-02.pdf", 95<<10)
	night()
	if err := os.Remove(filepath.Join(src, "inv/2026/INV-03.pdf")); err != nil {
		t.Fatal(err)
	}
	night()
	cs := countstore.New(st)
	op, err := repo.Open(ctx, cs, repo.OpenOptions{Owner: owner.Public(), Identities: ids})
	if err != nil {
		t.Fatal(err)
	}
	return cs, op, ms
}

// TestWhichNight: find says in which snapshot INV-02 changed and INV-03
// vanished.
func TestWhichNight(t *testing.T) {
	_, r, ms := nights(t)
	pat, err := pathglob.Compile("INV-0[23]*")
	if err != nil {
		t.Fatal(err)
	}
	found, warns, err := inspect.Find(context.Background(), r, ms, pat, inspect.Range{})
	if err != nil || len(warns) > 0 {
		t.Fatalf("Find: %v %v", err, warns)
	}
	var got []string
	for _, f := range found {
		night := map[string]int{ms[0].ID: 1, ms[1].ID: 2, ms[2].ID: 3}[f.Snapshot]
		got = append(got, fmt.Sprintf("%d %s %s", night, f.Path, f.Status))
	}
	want := []string{
		"1 /inv/2026/INV-02.pdf added", "1 /inv/2026/INV-03.pdf added",
		"2 /inv/2026/INV-02.pdf changed", "2 /inv/2026/INV-03.pdf unchanged",
		"3 /inv/2026/INV-02.pdf unchanged", "3 /inv/2026/INV-03.pdf removed",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("found\n%q\nwant\n%q", got, want)
	}
	// A range that leaves out the first night lists nothing of it, but
	// compares the second night with it: INV-02 changed on night 2, it
	// was not added then, and INV-03 was there before.
	found, _, err = inspect.Find(context.Background(), r, ms, pat, inspect.Range{Since: ms[1].Time})
	if err != nil {
		t.Fatal(err)
	}
	got = nil
	for _, f := range found {
		night := map[string]int{ms[0].ID: 1, ms[1].ID: 2, ms[2].ID: 3}[f.Snapshot]
		got = append(got, fmt.Sprintf("%d %s %s", night, f.Path, f.Status))
	}
	if fmt.Sprint(got) != fmt.Sprint(want[2:]) {
		t.Errorf("Find since night 2:\n%q\nwant\n%q", got, want[2:])
	}
	// Since the last night: INV-03 vanished that night.
	found, _, err = inspect.Find(context.Background(), r, ms, pat, inspect.Range{Since: ms[2].Time})
	if err != nil {
		t.Fatal(err)
	}
	got = nil
	for _, f := range found {
		got = append(got, fmt.Sprintf("%s %s", f.Path, f.Status))
	}
	if want := []string{"/inv/2026/INV-02.pdf unchanged", "/inv/2026/INV-03.pdf removed"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Find since night 3:\n%q\nwant\n%q", got, want)
	}
}

// TestReadsNoPack: ls, find, diff and stats read manifests, catalogs (and
// the packs the catalogs' own chunks are in), never a pack that holds a
// file's contents.
func TestReadsNoPack(t *testing.T) {
	cs, r, ms := nights(t)
	ctx := context.Background()
	data := map[string]bool{} // packs holding file contents
	cats := make([]*repo.Catalog, len(ms))
	for i, m := range ms {
		c, err := r.ReadCatalog(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		cats[i] = c
		for p := range c.Packs() {
			data[repo.PackName(p)] = true
		}
	}
	if len(data) < 8 {
		t.Fatalf("%d data packs, want many", len(data))
	}
	pat, _ := pathglob.Compile("**")
	steps := []struct {
		name string
		run  func() error
	}{
		{"ls", func() error {
			m, err := restore.Resolve(ctx, r, "latest", time.Time{})
			if err != nil {
				return err
			}
			s, err := restore.Load(ctx, r, m)
			if err != nil {
				return err
			}
			es, err := inspect.List(s.Catalog, inspect.ListOptions{Source: "docs", Recursive: true})
			if len(es) != 9 { // inv, inv/2026, 7 files
				return fmt.Errorf("listed %d entries, want 9", len(es))
			}
			return err
		}},
		{"find", func() error {
			_, _, err := inspect.Find(ctx, r, ms, pat, inspect.Range{})
			return err
		}},
		{"diff", func() error {
			a, err := restore.Load(ctx, r, ms[0])
			if err != nil {
				return err
			}
			b, err := restore.Load(ctx, r, ms[2])
			if err != nil {
				return err
			}
			d, err := inspect.Compare(a.Catalog, b.Catalog, "")
			if err == nil && (d.Summary.Changed != 1 || d.Summary.Removed != 1) {
				return fmt.Errorf("diff summary %+v, want 1 changed, 1 removed", d.Summary)
			}
			return err
		}},
		{"stats", func() error {
			st, _, err := inspect.Collect(ctx, r, ms)
			if err == nil && (st.LogicalBytes == nil || len(st.Growth) != 3) {
				return fmt.Errorf("stats %+v", st)
			}
			return err
		}},
	}
	for _, s := range steps {
		cs.Reset()
		if err := s.run(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		reads := cs.Reads(repo.DataPrefix)
		for name := range reads {
			if data[name] {
				t.Errorf("%s read pack %s, which holds file contents", s.name, name)
			}
		}
		if len(cs.Reads(repo.CatalogPrefix)) == 0 || len(reads) == 0 {
			t.Errorf("%s read no catalog (%v): is the counter counting?", s.name, cs.All())
		}
		t.Logf("%s read %d objects, %d of them catalog packs", s.name, len(cs.All()), len(reads))
	}
}

func TestStatsGrowth(t *testing.T) {
	_, r, ms := nights(t)
	st, _, err := inspect.Collect(context.Background(), r, ms)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Growth) != 3 {
		t.Fatalf("growth of %d snapshots, want 3", len(st.Growth))
	}
	g := [3]inspect.SourceGrowth{st.Growth[0].Sources[0], st.Growth[1].Sources[0], st.Growth[2].Sources[0]}
	if g[0].Files != 8 || g[1].Files != 8 || g[2].Files != 7 {
		t.Errorf("files %d, %d, %d; want 8, 8, 7", g[0].Files, g[1].Files, g[2].Files)
	}
	// Night 1 stores everything, night 2 about the changed file (random
	// bytes do not compress), night 3 nothing new.
	if g[0].NewBytes < 8*90<<10 || g[1].NewBytes < 90<<10 || g[1].NewBytes > 2*95<<10 || g[2].NewBytes != 0 {
		t.Errorf("new bytes %d, %d, %d", g[0].NewBytes, g[1].NewBytes, g[2].NewBytes)
	}
	if *st.LogicalBytes != g[0].Size+g[1].Size+g[2].Size {
		t.Errorf("logical %d, want the sum of the sizes", *st.LogicalBytes)
	}
	if st.DedupRatio == nil || *st.DedupRatio < 2 {
		t.Errorf("dedup ratio %v, want about 3 (three nights of mostly the same files)", st.DedupRatio)
	}
	for _, o := range st.Objects {
		if o.Type == "snapshots" && o.Count != 3 {
			t.Errorf("%d snapshots objects, want 3", o.Count)
		}
	}
}

// TestCompareFingerprints: a database source's fingerprints that differ,
// those of a composite source's part under its folder.
func TestCompareFingerprints(t *testing.T) {
	fp := func(rows int64, check string) json.RawMessage {
		b, _ := json.Marshal(fingerprint.Fingerprints{Tables: map[string]int64{"public.invoice": rows}, Checks: map[string][]string{"paid": {check}}})
		return b
	}
	cat := func(id string, rows int64, check string) *repo.Catalog {
		return &repo.Catalog{Snapshot: id, Sources: []repo.SourceCatalog{
			{Name: "db", Kind: "postgres", Meta: map[string]json.RawMessage{"fingerprints": fp(rows, check)},
				Entries: []repo.Entry{{Path: "dump.pgdump", Type: "file", Size: 10, SHA256: id}}},
			{Name: "af", Kind: "airflow", Meta: map[string]json.RawMessage{"metadb.fingerprints": fp(rows, "x")},
				Entries: []repo.Entry{{Path: "metadb", Type: "dir"}, {Path: "metadb/dump.pgdump", Type: "file", Size: 10, SHA256: id}}},
		}}
	}
	d, err := inspect.Compare(cat("a", 2, "12"), cat("b", 3, "15"), "")
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(d.Sources[0].Fingerprints, d.Sources[1].Fingerprints)
	want := "[{/ check paid 12 15} {/ table public.invoice 2 3}] [{/metadb table public.invoice 2 3}]"
	if got != want {
		t.Errorf("fingerprint diffs %s, want %s", got, want)
	}
	if d.Summary.Fingerprints != 3 || d.Summary.Changed != 2 {
		t.Errorf("summary %+v", d.Summary)
	}
	// ls puts them on the dump.
	es, err := inspect.List(cat("b", 3, "15"), inspect.ListOptions{Source: "af", Recursive: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 || es[0].Fingerprints != nil || es[1].Fingerprints == nil || es[1].Fingerprints.Tables["public.invoice"] != 3 {
		t.Errorf("ls af: %+v", es)
	}
	if _, err := inspect.Compare(cat("a", 1, ""), cat("b", 1, ""), "nope"); err == nil {
		t.Error("Compare of an unknown source: no error")
	}
}

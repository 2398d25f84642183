package retention

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/repo"
)

// holdOf returns the name of the hold object that holds snapshot id.
func holdOf(t *testing.T, r *repo.Repository, id string) string {
	t.Helper()
	hs, err := r.Holds(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for name, h := range hs {
		if h.Snapshot == id && !strings.Contains(name, ".released") {
			return name
		}
	}
	t.Fatalf("no hold of %s in %v", repo.ShortID(id), hs)
	return ""
}

// forgeRelease writes, straight to the store, what anyone who may write the
// bucket can: release records of the hold, one as coffer wrote them before
// release tokens (no token) and one with a token of the forger's own.
func forgeRelease(t *testing.T, e *env, hold string) []string {
	t.Helper()
	var h repo.HoldRecord
	hs, err := e.tr.Host(t).Holds(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	h = hs[hold]
	h.Released, h.Expires = true, time.Now().UTC()
	names := []string{hold + ".released", hold + ".released-forged"}
	for i, name := range names {
		if i == 1 {
			h.ReleaseToken = hex.EncodeToString(make([]byte, 32))
		}
		b, err := json.Marshal(h)
		if err != nil {
			t.Fatal(err)
		}
		if err := repo.PutObject(context.Background(), e.tr.Store, name, b); err != nil {
			t.Fatal(err)
		}
	}
	return names
}

// TestForgedReleaseKeepsHold: holds are not signed, so a release record
// written by someone else than the drill that holds the snapshot must not
// release it: forget keeps the snapshot, prune keeps its data and the hold,
// and both prune and verify report the forged records. The drill's own
// release, which carries the token whose hash the hold recorded, does
// release it. (Before release tokens, any holds/<id>.released did.)
func TestForgedReleaseKeepsHold(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	a := e.tree(2, 5000)
	s1 := e.backup(nil, false, "a="+a)
	s2 := e.backup(nil, false, "a="+e.tree(2, 5000))
	s3 := e.backup(nil, false, "a="+e.tree(2, 5000))
	host := e.tr.Host(t)

	// s1 is held by a drill; a forger releases the hold; forget keeps s1.
	release1, err := host.Hold(ctx, s1.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	forged1 := forgeRelease(t, e, holdOf(t, host, s1.ID))
	res, err := Forget(ctx, host, Policy{Last: 1}, ForgetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Forgotten, []string{s2.ID}) {
		t.Fatalf("forget forgot %v, want only s2 %s (s1 %s is held; its release is forged)", res.Forgotten, repo.ShortID(s2.ID), repo.ShortID(s1.ID))
	}

	// s2, forgotten, is held by a drill that started before; a forger
	// releases that hold too; prune keeps s2's data and both holds.
	release2, err := host.Hold(ctx, s2.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	hold2 := holdOf(t, host, s2.ID)
	forged2 := forgeRelease(t, e, hold2)
	pr := pruneNow(t, e.tr.Host(t))
	if !slices.Contains(pr.Pending, s2.ID) || slices.Contains(pr.Forgotten, s2.ID) {
		t.Fatalf("prune: pending %v, removed %v; want the held s2 %s pending", pr.Pending, pr.Forgotten, repo.ShortID(s2.ID))
	}
	st := objects(t, e.tr.Store)
	for _, ref := range s2.Objects() {
		if _, ok := st[ref.Name]; !ok {
			t.Fatalf("prune removed %s of the held snapshot s2", ref.Name)
		}
	}
	for _, name := range append([]string{holdOf(t, host, s1.ID), hold2}, append(forged1, forged2...)...) {
		if _, ok := st[name]; !ok {
			t.Errorf("prune removed %s of an active hold", name)
		}
	}
	warned := strings.Join(pr.Warnings, "\n")
	for _, name := range append(forged1, forged2...) {
		if !strings.Contains(warned, name+": ") {
			t.Errorf("prune does not warn about the forged %s:\n%s", name, warned)
		}
	}
	rep := e.verify()
	var vw []string
	for _, w := range rep.Warnings {
		vw = append(vw, w.Object+": "+w.Message)
	}
	for _, name := range append(forged1, forged2...) {
		if !strings.Contains(strings.Join(vw, "\n"), name+": release record ignored") {
			t.Errorf("verify does not warn about the forged %s:\n%s", name, strings.Join(vw, "\n"))
		}
	}

	// The drills' own releases count: forget may forget s1, prune removes
	// s2 and every hold object, forged records included.
	release1()
	release2()
	if held, err := host.Held(ctx, time.Now()); err != nil || len(held) != 0 {
		t.Fatalf("held after the real releases: %v, %v", held, err)
	}
	res, err = Forget(ctx, host, Policy{Last: 1}, ForgetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Forgotten, []string{s1.ID}) {
		t.Fatalf("forget after the release forgot %v, want s1 %s", res.Forgotten, repo.ShortID(s1.ID))
	}
	pr = pruneNow(t, e.tr.Host(t))
	if !slices.Contains(pr.Forgotten, s2.ID) {
		t.Fatalf("released s2 not pruned: %+v", pr)
	}
	if len(pr.Warnings) != 0 {
		t.Errorf("prune warns after the real releases: %v", pr.Warnings)
	}
	if left := objects(t, e.tr.Store, repo.HoldsPrefix); len(left) != 0 {
		t.Errorf("holds left after prune: %v", left)
	}
	if ids := e.ids(); !slices.Contains(ids, s3.ID) || slices.Contains(ids, s1.ID) {
		t.Errorf("snapshots %v: want s3 kept, s1 forgotten", ids)
	}
	e.mustVerify()
}

package retention

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/backup"
	"github.com/cofferhq/coffer/internal/known"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/internal/testing/testrepo"
	"github.com/cofferhq/coffer/restore"
	"github.com/cofferhq/coffer/source"
	dirkind "github.com/cofferhq/coffer/source/dir"
)

func decisions(res *ForgetResult) map[string]Snapshot {
	out := map[string]Snapshot{}
	for _, s := range res.Snapshots {
		out[s.ID] = s
	}
	return out
}

// TestForgetProtectsNewestCompleteAndHeld: keep-last 1 would forget
// everything but the newest snapshot of source a, which is incomplete;
// forget keeps the newest complete one and a held one anyway, and a dry
// run writes nothing.
func TestForgetProtectsNewestCompleteAndHeld(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	a, b := e.tree(2, 1000), e.tree(2, 1000)
	a1 := e.backup(nil, false, "a="+a)
	a2 := e.backup(nil, false, "a="+a)
	a3 := e.backup(nil, false, "a="+a)
	a4 := e.backup(nil, true, "a="+a) // incomplete
	b1 := e.backup(nil, false, "b="+b)
	host := e.tr.Host(t)
	release, err := host.Hold(ctx, a1.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	dry, err := Forget(ctx, host, Policy{Last: 1}, ForgetOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := objects(t, e.tr.Store, repo.TombstonesPrefix); len(got) != 0 {
		t.Fatalf("dry run wrote %v", got)
	}
	if !slices.Equal(dry.Forgotten, []string{a2.ID}) {
		t.Fatalf("dry run would forget %v, want only a2 %s", dry.Forgotten, a2.ID[:8])
	}
	d := decisions(dry)
	if s := d[a4.ID]; !s.Keep || !slices.Equal(s.Reasons, []string{"last"}) {
		t.Errorf("a4: %+v", s)
	}
	if s := d[a3.ID]; !s.Keep || !slices.Equal(s.Reasons, []string{"newest complete snapshot of a"}) {
		t.Errorf("a3 (newest complete of a): %+v", s)
	}
	if s := d[a1.ID]; !s.Keep || len(s.Reasons) != 1 || !strings.HasPrefix(s.Reasons[0], "held until ") {
		t.Errorf("a1 (held): %+v", s)
	}
	if s := d[b1.ID]; !s.Keep || !slices.Contains(s.Reasons, "newest complete snapshot of b") || !slices.Contains(s.Reasons, "last") {
		t.Errorf("b1: %+v", s)
	}

	res, err := Forget(ctx, host, Policy{Last: 1}, ForgetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Forgotten, []string{a2.ID}) {
		t.Fatalf("forgot %v, want a2", res.Forgotten)
	}
	want := []string{a1.ID, a3.ID, a4.ID, b1.ID}
	sort.Strings(want)
	if got := e.ids(); !slices.Equal(got, want) {
		t.Fatalf("snapshots after forget: %v, want %v", got, want)
	}

	// Once the hold is released, a1 goes too; a3 and a4 stay.
	release()
	if _, err := Forget(ctx, e.tr.Host(t), Policy{Last: 1}, ForgetOptions{}); err != nil {
		t.Fatal(err)
	}
	want = []string{a3.ID, a4.ID, b1.ID}
	sort.Strings(want)
	if got := e.ids(); !slices.Equal(got, want) {
		t.Fatalf("snapshots after the hold was released: %v, want %v", got, want)
	}
	// Even prune keeps what they need, and they verify.
	pruneNow(t, e.tr.Host(t))
	e.mustVerify()

	// Forget without a signing key, and with an empty policy, are refused.
	if _, err := Forget(ctx, e.tr.Operator(t), Policy{Last: 1}, ForgetOptions{}); !errors.Is(err, repo.ErrNoSigningKey) {
		t.Errorf("forget without a signing key: %v", err)
	}
	if _, err := Forget(ctx, host, Policy{}, ForgetOptions{}); !errors.Is(err, ErrNoPolicy) {
		t.Errorf("forget with no rule: %v", err)
	}
}

// TestForgetHeldDataSurvivesPrune: a snapshot forgotten and then held (a
// drill that started before) keeps its data through prune while held.
func TestForgetHeldDataSurvivesPrune(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s1 := e.backup(nil, false, "a="+e.tree(2, 5000))
	e.backup(nil, false, "a="+e.tree(2, 5000))
	host := e.tr.Host(t)
	if _, err := Forget(ctx, host, Policy{Last: 1}, ForgetOptions{}); err != nil {
		t.Fatal(err)
	}
	release, err := host.Hold(ctx, s1.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	res := pruneNow(t, e.tr.Host(t))
	if !slices.Contains(res.Pending, s1.ID) {
		t.Fatalf("held forgotten snapshot not pending: %+v", res)
	}
	st := objects(t, e.tr.Store)
	for _, ref := range s1.Objects() {
		if _, ok := st[ref.Name]; !ok {
			t.Fatalf("prune removed %s of a held snapshot", ref.Name)
		}
	}
	release()
	res = pruneNow(t, e.tr.Host(t))
	if !slices.Contains(res.Forgotten, s1.ID) {
		t.Fatalf("released snapshot not pruned: %+v", res)
	}
	if _, ok := objects(t, e.tr.Store)[repo.SnapshotName(s1.ID)]; ok {
		t.Fatal("the forgotten manifest is still there")
	}
	e.mustVerify()
}

// TestForgetTag: --tag needs the identity, and applies the policy to the
// tagged snapshots only.
func TestForgetTag(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	dir := e.tree(1, 100)
	n1 := e.backup([]string{"nightly"}, false, "a="+dir)
	n2 := e.backup([]string{"nightly"}, false, "a="+dir)
	m1 := e.backup([]string{"manual"}, false, "a="+dir)
	n3 := e.backup([]string{"nightly"}, false, "a="+dir)
	if _, err := Forget(ctx, e.tr.Host(t), Policy{Last: 1}, ForgetOptions{Tag: "nightly"}); !errors.Is(err, ErrTagNeedsIdentity) {
		t.Fatalf("tag without identity: %v", err)
	}
	r, err := repo.Open(ctx, e.tr.Store, repo.OpenOptions{Owner: e.tr.Owner.Public(), Signing: e.tr.Signing, Identities: e.tr.Identities})
	if err != nil {
		t.Fatal(err)
	}
	res, err := Forget(ctx, r, Policy{Last: 1}, ForgetOptions{Tag: "nightly"})
	if err != nil {
		t.Fatal(err)
	}
	got := slices.Clone(res.Forgotten)
	sort.Strings(got)
	want := []string{n1.ID, n2.ID}
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Fatalf("forgot %v, want the two older nightly ones", got)
	}
	want = []string{m1.ID, n3.ID}
	sort.Strings(want)
	if ids := e.ids(); !slices.Equal(ids, want) {
		t.Fatalf("left %v, want %v", ids, want)
	}
}

// TestForgetIsNotAnAttack: a forgotten snapshot (with its manifest pruned)
// produces no deletion warning anywhere (verify, the next backup, latest,
// the known-repositories store); a manifest deleted by hand still does,
// and so does one whose tombstone is forged.
func TestForgetIsNotAnAttack(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	dir := e.tree(2, 2000)
	s1 := e.backup(nil, false, "a="+dir)
	s2 := e.backup(nil, false, "a="+dir)
	// A client that saw s2 as the newest snapshot.
	ks := &known.Store{Dir: filepath.Join(t.TempDir(), "state")}
	op, err := ks.Open(ctx, e.tr.Store, known.OpenOptions{Pin: e.tr.Owner.Public(), PinSource: "test"})
	if err != nil {
		t.Fatal(err)
	}
	ms, _, err := op.Repo.Manifests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := op.Remember(ms); err != nil {
		t.Fatal(err)
	}
	s3 := e.backup(nil, false, "a="+dir)
	if _, err := Forget(ctx, e.tr.Host(t), Policy{Last: 1}, ForgetOptions{}); err != nil {
		t.Fatal(err)
	}
	res := pruneNow(t, e.tr.Host(t))
	got := slices.Clone(res.Forgotten)
	sort.Strings(got)
	want := []string{s1.ID, s2.ID}
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Fatalf("prune removed the manifests of %v, want s1 and s2", got)
	}

	noDeletion := func(when string) {
		t.Helper()
		rep := e.verify()
		if len(rep.Problems) > 0 {
			t.Fatalf("%s: verify reports %+v", when, rep.Problems)
		}
		if _, warns, err := restore.LatestWarn(ctx, e.tr.Operator(t), restore.Filter{}); err != nil || len(warns) > 0 {
			t.Fatalf("%s: latest: %v %v", when, warns, err)
		}
		op, err := ks.Open(ctx, e.tr.Store, known.OpenOptions{Pin: e.tr.Owner.Public(), PinSource: "test"})
		if err != nil {
			t.Fatal(err)
		}
		if err := op.Vanished(ctx); err != nil {
			t.Fatalf("%s: the client that saw s2 reports: %v", when, err)
		}
	}
	noDeletion("after forget and prune")
	s4 := e.backup(nil, false, "a="+dir)
	res4, err := backup.Run(ctx, backup.Options{Repo: e.tr.Host(t), Signing: e.tr.Signing,
		Sources: []source.Source{&dirkind.Source{SourceName: "a", Path: dir}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res4.RepoWarnings) > 0 {
		t.Fatalf("a backup after forget warns: %v", res4.RepoWarnings)
	}
	noDeletion("after more backups")
	_ = s3

	// A manifest deleted by hand (s4, which the newest names in seen) is
	// still a deletion.
	if err := e.tr.Store.Delete(ctx, repo.SnapshotName(s4.ID)); err != nil {
		t.Fatal(err)
	}
	deleted := func(when string, wantTombProblem bool) {
		t.Helper()
		rep := e.verify()
		var del, tomb bool
		for _, p := range rep.Problems {
			del = del || p.Kind == restore.KindDeleted && strings.Contains(p.Object, s4.ID)
			tomb = tomb || strings.HasPrefix(p.Object, repo.TombstonesPrefix)
		}
		if !del {
			t.Fatalf("%s: verify does not report s4 as deleted: %+v", when, rep.Problems)
		}
		if tomb != wantTombProblem {
			t.Fatalf("%s: verify reports a tombstone problem: %v, want %v: %+v", when, tomb, wantTombProblem, rep.Problems)
		}
		res, err := backup.Run(ctx, backup.Options{Repo: e.tr.Host(t), Signing: e.tr.Signing,
			Sources: []source.Source{&dirkind.Source{SourceName: "a", Path: dir}}})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(strings.Join(res.RepoWarnings, "\n"), "snapshot "+repo.ShortID(s4.ID)+" was deleted") {
			t.Fatalf("%s: backup does not warn about s4: %v", when, res.RepoWarnings)
		}
	}
	deleted("manifest deleted by hand", false)

	// A tombstone signed by a key the repository does not know: refused,
	// reported, and s4 still counts as deleted.
	_, _, other, _ := testrepo.Keys(t, filepath.Join(t.TempDir(), "other"))
	forged := &repo.Tombstone{Version: repo.Version, ID: s4.ID, Repo: op.Repo.Config.ID, Time: time.Now().UTC(),
		ConfigSeq: op.Repo.Config.Seq, Signer: other.Public().String(),
		Manifest:     repo.ObjectRef{Name: repo.SnapshotName(s4.ID), Size: 1000, SHA256: strings.Repeat("ab", 32)},
		SnapshotTime: s4.Time, Policy: "last 1"}
	doc, err := repo.Sign(repo.KindTombstone, forged, other)
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.PutObject(ctx, e.tr.Store, repo.TombstoneName(s4.ID), doc); err != nil {
		t.Fatal(err)
	}
	deleted("forged tombstone", true)
	if _, err := Forget(ctx, e.tr.Host(t), Policy{Last: 1}, ForgetOptions{DryRun: true}); err != nil {
		t.Fatalf("dry run with a forged tombstone present: %v", err)
	}
}

// TestForgetRevokedTombstones: tombstones signed by a maintenance host
// key stop counting once the owner revokes that key: the snapshots they
// hid count as deleted again, and verify names the tombstones.
func TestForgetRevokedTombstones(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	dir := e.tree(1, 1000)
	e.backup(nil, false, "a="+dir)
	s2 := e.backup(nil, false, "a="+dir)
	e.backup(nil, false, "a="+dir)
	// A second host key, authorised by the owner, runs forget.
	_, _, sk2, _ := testrepo.Keys(t, filepath.Join(t.TempDir(), "maint"))
	ownerRepo := func() *repo.Repository {
		r, err := repo.Open(ctx, e.tr.Store, repo.OpenOptions{Owner: e.tr.Owner.Public(), OwnerKey: e.tr.Owner})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	hp2 := sk2.HostPublic()
	if _, err := repo.UpdateConfig(ctx, ownerRepo(), e.tr.Owner, func(c *repo.Config) error {
		c.Hosts = append(c.Hosts, repo.Host{Key: hp2.Key.String(), Box: hp2.Box.String(), Added: time.Now().UTC().Truncate(time.Second)})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	maint, err := repo.Open(ctx, e.tr.Store, repo.OpenOptions{Owner: e.tr.Owner.Public(), Signing: sk2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Forget(ctx, maint, Policy{Last: 1}, ForgetOptions{}); err != nil {
		t.Fatal(err)
	}
	pruneNow(t, e.tr.Host(t))
	e.mustVerify()

	r := ownerRepo()
	keep, err := r.SignedBy(ctx, sk2.Public())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.UpdateConfig(ctx, r, e.tr.Owner, func(c *repo.Config) error {
		c.Hosts = slices.DeleteFunc(c.Hosts, func(h repo.Host) bool { return h.Key == hp2.Key.String() })
		c.Revoked = append(c.Revoked, repo.Revocation{Key: hp2.Key.String(), Time: time.Now().UTC().Truncate(time.Second), Keep: keep})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	rep := e.verify()
	var deleted, tomb bool
	for _, p := range rep.Problems {
		deleted = deleted || p.Kind == restore.KindDeleted && strings.Contains(p.Object, s2.ID)
		tomb = tomb || strings.HasPrefix(p.Object, repo.TombstonesPrefix) && strings.Contains(p.Error, "revoked")
	}
	if !deleted || !tomb {
		t.Fatalf("after revoking the key that forgot: deleted reported %v, revoked tombstone reported %v: %+v", deleted, tomb, rep.Problems)
	}
}

// TestForgetFutureDatedOnly: a source backed up only by a host whose clock
// runs an hour ahead has only snapshots dated in the future; its newest
// is incomplete. forget --keep-last 1 must still keep its newest complete
// snapshot, the only complete copy of that source.
func TestForgetFutureDatedOnly(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	dir := e.tree(2, 1000)
	base := e.backup(nil, false, "a="+dir)
	host := e.tr.Host(t)
	// Copies of base's manifest as the fast host would have written them:
	// source z, an hour (complete) and two hours (incomplete) ahead.
	future := func(d time.Duration, incomplete bool) string {
		t.Helper()
		m, err := host.ReadManifest(ctx, base.ID)
		if err != nil {
			t.Fatal(err)
		}
		c := *m
		c.ID, c.Time, c.Incomplete = repo.NewID(), base.Time.Add(d), incomplete
		c.Sources = slices.Clone(m.Sources)
		c.Sources[0].Name = "z"
		doc, err := repo.Sign(repo.KindManifest, &c, e.tr.Signing)
		if err != nil {
			t.Fatal(err)
		}
		if err := repo.PutObject(ctx, e.tr.Store, repo.SnapshotName(c.ID), doc); err != nil {
			t.Fatal(err)
		}
		return c.ID
	}
	complete := future(time.Hour, false)
	newest := future(2*time.Hour, true)
	res, err := Forget(ctx, e.tr.Host(t), Policy{Last: 1}, ForgetOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Forgotten) != 0 {
		t.Fatalf("would forget %v (z's only complete snapshot is %s, its newest %s)", res.Forgotten, repo.ShortID(complete), repo.ShortID(newest))
	}
	if s := decisions(res)[complete]; !slices.Contains(s.Reasons, "newest complete snapshot of z") {
		t.Fatalf("z's newest complete snapshot kept for %v", s.Reasons)
	}
}

package drill_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/drill"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/internal/testing/drillreport"
	"github.com/cofferhq/coffer/internal/testing/testrepo"
	"github.com/cofferhq/coffer/internal/testing/testutil"
	"github.com/cofferhq/coffer/storage"
)

// drillHost opens tr as a drill host: the owner pin, the identity and the
// host signing key.
func drillHost(t *testing.T, tr *testrepo.Repo) *repo.Repository {
	t.Helper()
	r, err := repo.Open(context.Background(), tr.Store, repo.OpenOptions{Owner: tr.Owner.Public(), Signing: tr.Signing, Identities: tr.Identities})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// auditor opens tr with the owner pin only: no key at all.
func auditor(t *testing.T, tr *testrepo.Repo) *repo.Repository {
	t.Helper()
	r, err := repo.Open(context.Background(), tr.Store, repo.OpenOptions{Owner: tr.Owner.Public()})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestSaveHistoryLoadLocal(t *testing.T) { roundTrip(t, testrepo.New(t)) }

func TestSaveHistoryLoadS3(t *testing.T) {
	cfg := testutil.StartS3(t)
	st, err := storage.NewS3(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, testrepo.NewOn(t, t.TempDir(), st))
}

// roundTrip saves two drills, lists them without any key and loads each
// with the identity.
func roundTrip(t *testing.T, tr *testrepo.Repo) {
	ctx := context.Background()
	host := drillHost(t, tr)
	first := drillreport.Sample(drillreport.Options{Started: time.Date(2026, 8, 30, 3, 0, 0, 0, time.UTC)})
	second := drillreport.Sample(drillreport.Options{Fail: true})
	for _, r := range []*drill.Report{second, first} {
		if err := drill.Save(ctx, host, r); err != nil {
			t.Fatalf("Save: %v", err)
		}
	}
	// Saving again (a retry) is no error and adds nothing.
	if err := drill.Save(ctx, host, first); err != nil {
		t.Fatalf("Save again: %v", err)
	}

	hist, bad, err := drill.History(ctx, auditor(t, tr))
	if err != nil || len(bad) > 0 {
		t.Fatalf("History: %v %v", bad, err)
	}
	if len(hist) != 2 {
		t.Fatalf("History lists %d drills, want 2", len(hist))
	}
	for i, r := range []*drill.Report{first, second} { // oldest first
		e := hist[i]
		want := r.Summary()
		if e.ID != want.ID || e.Snapshot != want.Snapshot || !e.Started.Equal(want.Started) || e.Result != want.Result ||
			e.RTO.Duration().Round(time.Millisecond) != want.RTO.Duration().Round(time.Millisecond) {
			t.Errorf("drill %d: summary %+v, want %+v", i, e.Summary, want)
		}
		if e.Signer != tr.Signing.Public().String() || !strings.HasPrefix(e.Report, repo.DrillReportsPrefix) || e.ReportMissing {
			t.Errorf("drill %d: signer %s, report %s, missing %v", i, e.Signer, e.Report, e.ReportMissing)
		}
	}
	if hist[1].Result != drill.Fail {
		t.Errorf("the failed drill lists as %s", hist[1].Result)
	}

	// The full report needs the identity, and comes back whole.
	if _, _, err := drill.Load(ctx, auditor(t, tr), second.ID); !errors.Is(err, repo.ErrNoIdentity) {
		t.Fatalf("Load without identity: %v, want ErrNoIdentity", err)
	}
	op := tr.Operator(t)
	got, e, err := drill.Load(ctx, op, second.ID)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if e.ID != second.ID {
		t.Errorf("Load's entry is drill %s", e.ID)
	}
	var a, b bytes.Buffer
	drill.WriteJSON(&a, second)
	drill.WriteJSON(&b, got)
	if a.String() != b.String() {
		t.Errorf("the loaded report differs:\n%s\nwant\n%s", b.String(), a.String())
	}
	// Find: latest, prefixes.
	for ref, want := range map[string]string{"latest": second.ID, second.ID[:8]: second.ID, first.ID: first.ID} {
		id, err := drill.Find(ctx, op, ref)
		if err != nil || id != want {
			t.Errorf("Find(%s) = %s, %v; want %s", ref, id, err, want)
		}
	}
	if _, err := drill.Find(ctx, op, "ffff"+strings.Repeat("0", 60)); !errors.Is(err, drill.ErrNoDrill) {
		t.Errorf("Find(unknown) = %v, want ErrNoDrill", err)
	}

	// What a bucket reader sees: the summary in clear, nothing of the
	// checks, hosts or sources.
	doc := readObject(t, tr.Store, repo.DrillName(second.ID))
	for _, secret := range []string{"invoices", "drill-runner-2", "auditor@acme.example", "public.invoices", "fingerprints"} {
		if strings.Contains(doc, secret) {
			t.Errorf("the public summary holds %q:\n%s", secret, doc)
		}
	}
	rep := readObject(t, tr.Store, hist[1].Report)
	t.Logf("summary %d bytes, sealed report %d bytes", len(doc), len(rep))
	if !strings.HasPrefix(rep, "age-encryption.org/v1\n") || strings.Contains(rep, "invoices") {
		t.Errorf("the stored report is not an age file")
	}
}

func readObject(t *testing.T, st storage.Store, name string) string {
	t.Helper()
	rc, err := st.Open(context.Background(), name, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(rc); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// refused runs History and wants exactly one problem, naming object and
// saying want; the drills that verify are still listed.
func refused(t *testing.T, r *repo.Repository, object, want string, listed int) []drill.Entry {
	t.Helper()
	hist, bad, err := drill.History(context.Background(), r)
	if err != nil {
		t.Fatalf("History: %v", err)
	}
	if len(bad) != 1 {
		t.Fatalf("History reported %d problems, want 1: %v", len(bad), bad)
	}
	var ie *repo.IntegrityError
	if !errors.As(bad[0], &ie) || ie.Object != object || !strings.Contains(bad[0].Error(), want) {
		t.Fatalf("problem %q, want an integrity error naming %s that says %q", bad[0], object, want)
	}
	if len(hist) != listed {
		t.Fatalf("History lists %d drills, want %d", len(hist), listed)
	}
	return hist
}

func TestHistoryRefusesForgeries(t *testing.T) {
	ctx := context.Background()
	tr := testrepo.New(t)
	host := drillHost(t, tr)
	good := drillreport.Sample(drillreport.Options{Fail: true})
	if err := drill.Save(ctx, host, good); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(tr.Dir, "repo")
	summary := filepath.Join(dir, "drills", good.ID)
	orig, err := os.ReadFile(summary)
	if err != nil {
		t.Fatal(err)
	}
	restore := func() {
		t.Helper()
		if err := os.WriteFile(summary, orig, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("tampered", func(t *testing.T) {
		defer restore()
		// A failed drill made to look passed.
		forged := bytes.Replace(orig, []byte(`"result": "fail"`), []byte(`"result": "pass"`), 1)
		if bytes.Equal(forged, orig) {
			t.Fatal("no result field to tamper with")
		}
		if err := os.WriteFile(summary, forged, 0o600); err != nil {
			t.Fatal(err)
		}
		refused(t, auditor(t, tr), repo.DrillName(good.ID), "signature does not verify", 0)
		if _, _, err := drill.Load(ctx, tr.Operator(t), good.ID); err == nil || !strings.Contains(err.Error(), "signature does not verify") {
			t.Fatalf("Load of a tampered summary: %v", err)
		}
	})

	t.Run("unknown key", func(t *testing.T) {
		// Someone with another host key (and the public recipients)
		// writes a passed drill.
		_, _, other, _ := testrepo.Keys(t, t.TempDir())
		fake := drillreport.Sample(drillreport.Options{})
		r := auditor(t, tr)
		recipients, err := r.Recipients()
		if err != nil {
			t.Fatal(err)
		}
		ref, err := repo.PutDrillReport(ctx, tr.Store, fake, recipients...)
		if err != nil {
			t.Fatal(err)
		}
		rec := &repo.DrillRecord{Version: repo.Version, ID: fake.ID, Repo: r.Config.ID, ConfigSeq: r.Config.Seq,
			Signer: other.Public().String(), Snapshot: fake.Snapshot, Started: fake.Started, Result: "pass", RTO: 3, Report: ref}
		if err := repo.WriteDrill(ctx, tr.Store, rec, other); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(filepath.Join(dir, "drills", fake.ID))
		refused(t, r, repo.DrillName(fake.ID), "which the repository config does not authorise", 1)
		// Naming the key that signs is no way around it.
		rec.Signer = tr.Signing.Public().String()
		os.Remove(filepath.Join(dir, "drills", fake.ID))
		if err := repo.WriteDrill(ctx, tr.Store, rec, other); err != nil {
			t.Fatal(err)
		}
		refused(t, r, repo.DrillName(fake.ID), "signature does not verify", 1)
	})

	t.Run("replayed", func(t *testing.T) {
		other := repo.NewID()
		p := filepath.Join(dir, "drills", other)
		if err := os.WriteFile(p, orig, 0o600); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(p)
		refused(t, auditor(t, tr), repo.DrillName(other), "stored under another name (replayed)", 1)
	})

	t.Run("report deleted", func(t *testing.T) {
		hist, _, err := drill.History(ctx, auditor(t, tr))
		if err != nil || len(hist) != 1 {
			t.Fatal(hist, err)
		}
		p := filepath.Join(dir, filepath.FromSlash(hist[0].Report))
		ct, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
		defer os.WriteFile(p, ct, 0o600)
		hist = refused(t, auditor(t, tr), hist[0].Report, "missing: the full report of drill", 1)
		if !hist[0].ReportMissing {
			t.Error("the drill whose report is gone is not marked")
		}
		_, _, err = drill.Load(ctx, tr.Operator(t), good.ID)
		var ie *repo.IntegrityError
		if !errors.As(err, &ie) || ie.Object != hist[0].Report {
			t.Fatalf("Load without its report: %v", err)
		}
	})

	t.Run("wrong identity", func(t *testing.T) {
		_, _, _, ids := testrepo.Keys(t, t.TempDir())
		r, err := repo.Open(ctx, tr.Store, repo.OpenOptions{Owner: tr.Owner.Public(), Identities: ids})
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = drill.Load(ctx, r, good.ID)
		var wi *repo.WrongIdentityError
		if !errors.As(err, &wi) || !strings.HasPrefix(wi.Object, repo.DrillReportsPrefix) {
			t.Fatalf("Load with another identity: %v, want a WrongIdentityError", err)
		}
	})

	// After all that, the history is intact.
	hist, bad, err := drill.History(ctx, auditor(t, tr))
	if err != nil || len(bad) > 0 || len(hist) != 1 || hist[0].ID != good.ID {
		t.Fatalf("History after the forgeries: %v %v %v", hist, bad, err)
	}
}

func TestSaveRefuses(t *testing.T) {
	ctx := context.Background()
	tr := testrepo.New(t)
	rep := drillreport.Sample(drillreport.Options{})
	// An operator without the host key: nothing is stored.
	if err := drill.Save(ctx, tr.Operator(t), rep); !errors.Is(err, drill.ErrNoSigningKey) {
		t.Fatalf("Save without a signing key: %v, want ErrNoSigningKey", err)
	}
	bad := *rep
	bad.ID = "2026-11-30T11:32:05Z"
	if err := drill.Save(ctx, drillHost(t, tr), &bad); !errors.Is(err, drill.ErrBadID) {
		t.Fatalf("Save with id %q: %v, want ErrBadID", bad.ID, err)
	}
	ids, _, err := tr.Operator(t).DrillIDs(ctx)
	if err != nil || len(ids) != 0 {
		t.Fatalf("drills stored after refused saves: %v %v", ids, err)
	}
	entries, err := os.ReadDir(filepath.Join(tr.Dir, "repo"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() == "drill-reports" {
			t.Error("a refused save stored a report")
		}
	}
}

// TestRevokedHostKeepsDrills: revoking a host key keeps the drills it
// signed before (they are in the revocation's keep list), like its
// snapshots.
func TestRevokedHostKeepsDrills(t *testing.T) {
	ctx := context.Background()
	tr := testrepo.New(t)
	rep := drillreport.Sample(drillreport.Options{})
	if err := drill.Save(ctx, drillHost(t, tr), rep); err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(ctx, tr.Store, repo.OpenOptions{Owner: tr.Owner.Public(), OwnerKey: tr.Owner})
	if err != nil {
		t.Fatal(err)
	}
	key := tr.Signing.Public()
	keep, err := r.SignedBy(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if len(keep) != 1 || keep[0].ID != rep.ID {
		t.Fatalf("SignedBy = %v, want the drill", keep)
	}
	_, err = repo.UpdateConfig(ctx, r, tr.Owner, func(c *repo.Config) error {
		var hosts []repo.Host
		for _, h := range c.Hosts {
			if h.Key != key.String() {
				hosts = append(hosts, h)
			}
		}
		c.Hosts = hosts
		c.Revoked = append(c.Revoked, repo.Revocation{Key: key.String(), Time: time.Now().UTC(), Keep: keep})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	hist, bad, err := drill.History(ctx, auditor(t, tr))
	if err != nil || len(bad) > 0 || len(hist) != 1 {
		t.Fatalf("History after the revocation: %v %v %v", hist, bad, err)
	}
}

// TestReportRecoverableWithoutCoffer: a stored drill report is an age file
// holding a zstd frame of the JSON report, as doc/recover-without-coffer.md
// says: the reference age and zstd CLIs read it.
func TestReportRecoverableWithoutCoffer(t *testing.T) {
	ageBin, ok := testutil.FindBinary("age")
	if !ok {
		testutil.Missing(t, "age CLI not installed (scripts/install-packages.sh)")
	}
	zstdBin, ok := testutil.FindBinary("zstd")
	if !ok {
		testutil.Missing(t, "zstd CLI not installed (scripts/install-packages.sh)")
	}
	tr := testrepo.New(t)
	rep := drillreport.Sample(drillreport.Options{Fail: true})
	if err := drill.Save(context.Background(), drillHost(t, tr), rep); err != nil {
		t.Fatal(err)
	}
	hist, _, err := drill.History(context.Background(), auditor(t, tr))
	if err != nil || len(hist) != 1 {
		t.Fatal(hist, err)
	}
	object := filepath.Join(tr.Dir, "repo", filepath.FromSlash(hist[0].Report))
	z, err := exec.Command(ageBin, "-d", "-i", tr.Keys.Identity, object).Output()
	if err != nil {
		t.Fatalf("age -d: %v", err)
	}
	cmd := exec.Command(zstdBin, "-d", "-c")
	cmd.Stdin = bytes.NewReader(z)
	plain, err := cmd.Output()
	if err != nil {
		t.Fatalf("zstd -d: %v", err)
	}
	got, err := drill.ReadJSON(bytes.NewReader(plain))
	if err != nil || got.ID != rep.ID || got.Result != drill.Fail || len(got.Sources) != 3 {
		t.Fatalf("the report read with age and zstd: %+v, %v", got, err)
	}
}

// TestHistoryQuotesHostileNames: an object under drills/ whose name holds
// terminal escapes (anyone who can write to the store can make one) is
// named in the problem History returns, escaped: printing the warning must
// not retitle, clear or recolour the operator's terminal.
func TestHistoryQuotesHostileNames(t *testing.T) {
	tr := testrepo.New(t)
	dir := filepath.Join(tr.Dir, "repo", "drills")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	hostile := "\x1b]0;pwned\a\x1b[2Jx\nfake: all drills passed"
	if err := os.WriteFile(filepath.Join(dir, hostile), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, bad, err := drill.History(context.Background(), auditor(t, tr))
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) != 1 {
		t.Fatalf("History reported %d problems, want 1: %v", len(bad), bad)
	}
	msg := bad[0].Error()
	if strings.ContainsAny(msg, "\x1b\a\n") {
		t.Fatalf("problem %q holds the name's control characters as they are", msg)
	}
	if !strings.Contains(msg, `\x1b]0;pwned\a`) {
		t.Fatalf("problem %q does not name the object (escaped)", msg)
	}
}

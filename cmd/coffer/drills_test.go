package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/cofferhq/coffer/drill"
	"github.com/cofferhq/coffer/internal/config"
	"github.com/cofferhq/coffer/internal/keys"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/internal/testing/drillreport"
	"github.com/cofferhq/coffer/storage"
)

func init() {
	scriptCmds["drillsave"] = cmdDrillSave
	scriptCmds["replacein"] = cmdReplaceIn
}

// replacein FILE OLD NEW
//
// replaces the first OLD in FILE with NEW (what someone who can write the
// bucket does to a signed document); fails when FILE holds no OLD.
func cmdReplaceIn(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: replacein FILE OLD NEW")
	}
	p := ts.MkAbs(args[0])
	b, err := os.ReadFile(p)
	ts.Check(err)
	if !bytes.Contains(b, []byte(args[1])) {
		ts.Fatalf("%s holds no %q", args[0], args[1])
	}
	ts.Check(os.WriteFile(p, bytes.Replace(b, []byte(args[1]), []byte(args[2]), 1), 0o600))
}

// drillsave [-fail] [-detail TEXT] [-started TIME] SNAPSHOT
//
// stores a realistic drill of SNAPSHOT in $COFFER_REPO (a local folder)
// as a drill host would (drill.Save, with $COFFER_SIGNING_KEY, pinned by
// its owner line) and prints "drill ID". It stands in for coffer drill,
// whose engine is tested in package drill.
func cmdDrillSave(ts *testscript.TestScript, neg bool, args []string) {
	fs := flag.NewFlagSet("drillsave", flag.ContinueOnError)
	fail := fs.Bool("fail", false, "a failed check")
	detail := fs.String("detail", "", "a user check's detail")
	started := fs.String("started", "", "the drill's start, RFC 3339")
	if neg || fs.Parse(args) != nil || fs.NArg() != 1 {
		ts.Fatalf("usage: drillsave [-fail] [-detail TEXT] [-started TIME] SNAPSHOT")
	}
	var start time.Time
	if *started != "" {
		var err error
		start, err = time.Parse(time.RFC3339, *started)
		ts.Check(err)
	}
	ctx := context.Background()
	sk, err := keys.LoadSigningKey(ts.Getenv("COFFER_SIGNING_KEY"))
	ts.Check(err)
	pin, err := keys.OwnerPin(ts.Getenv("COFFER_SIGNING_KEY"))
	ts.Check(err)
	st, err := storage.NewLocal(ts.Getenv("COFFER_REPO"))
	ts.Check(err)
	r, err := repo.Open(ctx, st, repo.OpenOptions{Owner: pin, Signing: sk})
	ts.Check(err)
	rep := drillreport.Sample(drillreport.Options{Snapshot: fs.Arg(0), Fail: *fail, Detail: *detail, Started: start})
	ts.Check(drill.Save(ctx, r, rep))
	fmt.Fprintf(ts.Stdout(), "drill %s\n", rep.ID)
}

// openedGlobals returns the globals of an invocation that opened the
// repository in dir with the given keys, as the drill command does before
// it calls writeDrillEvidence.
func openedGlobals(t *testing.T, repoDir, identity, signingKey string, needSigning, jsonOut bool) (*globals, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	var out, errb bytes.Buffer
	g := &globals{stdout: &out, stderr: &errb, cfg: &config.Config{}, repo: repoDir, identity: identity,
		signingKey: signingKey, json: jsonOut, getenv: os.Getenv}
	if _, err := g.open(context.Background(), needSigning, true); err != nil {
		t.Fatal(err)
	}
	return g, &out, &errb
}

// initRepo makes keys and a repository with the coffer command.
func initRepo(t *testing.T) (dir string, k *keys.Generated) {
	t.Helper()
	dir = t.TempDir()
	k, err := keys.Generate(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"coffer", "init", "--repo", filepath.Join(dir, "repo"), "--owner-key", k.OwnerKey,
		"-R", k.Recipients, "--host", k.SigningPub}, &out, &errb); code != 0 {
		t.Fatalf("init: exit %d: %s", code, errb.String())
	}
	return dir, k
}

func TestWriteDrillEvidence(t *testing.T) {
	dir, k := initRepo(t)
	repoDir := filepath.Join(dir, "repo")
	reports := filepath.Join(dir, "reports", "q4")

	// The drill opened the repository with the identity only; the
	// signing key is given: the evidence goes to the repository too.
	g, out, errb := openedGlobals(t, repoDir, k.Identity, k.SigningKey, false, false)
	rep := drillreport.Sample(drillreport.Options{Fail: true})
	if err := writeDrillEvidence(g, rep, reports); err != nil {
		t.Fatalf("writeDrillEvidence: %v", err)
	}
	if errb.Len() > 0 {
		t.Errorf("stderr: %s", errb.String())
	}
	if !strings.HasPrefix(out.String(), "drill "+rep.ID[:8]+": FAIL: 1 of 13 checks failed") ||
		!strings.Contains(out.String(), "\nFAIL  invoices/fingerprints: ") ||
		!strings.Contains(out.String(), "evidence: drills/"+rep.ID+" in the repository") {
		t.Errorf("stdout:\n%s", out.String())
	}
	fi, err := os.Stat(reports)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("report folder: %v %v", fi, err)
	}
	for _, ext := range []string{".json", ".html"} {
		p := filepath.Join(reports, "drill-"+rep.ID+ext)
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", p, fi, err)
		}
	}
	f, err := os.Open(filepath.Join(reports, "drill-"+rep.ID+".json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	back, err := drill.ReadJSON(f)
	if err != nil || back.ID != rep.ID || back.Result != drill.Fail {
		t.Fatalf("the JSON report: %v %v", back, err)
	}
	entries, _ := os.ReadDir(reports)
	if len(entries) != 2 {
		t.Errorf("the report folder holds %d files, want 2 (no temporary files)", len(entries))
	}
	hist, bad, err := drill.History(context.Background(), g.opened.Repo)
	if err != nil || len(bad) > 0 || len(hist) != 1 || hist[0].ID != rep.ID || hist[0].Result != drill.Fail {
		t.Fatalf("history after writeDrillEvidence: %v %v %v", hist, bad, err)
	}

	// --json: one line, the JSON report; no text.
	g, out, _ = openedGlobals(t, repoDir, k.Identity, k.SigningKey, true, true)
	rep2 := drillreport.Sample(drillreport.Options{})
	if err := writeDrillEvidence(g, rep2, ""); err != nil {
		t.Fatal(err)
	}
	var got drill.Report
	if strings.Count(out.String(), "\n") != 1 || json.Unmarshal(out.Bytes(), &got) != nil || got.ID != rep2.ID {
		t.Errorf("--json stdout is not the one-line report:\n%s", out.String())
	}

	// No signing key: the evidence stays local, with a warning and a
	// hint that names the flag; the drill's own outcome is not an error.
	g, out, errb = openedGlobals(t, repoDir, k.Identity, "", false, false)
	rep3 := drillreport.Sample(drillreport.Options{})
	if err := writeDrillEvidence(g, rep3, reports); err != nil {
		t.Fatal(err)
	}
	if want := "coffer: warning: the drill's evidence stayed local"; !strings.HasPrefix(errb.String(), want) ||
		!strings.Contains(errb.String(), "\ncoffer: hint: pass --signing-key ") {
		t.Errorf("stderr without a signing key:\n%s", errb.String())
	}
	if strings.Contains(out.String(), "evidence: ") {
		t.Errorf("stdout claims the evidence was stored:\n%s", out.String())
	}
	if _, err := os.Stat(filepath.Join(reports, "drill-"+rep3.ID+".html")); err != nil {
		t.Errorf("the local report was not written: %v", err)
	}
	// The same under --json: the warning is one JSON event on stderr, the
	// hint in its message; every line parses.
	g, _, errb = openedGlobals(t, repoDir, k.Identity, "", false, true)
	if err := writeDrillEvidence(g, drillreport.Sample(drillreport.Options{}), ""); err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSpace(errb.String()), "\n") {
		var ev struct{ Event, Message string }
		if json.Unmarshal([]byte(l), &ev) != nil || ev.Event != "warning" || !strings.Contains(ev.Message, "--signing-key") {
			t.Errorf("--json stderr without a signing key: %q is not a warning event naming --signing-key", l)
		}
	}
	hist, _, _ = drill.History(context.Background(), g.opened.Repo)
	if len(hist) != 2 {
		t.Errorf("history lists %d drills, want 2 (the third stayed local)", len(hist))
	}

	// A signing key the repository does not authorise: an error that
	// says the evidence was not stored, and how to fix it.
	other, err := keys.Generate(filepath.Join(dir, "other"))
	if err != nil {
		t.Fatal(err)
	}
	g, _, _ = openedGlobals(t, repoDir, k.Identity, "", false, false)
	g.signingKey = other.SigningKey
	err = writeDrillEvidence(g, drillreport.Sample(drillreport.Options{}), "")
	if err == nil || !strings.Contains(err.Error(), "the drill's evidence was not stored in the repository") ||
		!strings.Contains(hintFor(err), "coffer key add-host") {
		t.Fatalf("unauthorised host key: %v (hint %q)", err, hintFor(err))
	}
}

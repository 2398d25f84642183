package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/cofferhq/coffer/drill"
	"github.com/cofferhq/coffer/internal/keys"
	"github.com/cofferhq/coffer/internal/repo"
)

// writeDrillEvidence prints a finished drill's report and keeps its
// evidence: the terminal summary on stdout (the JSON report, one line,
// under --json); with reportDir, drill-<id>.json and drill-<id>.html there
// (0600; the folder is made 0700 when missing); and in the repository, the
// report sealed to the recipients with a summary signed by the host key,
// when this invocation holds an authorised one. Without one the evidence
// stays local and a warning says how to keep it.
func writeDrillEvidence(g *globals, r *drill.Report, reportDir string) error {
	if r.ID == "" {
		r.ID = drill.NewID()
	}
	if g.json {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(g.stdout, "%s\n", b); err != nil {
			return err
		}
	} else if err := drill.WriteText(g.stdout, r); err != nil {
		return err
	}
	if reportDir != "" {
		if err := writeDrillFiles(r, reportDir); err != nil {
			return withHint(err, "check --report-dir")
		}
		if !g.json {
			fmt.Fprintf(g.stdout, "\nreport: %s\n", filepath.Join(reportDir, "drill-"+r.ID+".html"))
		}
	}
	return saveDrillEvidence(g, r)
}

// writeDrillFiles writes drill-<id>.json and drill-<id>.html into dir.
func writeDrillFiles(r *drill.Report, dir string) error {
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	base := filepath.Join(dir, "drill-"+r.ID)
	if err := writePrivateFile(base+".json", func(f *os.File) error { return drill.WriteJSON(f, r) }); err != nil {
		return err
	}
	return writePrivateFile(base+".html", func(f *os.File) error { return drill.WriteHTML(f, r) })
}

// saveDrillEvidence stores the report in the repository the drill read,
// signed with the host key this invocation holds.
func saveDrillEvidence(g *globals, r *drill.Report) error {
	if g.opened == nil || g.opened.Repo == nil {
		g.warnf("the drill's evidence was not stored in the repository: the drill did not open it")
		return nil
	}
	rp := g.opened.Repo
	ctx := context.Background() // the drill is over: its evidence is kept even after an interrupt
	if rp.Host() == nil {
		if g.signingKey == "" {
			const msg, hint = "the drill's evidence stayed local: no host signing key to sign its summary, so coffer drills will not list it",
				"pass --signing-key KEYS/host/signing.key (or set COFFER_SIGNING_KEY) with an authorised host key to store it in the repository"
			if g.json {
				g.warnf("%s (%s)", msg, hint)
			} else {
				g.warnf("%s", msg)
				fmt.Fprintf(g.stderr, "coffer: hint: %s\n", hint)
			}
			return nil
		}
		sk, err := keys.LoadSigningKey(g.signingKey)
		if err != nil {
			return keyError(err)
		}
		st, err := g.store(ctx)
		if err != nil {
			return err
		}
		// The repository as the drill opened it, pinned alike, now with
		// the host key that signs.
		rp, err = repo.Open(ctx, st, repo.OpenOptions{Owner: rp.Owner(), MinSeq: rp.Config.Seq, Signing: sk})
		if err != nil {
			var he *repo.HostError
			if errors.As(err, &he) {
				return withHint(fmt.Errorf("the drill's evidence was not stored in the repository: %w", err),
					"the owner authorises the key with coffer key add-host signing.pub; the report files are kept if you gave --report-dir")
			}
			return err
		}
	}
	if err := drill.Save(ctx, rp, r); err != nil {
		return fmt.Errorf("store the drill's evidence in the repository: %w", err)
	}
	if !g.json {
		fmt.Fprintf(g.stdout, "evidence: %s in the repository (coffer drills lists it)\n", repo.DrillName(r.ID))
	}
	return nil
}

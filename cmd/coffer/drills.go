package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cofferhq/coffer/drill"
	"github.com/cofferhq/coffer/internal/repo"
)

func drillsCommand(g *globals) *cli.Command {
	var htmlFile string
	return &cli.Command{
		Name:  "drills",
		Usage: "list the restore drill history (needs no key); drills show ID prints a drill's full report (needs the identity)",
		Description: "Every drill stores its evidence in the repository: a summary (drill id, snapshot, start, result,\n" +
			"RTO) signed by the drill host's key under drills/<id>, and the full report sealed to the recipients\n" +
			"under drill-reports/<sha256>. Listing needs only the owner pin: each summary's signature is checked\n" +
			"against the host keys the repository config authorises; one that does not verify, or whose report\n" +
			"is gone, is named and the command exits 3.\n\n" +
			"Examples:\n" +
			"  coffer drills --owner-key owner.pub\n" +
			"  coffer drills --json\n" +
			"  coffer drills show latest --identity identity.txt\n" +
			"  coffer drills show 1a2b3c4d --html drill.html",
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return withHint(usagef("unknown drills command %q", c.Args().First()), "coffer drills lists the history; coffer drills show ID shows one drill")
			}
			return runDrills(c.Context, g)
		},
		Subcommands: []*cli.Command{{
			Name:      "show",
			Usage:     "decrypt a drill's full report and print it (--html FILE: also the page for auditors; --json: the JSON report)",
			ArgsUsage: "ID|latest",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "html", Destination: &htmlFile, Usage: "write the report as a self-contained HTML page to `FILE`"},
			},
			Action: func(c *cli.Context) error {
				if c.NArg() != 1 {
					return usagef("drills show takes one drill id (or latest), got %d arguments", c.NArg())
				}
				return runDrillsShow(c.Context, g, c.Args().First(), htmlFile)
			},
		}},
	}
}

// drillJSON is one drill in coffer drills --json.
type drillJSON struct {
	ID            string    `json:"id"`
	Snapshot      string    `json:"snapshot"`
	Started       time.Time `json:"started"`
	Result        string    `json:"result"`
	RTO           float64   `json:"rto_seconds"`
	Signer        string    `json:"signer"`
	Report        string    `json:"report"`
	ReportMissing bool      `json:"report_missing"`
}

func runDrills(ctx context.Context, g *globals) error {
	r, err := g.open(ctx, false, false)
	if err != nil {
		return err
	}
	hist, bad, err := drill.History(ctx, r)
	if err != nil {
		return err
	}
	for _, b := range bad {
		g.warnf("%s", oneLine(b.Error()))
	}
	if g.json {
		out := []drillJSON{}
		for _, e := range hist {
			out = append(out, drillJSON{ID: e.ID, Snapshot: e.Snapshot, Started: e.Started, Result: string(e.Result),
				RTO: e.RTO.Duration().Seconds(), Signer: e.Signer, Report: e.Report, ReportMissing: e.ReportMissing})
		}
		if err := printJSON(g.stdout, out); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
		missing := false
		for _, e := range hist {
			missing = missing || e.ReportMissing
		}
		header := "ID\tSNAPSHOT\tSTARTED\tRESULT\tRTO"
		if missing {
			header += "\tNOTE"
		}
		fmt.Fprintln(tw, header)
		for _, e := range hist {
			snap := "-"
			if e.Snapshot != "" {
				snap = repo.ShortID(e.Snapshot)
			}
			row := fmt.Sprintf("%s\t%s\t%s\t%s\t%s", repo.ShortID(e.ID), snap, e.Started.Local().Format("2006-01-02 15:04:05"),
				e.Result, drill.HumanDuration(e.RTO.Duration()))
			switch {
			case e.ReportMissing:
				row += "\treport missing"
			case missing:
				row += "\t-"
			}
			fmt.Fprintln(tw, row)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintln(g.stdout, plural(len(hist), "drill", "drills"))
	}
	if len(bad) > 0 {
		return withHint(&repo.IntegrityError{Object: repo.DrillsPrefix, Err: fmt.Errorf("%s in the drill history, named above", plural(len(bad), "problem", "problems"))},
			"a summary that does not verify was forged or changed, a missing report was deleted: do not count those drills as evidence")
	}
	return nil
}

func runDrillsShow(ctx context.Context, g *globals, ref, htmlFile string) error {
	r, err := g.open(ctx, false, true)
	if err != nil {
		return err
	}
	id, err := drill.Find(ctx, r, ref)
	if err != nil {
		if errors.Is(err, drill.ErrNoDrill) {
			return withHint(err, "run coffer drills to list them")
		}
		return err
	}
	rep, _, err := drill.Load(ctx, r, id)
	if err != nil {
		return err
	}
	if htmlFile != "" {
		if err := writePrivateFile(htmlFile, func(f *os.File) error { return drill.WriteHTML(f, rep) }); err != nil {
			return err
		}
	}
	if g.json {
		return drill.WriteJSON(g.stdout, rep)
	}
	if err := drill.WriteText(g.stdout, rep); err != nil {
		return err
	}
	if htmlFile != "" {
		fmt.Fprintf(g.stdout, "\nreport for auditors: %s\n", htmlFile)
	}
	return nil
}

// writePrivateFile writes a file readable by its owner only (0600): a
// drill's report names tables, hosts and check results. It is written
// beside its name and renamed into place, so a reader never sees half of
// it.
func writePrivateFile(name string, write func(f *os.File) error) error {
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after the rename: nothing
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, name)
}

package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cofferhq/coffer/internal/inspect"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/internal/units"
	"github.com/cofferhq/coffer/restore"
)

type diffOptions struct {
	from, to string
	source   string
}

func diffCommand(g *globals) *cli.Command {
	o := &diffOptions{}
	return &cli.Command{
		Name:      "diff",
		Usage:     "show what changed between two snapshots, from their catalogs (needs the identity)",
		ArgsUsage: "SNAPSHOT1 SNAPSHOT2",
		Description: "Compares the catalogs of two snapshots, source by source: + added, - removed, M changed\n" +
			"(with what changed: content, size, mode, mtime, owner, link, type), with sizes; a folder\n" +
			"counts as changed only for its mode or owner (its time follows what is in it). For database\n" +
			"sources it also prints the fingerprints (row counts, check results) that differ. The last line\n" +
			"sums it up. SNAPSHOT is an id, a unique prefix, latest or latest:SOURCE.\n\n" +
			"Examples:\n" +
			"  coffer diff 1a2b3c4d latest\n" +
			"  coffer diff --source invoices 1a2b 5e6f\n" +
			"  coffer --json diff 1a2b3c4d 5e6f7a8b",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "source", Destination: &o.source, Usage: "compare only this source"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 2 {
				return usagef("diff takes two snapshots: SNAPSHOT1 SNAPSHOT2")
			}
			o.from, o.to = c.Args().Get(0), c.Args().Get(1)
			return runDiff(c.Context, g, o)
		},
	}
}

func runDiff(ctx context.Context, g *globals, o *diffOptions) error {
	if err := needIdentity(g, "diff"); err != nil {
		return err
	}
	var cats [2]*repo.Catalog
	var ms [2]*repo.Manifest
	for i, spec := range []string{o.from, o.to} {
		t := parseTarget(spec)
		if t.path != "" {
			return usagef("diff compares whole snapshots: give SNAPSHOT or latest:SOURCE, not %q (use --source)", spec)
		}
		m, err := resolveSnapshot(ctx, g, t, time.Time{})
		if err != nil {
			return err
		}
		snap, err := restore.Load(ctx, g.opened.Repo, m)
		if err != nil {
			return err
		}
		ms[i], cats[i] = m, snap.Catalog
	}
	d, err := inspect.Compare(cats[0], cats[1], o.source)
	if err != nil {
		return lookError(err, o.from)
	}
	if g.json {
		return printJSON(g.stdout, d)
	}
	w := g.stdout
	fmt.Fprintf(w, "from %s  %s\n", repo.ShortID(ms[0].ID), ms[0].Time.Local().Format(timeLayout))
	fmt.Fprintf(w, "to   %s  %s\n", repo.ShortID(ms[1].ID), ms[1].Time.Local().Format(timeLayout))
	for _, sd := range d.Sources {
		head := fmt.Sprintf("%s (%s)", sd.Name, sd.Kind)
		if sd.Status != "" {
			head += ": source " + sd.Status
		}
		if sd.Summary.Empty() {
			head += ": no change"
		}
		fmt.Fprintln(w, head)
		for _, e := range sd.Added {
			fmt.Fprintf(w, "  + %s%s  %s\n", showPath(e.Path), slash(e.Path, e.Type), units.Bytes(e.Size))
		}
		for _, e := range sd.Removed {
			fmt.Fprintf(w, "  - %s%s  %s\n", showPath(e.Path), slash(e.Path, e.Type), units.Bytes(e.Size))
		}
		for _, c := range sd.Changed {
			size := units.Bytes(c.New.Size)
			if c.Old.Size != c.New.Size {
				size = units.Bytes(c.Old.Size) + " -> " + units.Bytes(c.New.Size)
			}
			fmt.Fprintf(w, "  M %s%s  %s  (%s)\n", showPath(c.Path), slash(c.Path, c.New.Type), size, strings.Join(c.What, ", "))
		}
		for _, f := range sd.Fingerprints {
			fmt.Fprintln(w, fingerprintDiffLine(f))
		}
	}
	s := d.Summary
	fmt.Fprintf(w, "summary: %d added (%s), %d removed (%s), %d changed, %s; size %s%s\n",
		s.Added, units.Bytes(s.AddedBytes), s.Removed, units.Bytes(s.RemovedBytes), s.Changed,
		plural(s.Fingerprints, "fingerprint differs", "fingerprints differ"), sign(s.SizeDelta), units.Bytes(abs(s.SizeDelta)))
	return nil
}

// fingerprintDiffLine shows a fingerprint that differs; table names and
// check results come from the database, escaped.
func fingerprintDiffLine(f inspect.FingerprintDiff) string {
	return fmt.Sprintf("  fingerprint %s %s: %s -> %s", showPath(f.Part), printable(f.What), printable(f.Old), printable(f.New))
}

// slash marks folders with a trailing "/".
func slash(path, typ string) string {
	if typ == "dir" && path != "/" {
		return "/"
	}
	return ""
}

func sign(n int64) string {
	if n < 0 {
		return "-"
	}
	return "+"
}

func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}

package main

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/cofferhq/coffer/internal/inspect"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/internal/units"
)

func statsCommand(g *globals) *cli.Command {
	return &cli.Command{
		Name:  "stats",
		Usage: "repository size, deduplication ratio and each source's growth (reads catalogs, never file contents)",
		Description: "Counts the repository's objects by type and their size. With the identity it also reads\n" +
			"every snapshot's catalog: the logical size of all snapshots (what restoring each would write),\n" +
			"the deduplication ratio (logical size / size of the packs), and per snapshot and source the\n" +
			"files, the size and the new bytes: the stored (compressed) size of the chunks no earlier\n" +
			"snapshot referenced. Without the identity it prints the object counts only.\n\n" +
			"Examples:\n" +
			"  coffer stats\n" +
			"  coffer --json stats",
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("stats takes no arguments, got %q", c.Args().First())
			}
			return runStats(c.Context, g)
		},
	}
}

func runStats(ctx context.Context, g *globals) error {
	r, err := g.open(ctx, false, false)
	if err != nil {
		return err
	}
	ms, err := manifests(ctx, g, r)
	if err != nil {
		return err
	}
	st, warns, err := inspect.Collect(ctx, r, ms)
	for _, w := range warns {
		g.warnf("%s (run coffer verify)", w)
	}
	if err != nil {
		return err
	}
	if !r.HasIdentity() {
		g.warnf("without an identity only object counts are shown: sizes, deduplication and growth are in the catalogs, sealed to the recipients (pass --identity)")
	}
	if g.json {
		return printJSON(g.stdout, st)
	}
	w := g.stdout
	fmt.Fprintf(w, "repository %s: %d objects, %s (%s in packs)\n", r.Store.Location(), countObjects(st), units.Bytes(st.StoredBytes), units.Bytes(st.PackBytes))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  TYPE\tOBJECTS\tSIZE")
	for _, o := range st.Objects {
		fmt.Fprintf(tw, "  %s\t%d\t%s\n", o.Type, o.Count, units.Bytes(o.Bytes))
	}
	tw.Flush()
	if st.LogicalBytes == nil {
		fmt.Fprintf(w, "%s\n", plural(st.Snapshots, "snapshot", "snapshots"))
		return nil
	}
	ratio := "n/a"
	if st.DedupRatio != nil {
		ratio = fmt.Sprintf("%.2f", *st.DedupRatio)
	}
	fmt.Fprintf(w, "%s, logical size %s, deduplication ratio %s\n", plural(st.Snapshots, "snapshot", "snapshots"), units.Bytes(*st.LogicalBytes), ratio)
	if len(st.Growth) == 0 {
		return nil
	}
	fmt.Fprintln(w, "growth:")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  SNAPSHOT\tTIME\tSOURCE\tKIND\tFILES\tSIZE\tNEW")
	for _, sg := range st.Growth {
		for _, s := range sg.Sources {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%d\t%s\t%s\n", repo.ShortID(sg.Snapshot), sg.Time.Local().Format(timeLayout),
				s.Name, s.Kind, s.Files, units.Bytes(s.Size), units.Bytes(s.NewBytes))
		}
	}
	return tw.Flush()
}

func countObjects(st *inspect.Stats) int {
	n := 0
	for _, o := range st.Objects {
		n += o.Count
	}
	return n
}

package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cofferhq/coffer/internal/repo"
)

func snapshotsCommand(g *globals) *cli.Command {
	return &cli.Command{
		Name:   "snapshots",
		Usage:  "list snapshots (needs no identity)",
		Action: func(c *cli.Context) error { return runSnapshots(c.Context, g) },
	}
}

type snapshotJSON struct {
	ID      string                `json:"id"`
	Time    time.Time             `json:"time"`
	Host    string                `json:"host"`
	Tags    []string              `json:"tags"`
	Sources []repo.ManifestSource `json:"sources"`
	Size    int64                 `json:"size"`
	// Incomplete: a source left out what it could not read.
	Incomplete bool `json:"incomplete"`
}

func runSnapshots(ctx context.Context, g *globals) error {
	r, err := g.open(ctx, false, false)
	if err != nil {
		return err
	}
	ms, bad, err := r.Manifests(ctx)
	if err != nil {
		return err
	}
	for _, b := range bad {
		fmt.Fprintf(g.stderr, "coffer: warning: %v (run coffer verify)\n", b)
	}
	if g.json {
		out := []snapshotJSON{}
		for _, m := range ms {
			out = append(out, snapshotJSON{ID: m.ID, Time: m.Time, Host: m.Host, Tags: append([]string{}, m.Tags...),
				Sources: m.Sources, Size: m.TotalSize(), Incomplete: m.Incomplete})
		}
		return printJSON(g.stdout, out)
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	// A NOTE column only when a snapshot needs one, so that rows have
	// no trailing blanks.
	notes := false
	for _, m := range ms {
		notes = notes || m.Incomplete
	}
	header := "ID\tTIME\tHOST\tSOURCES\tTAGS\tSIZE"
	if notes {
		header += "\tNOTE"
	}
	fmt.Fprintln(tw, header)
	for _, m := range ms {
		var names []string
		for _, s := range m.Sources {
			names = append(names, s.Name)
		}
		row := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s", repo.ShortID(m.ID), m.Time.Local().Format("2006-01-02 15:04:05"),
			m.Host, strings.Join(names, ","), strings.Join(m.Tags, ","), humanBytes(m.TotalSize()))
		switch {
		case m.Incomplete:
			row += "\tincomplete"
		case notes:
			row += "\t-"
		}
		fmt.Fprintln(tw, row)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "%d snapshots\n", len(ms))
	return nil
}

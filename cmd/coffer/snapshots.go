package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/restore"
)

type snapshotsOptions struct {
	source, tag string
}

func snapshotsCommand(g *globals) *cli.Command {
	o := &snapshotsOptions{}
	return &cli.Command{
		Name:  "snapshots",
		Usage: "list snapshots (needs no identity; with one, also what their airflow sources hold and their consistent points)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "source", Destination: &o.source, Usage: "only snapshots that hold this source"},
			&cli.StringFlag{Name: "tag", Destination: &o.tag, Usage: "only snapshots with this tag"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("snapshots takes no arguments")
			}
			return runSnapshots(c.Context, g, o)
		},
	}
}

type snapshotJSON struct {
	ID      string                `json:"id"`
	Time    time.Time             `json:"time"`
	Host    string                `json:"host"`
	Tags    []string              `json:"tags"`
	Sources []repo.ManifestSource `json:"sources"`
	Size    int64                 `json:"size"`
}

func runSnapshots(ctx context.Context, g *globals, o *snapshotsOptions) error {
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
	f := restore.Filter{Source: o.source, Tag: o.tag}
	ms = slices.DeleteFunc(ms, func(m *repo.Manifest) bool { return !f.Match(m) })
	if g.json {
		out := []snapshotJSON{}
		for _, m := range ms {
			out = append(out, snapshotJSON{ID: m.ID, Time: m.Time, Host: m.Host, Tags: append([]string{}, m.Tags...),
				Sources: m.Sources, Size: m.TotalSize()})
		}
		return printJSON(g.stdout, out)
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTIME\tHOST\tSOURCES\tTAGS\tSIZE")
	for _, m := range ms {
		var names []string
		for _, s := range m.Sources {
			names = append(names, s.Name)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", repo.ShortID(m.ID), m.Time.Local().Format("2006-01-02 15:04:05"),
			m.Host, strings.Join(names, ","), strings.Join(m.Tags, ","), humanBytes(m.TotalSize()))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "%d snapshots\n", len(ms))
	return nil
}

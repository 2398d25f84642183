package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cofferhq/coffer/internal/known"
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
}

func runSnapshots(ctx context.Context, g *globals) error {
	r, err := g.open(ctx, false, false)
	if err != nil {
		return err
	}
	vanished := g.opened.Vanished(ctx)
	ms, bad, err := r.Manifests(ctx)
	if err != nil {
		return err
	}
	for _, b := range bad {
		fmt.Fprintf(g.stderr, "coffer: warning: %v (run coffer verify)\n", b)
	}
	var ve *known.VanishedError
	if errors.As(vanished, &ve) {
		fmt.Fprintf(g.stderr, "coffer: warning: %v (run coffer verify)\n", ve)
	} else if vanished != nil {
		return vanished
	}
	if err := g.opened.Remember(ctx, ms, true); err != nil {
		return err
	}
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
	fmt.Fprintf(g.stdout, "recipients (config %d): %s\n", r.Config.Seq, strings.Join(recipientFingerprints(&r.Config), ", "))
	return nil
}

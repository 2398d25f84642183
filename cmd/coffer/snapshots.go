package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cofferhq/coffer/internal/repo"
)

func snapshotsCommand(g *globals) *cli.Command {
	return &cli.Command{
		Name:  "snapshots",
		Usage: "list snapshots (needs no identity; with --identity also host, tags and sizes)",
		Description: "Without an identity it shows what the manifests make public: id, time and source names.\n" +
			"Host, tags and sizes are sealed to the recipients; --identity shows them too.",
		Action: func(c *cli.Context) error { return runSnapshots(c.Context, g) },
	}
}

// snapshotJSON is one snapshot in snapshots --json. Host, tags and sizes
// come from the private part, so only with an identity.
type snapshotJSON struct {
	ID      string       `json:"id"`
	Time    time.Time    `json:"time"`
	Sources []sourceJSON `json:"sources"`
	Host    *string      `json:"host,omitempty"`
	Tags    []string     `json:"tags,omitempty"`
	Size    *int64       `json:"size,omitempty"`
	// Incomplete: a source left out what it could not read.
	Incomplete bool `json:"incomplete"`
}

type sourceJSON struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
	Size *int64 `json:"size,omitempty"`
}

// sourcesJSON lists m's sources, with their sizes when p (the private
// part) is known.
func sourcesJSON(m *repo.Manifest, p *repo.Private) []sourceJSON {
	out := make([]sourceJSON, len(m.Sources))
	for i, s := range m.Sources {
		out[i] = sourceJSON{Name: s.Name, Kind: s.Kind}
		if p != nil && i < len(p.Sources) {
			out[i].Size = &p.Sources[i].Size
		}
	}
	return out
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
	// With an identity, each snapshot's private part; nil where it is
	// damaged (reported as a warning) or without an identity.
	privs := make([]*repo.Private, len(ms))
	if r.HasIdentity() {
		for i, m := range ms {
			p, err := r.ReadPrivate(ctx, m)
			var ie *repo.IntegrityError
			switch {
			case errors.As(err, &ie):
				fmt.Fprintf(g.stderr, "coffer: warning: %v (run coffer verify)\n", err)
			case err != nil:
				return err
			}
			privs[i] = p
		}
	}
	if g.json {
		out := []snapshotJSON{}
		for i, m := range ms {
			s := snapshotJSON{ID: m.ID, Time: m.Time, Sources: sourcesJSON(m, privs[i]), Incomplete: m.Incomplete}
			if p := privs[i]; p != nil {
				size := p.TotalSize()
				s.Host, s.Tags, s.Size = &p.Host, p.Tags, &size
			}
			out = append(out, s)
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
	header := "ID\tTIME\tSOURCES"
	if r.HasIdentity() {
		header = "ID\tTIME\tHOST\tSOURCES\tTAGS\tSIZE"
	}
	if notes {
		header += "\tNOTE"
	}
	fmt.Fprintln(tw, header)
	for i, m := range ms {
		var names []string
		for _, s := range m.Sources {
			names = append(names, s.Name)
		}
		id, when, srcs := repo.ShortID(m.ID), m.Time.Local().Format("2006-01-02 15:04:05"), strings.Join(names, ",")
		var row string
		switch p := privs[i]; {
		case !r.HasIdentity():
			row = fmt.Sprintf("%s\t%s\t%s", id, when, srcs)
		case p == nil:
			row = fmt.Sprintf("%s\t%s\t?\t%s\t?\t?", id, when, srcs)
		default:
			row = fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s", id, when, p.Host, srcs, strings.Join(p.Tags, ","), humanBytes(p.TotalSize()))
		}
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

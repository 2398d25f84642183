package main

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/restore"
	"github.com/cofferhq/coffer/source/airflow"
	"github.com/cofferhq/coffer/source/registry"
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
	// With an identity: what airflow sources hold, and the consistent
	// points of the sources.
	Airflow    map[string]*airflow.Summary `json:"airflow,omitempty"`
	Consistent []restore.Point             `json:"consistent,omitempty"`
	// SkewSeconds is the time between the earliest and latest database
	// snapshot among the sources.
	SkewSeconds *float64 `json:"skew_seconds,omitempty"`
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
	// Details need the catalogs, so an identity; snapshots of one plain
	// source have none worth a line.
	details := map[string]*snapshotJSON{}
	var missed int
	for _, m := range ms {
		if !detailed(m) {
			continue
		}
		if len(g.keys.Identities) == 0 {
			if len(m.Sources) == 1 {
				missed++
			}
			continue
		}
		d, err := snapshotDetails(ctx, r, m)
		if err != nil {
			fmt.Fprintf(g.stderr, "coffer: warning: snapshot %s: %v\n", repo.ShortID(m.ID), err)
			continue
		}
		details[m.ID] = d
	}
	if g.json {
		out := []snapshotJSON{}
		for _, m := range ms {
			j := snapshotJSON{ID: m.ID, Time: m.Time, Host: m.Host, Tags: append([]string{}, m.Tags...),
				Sources: m.Sources, Size: m.TotalSize()}
			if d := details[m.ID]; d != nil {
				j.Airflow, j.Consistent, j.SkewSeconds = d.Airflow, d.Consistent, d.SkewSeconds
			}
			out = append(out, j)
		}
		return printJSON(g.stdout, out)
	}
	var table bytes.Buffer
	tw := tabwriter.NewWriter(&table, 0, 4, 2, ' ', 0)
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
	// The table's lines, each snapshot's details below its row.
	lines := strings.SplitAfter(table.String(), "\n")
	fmt.Fprint(g.stdout, lines[0])
	for i, m := range ms {
		fmt.Fprint(g.stdout, lines[i+1])
		if d := details[m.ID]; d != nil {
			for _, l := range d.lines() {
				fmt.Fprintf(g.stdout, "  %s\n", l)
			}
		}
	}
	fmt.Fprintf(g.stdout, "%d snapshots\n", len(ms))
	if missed > 0 {
		fmt.Fprintf(g.stdout, "(%d with an airflow source: pass --identity to see its Airflow version and consistent points)\n", missed)
	}
	return nil
}

// detailed reports whether a snapshot has details worth loading its
// catalog for: an airflow source, or several sources whose consistent
// points can be compared.
func detailed(m *repo.Manifest) bool {
	if len(m.Sources) > 1 {
		return true
	}
	for _, s := range m.Sources {
		if k, ok := registry.Lookup(s.Kind); ok && k.Composite {
			return true
		}
	}
	return false
}

// snapshotDetails reads a snapshot's catalog for its airflow summaries and
// consistent points.
func snapshotDetails(ctx context.Context, r *repo.Repository, m *repo.Manifest) (*snapshotJSON, error) {
	snap, err := restore.Load(ctx, r, m)
	if err != nil {
		return nil, err
	}
	d := &snapshotJSON{}
	for _, s := range m.Sources {
		if s.Kind != airflow.Kind.Name {
			continue
		}
		src, err := snap.Source(s.Name)
		if err != nil {
			return nil, err
		}
		sum, err := airflow.Summarize(src)
		if err != nil {
			return nil, err
		}
		if d.Airflow == nil {
			d.Airflow = map[string]*airflow.Summary{}
		}
		d.Airflow[s.Name] = sum
	}
	d.Consistent = snap.ConsistentPoints()
	if skew, ok := restore.Skew(d.Consistent); ok {
		sec := skew.Seconds()
		d.SkewSeconds = &sec
	}
	return d, nil
}

func (d *snapshotJSON) lines() []string {
	var out []string
	var names []string
	for n := range d.Airflow {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		out = append(out, n+": "+d.Airflow[n].String())
	}
	if s := restore.DescribePoints(d.Consistent); s != "" {
		out = append(out, "consistent points: "+s)
	}
	return out
}

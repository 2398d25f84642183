package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cofferhq/coffer/internal/known"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/internal/units"
	"github.com/cofferhq/coffer/restore"
	"github.com/cofferhq/coffer/source/airflow"
	"github.com/cofferhq/coffer/source/registry"
)

type snapshotsOptions struct {
	source, tag, host string
	latest            int
}

func snapshotsCommand(g *globals) *cli.Command {
	o := &snapshotsOptions{}
	return &cli.Command{
		Name:  "snapshots",
		Usage: "list snapshots (needs no identity; with --identity also host, tags, sizes, airflow versions and consistent points)",
		Description: "Without an identity it shows what the manifests make public: id, time and source names.\n" +
			"Host, tags and sizes are sealed to the recipients; --identity shows them too, and below a\n" +
			"snapshot with an airflow source or several sources, the Airflow version and schema revision,\n" +
			"and when each database source's contents are from (and the skew between them).",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "source", Destination: &o.source, Usage: "only snapshots that hold this source"},
			&cli.StringFlag{Name: "tag", Destination: &o.tag, Usage: "only snapshots with this tag (needs --identity: tags are sealed)"},
			&cli.StringFlag{Name: "host", Destination: &o.host, Usage: "only snapshots taken on this host (needs --identity: the host name is sealed)"},
			&cli.IntFlag{Name: "latest", Destination: &o.latest, Usage: "only the `N` newest of the snapshots that match"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("snapshots takes no arguments, got %q: filter with --source, --tag, --host or --latest N", c.Args().First())
			}
			if c.IsSet("latest") && o.latest < 1 {
				return usagef("--latest takes a number of snapshots, at least 1")
			}
			return runSnapshots(c.Context, g, o)
		},
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
	// With an identity: what airflow sources hold, and the consistent
	// points of the sources.
	Airflow    map[string]*airflow.Summary `json:"airflow,omitempty"`
	Consistent []restore.Point             `json:"consistent,omitempty"`
	// SkewSeconds is the time between the earliest and latest database
	// snapshot among the sources.
	SkewSeconds *float64 `json:"skew_seconds,omitempty"`
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

func runSnapshots(ctx context.Context, g *globals, o *snapshotsOptions) error {
	r, err := g.open(ctx, false, false)
	if err != nil {
		return err
	}
	vanished := g.opened.Vanished(ctx)
	if o.tag != "" && !r.HasIdentity() {
		return withHint(usagef("tags are sealed to the recipients: --tag needs an identity"), "pass --identity identity.txt")
	}
	if o.host != "" && !r.HasIdentity() {
		return withHint(usagef("the host name is sealed to the recipients: --host needs an identity"), "pass --identity identity.txt")
	}
	ms, bad, err := r.Manifests(ctx)
	if err != nil {
		return err
	}
	for _, b := range bad {
		g.warnf("%v (run coffer verify)", b)
	}
	var ve *known.VanishedError
	if errors.As(vanished, &ve) {
		g.warnf("%v (run coffer verify)", ve)
	} else if vanished != nil {
		return vanished
	}
	if err := g.opened.Remember(ms); err != nil {
		return err
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
				g.warnf("%v (run coffer verify)", err)
			case err != nil:
				return err
			}
			privs[i] = p
		}
	}
	f := restore.Filter{Source: o.source, Tag: o.tag}
	var keep []*repo.Manifest
	var keepPrivs []*repo.Private
	for i, m := range ms {
		if f.Match(m, privs[i]) && (o.host == "" || privs[i] != nil && privs[i].Host == o.host) {
			keep, keepPrivs = append(keep, m), append(keepPrivs, privs[i])
		}
	}
	ms, privs = keep, keepPrivs
	// Manifests come sorted by time: the newest are the last.
	if o.latest > 0 && len(ms) > o.latest {
		ms, privs = ms[len(ms)-o.latest:], privs[len(privs)-o.latest:]
	}
	// Details need the catalogs, so an identity; snapshots of one plain
	// source have none worth a line.
	details := map[string]*snapshotJSON{}
	missed := 0
	for _, m := range ms {
		if !detailed(m) {
			continue
		}
		if !r.HasIdentity() {
			if len(m.Sources) == 1 {
				missed++
			}
			continue
		}
		d, err := snapshotDetails(ctx, r, m)
		if err != nil {
			g.warnf("snapshot %s: %v", repo.ShortID(m.ID), err)
			continue
		}
		details[m.ID] = d
	}
	if g.json {
		out := []snapshotJSON{}
		for i, m := range ms {
			s := snapshotJSON{ID: m.ID, Time: m.Time, Sources: sourcesJSON(m, privs[i]), Incomplete: m.Incomplete}
			if p := privs[i]; p != nil {
				size := p.TotalSize()
				s.Host, s.Tags, s.Size = &p.Host, p.Tags, &size
			}
			if d := details[m.ID]; d != nil {
				s.Airflow, s.Consistent, s.SkewSeconds = d.Airflow, d.Consistent, d.SkewSeconds
			}
			out = append(out, s)
		}
		return printJSON(g.stdout, out)
	}
	var table bytes.Buffer
	tw := tabwriter.NewWriter(&table, 0, 4, 2, ' ', 0)
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
			row = fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s", id, when, p.Host, srcs, strings.Join(p.Tags, ","), units.Bytes(p.TotalSize()))
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
	fmt.Fprintln(g.stdout, plural(len(ms), "snapshot", "snapshots"))
	if missed > 0 {
		fmt.Fprintf(g.stdout, "(%d with an airflow source: pass --identity to see its Airflow version and consistent points)\n", missed)
	}
	fmt.Fprintf(g.stdout, "recipients (config %d): %s\n", r.Config.Seq, strings.Join(recipientFingerprints(&r.Config), ", "))
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

// plural is "1 snapshot", "0 snapshots", "2 snapshots".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

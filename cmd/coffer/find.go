package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/cofferhq/coffer/internal/inspect"
	"github.com/cofferhq/coffer/internal/pathglob"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/restore"
)

type findOptions struct {
	pattern      string
	source       string
	since, until string
}

func findCommand(g *globals) *cli.Command {
	o := &findOptions{}
	return &cli.Command{
		Name:      "find",
		Usage:     "find paths across snapshots, and when they appeared, changed or vanished (needs the identity)",
		ArgsUsage: "PATTERN",
		Description: "Searches the catalogs of every snapshot (oldest first) for paths that match PATTERN, and\n" +
			"prints them grouped by snapshot with their source, mode, owner, size, modification time and\n" +
			"path. The first column compares each with the previous snapshot holding the same source:\n" +
			"+ added, M changed (contents, size, type or mode), = unchanged, - removed (it matched there\n" +
			"and is gone here). So \"which night did INV-42 vanish?\" is the snapshot with its - line.\n\n" +
			"PATTERN: *, ? and [...] match within a path element, ** any number of elements. A pattern\n" +
			"without / matches the file name at any depth (INV-42*); one with / is anchored at the\n" +
			"source's root (invoices/2026/*.pdf, **/INV-42.pdf). Quote it for the shell.\n\n" +
			"Examples:\n" +
			"  coffer find 'INV-42*'\n" +
			"  coffer find --source invoices --since 2026-11-01 'invoices/2026/**/*.pdf'\n" +
			"  coffer --json find --until 2026-11-30 '*.pdf'",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "source", Destination: &o.source, Usage: "only this source"},
			&cli.StringFlag{Name: "since", Destination: &o.since, Usage: "only snapshots taken at or after this time (RFC 3339 or 2006-01-02)"},
			&cli.StringFlag{Name: "until", Destination: &o.until, Usage: "only snapshots taken at or before this time (a bare date: to its end)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("find takes one PATTERN argument (quote it for the shell)")
			}
			o.pattern = c.Args().First()
			return runFind(c.Context, g, o)
		},
	}
}

// statusMark is find's first column.
var statusMark = map[string]string{inspect.Added: "+", inspect.Changed: "M", inspect.Unchanged: "=", inspect.Removed: "-"}

func runFind(ctx context.Context, g *globals, o *findOptions) error {
	pat, err := pathglob.Compile(o.pattern)
	if err != nil {
		return usagef("%v", err)
	}
	rg := inspect.Range{Source: o.source}
	if rg.Since, err = parseRangeTime("--since", o.since, false); err != nil {
		return err
	}
	if rg.Until, err = parseRangeTime("--until", o.until, true); err != nil {
		return err
	}
	if err := needIdentity(g, "find"); err != nil {
		return err
	}
	r, err := g.open(ctx, false, true)
	if err != nil {
		return err
	}
	ms, err := manifests(ctx, g, r)
	if err != nil {
		return err
	}
	var in []*repo.Manifest
	for _, m := range ms {
		if rg.Contains(m) {
			in = append(in, m)
		}
	}
	if o.source != "" && len(in) == 0 && !anyHolds(ms, o.source) {
		return withHint(fmt.Errorf("%w: none of the %d snapshots holds source %q", restore.ErrNoSnapshot, len(ms), o.source),
			"run coffer snapshots to see the sources")
	}
	found, warns, err := inspect.Find(ctx, r, ms, pat, rg)
	for _, w := range warns {
		g.warnf("%s (run coffer verify)", w)
	}
	if err != nil {
		return err
	}
	if g.json {
		return printJSON(g.stdout, found)
	}
	by := map[string][]inspect.Entry{}
	marks := map[string][]string{}
	hits := 0
	for _, f := range found {
		by[f.Snapshot] = append(by[f.Snapshot], f.Entry)
		marks[f.Snapshot] = append(marks[f.Snapshot], statusMark[f.Status])
		if f.Status != inspect.Removed {
			hits++
		}
	}
	withHits := 0
	for _, m := range in {
		es := by[m.ID]
		head := fmt.Sprintf("snapshot %s  %s", repo.ShortID(m.ID), m.Time.Local().Format(timeLayout))
		if len(es) == 0 {
			fmt.Fprintf(g.stdout, "%s  no match\n", head)
			continue
		}
		fmt.Fprintln(g.stdout, head)
		lines := longLines(prefixSource(es), false)
		k := 0
		for _, l := range lines {
			if len(l) > 0 && l[0] == ' ' { // a fingerprint line
				fmt.Fprintf(g.stdout, "  %s\n", l)
				continue
			}
			fmt.Fprintf(g.stdout, "  %s %s\n", marks[m.ID][k], l)
			k++
		}
		if len(es) > countRemoved(marks[m.ID]) {
			withHits++
		}
	}
	fmt.Fprintf(g.stdout, "%s in %d of %d snapshots\n", plural(hits, "match", "matches"), withHits, len(in))
	return nil
}

// prefixSource shows each entry as SOURCE:/path.
func prefixSource(es []inspect.Entry) []inspect.Entry {
	out := make([]inspect.Entry, len(es))
	for i, e := range es {
		e.Path = e.Source + ":" + e.Path
		out[i] = e
	}
	return out
}

func countRemoved(marks []string) int {
	n := 0
	for _, m := range marks {
		if m == "-" {
			n++
		}
	}
	return n
}

func anyHolds(ms []*repo.Manifest, source string) bool {
	for _, m := range ms {
		if (inspect.Range{Source: source}).Contains(m) {
			return true
		}
	}
	return false
}

// manifests reads every manifest, warning about those that do not verify.
func manifests(ctx context.Context, g *globals, r *repo.Repository) ([]*repo.Manifest, error) {
	ms, bad, err := r.Manifests(ctx)
	if err != nil {
		return nil, err
	}
	for _, b := range bad {
		var ie *repo.IntegrityError
		if errors.As(b, &ie) {
			g.warnf("%v (run coffer verify)", b)
		}
	}
	return ms, nil
}

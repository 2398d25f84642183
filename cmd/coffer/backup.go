package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cofferhq/coffer/backup"
	"github.com/cofferhq/coffer/internal/config"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/source"
	"github.com/cofferhq/coffer/source/registry"
)

type backupOptions struct {
	tags    cli.StringSlice
	strict  bool
	uploads int
	sources []string
}

func backupCommand(g *globals) *cli.Command {
	o := &backupOptions{}
	return &cli.Command{
		Name:        "backup",
		Usage:       "back up sources into one snapshot",
		ArgsUsage:   "SOURCE... (NAME=KIND:LOCATION, or a name from the config file's sources:)",
		Description: "KIND:LOCATION is one of:\n" + registry.Help(),
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "tag", Destination: &o.tags, Usage: "tag the snapshot (repeatable)"},
			&cli.BoolFlag{Name: "strict", Destination: &o.strict, Usage: "fail on warnings such as a file that changed while read or could not be read (without it, unreadable files and folders are left out and the backup exits 4)"},
			&cli.IntFlag{Name: "uploads", Destination: &o.uploads, Usage: "packs uploaded in parallel (default from config, else 2)"},
		},
		Action: func(c *cli.Context) error {
			o.sources = c.Args().Slice()
			return runBackup(c.Context, g, o)
		},
	}
}

// sourcesFrom turns command-line arguments into sources. With no
// arguments, every source of the config file is backed up.
func sourcesFrom(g *globals, args []string) ([]source.Source, error) {
	if len(args) == 0 {
		for name := range g.cfg.Sources {
			args = append(args, name)
		}
		if len(args) == 0 {
			return nil, usagef("nothing to back up: give SOURCE arguments (NAME=KIND:LOCATION) or sources: in the config file")
		}
		sortStrings(args)
	}
	var out []source.Source
	for _, a := range args {
		name, spec, ok := strings.Cut(a, "=")
		var sc source.Spec
		if ok {
			var err error
			if sc, err = registry.ParseSpec(spec); err != nil {
				return nil, usagef("%v", err)
			}
		} else {
			c, found := g.cfg.Sources[a]
			if !found {
				return nil, usagef("source %q is neither NAME=KIND:LOCATION nor a name in the config file", a)
			}
			sc = c.Spec()
		}
		s, err := registry.New(name, sc)
		if err != nil {
			return nil, usagef("%v", err)
		}
		out = append(out, s)
	}
	return out, nil
}

// backupError marks an error of a backup run (its message unchanged), so
// that an interruption can say that nothing was published.
type backupError struct{ err error }

func (e *backupError) Error() string { return e.err.Error() }
func (e *backupError) Unwrap() error { return e.err }

func runBackup(ctx context.Context, g *globals, o *backupOptions) error {
	sources, err := sourcesFrom(g, o.sources)
	if err != nil {
		return err
	}
	r, err := g.open(ctx, true, false)
	if err != nil {
		return err
	}
	if err := g.cfg.Apply(config.Overrides{Uploads: o.uploads}); err != nil {
		return usagef("--%v", err)
	}
	res, err := backup.Run(ctx, backup.Options{Repo: r, Signing: g.keys.Signing, Sources: sources,
		Tags: o.tags.Value(), Strict: o.strict, Uploads: g.cfg.Uploads, CacheDir: cacheDir(g), Logger: g.log})
	if err != nil {
		return &backupError{err}
	}
	m, p := res.Manifest, res.Private
	if g.json {
		skipped := append([]backup.Skipped{}, res.Skipped...)
		if err := printJSON(g.stdout, map[string]any{"snapshot": m.ID, "time": m.Time, "sources": sourcesJSON(m, p),
			"stats": p.Stats, "bytes_skipped": res.BytesSkipped, "duration_seconds": p.Duration.Seconds(), "warnings": res.Warnings,
			"repository_warnings": res.RepoWarnings, "incomplete": m.Incomplete, "skipped": skipped}); err != nil {
			return err
		}
		return incomplete(g, m, res)
	}
	for _, w := range append(res.RepoWarnings, res.Warnings...) {
		fmt.Fprintf(g.stderr, "coffer: warning: %s\n", w)
	}
	if m.Incomplete {
		fmt.Fprintf(g.stdout, "snapshot %s saved, incomplete: %d paths not read\n", m.ID, len(res.Skipped))
	} else {
		fmt.Fprintf(g.stdout, "snapshot %s saved\n", m.ID)
	}
	fmt.Fprintf(g.stdout, "  sources:      %s\n", sourceNames(m))
	fmt.Fprintf(g.stdout, "  bytes read:   %s", humanBytes(p.Stats.BytesRead))
	if res.BytesSkipped > 0 {
		fmt.Fprintf(g.stdout, " (%s unchanged, not read)", humanBytes(res.BytesSkipped))
	}
	fmt.Fprintf(g.stdout, "\n  bytes new:    %s\n", humanBytes(p.Stats.BytesNew))
	fmt.Fprintf(g.stdout, "  bytes stored: %s\n", humanBytes(p.Stats.BytesStored))
	fmt.Fprintf(g.stdout, "  duration:     %s\n", p.Duration.Round(time.Millisecond))
	return incomplete(g, m, res)
}

// incomplete ends a backup whose snapshot was saved without what its
// sources could not read: exit 4, after a warning that says so.
func incomplete(g *globals, m *repo.Manifest, res *backup.Result) error {
	if !m.Incomplete {
		return nil
	}
	fmt.Fprintf(g.stderr, "coffer: warning: snapshot %s is incomplete: %d paths could not be read and are not in it (exit %d; --strict fails instead)\n",
		repo.ShortID(m.ID), len(res.Skipped), exitIncomplete)
	return &exitError{code: exitIncomplete}
}

func sourceNames(m *repo.Manifest) string {
	var s []string
	for _, src := range m.Sources {
		s = append(s, src.Name+" ("+src.Kind+")")
	}
	return strings.Join(s, ", ")
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

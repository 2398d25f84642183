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
	"github.com/cofferhq/coffer/restore"
)

type restoreOptions struct {
	spec       string
	to         string
	toPostgres string
	toMySQL    string
	toSQLite   string
	force      bool
	replace    bool
	jobs       int
	memoryMiB  int64
	before     string
}

func restoreCommand(g *globals) *cli.Command {
	o := &restoreOptions{}
	return &cli.Command{
		Name:      "restore",
		Usage:     "restore a snapshot's source into a folder or a database, all or nothing",
		ArgsUsage: "SNAPSHOT[:SOURCE[:/sub/path]] (SNAPSHOT: an id, a unique prefix or latest)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "to", Destination: &o.to, Usage: "restore a folder source into this folder"},
			&cli.StringFlag{Name: "to-postgres", Destination: &o.toPostgres, Usage: "restore a postgres source into this new database (DSN)"},
			&cli.StringFlag{Name: "to-mysql", Destination: &o.toMySQL, Usage: "restore a mysql source into this new database (DSN)"},
			&cli.StringFlag{Name: "to-sqlite", Destination: &o.toSQLite, Usage: "restore a sqlite source into this file"},
			&cli.BoolFlag{Name: "force", Destination: &o.force, Usage: "replace a non-empty target folder, or restore over the source database"},
			&cli.BoolFlag{Name: "replace", Destination: &o.replace, Usage: "restore into a fresh database and swap it in after success"},
			&cli.IntFlag{Name: "jobs", Value: 2, Destination: &o.jobs, Usage: "parallel pg_restore jobs"},
			&cli.Int64Flag{Name: "memory-budget", Value: 1024, Destination: &o.memoryMiB, Usage: "MiB of memory a parallel pg_restore may hold the dump in (never a plaintext file on disk); larger dumps restore with one job"},
			&cli.StringFlag{Name: "before", Destination: &o.before, Usage: "with latest: the newest snapshot before this time (RFC 3339 or 2006-01-02)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("restore takes one SNAPSHOT[:SOURCE[:/sub/path]] argument")
			}
			o.spec = c.Args().First()
			return runRestore(c.Context, g, o)
		},
	}
}

// target is SNAPSHOT[:SOURCE[:/path]].
type target struct {
	snapshot, source, path string
}

func parseTarget(s string) target {
	var t target
	parts := strings.SplitN(s, ":", 3)
	t.snapshot = parts[0]
	if len(parts) > 1 {
		t.source = parts[1]
	}
	if len(parts) > 2 {
		t.path = parts[2]
	}
	return t
}

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, usagef("--before %q: use RFC 3339 (2006-01-02T15:04:05Z) or 2006-01-02", s)
}

// openSource resolves SNAPSHOT[:SOURCE] and opens the source for reading;
// it also returns the snapshot's manifest.
func openSource(ctx context.Context, g *globals, t target, before time.Time) (*restore.Source, *repo.Manifest, error) {
	r, err := g.open(ctx, false, true)
	if err != nil {
		return nil, nil, err
	}
	m, err := restore.Resolve(ctx, r, t.snapshot, before)
	if err != nil {
		return nil, nil, err
	}
	if t.source == "" {
		if len(m.Sources) != 1 {
			var names []string
			for _, s := range m.Sources {
				names = append(names, s.Name)
			}
			return nil, nil, usagef("snapshot %s has several sources; name one: %s:SOURCE (one of %s)", repo.ShortID(m.ID), t.snapshot, strings.Join(names, ", "))
		}
		t.source = m.Sources[0].Name
	}
	snap, err := restore.Load(ctx, r, m)
	if err != nil {
		return nil, nil, err
	}
	src, err := snap.Source(t.source)
	return src, m, err
}

func runRestore(ctx context.Context, g *globals, o *restoreOptions) error {
	n := 0
	for _, s := range []string{o.to, o.toPostgres, o.toMySQL, o.toSQLite} {
		if s != "" {
			n++
		}
	}
	if n != 1 {
		return usagef("give exactly one of --to, --to-postgres, --to-mysql, --to-sqlite")
	}
	before, err := parseTime(o.before)
	if err != nil {
		return err
	}
	t := parseTarget(o.spec)
	src, m, err := openSource(ctx, g, t, before)
	if err != nil {
		return err
	}
	start := time.Now()
	switch {
	case o.to != "":
		if src.Kind() != "dir" && t.path == "" {
			g.log.Info("restoring a database source's files into a folder", "kind", src.Kind())
		}
		res, err := restore.RestoreDir(ctx, src, o.to, restore.DirOptions{Force: o.force, SubPath: t.path})
		if err != nil {
			return err
		}
		if g.json {
			return printJSON(g.stdout, map[string]any{"snapshot": m.ID, "source": src.Name(), "target": o.to, "files": res.Files, "dirs": res.Dirs,
				"symlinks": res.Symlinks, "bytes": res.Bytes, "duration_seconds": time.Since(start).Seconds()})
		}
		fmt.Fprintf(g.stdout, "restored %s:%s to %s: %d files, %d folders, %d symlinks, %s in %s\n",
			repo.ShortID(m.ID), src.Name(), o.to, res.Files, res.Dirs, res.Symlinks, humanBytes(res.Bytes),
			time.Since(start).Round(time.Millisecond))
		return nil
	case o.toPostgres != "":
		if src.Kind() != "postgres" {
			return usagef("--to-postgres needs a postgres source; %s is %s", src.Name(), src.Kind())
		}
		if _, err := restore.RestorePostgres(ctx, src, o.toPostgres, restore.PostgresOptions{Replace: o.replace, Force: o.force, Jobs: o.jobs, MemoryBudget: o.memoryMiB << 20}); err != nil {
			return mismatchTable(g, err)
		}
	case o.toMySQL != "":
		if src.Kind() != "mysql" {
			return usagef("--to-mysql needs a mysql source; %s is %s", src.Name(), src.Kind())
		}
		if err := restore.RestoreMySQL(ctx, src, o.toMySQL, restore.MySQLOptions{Replace: o.replace, Force: o.force}); err != nil {
			return mismatchTable(g, err)
		}
	case o.toSQLite != "":
		if src.Kind() != "sqlite" {
			return usagef("--to-sqlite needs a sqlite source; %s is %s", src.Name(), src.Kind())
		}
		if err := restore.RestoreSQLite(ctx, src, o.toSQLite, o.force); err != nil {
			return mismatchTable(g, err)
		}
	}
	if g.json {
		return printJSON(g.stdout, map[string]any{"source": src.Name(), "kind": src.Kind(), "fingerprints": "match",
			"duration_seconds": time.Since(start).Seconds()})
	}
	fmt.Fprintf(g.stdout, "restored %s (%s); fingerprints match the backup; %s\n", src.Name(), src.Kind(),
		time.Since(start).Round(time.Millisecond))
	return nil
}

// mismatchTable prints what differs when a restored database's
// fingerprints do not match the backup's, then returns err (exit 3).
func mismatchTable(g *globals, err error) error {
	var fm *restore.FingerprintMismatchError
	if !errors.As(err, &fm) {
		return err
	}
	if g.json {
		printJSON(g.stdout, map[string]any{"fingerprints": "differ", "differences": fm.Diffs})
		return err
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "WHAT\tAT BACKUP\tRESTORED")
	for _, d := range fm.Diffs {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", d.What, d.Want, d.Got)
	}
	tw.Flush()
	return err
}

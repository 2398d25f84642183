package main

import (
	"context"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cofferhq/coffer/internal/inspect"
	"github.com/cofferhq/coffer/restore"
)

type lsOptions struct {
	spec      string
	recursive bool
}

func lsCommand(g *globals) *cli.Command {
	o := &lsOptions{}
	return &cli.Command{
		Name:      "ls",
		Usage:     "list what a snapshot holds, from its catalog (reads no file contents; needs the identity)",
		ArgsUsage: "SNAPSHOT[:SOURCE[:/path]]",
		Description: "Lists a folder of a snapshot's source the way ls -l does: mode, owner, size in bytes,\n" +
			"modification time and path. Without SOURCE it lists the top of every source (SOURCE:/path);\n" +
			"a file lists itself. A database source holds its dump, listed with the fingerprints (row\n" +
			"counts, checks) taken with it. SNAPSHOT is an id, a unique prefix or latest; latest:SOURCE is\n" +
			"the newest snapshot holding SOURCE.\n\n" +
			"Examples:\n" +
			"  coffer ls latest\n" +
			"  coffer ls latest:invoices:/2026/11\n" +
			"  coffer ls -R 1a2b3c4d:invoices\n" +
			"  coffer --json ls latest:metadb",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "recursive", Aliases: []string{"R"}, Destination: &o.recursive, Usage: "list everything below the path"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("ls takes one SNAPSHOT[:SOURCE[:/path]] argument")
			}
			o.spec = c.Args().First()
			return runLs(c.Context, g, o)
		},
	}
}

func runLs(ctx context.Context, g *globals, o *lsOptions) error {
	if err := needIdentity(g, "ls"); err != nil {
		return err
	}
	t := parseTarget(o.spec)
	if t.source == "" && t.path != "" {
		return usagef("a path needs a source: SNAPSHOT:SOURCE:/path, not %q", o.spec)
	}
	m, err := resolveSnapshot(ctx, g, t, time.Time{})
	if err != nil {
		return err
	}
	snap, err := restore.Load(ctx, g.opened.Repo, m)
	if err != nil {
		return err
	}
	es, err := inspect.List(snap.Catalog, inspect.ListOptions{Source: t.source, Path: t.path, Recursive: o.recursive})
	if err != nil {
		return lookError(err, t.snapshot)
	}
	if g.json {
		return printJSON(g.stdout, es)
	}
	for _, l := range longLines(es, t.source == "") {
		fmt.Fprintln(g.stdout, l)
	}
	return nil
}

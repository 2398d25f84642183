package main

import (
	"context"
	"io"
	"time"

	"github.com/urfave/cli/v2"
)

func catCommand(g *globals) *cli.Command {
	return &cli.Command{
		Name:      "cat",
		Usage:     "write one file of a snapshot to stdout, verified",
		ArgsUsage: "SNAPSHOT:SOURCE:/path",
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("cat takes one SNAPSHOT:SOURCE:/path argument")
			}
			return runCat(c.Context, g, c.Args().First())
		},
	}
}

func runCat(ctx context.Context, g *globals, spec string) error {
	t := parseTarget(spec)
	if t.source == "" || t.path == "" {
		return usagef("cat needs SNAPSHOT:SOURCE:/path, not %q", spec)
	}
	src, _, err := openSource(ctx, g, t, time.Time{})
	if err != nil {
		return err
	}
	rc, err := src.Open(ctx, t.path)
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.Copy(g.stdout, rc)
	return err
}

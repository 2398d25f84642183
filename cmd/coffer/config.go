package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/cofferhq/coffer/internal/config"
)

func configCommand(g *globals) *cli.Command {
	return &cli.Command{
		Name:        "config",
		Usage:       "check the configuration file",
		Description: "Examples:\n  coffer --config /etc/coffer/coffer.yaml config validate\n  coffer --config coffer.yaml --json config validate",
		Subcommands: []*cli.Command{{
			Name:  "validate",
			Usage: "report every problem of the configuration file at once, each with its key and line",
			Description: "Reads the file of --config (or $COFFER_CONFIG) as coffer backup and coffer daemon would,\n" +
				"cron schedules included, and prints each problem on its own line. Exit 0: valid; 2: not.\n\n" +
				"Examples:\n  coffer --config /etc/coffer/coffer.yaml config validate",
			Action: func(c *cli.Context) error { return runConfigValidate(g) },
		}},
	}
}

func runConfigValidate(g *globals) error {
	if g.loadOpts.File == "" && g.getenv("COFFER_CONFIG") == "" {
		return usagef("no configuration file: give --config or COFFER_CONFIG")
	}
	cfg, err := config.Load(g.loadOpts)
	var ie *config.InvalidError
	var pe *config.PermissionError
	switch {
	case errors.As(err, &ie):
		probs := strings.Split(strings.TrimSpace(ie.Err.Error()), "\n")
		if g.json {
			printJSON(g.stdout, map[string]any{"file": ie.Path, "valid": false, "problems": probs})
		} else {
			for _, p := range probs {
				fmt.Fprintf(g.stdout, "%s: %s\n", ie.Path, p)
			}
		}
		return withHint(usagef("%s: %d problems", ie.Path, len(probs)), "fix them and run coffer config validate again")
	case errors.As(err, &pe):
		return withHint(err, "%s", pe.Hint())
	case err != nil:
		return withHint(err, "check --config or COFFER_CONFIG")
	}
	path := g.loadOpts.File
	if path == "" {
		path = g.getenv("COFFER_CONFIG")
	}
	if g.json {
		return printJSON(g.stdout, map[string]any{"file": path, "valid": true, "problems": []string{},
			"sources": len(cfg.Sources), "backups": len(cfg.Backups), "drills": len(cfg.Drills)})
	}
	fmt.Fprintf(g.stdout, "%s: valid (%d sources, %d backup jobs, %d drill jobs)\n", path, len(cfg.Sources), len(cfg.Backups), len(cfg.Drills))
	return nil
}

package main

import (
	"github.com/urfave/cli/v2"
)

func demoCommand(g *globals) *cli.Command {
	return &cli.Command{
		Name:   "demo",
		Usage:  "run coffer end to end on the demo Airflow deployment from testdata",
		Hidden: false,
		Action: func(c *cli.Context) error { return usagef("demo: not yet") },
	}
}

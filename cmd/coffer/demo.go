package main

import (
	"context"

	"github.com/urfave/cli/v2"

	"github.com/cofferhq/coffer/internal/demo"
)

type demoOptions struct {
	dir, testdata string
}

func demoCommand(g *globals) *cli.Command {
	o := &demoOptions{}
	return &cli.Command{
		Name:  "demo",
		Usage: "run coffer end to end on the demo Airflow deployment from testdata (wipes a --dir an earlier demo made)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "dir", Value: ".coffer-demo", Destination: &o.dir, Usage: "working folder, wiped first when an earlier demo made it"},
			&cli.StringFlag{Name: "testdata", Destination: &o.testdata, Usage: "demo deployment (default: testdata/airflow-demo found upwards)"},
		},
		Action: func(c *cli.Context) error { return runDemo(c.Context, g, o) },
	}
}

func runDemo(ctx context.Context, g *globals, o *demoOptions) error {
	if o.testdata == "" {
		td, err := demo.FindTestdata()
		if err != nil {
			return err
		}
		o.testdata = td
	}
	return demo.Run(ctx, demo.Options{Dir: o.dir, Testdata: o.testdata, Out: g.stdout, Version: buildVersion().Version})
}

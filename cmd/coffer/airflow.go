package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/cofferhq/coffer/source/airflow"
)

type airflowInspectOptions struct {
	home, config, envFile string
}

func airflowCommand(g *globals) *cli.Command {
	o := &airflowInspectOptions{}
	return &cli.Command{
		Name:  "airflow",
		Usage: "Airflow deployments",
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				err := usagef("unknown airflow command %q (inspect)", c.Args().First())
				if s := suggest(c.Args().First(), commandNames(c.Command.Subcommands)); s != "" {
					return withHint(err, "did you mean %q?", "airflow "+s)
				}
				return err
			}
			return cli.ShowSubcommandHelp(c)
		},
		Subcommands: []*cli.Command{{
			Name:  "inspect",
			Usage: "show what coffer discovers in an Airflow deployment, secrets masked",
			ArgsUsage: "AIRFLOW_HOME, or the name of an airflow source in the config file\n\n" +
				"Reads the configuration as Airflow does (environment, _CMD commands, airflow.cfg,\n" +
				"defaults), running the _CMD commands it names; connects to nothing.",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "airflow-config", Destination: &o.config, Usage: "the deployment's airflow.cfg (default $AIRFLOW_CONFIG, else AIRFLOW_HOME/airflow.cfg)"},
				&cli.StringFlag{Name: "env-file", Destination: &o.envFile, Usage: "a file of the deployment's AIRFLOW__... variables (KEY=VALUE lines)"},
			},
			Action: func(c *cli.Context) error {
				if c.NArg() != 1 {
					return usagef("airflow inspect takes one AIRFLOW_HOME or source name")
				}
				o.home = c.Args().First()
				return runAirflowInspect(c.Context, g, o)
			},
		}},
	}
}

func runAirflowInspect(ctx context.Context, g *globals, o *airflowInspectOptions) error {
	opts := airflow.Options{Home: o.home, Config: o.config, EnvFile: o.envFile}
	if s, ok := g.cfg.Sources[o.home]; ok {
		if s.Kind != airflow.Kind.Name {
			return usagef("source %s is %s, not airflow", o.home, s.Kind)
		}
		opts.Home = s.Location
		if opts.Config == "" {
			opts.Config = s.Airflow.Config
		}
		if opts.EnvFile == "" {
			opts.EnvFile = s.Airflow.EnvFile
		}
	}
	d, err := airflow.Discover(ctx, opts)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, airflow.ErrNoConfig) {
			return withHint(err, "check AIRFLOW_HOME, or pass --airflow-config")
		}
		return err
	}
	desc := d.Inspect(ctx)
	if g.json {
		return printJSON(g.stdout, desc)
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	line := func(k, v string, from airflow.Origin) {
		if from != "" {
			v += "\t(" + string(from) + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\n", k, v)
	}
	line("AIRFLOW_HOME", desc.Home, "")
	line("airflow.cfg", desc.ConfigPath, "")
	if desc.EnvFile != "" {
		line("env file", desc.EnvFile, "")
	}
	db := desc.MetaDB.Kind + " " + desc.MetaDB.URL
	if desc.MetaDB.Schema != "" {
		db += " schema " + desc.MetaDB.Schema
	}
	line("metadata database", db, desc.MetaDB.From)
	for _, f := range desc.Folders {
		v := f.Path
		if !f.Exists {
			v += " (missing)"
		}
		if f.Part == airflow.PartDags && desc.DagsGit != nil {
			v += " " + gitSummary(desc.DagsGit)
		}
		line(f.Part, v, f.From)
	}
	line("config files", strings.Join(desc.ConfigFiles, ", "), "")
	for _, s := range desc.Secrets {
		v := "not set"
		if s.Set {
			v = "set (masked)"
			if s.Keys > 0 {
				v = fmt.Sprintf("%d key(s) (masked)", s.Keys)
			}
		}
		if s.Problem != "" {
			v += ": " + s.Problem
		}
		line(s.Option, v, s.From)
	}
	tw.Flush()
	for _, p := range desc.Problems {
		g.warnf("%s", p)
	}
	return nil
}

func gitSummary(gs *airflow.GitState) string {
	head := gs.Head
	if len(head) > 12 {
		head = head[:12]
	}
	s := "git " + head
	if gs.Branch != "" {
		s = "git " + gs.Branch + "@" + head
	}
	if gs.Dirty {
		s += fmt.Sprintf(", %d uncommitted change(s)", gs.Changes)
	}
	return "[" + s + "]"
}

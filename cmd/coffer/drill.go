package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/cofferhq/coffer/drill"
	"github.com/cofferhq/coffer/internal/config"
	"github.com/cofferhq/coffer/internal/progress"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/source"
)

type drillOptions struct {
	sources     cli.StringSlice
	random      bool
	reportDir   string
	pgServer    string
	mysqlServer string
	tempDir     string
}

func drillCommand(g *globals) *cli.Command {
	o := &drillOptions{}
	return &cli.Command{
		Name:      "drill",
		Usage:     "restore a snapshot into a scratch environment, check it, measure recovery time, and remove it",
		ArgsUsage: "[SNAPSHOT] (an id, a unique prefix or latest; default latest)",
		Description: "A drill restores every source of the snapshot (or those named with --source) into a scratch\n" +
			"environment that it creates and always removes: PostgreSQL into an ephemeral cluster started with\n" +
			"initdb and pg_ctl (or into databases named coffer_drill_<scratch id>_<n> on --pg-server), MySQL into\n" +
			"databases of that name on --mysql-server, SQLite, folders and AIRFLOW_HOME into a private folder.\n" +
			"It reads only the repository; nothing connects to the sources. Then it checks: signatures and\n" +
			"hashes, every source restored, fingerprints, the engine's own check (pg_amcheck, CHECK TABLE,\n" +
			"PRAGMA integrity_check), files and hashes of folders, an Airflow deployment's Alembic version,\n" +
			"Fernet keys, DAG files, git HEAD, owner privileges and rewritten airflow.cfg, and the user checks\n" +
			"of the config file's drill: section. It reports RTO (drill start until every source was restored\n" +
			"and checked, split into fetch, decrypt, restore and check) and RPO (the snapshot's age).\n\n" +
			"Exit codes: 0 every check passed (warnings allowed), 3 a check failed, 1 the drill could not run,\n" +
			"130 interrupted (the scratch environment is removed all the same).\n\n" +
			"Examples:\n" +
			"  coffer drill                                  # the latest snapshot, ephemeral PostgreSQL cluster\n" +
			"  coffer drill --random --report-dir /var/lib/coffer/drills\n" +
			"  coffer drill 3f2a9c --source invoices --pg-server postgres://drill@db-drill/postgres\n" +
			"  coffer drill --mysql-server 'drill@tcp(db-drill:3306)/'    # a password belongs in the config file (0600)",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "source", Destination: &o.sources, Usage: "drill only this source (repeat for more)"},
			&cli.BoolFlag{Name: "random", Destination: &o.random, Usage: "drill a snapshot picked at random (old snapshots rot too)"},
			&cli.StringFlag{Name: "report-dir", Destination: &o.reportDir, Usage: "write the drill's evidence into this folder (default drill.report_dir)"},
			&cli.StringFlag{Name: "pg-server", Destination: &o.pgServer, Usage: "PostgreSQL drill server DSN (default drill.postgres_server; none: an ephemeral cluster)"},
			&cli.StringFlag{Name: "mysql-server", Destination: &o.mysqlServer, Usage: "MySQL/MariaDB drill server DSN, for MySQL sources (default drill.mysql_server)"},
			&cli.StringFlag{Name: "temp-dir", Destination: &o.tempDir, Usage: "folder for the scratch folder (default drill.temp_dir, else the system's)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 1 {
				return usagef("drill takes at most one SNAPSHOT argument, not %d", c.NArg())
			}
			return runDrill(c.Context, g, o, c.Args().First())
		},
	}
}

func runDrill(ctx context.Context, g *globals, o *drillOptions, snapshot string) error {
	if o.random && snapshot != "" {
		return usagef("give a SNAPSHOT or --random, not both")
	}
	if err := g.cfg.Apply(config.Overrides{DrillPostgresServer: o.pgServer, DrillMySQLServer: o.mysqlServer}); err != nil {
		return &usageError{err.Error()}
	}
	dc := g.cfg.Drill
	reportDir := o.reportDir
	if reportDir == "" {
		reportDir = dc.ReportDir
	}
	tempDir := o.tempDir
	if tempDir == "" {
		tempDir = dc.TempDir
	}
	// On a terminal, a bar per source while it is restored; under --json
	// the output stays one report.
	var bars progress.Reporter
	if !g.json {
		out := g.begin("drill")
		bars = out.reporter()
		defer func() { g.run = nil }()
		defer out.halt()
	}
	rep, err := drillRun(ctx, g, snapshot, o.random, o.sources.Value(), tempDir, bars, func(format string, args ...any) {
		if !g.json && !g.quiet && bars == nil {
			fmt.Fprintf(g.stderr, "coffer: drill: "+format+"\n", args...)
		}
	})
	if g.run != nil {
		g.run.halt()
		g.run = nil
	}
	if rep == nil {
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if rep.Result == drill.Error && rep.Snapshot == "" {
		// Nothing was restored: no evidence to keep.
		return drillError(err)
	}
	// writeDrillEvidence prints the summary (or the JSON report) and keeps
	// the evidence.
	if eerr := writeDrillEvidence(g, rep, reportDir); eerr != nil {
		return fmt.Errorf("drill %s: write the evidence: %w", rep.ID, eerr)
	}
	switch rep.Result {
	case drill.Error:
		return drillError(err)
	case drill.Fail:
		return &exitError{code: exitIntegrity}
	}
	return nil
}

// drillRun opens the repository with the identity and runs a drill with the
// configuration's drill section: the one path for coffer drill and the
// daemon's drill jobs. A nil report means the repository did not open.
func drillRun(ctx context.Context, g *globals, snapshot string, random bool, sources []string, tempDir string, bars progress.Reporter, say func(string, ...any)) (*drill.Report, error) {
	dc := g.cfg.Drill
	if tempDir == "" {
		tempDir = dc.TempDir
	}
	r, err := g.open(ctx, false, true)
	if err != nil {
		return nil, err
	}
	checks := map[string][]source.UserCheck{}
	for _, c := range dc.Checks {
		checks[c.Source] = append(checks[c.Source], source.UserCheck{Name: c.Name, Query: c.Query, Expect: c.Expect, SameAsBackup: c.SameAsBackup})
	}
	v := buildVersion()
	return drill.Run(ctx, drill.Options{
		Repo: r, Snapshot: snapshot, Random: random, Sources: sources,
		PostgresServer: dc.PostgresServer, MySQLServer: dc.MySQLServer, Checks: checks, TempDir: tempDir,
		Version:  v.Version,
		Progress: say,
		Reporter: bars,
	})
}

// drillError adds hints to a drill that could not run.
func drillError(err error) error {
	switch {
	case err == nil:
		return errors.New("the drill could not run")
	case errors.Is(err, drill.ErrNoSource):
		return withHint(err, "run coffer snapshots to see the snapshot's sources, and fix --source")
	case strings.Contains(err.Error(), "drill server configured"):
		return withHint(err, "pass --mysql-server DSN (or set drill.mysql_server in the config file), or leave the source out with --source")
	case errors.Is(err, repo.ErrNoIdentity):
		return withHint(err, "a drill decrypts: pass --identity identity.txt")
	}
	return err
}

package main

import (
	"context"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/cofferhq/coffer/internal/doctor"
)

func doctorCommand(g *globals) *cli.Command {
	return &cli.Command{
		Name:  "doctor",
		Usage: "check this host's coffer setup: config, keys, repository, database clients, Airflow, clock, space, memory limit",
		Description: "Each check prints OK, WARN or FAIL, and for WARN and FAIL the fix. The checks: the\n" +
			"configuration (every problem); the key files and their permissions (group- or world-readable\n" +
			"is FAIL); which keys sit on this host (an identity or the owner key on a backup host is WARN);\n" +
			"the repository's reach, write permission (a probe object under doctor/, deleted when the\n" +
			"credentials allow), Object Lock and the clock against the S3 server's; pg_dump against each\n" +
			"PostgreSQL server (older is FAIL) and each MySQL/MariaDB server's reach; each Airflow source's\n" +
			"discovery and Fernet key against its metadata database; free space for drills in TMPDIR;\n" +
			"the soft memory limit and GOGC in force (always OK; GOMEMLIMIT and GOGC override coffer's defaults).\n\n" +
			"Exit code: 0 when every check is OK or WARN, 1 when any is FAIL.",
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("doctor takes no arguments; %q given", c.Args().First())
			}
			return runDoctor(c.Context, g)
		},
	}
}

func runDoctor(ctx context.Context, g *globals) error {
	o := doctor.Options{ConfigFile: g.configFile, TempDir: os.TempDir()}
	if g.cfgErr != nil {
		o.ConfigErr = g.cfgErr
	} else {
		o.Config = g.cfg
	}
	results := doctor.Run(ctx, o)
	worst := doctor.Worst(results)
	if g.json {
		if err := printJSON(g.stdout, map[string]any{"checks": list(results), "worst": worst}); err != nil {
			return err
		}
	} else {
		for _, r := range results {
			fmt.Fprintf(g.stdout, "%-4s %s: %s\n", r.Status, r.Check, r.Message)
			if r.Fix != "" && r.Status != doctor.OK {
				fmt.Fprintf(g.stdout, "     fix: %s\n", r.Fix)
			}
		}
	}
	if worst == doctor.Fail {
		n := 0
		for _, r := range results {
			if r.Status == doctor.Fail {
				n++
			}
		}
		return withHint(fmt.Errorf("%d of %d checks failed", n, len(results)), "fix what the FAIL lines say, then run coffer doctor again")
	}
	return nil
}

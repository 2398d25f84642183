package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/internal/retention"
)

type forgetOptions struct {
	last, hourly, daily, weekly, monthly, yearly int
	within, tz, tag, source                      string
	dryRun                                       bool
}

func forgetCommand(g *globals) *cli.Command {
	o := &forgetOptions{}
	return &cli.Command{
		Name:  "forget",
		Usage: "forget the snapshots a retention policy does not keep (signed tombstones; prune frees the space)",
		Description: "Applies the policy to each group of snapshots with the same sources, as restic does: each\n" +
			"--keep-* rule keeps the newest snapshot of every hour, day, ISO week, month or year (counted in\n" +
			"--tz) until its count is used up (-1: no limit); --keep-within keeps everything taken within the\n" +
			"duration of the group's newest snapshot. Whatever the policy says, the newest complete snapshot\n" +
			"of every source and every snapshot a drill holds are kept. A forgotten snapshot gets a tombstone\n" +
			"signed by --signing-key (an authorised host key), so verify and other clients know it was\n" +
			"removed on purpose; its data stays until coffer prune. --tag needs --identity: tags are sealed.\n" +
			"A --source or --tag that no snapshot has is an error (exit 1) naming those the repository has.\n\n" +
			"Examples:\n" +
			"  coffer forget --keep-daily 7 --keep-weekly 4 --keep-monthly 12 --dry-run\n" +
			"  coffer forget --keep-within 30d --keep-monthly -1 --tz Europe/Berlin\n" +
			"  coffer forget --source metadb --keep-last 10 && coffer prune",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "keep-last", Destination: &o.last, Usage: "keep the `N` newest snapshots"},
			&cli.IntFlag{Name: "keep-hourly", Destination: &o.hourly, Usage: "keep the newest snapshot of each of the last `N` hours that have one"},
			&cli.IntFlag{Name: "keep-daily", Destination: &o.daily, Usage: "keep the newest snapshot of each of the last `N` days that have one"},
			&cli.IntFlag{Name: "keep-weekly", Destination: &o.weekly, Usage: "keep the newest snapshot of each of the last `N` ISO weeks that have one"},
			&cli.IntFlag{Name: "keep-monthly", Destination: &o.monthly, Usage: "keep the newest snapshot of each of the last `N` months that have one"},
			&cli.IntFlag{Name: "keep-yearly", Destination: &o.yearly, Usage: "keep the newest snapshot of each of the last `N` years that have one"},
			&cli.StringFlag{Name: "keep-within", Destination: &o.within, Usage: "keep snapshots taken within `DURATION` of the newest (7d, 2y5m7d3h, 36h)"},
			&cli.StringFlag{Name: "tz", Destination: &o.tz, Usage: "time `ZONE` for hours, days, weeks, months and years (default: the local zone)"},
			&cli.StringFlag{Name: "tag", Destination: &o.tag, Usage: "apply the policy only to snapshots with this tag (needs --identity)"},
			&cli.StringFlag{Name: "source", Destination: &o.source, Usage: "apply the policy only to snapshots that hold this source"},
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Destination: &o.dryRun, Usage: "print what would be forgotten and why the rest is kept; write nothing"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("forget takes no arguments, got %q: give --keep-* rules", c.Args().First())
			}
			p := retention.Policy{Last: o.last, Hourly: o.hourly, Daily: o.daily, Weekly: o.weekly, Monthly: o.monthly, Yearly: o.yearly}
			if o.within != "" {
				d, err := retention.ParseDuration(o.within)
				if err != nil {
					return usagef("--keep-within: %v", err)
				}
				p.Within = d
			}
			p.Location = time.Local
			if o.tz != "" {
				loc, err := time.LoadLocation(o.tz)
				if err != nil {
					return usagef("--tz %q: not a time zone (want e.g. UTC or Europe/Berlin)", o.tz)
				}
				p.Location = loc
			}
			if err := p.Validate(); err != nil {
				if errors.Is(err, retention.ErrNoPolicy) {
					return usagef("%v: give at least one of --keep-last, --keep-hourly, --keep-daily, --keep-weekly, --keep-monthly, --keep-yearly, --keep-within", err)
				}
				return usagef("%v", err)
			}
			return runForget(c.Context, g, o, p)
		},
	}
}

func runForget(ctx context.Context, g *globals, o *forgetOptions, p retention.Policy) error {
	if o.tag != "" && g.identity == "" {
		return withHint(retention.ErrTagNeedsIdentity, "pass --identity identity.txt, or filter with --source instead")
	}
	r, err := g.open(ctx, !o.dryRun, o.tag != "")
	if err != nil {
		return err
	}
	res, err := retention.Forget(ctx, r, p, retention.ForgetOptions{Source: o.source, Tag: o.tag, DryRun: o.dryRun})
	if err != nil {
		var de *retention.DamagedError
		if errors.As(err, &de) {
			return withHint(err, "run coffer verify, and deal with the damaged manifests first")
		}
		var ne *retention.NoMatchError
		if errors.As(err, &ne) {
			return withHint(err, "nothing was forgotten; check the name (coffer snapshots lists the snapshots with their sources)")
		}
		return err
	}
	if g.json {
		res.Snapshots, res.Forgotten = list(res.Snapshots), list(res.Forgotten)
		return printJSON(g.stdout, res)
	}
	group := "\x00"
	for _, s := range res.Snapshots {
		if s.Group != group {
			group = s.Group
			fmt.Fprintf(g.stdout, "sources %s:\n", group)
		}
		verdict := "forget"
		if s.Keep {
			verdict = "keep    " + strings.Join(s.Reasons, ", ")
		} else if o.dryRun {
			verdict = "would forget"
		}
		inc := ""
		if s.Incomplete {
			inc = " (incomplete)"
		}
		fmt.Fprintf(g.stdout, "  %s  %s%s  %s\n", repo.ShortID(s.ID), s.Time.In(p.Location).Format("2006-01-02 15:04:05 MST"), inc, verdict)
	}
	kept := len(res.Snapshots) - len(res.Forgotten)
	if o.dryRun {
		fmt.Fprintf(g.stdout, "dry run: would forget %d snapshot(s), keep %d (policy: %s); nothing was written\n", len(res.Forgotten), kept, res.Policy)
		return nil
	}
	fmt.Fprintf(g.stdout, "forgot %d snapshot(s), kept %d (policy: %s); run coffer prune to free their space\n", len(res.Forgotten), kept, res.Policy)
	return nil
}

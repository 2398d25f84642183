package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/internal/retention"
	"github.com/cofferhq/coffer/internal/units"
	"github.com/cofferhq/coffer/storage"
)

type pruneOptions struct {
	dryRun    bool
	grace     time.Duration
	repack    bool
	threshold int
}

func pruneCommand(g *globals) *cli.Command {
	o := &pruneOptions{}
	return &cli.Command{
		Name:  "prune",
		Usage: "remove the data no snapshot needs: forgotten snapshots, orphans of killed backups, stale uploads",
		Description: "Removes packs, indexes, catalog roots and private parts that no kept snapshot references,\n" +
			"then the manifests of forgotten snapshots. Needs credentials that may delete (a backup host\n" +
			"need not hold them) and no identity. Safe while backups run: it keeps whatever was written\n" +
			"after the start of the oldest running backup or within --grace, and the data of snapshots\n" +
			"forgotten since. Objects that S3 Object Lock still retains are never deleted: prune says when\n" +
			"they free up; run it again then. With repair records, pass --signing-key (to read the newest\n" +
			"record's index).\n\n" +
			"With --identity, prune also finds the packs that kept snapshots use only partly (at least\n" +
			"--repack-threshold percent of their bytes unused); with --signing-key too, it copies their\n" +
			"chunks in use into new packs and writes a signed repack record, and a later prune (once no\n" +
			"backup that started before the record still runs) deletes the old packs. Snapshots are not\n" +
			"rewritten: readers follow the record.\n\n" +
			"Examples:\n" +
			"  coffer prune --dry-run\n" +
			"  coffer forget --keep-daily 7 && coffer prune --grace 2h\n" +
			"  coffer prune --identity identity.txt --signing-key host/signing.key --repack-threshold 30",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Destination: &o.dryRun, Usage: "report what would be removed and freed; remove nothing"},
			&cli.DurationFlag{Name: "grace", Value: retention.DefaultGrace, Destination: &o.grace, Usage: "keep unreferenced objects younger than `DURATION` (backups that could not announce themselves)"},
			&cli.BoolFlag{Name: "repack", Value: true, Destination: &o.repack, Usage: "repack partly used packs when --identity and --signing-key are given (--repack=false: only report them)"},
			&cli.IntFlag{Name: "repack-threshold", Value: int(retention.DefaultRepackThreshold * 100), Destination: &o.threshold, Usage: "repack a pack when at least `PERCENT` of its bytes are unused"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("prune takes no arguments, got %q", c.Args().First())
			}
			if o.grace < 0 {
				return usagef("--grace must not be negative")
			}
			if o.threshold < 1 || o.threshold > 100 {
				return usagef("--repack-threshold must be a percentage from 1 to 100, got %d", o.threshold)
			}
			return runPrune(c.Context, g, o)
		},
	}
}

func runPrune(ctx context.Context, g *globals, o *pruneOptions) error {
	r, err := g.open(ctx, g.signingKey != "", false)
	if err != nil {
		return err
	}
	res, err := retention.Prune(ctx, r, retention.PruneOptions{DryRun: o.dryRun, Grace: o.grace, GraceSet: true,
		Repack: o.repack, RepackThreshold: float64(o.threshold) / 100})
	if err != nil {
		var de *retention.DamagedError
		var re *retention.RepackRecordError
		switch {
		case errors.Is(err, storage.ErrDeleteDenied):
			return withHint(err, "run prune with credentials that may delete (a maintenance host's), not the backup host's")
		case errors.As(err, &de):
			return withHint(err, "run coffer verify, and deal with the damaged manifests first")
		case errors.As(err, &re):
			return withHint(err, "run coffer verify: a repack record that does not verify was forged or damaged")
		case errors.Is(err, repo.ErrNoIdentity):
			return withHint(err, "repair records exist: pass --signing-key (prune reads the newest record's index with it)")
		}
		return err
	}
	if g.json {
		return printJSON(g.stdout, res)
	}
	for _, w := range res.Warnings {
		g.warnf("%s", w)
	}
	verb := "removed"
	if o.dryRun {
		verb = "would remove"
	}
	kinds := make([]string, 0, len(res.Removed))
	for k := range res.Removed {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		switch k {
		case "running":
			fmt.Fprintf(g.stdout, "%s %d marker(s) of ended backups\n", verb, res.Removed[k].Objects)
		case "holds":
			fmt.Fprintf(g.stdout, "%s %d released or expired hold(s)\n", verb, res.Removed[k].Objects)
		default:
			fmt.Fprintf(g.stdout, "%s %d %s object(s), %s\n", verb, res.Removed[k].Objects, k, units.Bytes(res.Removed[k].Bytes))
		}
	}
	fmt.Fprintf(g.stdout, "repository: %s before, %s after (live: %s in %d objects)\n",
		units.Bytes(res.Before), units.Bytes(res.After), units.Bytes(res.Live.Bytes), res.Live.Objects)
	if res.Young.Objects > 0 {
		fmt.Fprintf(g.stdout, "kept %d unreferenced object(s), %s, written after %s (a running backup, or within --grace)\n",
			res.Young.Objects, units.Bytes(res.Young.Bytes), res.Cutoff.Format(time.RFC3339))
	}
	if len(res.Pending) > 0 {
		fmt.Fprintf(g.stdout, "kept the data of %d forgotten snapshot(s), %s: forgotten after %s, or held by a drill; a later prune removes it\n",
			len(res.Pending), units.Bytes(res.PendingData.Bytes), res.Cutoff.Format(time.RFC3339))
	}
	if len(res.Locked) > 0 {
		var b int64
		for _, l := range res.Locked {
			b += l.Size
		}
		fmt.Fprintf(g.stdout, "object lock retains %d object(s), %s, until %s at the latest: run coffer prune again after that\n",
			len(res.Locked), units.Bytes(b), res.FreesAt.Format(time.RFC3339))
	}
	if res.StaleUploads > 0 {
		fmt.Fprintf(g.stdout, "removed %d incomplete upload(s) of killed writes\n", res.StaleUploads)
	}
	rp := res.Repack
	if rp.Replaced.Objects > 0 {
		fmt.Fprintf(g.stdout, "%s %d pack(s), %s, that repack records replace\n", verb, rp.Replaced.Objects, units.Bytes(rp.Replaced.Bytes))
	}
	if rp.Waiting.Objects > 0 {
		fmt.Fprintf(g.stdout, "kept %d repacked pack(s), %s, for now: a backup may have used them while the repack ran; a later prune removes them\n",
			rp.Waiting.Objects, units.Bytes(rp.Waiting.Bytes))
	}
	switch {
	case rp.Record != "":
		fmt.Fprintf(g.stdout, "repacked %d partly used pack(s), %s: copied %d chunk(s) into %s of new packs (repack record %s); a later prune frees %s\n",
			rp.Candidates, units.Bytes(rp.CandidateBytes), rp.Chunks, units.Bytes(rp.Written.Bytes), repo.ShortID(rp.Record), units.Bytes(rp.UnusedBytes))
	case rp.Candidates > 0:
		fmt.Fprintf(g.stdout, "%d partly used pack(s), %s: repacking would free %s (not repacked: %s)\n",
			rp.Candidates, units.Bytes(rp.CandidateBytes), units.Bytes(rp.UnusedBytes), rp.Skipped)
	case rp.Skipped != "" && !o.dryRun:
		fmt.Fprintf(g.stdout, "partly used packs not checked: %s\n", rp.Skipped)
	}
	return nil
}

package main

import (
	"context"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/cofferhq/coffer/backup"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/internal/units"
)

func repairCommand(g *globals) *cli.Command {
	return &cli.Command{
		Name:  "repair",
		Usage: "rebuild the index from the packs, leaving out damaged ones, so that the next backup stores their chunks again (needs the identity and the signing key)",
		Description: "Reads every pack whole, checks its hash, decrypts it and checks every chunk, and publishes the\n" +
			"rebuilt index as a signed repair record (repairs/<id>). Backups never deduplicate against a pack a\n" +
			"repair record names damaged. Snapshots that already use a damaged pack stay damaged (coffer verify\n" +
			"names them); back up again after the repair.",
		Action: func(c *cli.Context) error { return runRepair(c.Context, g) },
	}
}

func runRepair(ctx context.Context, g *globals) error {
	r, err := g.open(ctx, true, true)
	if err != nil {
		return err
	}
	res, err := backup.Repair(ctx, backup.RepairOptions{Repo: r, Signing: g.keys.Signing, Logger: g.log})
	if err != nil {
		return err
	}
	rec := res.Record
	if g.json {
		return printJSON(g.stdout, map[string]any{"repair": rec.ID, "checked": rec.Checked, "good": res.Good,
			"damaged": rec.Damaged, "index": rec.Index.Name})
	}
	for _, d := range rec.Damaged {
		fmt.Fprintf(g.stdout, "DAMAGED %s: %s (left out)\n", repo.PackName(d.SHA256), d.Error)
	}
	fmt.Fprintf(g.stdout, "checked %d packs: %d good (%s), %d damaged\n", rec.Checked, res.Good, units.Bytes(res.Bytes), len(rec.Damaged))
	fmt.Fprintf(g.stdout, "repair record %s written", repo.ShortID(rec.ID))
	if len(rec.Damaged) > 0 {
		fmt.Fprint(g.stdout, "; the next backup stores the damaged packs' chunks again")
	}
	fmt.Fprintln(g.stdout)
	return nil
}

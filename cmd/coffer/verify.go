package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/restore"
)

type verifyOptions struct {
	decrypt, quick bool
}

func verifyCommand(g *globals) *cli.Command {
	o := &verifyOptions{}
	return &cli.Command{
		Name:      "verify",
		Usage:     "check signatures, presence and hashes of every object (--decrypt: also contents)",
		ArgsUsage: "[SNAPSHOT...]",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "decrypt", Destination: &o.decrypt, Usage: "also decrypt every chunk and check plaintext hashes (needs the identity)"},
			&cli.BoolFlag{Name: "quick", Destination: &o.quick, Usage: "check presence and size only"},
		},
		Action: func(c *cli.Context) error { return runVerify(c.Context, g, o, c.Args().Slice()) },
	}
}

// damagedPack reports whether verify found a damaged or missing pack.
func damagedPack(rep *restore.Report) bool {
	for _, p := range rep.Problems {
		if strings.HasPrefix(p.Object, repo.DataPrefix) {
			return true
		}
	}
	return false
}

func runVerify(ctx context.Context, g *globals, o *verifyOptions, ids []string) error {
	if o.decrypt && o.quick {
		return usagef("--decrypt and --quick exclude each other")
	}
	depth := restore.Read
	switch {
	case o.quick:
		depth = restore.Quick
	case o.decrypt:
		depth = restore.Decrypt
	}
	r, err := g.open(ctx, false, o.decrypt)
	if err != nil {
		return err
	}
	rep, err := restore.Verify(ctx, r, ids, depth)
	if err != nil {
		return err
	}
	if g.json {
		if err := printJSON(g.stdout, rep); err != nil {
			return err
		}
	} else {
		for _, p := range rep.Problems {
			fmt.Fprintf(g.stdout, "BAD %s: %s", p.Object, p.Error)
			if len(p.Snapshots) > 0 && p.Kind == "" {
				fmt.Fprintf(g.stdout, " (breaks snapshots %s)", strings.Join(p.Snapshots, ", "))
			}
			fmt.Fprintln(g.stdout)
		}
		for _, w := range rep.Warnings {
			fmt.Fprintf(g.stdout, "WARN %s: %s\n", w.Object, w.Message)
		}
		fmt.Fprintf(g.stdout, "verified %d snapshots, %d objects, %s (%s)", rep.Snapshots, rep.Objects, humanBytes(rep.Bytes), rep.Depth)
		if rep.Files > 0 {
			fmt.Fprintf(g.stdout, ", %d files decrypted", rep.Files)
		}
		fmt.Fprintf(g.stdout, ": %d problems", len(rep.Problems))
		if len(rep.Warnings) > 0 {
			fmt.Fprintf(g.stdout, ", %d warnings", len(rep.Warnings))
		}
		fmt.Fprintln(g.stdout)
	}
	if len(rep.Overwritten) > 0 {
		fmt.Fprintf(g.stderr, "coffer: warning: %d objects were overwritten or deleted in the bucket after coffer wrote them; the originals, kept by versioning, were read instead: %s\n",
			len(rep.Overwritten), strings.Join(rep.Overwritten, ", "))
		fmt.Fprintln(g.stderr, "coffer: hint: someone holds the bucket's write credentials: rotate the backup host's S3 credentials and check the bucket's access log")
	}
	if !rep.OK() {
		damaged := 0
		for _, p := range rep.Problems {
			if p.Kind == "" {
				damaged++
			}
		}
		switch {
		case damaged == len(rep.Problems) && damagedPack(rep):
			// Backing up right away could deduplicate against the
			// damaged pack: a repair record makes backups leave it out.
			fmt.Fprintf(g.stderr, "coffer: error: integrity check failed: %d damaged objects\n", damaged)
			fmt.Fprintln(g.stderr, "coffer: hint: a pack is damaged: run coffer repair (with the identity and the signing key), then back up again; the snapshots named above stay damaged")
		case damaged == len(rep.Problems):
			fmt.Fprintf(g.stderr, "coffer: error: integrity check failed: %d damaged objects\n", damaged)
			fmt.Fprintln(g.stderr, "coffer: hint: the snapshots named above cannot be fully restored; keep the repository as it is and back up again")
		default:
			// Deleted snapshots or manifests dated in the future: someone
			// changed the repository's history.
			fmt.Fprintf(g.stderr, "coffer: error: integrity check failed: %d problems (%d damaged objects)\n", len(rep.Problems), damaged)
			fmt.Fprintln(g.stderr, "coffer: hint: snapshots were deleted or a manifest is dated in the future; keep the repository as it is, and check who can write to it and which host keys it trusts")
		}
		return &exitError{code: exitIntegrity}
	}
	return nil
}

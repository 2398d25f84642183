package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cofferhq/coffer/internal/known"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/internal/units"
	"github.com/cofferhq/coffer/restore"
)

// problemOf turns an integrity error into a verify problem.
func problemOf(err error) restore.Problem {
	var ie *repo.IntegrityError
	if errors.As(err, &ie) {
		return restore.Problem{Object: ie.Object, Error: ie.Err.Error()}
	}
	return restore.Problem{Object: "?", Error: err.Error()}
}

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
	out := g.begin("verify")
	r, err := g.open(ctx, false, o.decrypt)
	if err != nil {
		return err
	}
	vanished := g.opened.Vanished(ctx)
	rep, err := restore.VerifyProgress(ctx, r, ids, depth, out.reporter())
	out.halt()
	if err != nil {
		return err
	}
	// Config objects passed over and snapshots that vanished are problems
	// of the repository as a whole.
	var extra []restore.Problem
	for _, p := range r.Problems {
		p := problemOf(p)
		p.Kind = restore.KindConfig
		extra = append(extra, p)
	}
	var ve *known.VanishedError
	if errors.As(vanished, &ve) {
		reported := map[string]bool{}
		for _, p := range rep.Problems {
			reported[p.Object] = true
		}
		for _, v := range ve.Snapshots {
			if reported[repo.SnapshotName(v.ID)] {
				continue // found from the repository already ("deleted")
			}
			extra = append(extra, restore.Problem{Object: repo.SnapshotName(v.ID), Kind: restore.KindVanished,
				Error: fmt.Sprintf("vanished: this client saw it on %s (snapshot of %s), the repository no longer has it",
					v.Seen.Format(time.RFC3339), v.Time.Format(time.RFC3339))})
		}
	} else if vanished != nil {
		return vanished
	}
	rep.Problems = append(extra, rep.Problems...)
	if len(ids) == 0 {
		ms, _, err := r.Manifests(ctx)
		if err != nil {
			return err
		}
		if err := g.opened.Remember(ms); err != nil {
			return err
		}
	}
	if len(rep.Overwritten) > 0 {
		msg := fmt.Sprintf("%d objects were overwritten or deleted in the bucket after coffer wrote them; the originals, kept by versioning, were read instead: %s",
			len(rep.Overwritten), strings.Join(rep.Overwritten, ", "))
		const hint = "someone holds the bucket's write credentials: rotate the backup host's S3 credentials and check the bucket's access log"
		if g.json {
			out.warn(msg + " (" + hint + ")")
		} else {
			out.warn(msg)
			fmt.Fprintln(g.stderr, "coffer: hint: "+hint)
		}
	}
	if g.json {
		if err := out.end(struct {
			*restore.Report
			Problems   []restore.Problem `json:"problems"`
			Warnings   []restore.Warning `json:"warnings"`
			Config     int64             `json:"config"`
			Recipients []string          `json:"recipients"`
		}{rep, list(rep.Problems), list(rep.Warnings), r.Config.Seq, list(recipientFingerprints(&r.Config))}); err != nil {
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
		fmt.Fprintf(g.stdout, "verified %d snapshots, %d objects, %s (%s)", rep.Snapshots, rep.Objects, units.Bytes(rep.Bytes), rep.Depth)
		if rep.Files > 0 {
			fmt.Fprintf(g.stdout, ", %d files decrypted", rep.Files)
		}
		fmt.Fprintf(g.stdout, ": %d problems", len(rep.Problems))
		if len(rep.Warnings) > 0 {
			fmt.Fprintf(g.stdout, ", %d warnings", len(rep.Warnings))
		}
		fmt.Fprintln(g.stdout)
		fmt.Fprintf(g.stdout, "recipients (config %d): %s\n", r.Config.Seq, strings.Join(recipientFingerprints(&r.Config), ", "))
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
			return withHint(&codeError{fmt.Sprintf("integrity check failed: %d damaged objects", damaged), exitIntegrity},
				"a pack is damaged: run coffer repair (with the identity and the signing key), then back up again; the snapshots named above stay damaged")
		case damaged == len(rep.Problems):
			return withHint(&codeError{fmt.Sprintf("integrity check failed: %d damaged objects", damaged), exitIntegrity},
				"the snapshots named above cannot be fully restored; keep the repository as it is and back up again")
		default:
			// Deleted snapshots or manifests dated in the future: someone
			// changed the repository's history.
			return withHint(&codeError{fmt.Sprintf("integrity check failed: %d problems (%d damaged objects)", len(rep.Problems), damaged), exitIntegrity},
				"snapshots were deleted, a manifest is dated in the future, or a config is forged; keep the repository as it is, and check who can write to it and which host keys it trusts")
		}
	}
	return nil
}

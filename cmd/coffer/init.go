package main

import (
	"context"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/cofferhq/coffer/internal/keys"
	"github.com/cofferhq/coffer/internal/repo"
)

type initOptions struct {
	recipientsFiles cli.StringSlice
	recipients      cli.StringSlice
}

func initCommand(g *globals) *cli.Command {
	o := &initOptions{}
	return &cli.Command{
		Name:  "init",
		Usage: "create a repository encrypted to the given recipients and signed by the signing key",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "recipients-file", Aliases: []string{"R"}, Destination: &o.recipientsFiles, Usage: "file of age or SSH recipients, one per line"},
			&cli.StringSliceFlag{Name: "recipient", Aliases: []string{"r"}, Destination: &o.recipients, Usage: "an age1... or SSH public key recipient"},
		},
		Action: func(c *cli.Context) error { return runInit(c.Context, g, o) },
	}
}

func runInit(ctx context.Context, g *globals, o *initOptions) error {
	var rs []keys.Recipient
	for _, f := range o.recipientsFiles.Value() {
		r, err := keys.LoadRecipientsFile(f)
		if err != nil {
			return err
		}
		rs = append(rs, r...)
	}
	for _, s := range o.recipients.Value() {
		r, err := keys.ParseRecipient(s)
		if err != nil {
			return usagef("--recipient: %v", err)
		}
		rs = append(rs, r)
	}
	if len(rs) == 0 {
		return usagef("no recipients: give --recipients-file or --recipient")
	}
	if g.signingKey == "" {
		return withHint(fmt.Errorf("no signing key"), "pass --signing-key KEYS/signing.key; run coffer keygen to make one")
	}
	sk, err := keys.LoadSigningKey(g.signingKey)
	if err != nil {
		return keyError(err)
	}
	st, err := g.store(ctx)
	if err != nil {
		return err
	}
	cfg, err := repo.Init(ctx, st, rs, sk)
	if err != nil {
		return err
	}
	if g.json {
		return printJSON(g.stdout, cfg)
	}
	fmt.Fprintf(g.stdout, "created repository %s at %s (%d recipients)\n", repo.ShortID(cfg.ID), st.Location(), len(rs))
	return nil
}

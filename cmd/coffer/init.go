package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/cofferhq/coffer/internal/keys"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/storage"
)

type initOptions struct {
	recipientsFiles cli.StringSlice
	recipients      cli.StringSlice
	lockDays        int
	lockMode        string
}

func initCommand(g *globals) *cli.Command {
	o := &initOptions{}
	return &cli.Command{
		Name:  "init",
		Usage: "create a repository encrypted to the given recipients and signed by the signing key",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "recipients-file", Aliases: []string{"R"}, Destination: &o.recipientsFiles, Usage: "file of age or SSH recipients, one per line"},
			&cli.StringSliceFlag{Name: "recipient", Aliases: []string{"r"}, Destination: &o.recipients, Usage: "an age1... or SSH public key recipient"},
			&cli.IntFlag{Name: "object-lock-days", Destination: &o.lockDays, Usage: "write every object with S3 Object Lock retention for `N` days (the bucket must have object lock enabled)"},
			&cli.StringFlag{Name: "lock-mode", Destination: &o.lockMode, Value: string(storage.LockGovernance), Usage: "object lock mode: governance (a principal allowed to bypass it can still delete) or compliance (nobody can until the retention ends)"},
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
	var initOpts []repo.InitOption
	if o.lockDays != 0 {
		lock := repo.ObjectLock{Mode: strings.ToLower(o.lockMode), Days: o.lockDays}
		if err := lock.Validate(); err != nil {
			return usagef("--object-lock-days/--lock-mode: %v", err)
		}
		initOpts = append(initOpts, repo.WithObjectLock(lock))
	} else if o.lockMode != string(storage.LockGovernance) {
		return usagef("--lock-mode needs --object-lock-days")
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
	cfg, err := repo.Init(ctx, st, rs, sk, initOpts...)
	if errors.Is(err, repo.ErrNoObjectLock) {
		return withHint(err, "use an S3 bucket created with object lock enabled, or init without --object-lock-days")
	}
	if err != nil {
		return err
	}
	if g.json {
		return printJSON(g.stdout, cfg)
	}
	fmt.Fprintf(g.stdout, "created repository %s at %s (%d recipients)\n", repo.ShortID(cfg.ID), st.Location(), len(rs))
	if l := cfg.ObjectLock; l != nil {
		fmt.Fprintf(g.stdout, "object lock: every object is locked in %s mode for %d days from its write\n", l.Mode, l.Days)
	}
	return nil
}

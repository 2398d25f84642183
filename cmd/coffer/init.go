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
	hosts           cli.StringSlice
}

func initCommand(g *globals) *cli.Command {
	o := &initOptions{}
	return &cli.Command{
		Name:  "init",
		Usage: "create a repository owned by the owner key, encrypted to the recipients, backed up into by the hosts",
		Description: "coffer init --owner-key keys/owner/owner.key -R keys/recipients.txt --host keys/signing.pub\n\n" +
			"The owner key (--owner-key owner.key) signs the repository config, which lists the recipients\n" +
			"and the host keys allowed to publish snapshots. Repository secrets are random and encrypted to\n" +
			"the recipients, the owner and the hosts; coffer key changes recipients and hosts later.",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "recipients-file", Aliases: []string{"R"}, Destination: &o.recipientsFiles, Usage: "file of age or SSH recipients, one per line (repeatable)"},
			&cli.StringSliceFlag{Name: "recipient", Aliases: []string{"r"}, Destination: &o.recipients, Usage: "an age1... or SSH public key recipient (repeatable)"},
			&cli.StringSliceFlag{Name: "host", Destination: &o.hosts, Usage: "a backup host's signing.pub: the host may publish snapshots (repeatable)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("init takes no arguments")
			}
			return runInit(c.Context, g, o)
		},
	}
}

// loadRecipients reads -R files and -r recipients.
func loadRecipients(files, literal []string) ([]keys.Recipient, error) {
	var rs []keys.Recipient
	for _, f := range files {
		r, err := keys.LoadRecipientsFile(f)
		if err != nil {
			return nil, err
		}
		rs = append(rs, r...)
	}
	for _, s := range literal {
		r, err := keys.ParseRecipient(s)
		if err != nil {
			return nil, usagef("--recipient: %v", err)
		}
		rs = append(rs, r)
	}
	return rs, nil
}

func runInit(ctx context.Context, g *globals, o *initOptions) error {
	rs, err := loadRecipients(o.recipientsFiles.Value(), o.recipients.Value())
	if err != nil {
		return err
	}
	if len(rs) == 0 {
		return usagef("no recipients: give --recipients-file or --recipient")
	}
	if len(o.hosts.Value()) == 0 {
		return withHint(usagef("no host key: give --host with the backup host's signing.pub"), "run coffer keygen --out KEYS to make keys")
	}
	var hosts []keys.HostPublic
	for _, f := range o.hosts.Value() {
		h, err := keys.LoadHostPublic(f)
		if err != nil {
			return keyError(err)
		}
		hosts = append(hosts, h)
	}
	owner, err := g.ownerPrivate()
	if err != nil {
		return err
	}
	st, err := g.store(ctx)
	if err != nil {
		return err
	}
	cfg, err := repo.Init(ctx, st, repo.InitOptions{Owner: owner, Recipients: rs, Hosts: hosts})
	if err != nil {
		return err
	}
	// Remember the repository: from now on this client knows its owner.
	if _, err := g.openWith(ctx, repo.OpenOptions{}); err != nil {
		return err
	}
	if g.json {
		return printJSON(g.stdout, cfg)
	}
	fmt.Fprintf(g.stdout, "created repository %s at %s (%d recipients, %d hosts)\n", repo.ShortID(cfg.ID), st.Location(), len(cfg.Recipients), len(cfg.Hosts))
	fmt.Fprintf(g.stdout, "owner: %s\n", owner.Public().Fingerprint())
	return nil
}

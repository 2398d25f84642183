package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cofferhq/coffer/internal/keys"
	"github.com/cofferhq/coffer/internal/repo"
)

func keyCommand(g *globals) *cli.Command {
	ro := &initOptions{}
	return &cli.Command{
		Name:  "key",
		Usage: "list and change the repository's recipients and host keys (the owner key signs changes)",
		Description: "Every change writes the next config, signed by the owner key (--owner-key owner.key), and the\n" +
			"repository secrets encrypted anew to the recipients, the owner and the authorised hosts. The\n" +
			"secrets themselves stay, so deduplication survives. Adding or removing a recipient also needs\n" +
			"the identity of a current recipient (--identity), which hands the data keys on: a recipient\n" +
			"added later reads every snapshot; one removed reads nothing stored after. A removed recipient\n" +
			"or revoked host still knows the chunk-id and index keys (doc/design.md).",
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				err := usagef("unknown key command %q (list, add-recipient, remove-recipient, add-host, revoke-host)", c.Args().First())
				if s := suggest(c.Args().First(), commandNames(c.Command.Subcommands)); s != "" {
					return withHint(err, "did you mean %q?", "key "+s)
				}
				return err
			}
			return cli.ShowSubcommandHelp(c)
		},
		Subcommands: []*cli.Command{
			{
				Name:   "list",
				Usage:  "the config: recipients with fingerprints, hosts, revocations (needs only the owner public key)",
				Action: func(c *cli.Context) error { return noArgs(c, func() error { return runKeyList(c.Context, g) }) },
			},
			{
				Name:      "add-recipient",
				Usage:     "encrypt from now on also to these recipients",
				ArgsUsage: "[RECIPIENT...]",
				Flags: []cli.Flag{
					&cli.StringSliceFlag{Name: "recipients-file", Aliases: []string{"R"}, Destination: &ro.recipientsFiles, Usage: "file of age or SSH recipients, one per line"},
				},
				Action: func(c *cli.Context) error { return runAddRecipient(c.Context, g, ro, c.Args().Slice()) },
			},
			{
				Name:      "remove-recipient",
				Usage:     "encrypt from now on no longer to these recipients (what they could read before stays readable to them)",
				ArgsUsage: "RECIPIENT|FINGERPRINT...",
				Action:    func(c *cli.Context) error { return runRemoveRecipient(c.Context, g, c.Args().Slice()) },
			},
			{
				Name:      "add-host",
				Usage:     "authorise backup hosts to publish snapshots",
				ArgsUsage: "SIGNING.PUB...",
				Action:    func(c *cli.Context) error { return runAddHost(c.Context, g, c.Args().Slice()) },
			},
			{
				Name:      "revoke-host",
				Usage:     "revoke host keys: snapshots they signed before stay valid, any other they sign is refused",
				ArgsUsage: "SIGNING.PUB|KEY|FINGERPRINT...",
				Action:    func(c *cli.Context) error { return runRevokeHost(c.Context, g, c.Args().Slice()) },
			},
		},
	}
}

func noArgs(c *cli.Context, f func() error) error {
	if c.NArg() > 0 {
		return usagef("%s takes no arguments", c.Command.Name)
	}
	return f()
}

// recipientFingerprints returns the fingerprints of a config's recipients.
func recipientFingerprints(c *repo.Config) []string {
	var fps []string
	for _, r := range c.Recipients {
		fps = append(fps, keys.RecipientFingerprint(r))
	}
	return fps
}

func hostFingerprint(key string) string {
	if k, err := keys.ParsePublicKey(key); err == nil {
		return k.Fingerprint()
	}
	return "(malformed)"
}

type keyListJSON struct {
	Repository string          `json:"repository"`
	Location   string          `json:"location"`
	Config     int64           `json:"config"`
	Created    time.Time       `json:"created"`
	Owner      string          `json:"owner"`
	OwnerFP    string          `json:"owner_fingerprint"`
	Recipients []recipientJSON `json:"recipients"`
	Hosts      []hostJSON      `json:"hosts"`
	Revoked    []revokedJSON   `json:"revoked"`
}

type recipientJSON struct {
	Fingerprint string `json:"fingerprint"`
	Recipient   string `json:"recipient"`
}

type hostJSON struct {
	Fingerprint string    `json:"fingerprint"`
	Key         string    `json:"key"`
	Added       time.Time `json:"added"`
}

type revokedJSON struct {
	Fingerprint string      `json:"fingerprint"`
	Key         string      `json:"key"`
	Time        time.Time   `json:"time"`
	Keep        []repo.Kept `json:"keep"`
}

func runKeyList(ctx context.Context, g *globals) error {
	r, err := g.open(ctx, false, false)
	if err != nil {
		return err
	}
	c := &r.Config
	out := keyListJSON{Repository: c.ID, Location: r.Store.Location(), Config: c.Seq, Created: c.Created, Owner: c.Owner,
		OwnerFP: r.Owner().Fingerprint(), Recipients: []recipientJSON{}, Hosts: []hostJSON{}, Revoked: []revokedJSON{}}
	for _, rc := range c.Recipients {
		out.Recipients = append(out.Recipients, recipientJSON{keys.RecipientFingerprint(rc), rc})
	}
	for _, h := range c.Hosts {
		out.Hosts = append(out.Hosts, hostJSON{hostFingerprint(h.Key), h.Key, h.Added})
	}
	for _, v := range c.Revoked {
		out.Revoked = append(out.Revoked, revokedJSON{hostFingerprint(v.Key), v.Key, v.Time, append([]repo.Kept{}, v.Keep...)})
	}
	if g.json {
		return printJSON(g.stdout, out)
	}
	fmt.Fprintf(g.stdout, "repository %s at %s\n", repo.ShortID(c.ID), r.Store.Location())
	fmt.Fprintf(g.stdout, "config:     %d, written %s\n", c.Seq, c.Created.Format(time.RFC3339))
	fmt.Fprintf(g.stdout, "owner:      %s\n", out.OwnerFP)
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "recipients:")
	for _, rc := range out.Recipients {
		fmt.Fprintf(tw, "  %s\t%s\n", rc.Fingerprint, rc.Recipient)
	}
	fmt.Fprintln(tw, "hosts:")
	for _, h := range out.Hosts {
		fmt.Fprintf(tw, "  %s\tadded %s\n", h.Fingerprint, h.Added.Format(time.RFC3339))
	}
	if len(out.Revoked) > 0 {
		fmt.Fprintln(tw, "revoked:")
		for _, v := range out.Revoked {
			fmt.Fprintf(tw, "  %s\trevoked %s, %d snapshots it signed kept\n", v.Fingerprint, v.Time.Format(time.RFC3339), len(v.Keep))
		}
	}
	return tw.Flush()
}

// changeConfig opens the repository with the owner key and writes the
// next config, changed by edit; it prints what changed.
func changeConfig(ctx context.Context, g *globals, edit func(r *repo.Repository, c *repo.Config) ([]string, error)) error {
	owner, err := g.ownerPrivate()
	if err != nil {
		return err
	}
	// A current recipient's identity hands the data keys on when the
	// recipients change.
	o, err := g.openOptions(false, false)
	if err != nil {
		return err
	}
	o.OwnerKey = owner
	r, err := g.openWith(ctx, o)
	if err != nil {
		return err
	}
	var said []string
	cfg, err := repo.UpdateConfig(ctx, r, owner, func(c *repo.Config) error {
		var err error
		said, err = edit(r, c)
		return err
	})
	if err != nil {
		return err
	}
	if err := g.opened.Save(); err != nil {
		return err
	}
	if g.json {
		return printJSON(g.stdout, cfg)
	}
	for _, s := range said {
		fmt.Fprintf(g.stdout, "config %d: %s\n", cfg.Seq, s)
	}
	fmt.Fprintf(g.stdout, "recipients: %s\n", strings.Join(recipientFingerprints(cfg), ", "))
	return nil
}

func runAddRecipient(ctx context.Context, g *globals, o *initOptions, args []string) error {
	rs, err := loadRecipients(o.recipientsFiles.Value(), nil)
	if err != nil {
		return err
	}
	for _, a := range args {
		rc, err := keys.ParseRecipient(a)
		if err != nil {
			return usagef("recipient: %v", err)
		}
		rs = append(rs, rc)
	}
	if len(rs) == 0 {
		return usagef("add-recipient needs RECIPIENT arguments or --recipients-file")
	}
	return changeConfig(ctx, g, func(_ *repo.Repository, c *repo.Config) ([]string, error) {
		var said []string
		for _, rc := range rs {
			if slices.Contains(c.Recipients, rc.Text) {
				return nil, fmt.Errorf("recipient %s is already a recipient", keys.RecipientFingerprint(rc.Text))
			}
			c.Recipients = append(c.Recipients, rc.Text)
			said = append(said, fmt.Sprintf("added recipient %s (%s)", keys.RecipientFingerprint(rc.Text), rc.Text))
		}
		return said, nil
	})
}

func runRemoveRecipient(ctx context.Context, g *globals, args []string) error {
	if len(args) == 0 {
		return usagef("remove-recipient needs RECIPIENT or FINGERPRINT arguments (coffer key list shows them)")
	}
	return changeConfig(ctx, g, func(_ *repo.Repository, c *repo.Config) ([]string, error) {
		var said []string
		for _, a := range args {
			text := a
			if rc, err := keys.ParseRecipient(a); err == nil {
				text = rc.Text
			}
			i := slices.IndexFunc(c.Recipients, func(s string) bool { return s == text || keys.RecipientFingerprint(s) == a })
			if i < 0 {
				return nil, fmt.Errorf("%q is not a recipient of the repository (coffer key list shows them)", a)
			}
			said = append(said, fmt.Sprintf("removed recipient %s (%s)", keys.RecipientFingerprint(c.Recipients[i]), c.Recipients[i]))
			c.Recipients = slices.Delete(c.Recipients, i, i+1)
		}
		if len(c.Recipients) == 0 {
			return nil, errors.New("a repository needs at least one recipient: add the new one first")
		}
		return said, nil
	})
}

func runAddHost(ctx context.Context, g *globals, args []string) error {
	if len(args) == 0 {
		return usagef("add-host needs the hosts' signing.pub files")
	}
	var hosts []keys.HostPublic
	for _, a := range args {
		h, err := keys.LoadHostPublic(a)
		if err != nil {
			return keyError(err)
		}
		hosts = append(hosts, h)
	}
	return changeConfig(ctx, g, func(_ *repo.Repository, c *repo.Config) ([]string, error) {
		var said []string
		now := time.Now().UTC().Truncate(time.Second)
		for _, h := range hosts {
			key := h.Key.String()
			switch {
			case c.Revocation(key) != nil:
				return nil, fmt.Errorf("host key %s was revoked; a revoked key is never authorised again: make a new one with coffer keygen --role host", h.Key.Fingerprint())
			case c.HostEntry(key) != nil:
				return nil, fmt.Errorf("host key %s is already authorised", h.Key.Fingerprint())
			}
			c.Hosts = append(c.Hosts, repo.Host{Key: key, Box: h.Box.String(), Added: now})
			said = append(said, fmt.Sprintf("authorised host key %s", h.Key.Fingerprint()))
		}
		return said, nil
	})
}

// hostKeyArg resolves a revoke-host argument: a signing.pub file, a key's
// text or its fingerprint, against the authorised hosts.
func hostKeyArg(c *repo.Config, a string) (string, error) {
	text := a
	if _, err := os.Stat(a); err == nil {
		k, err := keys.LoadPublicKey(a)
		if err != nil {
			return "", keyError(err)
		}
		text = k.String()
	}
	for _, h := range c.Hosts {
		if h.Key == text || hostFingerprint(h.Key) == a {
			return h.Key, nil
		}
	}
	if c.Revocation(text) != nil {
		return "", fmt.Errorf("host key %s is already revoked", hostFingerprint(text))
	}
	return "", fmt.Errorf("%q is not an authorised host key (coffer key list shows them)", a)
}

func runRevokeHost(ctx context.Context, g *globals, args []string) error {
	if len(args) == 0 {
		return usagef("revoke-host needs signing.pub files, host keys or fingerprints")
	}
	return changeConfig(ctx, g, func(r *repo.Repository, c *repo.Config) ([]string, error) {
		var said []string
		now := time.Now().UTC().Truncate(time.Second)
		for _, a := range args {
			key, err := hostKeyArg(c, a)
			if err != nil {
				return nil, err
			}
			pk, _ := keys.ParsePublicKey(key)
			keep, err := r.SignedBy(ctx, pk)
			if err != nil {
				return nil, err
			}
			c.Hosts = slices.DeleteFunc(c.Hosts, func(h repo.Host) bool { return h.Key == key })
			c.Revoked = append(c.Revoked, repo.Revocation{Key: key, Time: now, Keep: append([]repo.Kept{}, keep...)})
			said = append(said, fmt.Sprintf("revoked host key %s; the %d snapshots it signed stay valid", pk.Fingerprint(), len(keep)))
		}
		if len(c.Hosts) == 0 {
			g.warnf("no host key is authorised any more; authorise one with coffer key add-host")
		}
		return said, nil
	})
}

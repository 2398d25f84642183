package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/cofferhq/coffer/internal/keys"
)

type keygenOptions struct {
	out   string
	roles cli.StringSlice
}

func keygenCommand(g *globals) *cli.Command {
	var o keygenOptions
	return &cli.Command{
		Name:  "keygen",
		Usage: "create the owner key, a backup host's signing key and a restore identity, one folder per role",
		Description: "DIR/owner/owner.key      the owner key: keep it offline; it signs the repository config\n" +
			"DIR/host/signing.key     the backup host's key: copy host/ to the backup host\n" +
			"DIR/restore/identity.txt the restore identity: copy restore/ to restore hosts, never to backup hosts\n" +
			"DIR/owner.pub, DIR/signing.pub, DIR/recipients.txt: the public halves, for init and coffer key\n\n" +
			"signing.key and identity.txt carry the owner public key on a \"# coffer owner:\" line, so that\n" +
			"the hosts that keep them check every repository against it. With --role, only those roles'\n" +
			"keys are made; a new host key or identity for an existing owner needs --owner-key owner.pub.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Destination: &o.out, Usage: "the key folder"},
			&cli.StringSliceFlag{Name: "role", Destination: &o.roles, Usage: "owner, host or restore (repeatable; default all three)"},
		},
		Action: func(c *cli.Context) error {
			// Not Required: true, whose error urfave/cli gives no usage
			// exit code and prints after a page of help.
			if o.out == "" {
				return usagef("keygen needs --out DIR")
			}
			if c.NArg() > 0 {
				return usagef("keygen takes no arguments")
			}
			return runKeygen(g, o)
		},
	}
}

func runKeygen(g *globals, o keygenOptions) error {
	var opts keys.GenerateOptions
	owner := false
	for _, r := range o.roles.Value() {
		switch keys.Role(r) {
		case keys.RoleOwner, keys.RoleHost, keys.RoleRestore:
			opts.Roles = append(opts.Roles, keys.Role(r))
			owner = owner || keys.Role(r) == keys.RoleOwner
		default:
			return usagef("--role %q: use owner, host or restore", r)
		}
	}
	if len(opts.Roles) > 0 && !owner {
		if g.ownerKey == "" {
			return withHint(usagef("a host key or identity without the owner role needs the owner's public key"),
				"pass --owner-key KEYS/owner.pub, so that the new keys carry the owner pin")
		}
		_, pub, err := keys.LoadOwner(g.ownerKey)
		if err != nil {
			return keyError(err)
		}
		opts.Owner = pub
	}
	gen, err := keys.GenerateWith(o.out, opts)
	if err != nil {
		return withHint(err, "keys are never overwritten; choose another --out folder")
	}
	type file struct {
		Path string `json:"path"`
		Use  string `json:"use"`
	}
	var files []file
	add := func(path, use string) {
		if path != "" {
			files = append(files, file{path, use})
		}
	}
	add(gen.OwnerKey, "owner key: keep it offline; signs the repository config (init --owner-key, coffer key)")
	add(gen.OwnerPub, "owner public key: the pin; give it to everyone who reads the repository (--owner-key)")
	add(gen.SigningKey, "backup host: copy the host folder to the backup host (--signing-key)")
	add(gen.SigningPub, "the host's public key and box recipient: init --host, coffer key add-host")
	add(gen.Identity, "restore operators: copy the restore folder to restore hosts (--identity); never to a backup host")
	add(gen.Recipients, "the identity's recipient: init -R, coffer key add-recipient")
	if g.json {
		out := map[string]any{"dir": gen.Dir, "files": files}
		if gen.Owner != nil {
			out["owner"], out["owner_fingerprint"] = gen.Owner.String(), gen.Owner.Fingerprint()
		}
		if gen.Recipient != "" {
			out["recipient"] = gen.Recipient
		}
		if gen.SigningPublic != "" {
			out["signing_public_key"], out["host_box"] = gen.SigningPublic, gen.HostBox
		}
		return printJSON(g.stdout, out)
	}
	if gen.Owner != nil {
		fmt.Fprintf(g.stdout, "owner:     %s (%s)\n", gen.Owner.Fingerprint(), gen.Owner)
	}
	if gen.SigningPublic != "" {
		fmt.Fprintf(g.stdout, "host key:  %s\n", gen.SigningPublic)
	}
	if gen.Recipient != "" {
		fmt.Fprintf(g.stdout, "recipient: %s\n", gen.Recipient)
	}
	fmt.Fprintln(g.stdout, "wrote:")
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	for _, f := range files {
		fmt.Fprintf(tw, "  %s\t%s\n", f.Path, f.Use)
	}
	return tw.Flush()
}

package main

import (
	"fmt"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/cofferhq/coffer/internal/keys"
)

type keygenOptions struct {
	out string
}

func keygenCommand(g *globals) *cli.Command {
	var o keygenOptions
	return &cli.Command{
		Name:  "keygen",
		Usage: "create an age identity with its recipient and an Ed25519 signing key pair",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Destination: &o.out, Usage: "folder for identity.txt, recipients.txt, signing.key, signing.pub"},
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
	gen, err := keys.Generate(o.out)
	if err != nil {
		return withHint(err, "keys are never overwritten; choose another --out folder")
	}
	if g.json {
		return printJSON(g.stdout, map[string]string{"dir": gen.Dir, "recipient": gen.Recipient, "signing_public_key": gen.SigningPublic})
	}
	fmt.Fprintf(g.stdout, "recipient:   %s\nsigning key: %s\n", gen.Recipient, gen.SigningPublic)
	fmt.Fprintf(g.stdout, "wrote %s (keep it off backup hosts), %s, %s, %s\n",
		filepath.Join(gen.Dir, keys.IdentityFile), keys.RecipientsFile, keys.SigningKeyFile, keys.SigningPubFile)
	return nil
}

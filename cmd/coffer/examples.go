package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// examples are the "Examples:" of every command's --help, by command
// path ("key add-host"). A command without any fails TestHelpExamples.
var examples = map[string][]string{
	"keygen": {
		"coffer keygen --out keys                      # owner, host and restore keys",
		"coffer keygen --out hostkeys --role host      # only a new backup host's signing key",
	},
	"init": {
		"coffer init --repo /srv/coffer --owner-key keys/owner/owner.key -R keys/recipients.txt --host keys/signing.pub",
		"coffer init --repo s3://backups/coffer --object-lock-days 30 --owner-key keys/owner/owner.key -R keys/recipients.txt --host keys/signing.pub",
	},
	"backup": {
		"coffer backup --signing-key keys/host/signing.key docs=dir:/srv/invoices",
		"coffer backup --tag nightly meta=postgres:postgres://airflow@db/airflow deploy=airflow:/opt/airflow",
		"coffer --config /etc/coffer.yaml backup       # every source of the config file",
		"coffer --json backup docs=dir:/srv/invoices   # JSON events, one per line",
	},
	"snapshots": {
		"coffer snapshots",
		"coffer snapshots --source docs --latest 5",
		"coffer snapshots --identity keys/restore/identity.txt --tag nightly --host backup1",
	},
	"restore": {
		"coffer restore latest:docs --to /srv/invoices.restored",
		"coffer restore 3f2a9c1e:docs:/2026/11 --to /tmp/november",
		"coffer restore latest:meta --to-postgres postgres://postgres@db/airflow_restored",
		"coffer restore latest:deploy --to /opt/airflow2 --to-postgres postgres://postgres@db/airflow2 --rewrite-config",
	},
	"cat": {
		"coffer cat latest:docs:/2026/11/INV-1042.pdf > INV-1042.pdf",
		"coffer cat latest:deploy:/config/airflow.cfg",
	},
	"verify": {
		"coffer verify                                 # signatures, presence, ciphertext hashes: no key needed",
		"coffer verify --quick                         # presence and sizes only",
		"coffer verify --decrypt --identity keys/restore/identity.txt",
	},
	"repair": {
		"coffer repair --identity keys/restore/identity.txt --signing-key keys/host/signing.key",
	},
	"key": {
		"coffer key list",
		"coffer key add-host --owner-key keys/owner/owner.key host2/signing.pub",
	},
	"key list": {
		"coffer key list",
		"coffer --json key list",
	},
	"key add-recipient": {
		"coffer key add-recipient --owner-key keys/owner/owner.key --identity keys/restore/identity.txt age1...",
		"coffer key add-recipient --owner-key keys/owner/owner.key --identity keys/restore/identity.txt -R ops/recipients.txt",
	},
	"key remove-recipient": {
		"coffer key remove-recipient --owner-key keys/owner/owner.key --identity keys/restore/identity.txt 5c2f0e1d9a7b3c44",
	},
	"key add-host": {
		"coffer key add-host --owner-key keys/owner/owner.key host2/signing.pub",
	},
	"key revoke-host": {
		"coffer key revoke-host --owner-key keys/owner/owner.key host1/signing.pub",
	},
	"airflow": {
		"coffer airflow inspect /opt/airflow",
	},
	"airflow inspect": {
		"coffer airflow inspect /opt/airflow",
		"coffer airflow inspect --env-file /etc/airflow/airflow.env /opt/airflow",
		"coffer --config /etc/coffer.yaml airflow inspect deploy",
	},
	"drills show": {
		"coffer drills show latest --identity keys/restore/identity.txt",
		"coffer drills show 1a2b3c4d --html drill.html",
	},
	"demo": {
		"coffer demo",
		"coffer demo --dir /tmp/coffer-demo",
	},
	"version": {
		"coffer version",
		"coffer version --json",
	},
	"completion": {
		"source <(coffer completion bash)",
		"coffer completion zsh > \"${fpath[1]}/_coffer\"",
		"coffer completion fish > ~/.config/fish/completions/coffer.fish",
	},
	"man": {
		"coffer man > coffer.1 && man ./coffer.1",
	},
	"doctor": {
		"coffer --config /etc/coffer.yaml doctor",
		"coffer --json doctor",
	},
}

// addExamples appends each command's examples to its description.
func addExamples(app *cli.App) {
	var walk func(prefix string, cmds []*cli.Command)
	walk = func(prefix string, cmds []*cli.Command) {
		for _, c := range cmds {
			path := strings.TrimSpace(prefix + " " + c.Name)
			if ex := examples[path]; len(ex) > 0 {
				var b strings.Builder
				b.WriteString(strings.TrimRight(c.Description, "\n"))
				if b.Len() > 0 {
					b.WriteString("\n\n")
				}
				b.WriteString("Examples:\n")
				for _, e := range ex {
					b.WriteString("   " + e + "\n")
				}
				c.Description = strings.TrimRight(b.String(), "\n")
			}
			walk(path, c.Subcommands)
		}
	}
	walk("", app.Commands)
}

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
	hosts           cli.StringSlice
	lockDays        int
	lockMode        string
	createBucket    bool
	objectLock      bool
}

// defaultLockDays is the retention of --object-lock without
// --object-lock-days.
const defaultLockDays = 30

func initCommand(g *globals) *cli.Command {
	o := &initOptions{}
	return &cli.Command{
		Name:  "init",
		Usage: "create a repository owned by the owner key, encrypted to the recipients, backed up into by the hosts",
		Description: "coffer init --owner-key keys/owner/owner.key -R keys/recipients.txt --host keys/signing.pub\n\n" +
			"The owner key (--owner-key owner.key) signs the repository config, which lists the recipients\n" +
			"and the host keys allowed to publish snapshots. Repository secrets are random and encrypted to\n" +
			"the recipients, the owner and the hosts; coffer key changes recipients and hosts later.\n\n" +
			"An S3 repository whose bucket does not exist yet:\n" +
			"  coffer init --repo s3://backups/prod --create-bucket --object-lock --owner-key ... -R ... --host ...\n" +
			"creates the bucket (with object lock: every object locked for 30 days in governance mode).",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "recipients-file", Aliases: []string{"R"}, Destination: &o.recipientsFiles, Usage: "file of age or SSH recipients, one per line (repeatable)"},
			&cli.StringSliceFlag{Name: "recipient", Aliases: []string{"r"}, Destination: &o.recipients, Usage: "an age1... or SSH public key recipient (repeatable)"},
			&cli.StringSliceFlag{Name: "host", Destination: &o.hosts, Usage: "a backup host's signing.pub: the host may publish snapshots (repeatable)"},
			&cli.IntFlag{Name: "object-lock-days", Destination: &o.lockDays, Usage: "write every object with S3 Object Lock retention for `N` days (the bucket must have object lock enabled)"},
			&cli.BoolFlag{Name: "create-bucket", Destination: &o.createBucket, Usage: "create the repository's S3 bucket when it does not exist (with object lock under --object-lock or --object-lock-days)"},
			&cli.BoolFlag{Name: "object-lock", Destination: &o.objectLock, Usage: fmt.Sprintf("write every object with S3 Object Lock retention, for %d days unless --object-lock-days says otherwise", defaultLockDays)},
			&cli.StringFlag{Name: "lock-mode", Destination: &o.lockMode, Value: string(storage.LockGovernance), Usage: "object lock mode: governance (a principal allowed to bypass it can still delete) or compliance (nobody can until the retention ends)"},
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
	var initOpts []repo.InitOption
	if o.objectLock && o.lockDays == 0 {
		o.lockDays = defaultLockDays
	}
	if o.lockDays != 0 {
		lock := repo.ObjectLock{Mode: strings.ToLower(o.lockMode), Days: o.lockDays}
		if err := lock.Validate(); err != nil {
			return usagef("--object-lock-days/--lock-mode: %v", err)
		}
		initOpts = append(initOpts, repo.WithObjectLock(lock))
	} else if o.lockMode != string(storage.LockGovernance) {
		return usagef("--lock-mode needs --object-lock-days")
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
	if o.createBucket {
		if err := createBucket(ctx, g, o.lockDays != 0); err != nil {
			return err
		}
	}
	st, err := g.store(ctx)
	if err != nil {
		return err
	}
	cfg, err := repo.Init(ctx, st, repo.InitOptions{Owner: owner, Recipients: rs, Hosts: hosts}, initOpts...)
	if errors.Is(err, repo.ErrNoObjectLock) {
		return withHint(err, "use an S3 bucket created with object lock enabled, or init without --object-lock-days")
	}
	if err != nil {
		return err
	}
	// Remember the repository: from now on this client knows its owner.
	// The repository exists either way; a client that cannot remember it
	// pins it later from the key files.
	if _, err := g.openWith(ctx, repo.OpenOptions{}); err != nil {
		g.warnf("the repository was created, but this client did not remember it: %s", oneLine(err.Error()))
	}
	if g.json {
		return printJSON(g.stdout, cfg)
	}
	fmt.Fprintf(g.stdout, "created repository %s at %s (%d recipients, %d hosts)\n", repo.ShortID(cfg.ID), st.Location(), len(cfg.Recipients), len(cfg.Hosts))
	fmt.Fprintf(g.stdout, "owner: %s\n", owner.Public().Fingerprint())
	if l := cfg.ObjectLock; l != nil {
		fmt.Fprintf(g.stdout, "object lock: every object is locked in %s mode for %d days from its write\n", l.Mode, l.Days)
	}
	return nil
}

// createBucket creates the repository's bucket when it does not exist.
func createBucket(ctx context.Context, g *globals, lock bool) error {
	if !strings.HasPrefix(g.repo, "s3://") {
		return usagef("--create-bucket needs an s3:// repository, not %q", g.repo)
	}
	bucket, _, err := storage.ParseS3URL(g.repo)
	if err != nil {
		return usagef("--repo: %v", err)
	}
	s3, err := g.cfg.S3Config()
	if err != nil {
		return &usageError{err.Error()}
	}
	s3.Bucket = bucket
	created, err := storage.CreateBucket(ctx, s3, lock)
	switch {
	case errors.Is(err, storage.ErrNoObjectLock):
		return withHint(err, "use a new bucket (--create-bucket creates it with object lock), or init without --object-lock")
	case errors.Is(err, storage.ErrUnreachable):
		return withHint(err, "check COFFER_S3_ENDPOINT or s3.endpoint and that the server is up")
	case err != nil:
		return err
	}
	if g.json {
		return nil // stdout holds the config; stderr stays JSON-only
	}
	if !created {
		fmt.Fprintf(g.stderr, "coffer: bucket %s exists; using it\n", bucket)
		return nil
	}
	with := ""
	if lock {
		with = " with object lock"
	}
	fmt.Fprintf(g.stderr, "coffer: created bucket %s%s\n", bucket, with)
	return nil
}

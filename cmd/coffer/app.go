package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/cofferhq/coffer/backup"
	"github.com/cofferhq/coffer/internal/config"
	"github.com/cofferhq/coffer/internal/demo"
	"github.com/cofferhq/coffer/internal/fingerprint"
	"github.com/cofferhq/coffer/internal/keys"
	"github.com/cofferhq/coffer/internal/known"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/restore"
	"github.com/cofferhq/coffer/source"
	"github.com/cofferhq/coffer/source/airflow"
	"github.com/cofferhq/coffer/source/bucket"
	"github.com/cofferhq/coffer/source/mysql"
	"github.com/cofferhq/coffer/source/postgres"
	"github.com/cofferhq/coffer/storage"
)

// Exit codes. exitIncomplete: a backup saved its snapshot, but a source
// left out something it could not read (without --strict).
const (
	exitOK         = 0
	exitFailure    = 1
	exitUsage      = 2
	exitIntegrity  = 3
	exitIncomplete = 4
	// exitUnrestorable: the snapshot was saved, but the source cannot be
	// restored as it is (an Airflow deployment whose Fernet key is
	// missing or does not decrypt its values).
	exitUnrestorable = 5
	exitInterrupted  = 130
)

// globals are the options every command shares. cfg is the merged
// configuration (flags, environment, file; see package config); repo,
// identity, signingKey, ownerKey and json are its values, for short.
type globals struct {
	stdout, stderr io.Writer
	cfg            *config.Config
	repo           string
	identity       string
	signingKey     string
	ownerKey       string
	json           bool
	log            *slog.Logger
	getenv         func(string) string
	// loadOpts are what load read the configuration with, for commands
	// that read it again (config validate, the daemon's reload).
	loadOpts config.LoadOptions
	// keys are the keys open loaded, for commands that need them again.
	keys repo.OpenOptions
	// opened is the repository open opened, with what this client
	// remembers of it.
	opened *known.Opened
	// quiet: no progress (--quiet).
	quiet bool
	// run is the output of a long command (progress.go), once begun.
	run *runOutput
	// cfgErr is why the configuration did not load (for doctor), and
	// configFile the file given.
	cfgErr     error
	configFile string
}

// usageError marks errors that exit 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// oneLine joins the lines of a multi-line message (a config file's list of
// problems, a YAML decoder's list of errors) with "; ", so that every error
// is one "coffer: error:" line.
func oneLine(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l == "" {
			continue
		}
		if b.Len() > 0 {
			if strings.HasSuffix(b.String(), ":") {
				b.WriteString(" ")
			} else {
				b.WriteString("; ")
			}
		}
		b.WriteString(l)
	}
	return b.String()
}

// hinted attaches a hint line to an error.
type hinted struct {
	err  error
	hint string
}

func (h *hinted) Error() string { return h.err.Error() }
func (h *hinted) Unwrap() error { return h.err }

func withHint(err error, format string, args ...any) error {
	return &hinted{err: err, hint: fmt.Sprintf(format, args...)}
}

func newApp(stdout, stderr io.Writer) *cli.App {
	g := &globals{stdout: stdout, stderr: stderr}
	app := &cli.App{
		Name:  "coffer",
		Usage: "encrypted, verifiable backups of an Airflow deployment",
		Description: "Three keys: the owner key (owner.key, offline) signs the repository config; the backup\n" +
			"host's signing.key signs snapshots; the restore operators' identity.txt decrypts. Every command\n" +
			"that reads a repository checks its config against the owner public key: --owner-key, else the\n" +
			"\"# coffer owner:\" line of --identity or --signing-key, else what this client remembers\n" +
			"($COFFER_STATE_DIR, default ~/.local/state/coffer).\n\n" +
			"Exit codes: 0 ok, 1 failure, 2 usage, 3 integrity failure (a damaged or forged object, a deleted\n" +
			"or vanished snapshot, a manifest dated in the future, a changed owner key, a rollback, or a\n" +
			"restored database whose fingerprints differ), 4 snapshot saved, incomplete (backup left out\n" +
			"files or folders it could not read; --strict makes that a failure), 5 snapshot saved, but the\n" +
			"Airflow deployment cannot be restored as is (its Fernet key is missing or wrong), 130\n" +
			"interrupted. doc/design.md has the format.",
		Writer:    stdout,
		ErrWriter: stderr,
		// A repeatable flag takes one value per use: urfave/cli would
		// split "--include 'INV-7, Smith.pdf'" or "--pre 'echo a, b'" at
		// the comma into two.
		DisableSliceFlagSeparator: true,
		// The environment variables are read by package config, so that
		// the daemon sees the same; the Usage strings name them the way
		// urfave/cli's EnvVars would.
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Usage: "config file (YAML) [$COFFER_CONFIG]"},
			&cli.StringFlag{Name: "repo", Usage: "repository: a path, file:// or s3://bucket/prefix [$COFFER_REPO]"},
			&cli.StringFlag{Name: "identity", Usage: "age identity file (restore, cat, verify --decrypt) [$COFFER_IDENTITY]"},
			&cli.StringFlag{Name: "signing-key", Usage: "the backup host's signing.key (backup) [$COFFER_SIGNING_KEY]"},
			&cli.StringFlag{Name: "owner-key", Usage: "owner.pub or coffer-owner-pub-v1:... to pin the repository; owner.key for init and key [$COFFER_OWNER_KEY]"},
			&cli.BoolFlag{Name: "json", Usage: "print machine-readable JSON"},
			&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "log what happens to stderr"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress bars (they show only on a terminal anyway)"},
		},
		Before: func(c *cli.Context) error {
			err := g.load(c)
			if err != nil && c.Args().First() == "doctor" {
				// doctor reports a configuration that does not load.
				g.json = g.json || c.Bool("json")
				g.log = newLogger(g.stderr, slog.LevelWarn, g.json)
				return nil
			}
			return err
		},
		Commands: []*cli.Command{
			keygenCommand(g), initCommand(g), backupCommand(g), snapshotsCommand(g),
			restoreCommand(g), catCommand(g), lsCommand(g), findCommand(g), diffCommand(g), statsCommand(g), verifyCommand(g), forgetCommand(g), pruneCommand(g), repairCommand(g), keyCommand(g), airflowCommand(g), drillCommand(g), drillsCommand(g), demoCommand(g), versionCommand(g),
			completionCommand(g), manCommand(g), doctorCommand(g), configCommand(g), daemonCommand(g),
		},
		EnableBashCompletion: true,
		// Without an action urfave/cli runs "help ARG" and reports an
		// unknown command as "No help topic", exit 1.
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				name := c.Args().First()
				err := usagef("unknown command %q", name)
				if s := suggest(name, commandNames(c.App.Commands)); s != "" {
					return withHint(err, "did you mean %q?", s)
				}
				return err
			}
			return cli.ShowAppHelp(c)
		},
		ExitErrHandler:  func(*cli.Context, error) {},
		HideHelpCommand: true,
		// run reads the globals to print an error as JSON under --json.
		Metadata: map[string]any{"globals": g},
	}
	app.OnUsageError = func(c *cli.Context, err error, _ bool) error { return flagError(app.Flags, err) }
	for _, cmd := range app.Commands {
		cmd.OnUsageError = commandUsageError(app, cmd)
		for _, sub := range cmd.Subcommands {
			sub.OnUsageError = commandUsageError(app, sub)
		}
	}
	addExamples(app)
	return app
}

// load merges the config file, the environment and the flags (package
// config holds the precedence) and adds hints that name flags.
func (g *globals) load(c *cli.Context) error {
	g.getenv = os.Getenv
	g.configFile = c.String("config")
	if g.configFile == "" {
		g.configFile = os.Getenv("COFFER_CONFIG")
	}
	g.loadOpts = config.LoadOptions{
		File: c.String("config"),
		Env:  g.getenv,
		Flags: config.Overrides{
			Repository: c.String("repo"),
			Identity:   c.String("identity"),
			SigningKey: c.String("signing-key"),
			OwnerKey:   c.String("owner-key"),
			JSON:       c.Bool("json"),
		},
	}
	if c.Args().First() == "config" {
		// coffer config validate loads the file itself, to list its
		// problems one per line.
		g.json = c.Bool("json")
		return nil
	}
	cfg, err := config.Load(g.loadOpts)
	g.cfgErr = err
	var re *config.ReadError
	var ie *config.InvalidError
	var pe *config.PermissionError
	switch {
	case errors.As(err, &pe):
		return withHint(err, "%s", pe.Hint())
	case errors.As(err, &re):
		return withHint(err, "check --config or COFFER_CONFIG")
	case errors.As(err, &ie):
		return withHint(&usageError{fmt.Sprintf("%s: %s", ie.Path, oneLine(ie.Err.Error()))},
			"fix %s and run again", ie.Path)
	case err != nil:
		return usagef("%v", err)
	}
	g.cfg = cfg
	g.repo, g.identity, g.signingKey, g.ownerKey, g.json = cfg.Repository, cfg.Identity, cfg.SigningKey, cfg.OwnerKey, cfg.JSON
	g.quiet = c.Bool("quiet")
	level := slog.LevelWarn
	if c.Bool("verbose") {
		level = slog.LevelInfo
	}
	g.log = newLogger(g.stderr, level, g.json)
	return nil
}

// newLogger logs to w from level on: text lines, or under --json one
// JSON object a line (so that every line of stderr parses).
func newLogger(w io.Writer, level slog.Level, jsonOut bool) *slog.Logger {
	o := &slog.HandlerOptions{Level: level}
	if jsonOut {
		return slog.New(slog.NewJSONHandler(w, o))
	}
	return slog.New(slog.NewTextHandler(w, o))
}

// store opens the repository's storage.
func (g *globals) store(ctx context.Context) (storage.Store, error) {
	if g.repo == "" {
		return nil, usagef("no repository: give --repo, COFFER_REPO or repository: in the config file")
	}
	s3, err := g.cfg.S3Config()
	if err != nil {
		return nil, &usageError{err.Error()}
	}
	st, err := storage.Open(ctx, g.repo, s3)
	if err != nil {
		switch {
		case errors.Is(err, storage.ErrBucketNotFound):
			return nil, withHint(err, "create the bucket with coffer init --create-bucket (add --object-lock for object lock), or check the bucket name in --repo")
		case errors.Is(err, storage.ErrUnreachable):
			return nil, withHint(err, "check COFFER_S3_ENDPOINT or s3.endpoint and that the server is up")
		}
		return nil, err
	}
	return st, nil
}

// openOptions loads the keys this invocation holds. The host signing key
// is loaded when a signing key is given (it may carry the owner pin) and
// kept for opening only when the command signs.
func (g *globals) openOptions(needSigning, needIdentity bool) (repo.OpenOptions, error) {
	var o repo.OpenOptions
	if g.signingKey != "" {
		sk, err := keys.LoadSigningKey(g.signingKey)
		if err != nil {
			if _, perr := keys.LoadHostPublic(g.signingKey); perr == nil {
				err = withHint(fmt.Errorf("%s is a host public key: --signing-key takes the host's signing.key, and the owner key pins a repository", g.signingKey),
					"pass --owner-key owner.pub to pin, and --signing-key host/signing.key only to back up")
			}
			return o, keyError(err)
		}
		if needSigning {
			o.Signing = sk
		}
	}
	if needSigning && o.Signing == nil {
		return o, withHint(errors.New("no signing key: a backup signs its snapshot"), "pass --signing-key KEYS/host/signing.key or set COFFER_SIGNING_KEY")
	}
	if g.identity != "" {
		ids, err := keys.LoadIdentities(g.identity)
		if err != nil {
			return o, keyError(err)
		}
		o.Identities = ids
	}
	if needIdentity && len(o.Identities) == 0 {
		return o, withHint(repo.ErrNoIdentity, "this host holds no identity; restore on a host that has identity.txt")
	}
	return o, nil
}

// pin returns the owner public key this invocation was given, and where
// from: --owner-key (or its variable or config key), else the
// "# coffer owner:" line of the identity or the host's signing key. Two
// that differ are an error. Nil: none given (the known-repositories store
// may have one).
func (g *globals) pin() (keys.OwnerPublic, string, error) {
	var pin keys.OwnerPublic
	var from string
	if g.ownerKey != "" {
		_, p, err := keys.LoadOwner(g.ownerKey)
		if err != nil {
			return nil, "", keyError(err)
		}
		pin, from = p, "--owner-key"
	}
	for _, f := range []string{g.identity, g.signingKey} {
		if f == "" {
			continue
		}
		p, err := keys.OwnerPin(f)
		if err != nil {
			return nil, "", keyError(err)
		}
		switch {
		case p == nil:
		case pin == nil:
			pin, from = p, f
		case !pin.Equal(p):
			return nil, "", withHint(fmt.Errorf("%s names owner key %s, but %s names %s", from, pin.Fingerprint(), f, p.Fingerprint()),
				"the keys belong to different repositories: give the ones of this repository")
		}
	}
	return pin, from, nil
}

// ownerPrivate loads the owner key (owner.key) that init and the key
// commands sign with.
func (g *globals) ownerPrivate() (*keys.OwnerKey, error) {
	if g.ownerKey == "" {
		return nil, withHint(errors.New("no owner key: the owner key signs the repository config"),
			"pass --owner-key KEYS/owner/owner.key (run coffer keygen to make one)")
	}
	k, _, err := keys.LoadOwner(g.ownerKey)
	if err != nil {
		return nil, keyError(err)
	}
	if k == nil {
		return nil, withHint(fmt.Errorf("%s is the owner's public key; this command signs with the owner key", g.ownerKey),
			"pass --owner-key KEYS/owner/owner.key")
	}
	return k, nil
}

func keyError(err error) error {
	var pe *keys.PermissionError
	if errors.As(err, &pe) {
		return withHint(err, "%s", pe.Hint())
	}
	if errors.Is(err, fs.ErrNotExist) {
		return withHint(err, "check the path, or run coffer keygen --out DIR")
	}
	return err
}

// knownStore is this client's known-repositories store.
func (g *globals) knownStore() (*known.Store, error) {
	dir, err := known.DefaultDir(g.getenv)
	if err != nil {
		return nil, withHint(err, "set COFFER_STATE_DIR")
	}
	return &known.Store{Dir: dir}, nil
}

// open opens the repository with the keys this invocation holds, pinned
// to its owner key (see pin and package known).
func (g *globals) open(ctx context.Context, needSigning, needIdentity bool) (*repo.Repository, error) {
	o, err := g.openOptions(needSigning, needIdentity)
	if err != nil {
		return nil, err
	}
	return g.openWith(ctx, o)
}

func (g *globals) openWith(ctx context.Context, o repo.OpenOptions) (*repo.Repository, error) {
	g.keys = o
	pin, from, err := g.pin()
	if err != nil {
		return nil, err
	}
	ks, err := g.knownStore()
	if err != nil {
		return nil, err
	}
	st, err := g.store(ctx)
	if err != nil {
		return nil, err
	}
	op, err := ks.Open(ctx, st, known.OpenOptions{Pin: pin, PinSource: from, Signing: o.Signing, OwnerKey: o.OwnerKey, Identities: o.Identities})
	if err != nil {
		var (
			ue *repo.UnpinnedError
			om *repo.OwnerMismatchError
			oc *known.OwnerChangedError
			he *repo.HostError
			rb *repo.RollbackError
		)
		switch {
		case errors.Is(err, repo.ErrNotInitialized):
			return nil, withHint(err, "run coffer init --repo %s first", g.repo)
		case errors.Is(err, repo.ErrNotCoffer):
			return nil, withHint(err, "check --repo (or COFFER_REPO): it names another tool's repository; coffer init needs an empty location")
		case errors.As(err, &ue):
			if ue.Claimed == nil {
				return nil, withHint(err, "pass --owner-key owner.pub of this repository's owner")
			}
			return nil, withHint(err, "if %s is your owner key's fingerprint (coffer keygen printed it; it is in owner.pub), "+
				"pass --owner-key owner.pub, or use an identity.txt or signing.key that carries the \"# coffer owner:\" line", ue.Claimed.Fingerprint())
		case errors.As(err, &om):
			return nil, withHint(err, "do not restore from it: check --repo, and whether someone replaced the repository's objects")
		case errors.As(err, &oc):
			return nil, withHint(err, "if the owner key really changed, check the new one with its owner, then remove %s", oc.Record)
		case errors.As(err, &he):
			if he.Revoked != nil {
				return nil, withHint(err, "the owner revoked this key; back up with an authorised host key")
			}
			return nil, withHint(err, "the owner authorises it with coffer key add-host signing.pub")
		case errors.As(err, &rb):
			return nil, withHint(err, "someone removed config objects: have the owner check the repository before trusting it")
		}
		return nil, err
	}
	g.opened = op
	for _, p := range op.Repo.Problems {
		g.warnf("%v (run coffer verify)", oneLine(p.Error()))
	}
	return op.Repo, nil
}

// report prints err the way STYLE.md says and returns the exit code.
// With jsonOut the error is one JSON object on stderr instead:
// {"error": "...", "hint": "...", "exit": N}.
func report(ctx context.Context, stderr io.Writer, err error, jsonOut bool) int {
	if err == nil {
		return exitOK
	}
	var ue *usageError
	var ie *repo.IntegrityError
	var fm *fingerprint.MismatchError
	var ee *exitError
	var ur *unrestorableError
	var ce *codeError
	code := exitFailure
	msg, hint := err.Error(), ""
	switch {
	case errors.As(err, &ce):
		code = ce.code
	case errors.As(err, &ee):
		return ee.code
	case ctx.Err() != nil || errors.Is(err, context.Canceled):
		switch {
		case errors.Is(err, backup.ErrManifestWrite):
			msg, hint = "interrupted while writing the snapshot's manifest; it may or may not exist", "run coffer snapshots to see"
		case errors.As(err, new(*backupError)):
			msg = "interrupted; no snapshot was published"
		default:
			msg = "interrupted"
		}
		printError(stderr, jsonOut, msg, hint, exitInterrupted)
		return exitInterrupted
	case errors.As(err, &ue):
		code = exitUsage
	case errors.As(err, &ie), errors.As(err, &fm), errors.As(err, new(*repo.OwnerMismatchError)),
		errors.As(err, new(*known.OwnerChangedError)), errors.As(err, new(*known.VanishedError)):
		code = exitIntegrity
	case errors.As(err, &ur):
		code = exitUnrestorable
	}
	printError(stderr, jsonOut, msg, hintFor(err), code)
	return code
}

// printError prints an error and its hint as "coffer: error:" and
// "coffer: hint:" lines, or as one JSON object.
func printError(stderr io.Writer, jsonOut bool, msg, hint string, code int) {
	if jsonOut {
		b, err := json.Marshal(struct {
			Event string `json:"event"`
			Error string `json:"error"`
			Hint  string `json:"hint,omitempty"`
			Exit  int    `json:"exit"`
		}{"error", msg, hint, code})
		if err == nil {
			fmt.Fprintf(stderr, "%s\n", b)
			return
		}
	}
	fmt.Fprintf(stderr, "coffer: error: %s\n", msg)
	if hint != "" {
		fmt.Fprintf(stderr, "coffer: hint: %s\n", hint)
	}
}

// codeError is a failure with its own exit code, reported like any other.
type codeError struct {
	msg  string
	code int
}

func (e *codeError) Error() string { return e.msg }

// exitError carries an exit code for a failure already reported.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

func hintFor(err error) string {
	var h *hinted
	if errors.As(err, &h) {
		return h.hint
	}
	var wi *repo.WrongIdentityError
	var ue *usageError
	var dk *airflow.DatabaseKindError
	var ve *airflow.VersionError
	switch {
	case errors.As(err, &wi):
		return "use the identity.txt that belongs to one of the repository's recipients"
	case errors.Is(err, repo.ErrNoIdentity):
		return "pass --identity identity.txt (backup hosts hold none by design)"
	case errors.Is(err, restore.ErrNoSnapshot):
		return "run coffer snapshots to list them"
	case errors.As(err, &ue):
		return "run coffer --help or coffer COMMAND --help"
	case errors.Is(err, backup.ErrStrict):
		return "fix the source or run without --strict"
	case errors.Is(err, backup.ErrNoSigningKey):
		return "pass --signing-key KEYS/host/signing.key or set COFFER_SIGNING_KEY"
	case errors.Is(err, repo.ErrNoRecipients):
		return "give --recipients-file or --recipient"
	case errors.Is(err, repo.ErrNeedRecipientIdentity):
		return "pass --identity with the identity.txt of a current recipient"
	case errors.Is(err, repo.ErrConfigChanged):
		return "coffer key list shows the config as it is now"
	case errors.As(err, new(*known.VanishedError)):
		return "name a snapshot id to restore anyway, and run coffer verify"
	case errors.Is(err, restore.ErrTargetNotEmpty):
		return "use --force to replace it after a successful restore"
	case errors.Is(err, restore.ErrTargetSymlink):
		return "pass the folder the link points to as --to, or remove the link"
	case errors.Is(err, restore.ErrTargetMount):
		return "unmount it first, or restore into another folder (--to)"
	case errors.Is(err, restore.ErrPathSwapped):
		return "something changed the restore's staging folder while it ran; nothing was written outside it: find out what, then restore again"
	case errors.Is(err, bucket.ErrPrefixNotEmpty):
		return "choose a new prefix for --to-s3 BUCKET/PREFIX, or pass --force to write into this one"
	case errors.Is(err, source.ErrRestoreOverSource) && errors.As(err, new(*bucket.OverSourceError)):
		return "restore into a new prefix (--to-s3 BUCKET/NEW-PREFIX); --force writes over the source's objects"
	case errors.Is(err, source.ErrRestoreOverSource):
		return "pass --force --replace to restore over it: into a fresh database, swapped in after success"
	case errors.Is(err, source.ErrTargetExists):
		return "choose a new name, or use --replace to restore into a fresh database and swap it in after success"
	case errors.Is(err, source.ErrTargetFileExists):
		return "use --force to overwrite it"
	case errors.Is(err, airflow.ErrHomeNotEmpty):
		return "choose a new or empty folder for --to"
	case errors.Is(err, airflow.ErrNoSecrets):
		return "restore without --with-secrets, and give Airflow the Fernet key(s) yourself"
	case errors.As(err, &dk):
		return fmt.Sprintf("restore with --to DIR --to-%s TARGET", dk.Need)
	case errors.As(err, &ve):
		return "leave out --airflow-version, or give the version the snapshot was taken with"
	case errors.Is(err, postgres.ErrNoSuchRole), errors.Is(err, mysql.ErrNoSuchAccount):
		return "create it first, or name an existing one with --owner"
	case errors.Is(err, demo.ErrNotDemoDir):
		return "choose a new or empty folder with --dir"
	case errors.Is(err, demo.ErrNoTestdata):
		return "run the demo from the coffer repository or pass --testdata"
	}
	return ""
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

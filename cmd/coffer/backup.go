package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cofferhq/coffer/backup"
	"github.com/cofferhq/coffer/internal/config"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/internal/units"
	"github.com/cofferhq/coffer/source"
	"github.com/cofferhq/coffer/source/bucket"
	"github.com/cofferhq/coffer/source/registry"
)

type backupOptions struct {
	tags        cli.StringSlice
	strict      bool
	uploads     int
	pre, post   cli.StringSlice
	hookTimeout time.Duration
	sources     []string
}

func backupCommand(g *globals) *cli.Command {
	o := &backupOptions{}
	return &cli.Command{
		Name:      "backup",
		Usage:     "back up sources into one snapshot",
		ArgsUsage: "SOURCE... (NAME=KIND:LOCATION, or a name from the config file's sources:)",
		Description: "KIND:LOCATION is one of:\n" + registry.Help() + "\n" +
			"Airflow sources are backed up first (their metadata database before the stores their\n" +
			"tasks write to). When an Airflow deployment's Fernet key is missing or does not decrypt\n" +
			"every encrypted value, the snapshot is saved and backup exits 5 (--strict: fails, exit 1).\n\n" +
			"An s3 source (NAME=s3:BUCKET/PREFIX) is reached with its own settings, sources.NAME.s3 in\n" +
			"the config file (else the repository's); objects whose ETag, size and time are unchanged\n" +
			"since the last backup are not downloaded again.\n\n" +
			"Examples:\n" +
			"  coffer backup --tag nightly deploy=airflow:/opt/airflow invoices=dir:/data/invoices\n" +
			"  coffer backup invoice-docs            # a source of the config file, e.g. kind: s3",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "tag", Destination: &o.tags, Usage: "tag the snapshot (repeatable)"},
			&cli.BoolFlag{Name: "strict", Destination: &o.strict, Usage: "fail on warnings such as a file that changed while read or could not be read (without it, unreadable files and folders are left out and the backup exits 4)"},
			&cli.IntFlag{Name: "uploads", Destination: &o.uploads, Usage: "packs uploaded in parallel (default from config, else 2)"},
			&cli.StringSliceFlag{Name: "pre", Destination: &o.pre, Usage: "command (sh -c) to run before the backup; a failing one aborts it (repeatable; replaces the config file's hooks.pre)"},
			&cli.StringSliceFlag{Name: "post", Destination: &o.post, Usage: "command (sh -c) to run after the backup, always (repeatable; replaces hooks.post)"},
			&cli.DurationFlag{Name: "hook-timeout", Destination: &o.hookTimeout, Usage: "time limit of each hook command (default from config, else 5m)"},
		},
		Action: func(c *cli.Context) error {
			o.sources = c.Args().Slice()
			return runBackup(c.Context, g, o)
		},
	}
}

// sourcesFrom turns command-line arguments into sources. With no
// arguments, every source of the config file is backed up.
func sourcesFrom(g *globals, args []string) ([]source.Source, error) {
	if len(args) == 0 {
		for name := range g.cfg.Sources {
			args = append(args, name)
		}
		if len(args) == 0 {
			return nil, usagef("nothing to back up: give SOURCE arguments (NAME=KIND:LOCATION) or sources: in the config file")
		}
		sortStrings(args)
	}
	var out []source.Source
	for _, a := range args {
		name, spec, ok := strings.Cut(a, "=")
		var sc source.Spec
		if ok {
			var err error
			if sc, err = registry.ParseSpec(spec); err != nil {
				return nil, usagef("%v", err)
			}
		} else {
			c, found := g.cfg.Sources[a]
			if !found {
				return nil, usagef("source %q is neither NAME=KIND:LOCATION nor a name in the config file", a)
			}
			sc = c.Spec()
		}
		if sc.Kind == bucket.Kind.Name {
			s3, err := g.cfg.SourceS3(name)
			if err != nil {
				return nil, err
			}
			sc.S3 = s3
		}
		s, err := registry.New(name, sc)
		if err != nil {
			return nil, usagef("%v", err)
		}
		out = append(out, s)
	}
	registry.BackupOrder(out)
	return out, nil
}

// backupError marks an error of a backup run (its message unchanged), so
// that an interruption can say that nothing was published.
type backupError struct{ err error }

func (e *backupError) Error() string { return e.err.Error() }
func (e *backupError) Unwrap() error { return e.err }

func runBackup(ctx context.Context, g *globals, o *backupOptions) error {
	out := g.begin("backup")
	sources, err := sourcesFrom(g, o.sources)
	if err != nil {
		return err
	}
	r, err := g.open(ctx, true, false)
	if err != nil {
		return err
	}
	if err := g.opened.Vanished(ctx); err != nil {
		g.warnf("%v (run coffer verify)", err)
	}
	if err := g.cfg.Apply(config.Overrides{Uploads: o.uploads, Pre: o.pre.Value(), Post: o.post.Value(), HookTimeout: o.hookTimeout}); err != nil {
		return usagef("--%v", err)
	}
	hooks := backup.Hooks{Pre: g.cfg.Hooks.Pre, Post: g.cfg.Hooks.Post, Timeout: g.cfg.Hooks.Timeout}
	res, err := backup.Run(ctx, backup.Options{Repo: r, Signing: g.keys.Signing, Sources: sources,
		Tags: o.tags.Value(), Strict: o.strict, Uploads: g.cfg.Uploads, CacheDir: cacheDir(g), Logger: g.log, Hooks: hooks,
		Progress: out.reporter()})
	out.halt()
	if res == nil {
		return &backupError{err}
	}
	// err, if any, is a failed post hook: the snapshot exists.
	postErr := err
	var notes, unrestorable []string
	for _, s := range sources {
		if rp, ok := s.(source.Reporter); ok {
			rep := rp.Report()
			notes = append(notes, rep.Notes...)
			unrestorable = append(unrestorable, rep.Unrestorable...)
		}
	}
	m, p := res.Manifest, res.Private
	if err := g.opened.Remember([]*repo.Manifest{m}); err != nil {
		g.warnf("%v", err)
	}
	// A warning that makes a source unrestorable is said once, in the
	// error that ends the backup (exit 5).
	inError := map[string]bool{}
	for _, u := range unrestorable {
		inError[u] = true
	}
	for _, w := range append(res.RepoWarnings, res.Warnings...) {
		if !inError[w] {
			out.warn(w)
		}
	}
	if m.Incomplete {
		g.warnf("snapshot %s is incomplete: %d paths could not be read and are not in it (exit %d; --strict fails instead)",
			repo.ShortID(m.ID), len(res.Skipped), exitIncomplete)
	}
	if g.json {
		skipped := append([]backup.Skipped{}, res.Skipped...)
		if err := out.end(map[string]any{"snapshot": m.ID, "time": m.Time, "sources": sourcesJSON(m, p),
			"stats": p.Stats, "bytes_skipped": res.BytesSkipped, "duration_seconds": p.Duration.Seconds(), "warnings": list(res.Warnings),
			"repository_warnings": list(res.RepoWarnings), "incomplete": m.Incomplete, "skipped": skipped,
			"notes": list(notes), "unrestorable": list(unrestorable)}); err != nil {
			return err
		}
		return backupOutcome(g, m, res, unrestorable, postErr)
	}
	if m.Incomplete {
		fmt.Fprintf(g.stdout, "snapshot %s saved, incomplete: %d paths not read\n", m.ID, len(res.Skipped))
	} else {
		fmt.Fprintf(g.stdout, "snapshot %s saved\n", m.ID)
	}
	fmt.Fprintf(g.stdout, "  sources:      %s\n", sourceNames(m))
	fmt.Fprintf(g.stdout, "  bytes read:   %s", units.Bytes(p.Stats.BytesRead))
	if res.BytesSkipped > 0 {
		fmt.Fprintf(g.stdout, " (%s unchanged, not read)", units.Bytes(res.BytesSkipped))
	}
	fmt.Fprintf(g.stdout, "\n  bytes new:    %s\n", units.Bytes(p.Stats.BytesNew))
	fmt.Fprintf(g.stdout, "  bytes stored: %s\n", units.Bytes(p.Stats.BytesStored))
	fmt.Fprintf(g.stdout, "  duration:     %s\n", p.Duration.Round(time.Millisecond))
	for _, n := range notes {
		fmt.Fprintf(g.stdout, "  %s\n", n)
	}
	return backupOutcome(g, m, res, unrestorable, postErr)
}

// unrestorableError is a saved snapshot that cannot restore a source as
// it is: exit code 5.
type unrestorableError struct {
	id       string
	problems []string
}

func (e *unrestorableError) Error() string {
	return fmt.Sprintf("snapshot %s saved, but the Airflow deployment cannot be restored as is: %s",
		repo.ShortID(e.id), strings.Join(e.problems, "; "))
}

// backupOutcome is the error of a backup whose snapshot was saved: a
// failed post hook (exit 1), a source that cannot be restored as it is
// (exit 5), or an incomplete snapshot (exit 4), in this order.
func backupOutcome(g *globals, m *repo.Manifest, res *backup.Result, unrestorable []string, postErr error) error {
	if postErr != nil {
		return fmt.Errorf("snapshot %s saved, but %w", repo.ShortID(m.ID), postErr)
	}
	if len(unrestorable) > 0 {
		return withHint(&unrestorableError{id: m.ID, problems: unrestorable},
			"give coffer the deployment's Fernet key (its env_file, AIRFLOW__CORE__FERNET_KEY or _CMD) and back up again; --strict makes this a failure")
	}
	return incomplete(g, m, res)
}

// incomplete ends a backup whose snapshot was saved without what its
// sources could not read: exit 4 (runBackup warned).
func incomplete(g *globals, m *repo.Manifest, res *backup.Result) error {
	if !m.Incomplete {
		return nil
	}
	return &exitError{code: exitIncomplete}
}

func sourceNames(m *repo.Manifest) string {
	var s []string
	for _, src := range m.Sources {
		s = append(s, src.Name+" ("+src.Kind+")")
	}
	return strings.Join(s, ", ")
}

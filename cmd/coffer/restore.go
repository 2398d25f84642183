package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cofferhq/coffer/backup"
	"github.com/cofferhq/coffer/internal/fingerprint"
	"github.com/cofferhq/coffer/internal/pathglob"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/internal/units"
	"github.com/cofferhq/coffer/restore"
	"github.com/cofferhq/coffer/source"
	"github.com/cofferhq/coffer/source/bucket"
	"github.com/cofferhq/coffer/source/registry"
)

type restoreOptions struct {
	spec string
	to   string
	// toKind holds --to-KIND for every kind with a restore of its own.
	toKind map[string]*string
	force  bool
	// preserveOwner restores owners and setuid/setgid bits (as root).
	preserveOwner bool
	replace       bool
	jobs          int
	memoryMiB     int64
	before        string
	owner         string
	// Options of an airflow source's whole-deployment restore.
	rewriteConfig, paused, withSecrets bool
	airflowVersion                     string
	// include and exclude select files of a folder restore.
	include, exclude cli.StringSlice
}

func restoreCommand(g *globals) *cli.Command {
	o := &restoreOptions{toKind: map[string]*string{}}
	flags := []cli.Flag{
		&cli.StringFlag{Name: "to", Destination: &o.to, Usage: "restore a source's files into this folder"},
	}
	for _, k := range registry.Kinds() {
		if k.Restore != nil && !k.Composite {
			o.toKind[k.Name] = new(string)
			flags = append(flags, &cli.StringFlag{Name: "to-" + k.Name, Destination: o.toKind[k.Name],
				Usage: fmt.Sprintf("restore a %s source into this %s", k.Name, k.Target)})
		}
	}
	return &cli.Command{
		Name:      "restore",
		Usage:     "restore a snapshot's source into a folder or a database, all or nothing",
		ArgsUsage: "SNAPSHOT[:SOURCE[:/sub/path]] (SNAPSHOT: an id, a unique prefix or latest; latest:SOURCE is the newest snapshot holding SOURCE)",
		Description: "An airflow source restores as a whole deployment in one command: --to DIR (the new\n" +
			"AIRFLOW_HOME) and one of --to-postgres, --to-mysql or --to-sqlite (a new metadata database).\n\n" +
			"A folder restore (--to) takes --include and --exclude globs, each repeatable: it restores the\n" +
			"paths that match an --include (all without one) and no --exclude, with the folders that lead\n" +
			"to them, and reads only the packs that hold them. Including or excluding a folder includes or\n" +
			"excludes what is in it. *, ? and [...] match within a path element, ** any number of\n" +
			"elements; a glob without / matches the name at any depth, one with / is anchored at the\n" +
			"source's root (coffer find takes the same globs).\n\n" +
			"An s3 (bucket) source restores into a bucket and prefix (--to-s3 BUCKET/PREFIX, with the\n" +
			"source's endpoint and credentials: sources.NAME.s3 in the config file), objects with their\n" +
			"content types and metadata; the prefix must be empty and apart from the source's own unless\n" +
			"--force. --include/--exclude select objects too. --to DIR restores the objects as files.\n\n" +
			"Examples:\n" +
			"  coffer restore latest:invoices --to /srv/restored\n" +
			"  coffer restore latest:invoices --to /tmp/one --include 'INV-42*'\n" +
			"  coffer restore 1a2b3c4d:invoices --to /tmp/nov --include '2026/11' --exclude '*.tmp'\n" +
			"  coffer restore latest:metadb --to-postgres 'postgres://localhost/airflow_restored'\n" +
			"  coffer restore latest:invoice-docs --to-s3 invoice-docs/restored-2026-11-30",
		Flags: append(flags,
			&cli.BoolFlag{Name: "force", Destination: &o.force, Usage: "replace a non-empty target folder, or restore over the source database"},
			&cli.BoolFlag{Name: "preserve-owner", Destination: &o.preserveOwner, Usage: "restore files' owners and their setuid/setgid bits (as root only); without it everything restored belongs to you and setuid/setgid bits are cleared"},
			&cli.BoolFlag{Name: "replace", Destination: &o.replace, Usage: "restore into a fresh database and swap it in after success"},
			&cli.IntFlag{Name: "jobs", Value: 2, Destination: &o.jobs, Usage: "parallel pg_restore jobs"},
			&cli.Int64Flag{Name: "memory-budget", Value: 1024, Destination: &o.memoryMiB, Usage: "MiB of memory a parallel pg_restore may hold the dump in (never a plaintext file on disk), for a snapshot of an older coffer that did not list the dump's blocks; a larger dump loads with one job, then builds its indexes with --jobs"},
			&cli.StringFlag{Name: "before", Destination: &o.before, Usage: "with latest: the newest snapshot before this time (RFC 3339 or 2006-01-02)"},
			&cli.StringFlag{Name: "owner", Destination: &o.owner, Usage: "the role (PostgreSQL) or account (MySQL, user[@host]) to own the restored database (default: its original owner when it exists on the target)"},
			&cli.BoolFlag{Name: "rewrite-config", Destination: &o.rewriteConfig, Usage: "airflow: make the restored airflow.cfg name the restored database and folders, and nothing of the source"},
			&cli.BoolFlag{Name: "paused", Destination: &o.paused, Usage: "airflow: pause every DAG in the restored metadata database"},
			&cli.BoolFlag{Name: "with-secrets", Destination: &o.withSecrets, Usage: "airflow: write the Fernet key(s) and secret keys to DIR/secrets.env (mode 0600)"},
			&cli.StringSliceFlag{Name: "include", Destination: &o.include, Usage: "folder or bucket (--to-s3) restore: restore only paths that match this `GLOB` (repeatable; see below)"},
			&cli.StringSliceFlag{Name: "exclude", Destination: &o.exclude, Usage: "folder restore: leave out paths that match this `GLOB` (repeatable)"},
			&cli.StringFlag{Name: "airflow-version", Destination: &o.airflowVersion, Usage: "airflow: refuse unless the snapshot's schema is this Airflow version's (Alembic head)"},
		),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("restore takes one SNAPSHOT[:SOURCE[:/sub/path]] argument")
			}
			o.spec = c.Args().First()
			return runRestore(c.Context, g, o)
		},
	}
}

// target is SNAPSHOT[:SOURCE[:/path]].
type target struct {
	snapshot, source, path string
}

func parseTarget(s string) target {
	var t target
	parts := strings.SplitN(s, ":", 3)
	t.snapshot = parts[0]
	if len(parts) > 1 {
		t.source = parts[1]
	}
	if len(parts) > 2 {
		t.path = parts[2]
	}
	return t
}

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, usagef("--before %q: use RFC 3339 (2006-01-02T15:04:05Z) or 2006-01-02", s)
}

// openSource resolves SNAPSHOT[:SOURCE] and opens the source for reading;
// it also returns the snapshot's manifest.
func openSource(ctx context.Context, g *globals, t target, before time.Time) (*restore.Source, *repo.Manifest, error) {
	m, err := resolveSnapshot(ctx, g, t, before)
	if err != nil {
		return nil, nil, err
	}
	return openSourceOf(ctx, g, t, m)
}

// openSourceOf opens t's source of m, the snapshot t resolved to.
func openSourceOf(ctx context.Context, g *globals, t target, m *repo.Manifest) (*restore.Source, *repo.Manifest, error) {
	if t.source == "" {
		if len(m.Sources) != 1 {
			var names []string
			for _, s := range m.Sources {
				names = append(names, s.Name)
			}
			return nil, nil, usagef("snapshot %s has several sources; name one: %s:SOURCE (one of %s)", repo.ShortID(m.ID), t.snapshot, strings.Join(names, ", "))
		}
		t.source = m.Sources[0].Name
	}
	snap, err := loadSnapshot(ctx, g, m)
	if err != nil {
		return nil, nil, err
	}
	src, err := snap.Source(t.source)
	if err == nil {
		warnSkipped(g, m, src)
	}
	return src, m, err
}

// openStreamed is openSource for a folder restore (--to): the source's
// entries are read from the catalog as the restore goes, never held
// (restore.OpenSource), unless it is a composite source restored whole,
// whose restore needs them all.
func openStreamed(ctx context.Context, g *globals, t target, before time.Time) (*restore.Source, *repo.Manifest, error) {
	m, err := resolveSnapshot(ctx, g, t, before)
	if err != nil {
		return nil, nil, err
	}
	name := t.source
	if name == "" && len(m.Sources) == 1 {
		name = m.Sources[0].Name
	}
	for _, ms := range m.Sources {
		if ms.Name != name {
			continue
		}
		if k, ok := registry.Lookup(ms.Kind); ok && k.Composite && t.path == "" {
			break
		}
		src, err := restore.OpenSource(ctx, g.opened.Repo, m, name)
		if err == nil {
			warnSkipped(g, m, src)
		}
		return src, m, err
	}
	return openSourceOf(ctx, g, t, m)
}

// resolveSnapshot opens the repository with the identity and resolves
// t's SNAPSHOT (latest:SOURCE: the newest holding SOURCE), printing the
// warnings.
func resolveSnapshot(ctx context.Context, g *globals, t target, before time.Time) (*repo.Manifest, error) {
	r, err := g.open(ctx, false, true)
	if err != nil {
		return nil, err
	}
	if t.snapshot == "latest" {
		// A newest snapshot seen before that is gone: "latest" would
		// silently mean an older one.
		if err := g.opened.Vanished(ctx); err != nil {
			return nil, err
		}
	}
	var m *repo.Manifest
	var warns []string
	if t.snapshot == "latest" && t.source != "" {
		m, warns, err = restore.LatestWarn(ctx, r, restore.Filter{Source: t.source, Before: before})
	} else {
		m, warns, err = restore.ResolveWarn(ctx, r, t.snapshot, before)
	}
	for _, w := range warns {
		g.warnf("%s", w)
	}
	return m, err
}

// loadSnapshot decrypts m's catalog.
func loadSnapshot(ctx context.Context, g *globals, m *repo.Manifest) (*restore.Snapshot, error) {
	return restore.Load(ctx, g.opened.Repo, m)
}

// warnSkipped says that the source of an incomplete snapshot lacks what
// the backup could not read.
func warnSkipped(g *globals, m *repo.Manifest, src *restore.Source) {
	var skipped []struct{ Path, Error string }
	if err := src.Meta(backup.SkippedMeta, &skipped); err != nil || len(skipped) == 0 {
		return
	}
	var paths []string
	for _, s := range skipped {
		if len(paths) == 3 {
			paths = append(paths, "...")
			break
		}
		paths = append(paths, fmt.Sprintf("%q", s.Path))
	}
	g.warnf("snapshot %s is incomplete: %d paths of %s could not be read at backup and are not in it (%s)",
		repo.ShortID(m.ID), len(skipped), src.Name(), strings.Join(paths, ", "))
}

func runRestore(ctx context.Context, g *globals, o *restoreOptions) error {
	targets := []string{"--to"}
	var kind *source.Kind
	n := 0
	for _, k := range registry.Kinds() {
		if p := o.toKind[k.Name]; p != nil {
			targets = append(targets, "--to-"+k.Name)
			if *p != "" {
				n++
				kind = k
			}
		}
	}
	if n > 1 || (n == 0 && o.to == "") {
		return usagef("give exactly one of %s (an airflow source: --to and one --to-KIND)", strings.Join(targets, ", "))
	}
	before, err := parseTime(o.before)
	if err != nil {
		return err
	}
	filter, err := pathglob.NewFilter(o.include.Value(), o.exclude.Value())
	if err != nil {
		return usagef("%v", err)
	}
	if !filter.Empty() && kind != nil && kind.Name != bucket.Kind.Name {
		return usagef("--include and --exclude select files of a folder restore (--to), not of --to-%s", kind.Name)
	}
	t := parseTarget(o.spec)
	out := g.begin("restore")
	var src *restore.Source
	var m *repo.Manifest
	if kind == nil {
		src, m, err = openStreamed(ctx, g, t, before)
	} else {
		src, m, err = openSource(ctx, g, t, before)
	}
	if err != nil {
		return err
	}
	if rep := out.reporter(); rep != nil {
		src.SetProgress(rep)
		if kind != nil {
			rep.Start(src.Name(), src.Size(t.path))
		} // a folder restore starts it with what it selected
	}
	if k, ok := registry.Lookup(src.Kind()); ok && k.Composite && t.path == "" {
		if !filter.Empty() {
			return usagef("an %s source restores whole: --include and --exclude apply to a folder restore of a part of it (SNAPSHOT:%s:/PART --to DIR)", k.Name, src.Name())
		}
		return restoreComposite(ctx, g, o, out, k, kind, src, m)
	}
	if o.to != "" && kind != nil {
		return usagef("give exactly one of %s", strings.Join(targets, ", "))
	}
	start := time.Now()
	if kind == nil {
		if src.Kind() != "dir" && src.Kind() != bucket.Kind.Name && t.path == "" {
			g.log.Info("restoring a database source's files into a folder", "kind", src.Kind())
		}
		if o.preserveOwner && os.Geteuid() != 0 {
			g.warnf("--preserve-owner needs root; everything restored belongs to you and setuid/setgid bits are cleared")
		}
		res, err := restore.RestoreDir(ctx, src, o.to, restore.DirOptions{Force: o.force, SubPath: t.path,
			PreserveOwner: o.preserveOwner, Filter: filter})
		if err == nil {
			out.Finish(src.Name()) // a failed restore is not shown done
		}
		out.halt()
		if errors.Is(err, restore.ErrNothingSelected) {
			return withHint(err, "check --include and --exclude against coffer ls -R %s or coffer find", o.spec)
		}
		if errors.Is(err, restore.ErrPartialReplace) {
			return withHint(err, "give --to a new folder (--force does not apply to --include and --exclude)")
		}
		if err != nil {
			return err
		}
		if g.json {
			return out.end(map[string]any{"snapshot": m.ID, "source": src.Name(), "target": o.to, "files": res.Files, "dirs": res.Dirs,
				"symlinks": res.Symlinks, "bytes": res.Bytes, "duration_seconds": time.Since(start).Seconds()})
		}
		fmt.Fprintf(g.stdout, "restored %s:%s to %s: %d files, %d folders, %d symlinks, %s in %s\n",
			repo.ShortID(m.ID), src.Name(), o.to, res.Files, res.Dirs, res.Symlinks, units.Bytes(res.Bytes),
			time.Since(start).Round(time.Millisecond))
		return nil
	}
	if src.Kind() != kind.Name {
		return usagef("--to-%s needs a %s source; %s is %s", kind.Name, kind.Name, src.Name(), src.Kind())
	}
	s3, err := g.cfg.SourceS3(src.Name())
	if err != nil {
		return err
	}
	res, err := kind.Restore(ctx, src, *o.toKind[kind.Name], source.RestoreOptions{Replace: o.replace, Force: o.force,
		Jobs: o.jobs, MemoryBudget: o.memoryMiB << 20, Owner: o.owner, S3: s3, Select: selects(filter)})
	if err == nil {
		out.Finish(src.Name()) // a failed restore is not shown done
	}
	out.halt()
	if err != nil {
		return restoreError(g, err)
	}
	// Only database kinds take fingerprints (a bucket's objects are
	// checked against their hashes as they are read).
	if g.json {
		result := map[string]any{"snapshot": m.ID, "source": src.Name(), "kind": src.Kind(),
			"duration_seconds": time.Since(start).Seconds()}
		if kind.Checks {
			result["fingerprints"] = "match"
		}
		for k, v := range res.Facts {
			result[k] = v
		}
		return out.end(result)
	}
	checked := "every object's contents match the backup's hashes"
	if kind.Checks {
		checked = "fingerprints match the backup"
	}
	fmt.Fprintf(g.stdout, "restored %s (%s); %s; %s\n", src.Name(), src.Kind(), checked,
		time.Since(start).Round(time.Millisecond))
	printRestored(g, res)
	return nil
}

// restoreComposite restores a composite source (airflow) whole: --to is
// its folder, db the kind of its database target.
func restoreComposite(ctx context.Context, g *globals, o *restoreOptions, out *runOutput, k, db *source.Kind, src *restore.Source, m *repo.Manifest) error {
	if o.to == "" || db == nil {
		return usagef("an %s source restores whole: give --to DIR (the new home) and --to-KIND for its database (%s)", k.Name, strings.Join(dbTargets(), ", "))
	}
	if o.replace || o.force {
		return usagef("an %s source restores into a new folder and a new database: --replace and --force do not apply", k.Name)
	}
	start := time.Now()
	res, err := k.Restore(ctx, src, o.to, source.RestoreOptions{Jobs: o.jobs, MemoryBudget: o.memoryMiB << 20, Owner: o.owner,
		DatabaseKind: db.Name, Database: *o.toKind[db.Name], RewriteConfig: o.rewriteConfig, Paused: o.paused,
		WithSecrets: o.withSecrets, AirflowVersion: o.airflowVersion})
	if err == nil {
		out.Finish(src.Name()) // a failed restore is not shown done
	}
	out.halt()
	switch {
	case errors.Is(err, source.ErrRestoreOverSource):
		return withHint(err, "restore into a new database: a whole-deployment restore never touches the source's")
	case errors.Is(err, source.ErrTargetExists), errors.Is(err, source.ErrTargetFileExists):
		return withHint(err, "name a database (or file) that does not exist yet")
	case err != nil:
		return restoreError(g, err)
	}
	points := src.Snapshot().ConsistentPoints()
	if g.json {
		result := map[string]any{"snapshot": m.ID, "source": src.Name(), "kind": src.Kind(), "target": o.to,
			"duration_seconds": time.Since(start).Seconds(), "next_steps": list(res.NextSteps), "consistent": list(points)}
		if skew, ok := restore.Skew(points); ok {
			result["skew_seconds"] = skew.Seconds()
		}
		for k, v := range res.Facts {
			result[k] = v
		}
		return out.end(result)
	}
	fmt.Fprintf(g.stdout, "restored %s:%s (%s) to %s in %s\n", repo.ShortID(m.ID), src.Name(), src.Kind(), o.to,
		time.Since(start).Round(time.Millisecond))
	if s := restore.DescribePoints(points); s != "" {
		res.Lines = append(res.Lines, "snapshot's consistent points: "+s)
	}
	printRestored(g, res)
	if !o.withSecrets {
		fmt.Fprintln(g.stdout, "secrets: not written (restore with --with-secrets to get DIR/secrets.env; the Fernet key(s) decrypt the restored connections and variables)")
	}
	return nil
}

func dbTargets() []string {
	var out []string
	for _, k := range registry.Kinds() {
		if k.Restore != nil && !k.Composite {
			out = append(out, "--to-"+k.Name)
		}
	}
	return out
}

func printRestored(g *globals, res *source.Restored) {
	for _, l := range res.Lines {
		fmt.Fprintf(g.stdout, "  %s\n", l)
	}
	if len(res.NextSteps) > 0 {
		fmt.Fprintln(g.stdout, "next steps:")
		for _, l := range res.NextSteps {
			fmt.Fprintf(g.stdout, "  %s\n", l)
		}
	}
}

// restoreError prints what differs when a restored database's
// fingerprints do not match the backup's, then returns err (exit 3).
func restoreError(g *globals, err error) error {
	var fm *fingerprint.MismatchError
	if !errors.As(err, &fm) {
		return err
	}
	if g.json {
		if g.run != nil {
			g.run.emit(map[string]any{"event": "warning", "message": "the restored database's fingerprints differ from the backup's", "differences": fm.Diffs})
		}
		return err
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "WHAT\tAT BACKUP\tRESTORED")
	for _, d := range fm.Diffs {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", d.What, d.Want, d.Got)
	}
	tw.Flush()
	return err
}

// selects is filter's test for a kind's restore, nil when it selects all.
func selects(filter *pathglob.Filter) func(string) bool {
	if filter.Empty() {
		return nil
	}
	return filter.Selects
}

package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cofferhq/coffer/backup"
	"github.com/cofferhq/coffer/drill"
	"github.com/cofferhq/coffer/internal/config"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/internal/retention"
	"github.com/cofferhq/coffer/scheduler"
	"github.com/cofferhq/coffer/source"
	"github.com/cofferhq/coffer/storage"
)

func daemonCommand(g *globals) *cli.Command {
	return &cli.Command{
		Name:  "daemon",
		Usage: "run the configuration's backup and drill jobs on their schedules",
		Description: "Runs the jobs of the config file's backups: and drills: sections on their cron schedules\n" +
			"(five fields, an optional leading seconds field, @daily and the like, CRON_TZ=Zone), serves\n" +
			"Prometheus metrics, /healthz and /readyz on daemon.metrics (default 127.0.0.1:9464), and\n" +
			"posts alerts to the webhooks of alerts:. Daemons that share a repository and a config run\n" +
			"each scheduled run once between them (a lease in the repository). SIGHUP reloads the config\n" +
			"(an invalid one is refused and the old one kept); SIGTERM stops scheduling, lets running jobs\n" +
			"finish until daemon.stop_deadline, then cancels them (no snapshot is published) and exits 0.\n" +
			"doc/deploy.md has a systemd unit and a Kubernetes example.\n\n" +
			"Examples:\n  coffer --config /etc/coffer/coffer.yaml config validate\n  coffer --config /etc/coffer/coffer.yaml daemon",
		Action: func(c *cli.Context) error { return runDaemon(c.Context, g) },
	}
}

func runDaemon(ctx context.Context, g *globals) error {
	if len(g.cfg.Backups) == 0 && len(g.cfg.Drills) == 0 {
		return withHint(usagef("nothing to schedule: the configuration has no backups: or drills: jobs"),
			"add jobs to the config file (coffer daemon --help) and give it with --config")
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reload := make(chan struct{}, 1)
	go func() {
		for range hup {
			select {
			case reload <- struct{}{}:
			default:
			}
		}
	}()
	host, _ := os.Hostname()
	first := true
	o := scheduler.Options{
		Load: func() (*config.Config, error) {
			if first {
				first = false
				return g.cfg, nil
			}
			return config.Load(g.loadOpts)
		},
		OpenStore: func(ctx context.Context, cfg *config.Config) (storage.Store, error) {
			return withConfig(g, cfg).store(ctx)
		},
		Backup: func(ctx context.Context, cfg *config.Config, run scheduler.Run, job config.BackupJob, tags []string) (*scheduler.BackupResult, error) {
			return daemonBackup(ctx, withConfig(g, cfg), job, tags)
		},
		Retention: func(ctx context.Context, cfg *config.Config, run scheduler.Run, job config.BackupJob) (int, error) {
			return daemonRetention(ctx, withConfig(g, cfg), job)
		},
		Drill: func(ctx context.Context, cfg *config.Config, run scheduler.Run, job config.DrillJob) (*drill.Report, error) {
			return daemonDrill(ctx, withConfig(g, cfg), job)
		},
		Stats:  scheduler.RepositoryStats,
		Reload: reload,
		Log:    g.stderr,
		Owner:  fmt.Sprintf("%s:%d", host, os.Getpid()),
	}
	return scheduler.Serve(ctx, o)
}

// withConfig is g with another configuration in force (the daemon's,
// after a reload); each run has its own copy.
func withConfig(g *globals, cfg *config.Config) *globals {
	c := *g
	c.cfg = cfg
	// The backup's own warnings go to the daemon's log, in its format.
	opts := &slog.HandlerOptions{Level: slog.LevelWarn}
	if cfg.DaemonSettings().LogFormat == "json" {
		c.log = slog.New(slog.NewJSONHandler(g.stderr, opts))
	} else {
		c.log = slog.New(slog.NewTextHandler(g.stderr, opts))
	}
	c.repo, c.identity, c.signingKey, c.ownerKey = cfg.Repository, cfg.Identity, cfg.SigningKey, cfg.OwnerKey
	c.opened, c.keys = nil, repo.OpenOptions{}
	return &c
}

// daemonRetention applies a job's retention policy after a successful
// run, as coffer forget (and, with retention.prune, coffer prune) would:
// the policy applies to the snapshots that hold the job's first source
// (a backup host has no identity to read the job's tag), and never
// forgets the newest complete snapshot of any source.
func daemonRetention(ctx context.Context, g *globals, job config.BackupJob) (forgotten int, err error) {
	rp := job.Retention
	within, err := rp.Within() // validated by config
	if err != nil {
		return 0, fmt.Errorf("retention.keep_within: %w", err)
	}
	p := retention.Policy{Last: rp.KeepLast, Hourly: rp.KeepHourly, Daily: rp.KeepDaily, Weekly: rp.KeepWeekly,
		Monthly: rp.KeepMonthly, Yearly: rp.KeepYearly, Within: within, Location: time.UTC}
	if rp.TimeZone != "" {
		loc, err := time.LoadLocation(rp.TimeZone) // validated by config
		if err != nil {
			return 0, err
		}
		p.Location = loc
	}
	if err := p.Validate(); err != nil {
		return 0, err
	}
	r, err := g.open(ctx, true, false)
	if err != nil {
		return 0, err
	}
	var src string
	if len(job.Sources) > 0 {
		src = job.Sources[0]
	}
	res, err := retention.Forget(ctx, r, p, retention.ForgetOptions{Source: src})
	if err != nil {
		return 0, fmt.Errorf("forget: %w", err)
	}
	if !rp.Prune {
		return len(res.Forgotten), nil
	}
	// With an identity in the daemon's keys, prune repacks too.
	if _, err := retention.Prune(ctx, r, retention.PruneOptions{Repack: true}); err != nil {
		return len(res.Forgotten), fmt.Errorf("prune: %w", err)
	}
	return len(res.Forgotten), nil
}

// daemonBackup is one scheduled backup: coffer backup with the job's
// sources, tags and hooks.
func daemonBackup(ctx context.Context, g *globals, job config.BackupJob, tags []string) (*scheduler.BackupResult, error) {
	sources, err := sourcesFrom(g, job.Sources)
	if err != nil {
		return nil, err
	}
	r, err := g.open(ctx, true, false)
	if err != nil {
		return nil, err
	}
	h := g.cfg.Hooks
	if job.Hooks != nil {
		h = *job.Hooks
	}
	res, err := backup.Run(ctx, backup.Options{Repo: r, Signing: g.keys.Signing, Sources: sources, Tags: tags,
		Strict: job.Strict, Uploads: g.cfg.Uploads, CacheDir: cacheDir(g), Logger: g.log,
		Hooks: backup.Hooks{Pre: h.Pre, Post: h.Post, Timeout: h.Timeout}})
	if res == nil {
		return nil, err
	}
	_ = g.opened.Remember([]*repo.Manifest{res.Manifest})
	out := &scheduler.BackupResult{Snapshot: res.Manifest.ID, Incomplete: res.Manifest.Incomplete,
		BytesRead: res.Private.Stats.BytesRead, BytesNew: res.Private.Stats.BytesNew, BytesStored: res.Private.Stats.BytesStored}
	for _, s := range sources {
		if rp, ok := s.(source.Reporter); ok {
			out.Unrestorable = append(out.Unrestorable, rp.Report().Unrestorable...)
		}
	}
	// err, if any, is a failed post hook: the snapshot exists.
	return out, err
}

// daemonDrill runs a drill job as coffer drill would, with the
// configuration's drill section, and keeps its evidence: the report files
// in drill.report_dir when set, and the sealed report with its signed
// summary in the repository (the drill host's signing key). The summary
// goes to the daemon's log, not to stdout.
func daemonDrill(ctx context.Context, g *globals, job config.DrillJob) (*drill.Report, error) {
	g.stdout = io.Discard
	rep, err := drillRun(ctx, g, job.Snapshot, job.Random, job.Sources, "", nil, nil)
	if rep == nil || rep.Snapshot == "" || ctx.Err() != nil {
		return rep, err
	}
	if dir := g.cfg.Drill.ReportDir; dir != "" {
		if werr := writeDrillFiles(rep, dir); werr != nil {
			return rep, fmt.Errorf("drill %s: write the report files: %w", rep.ID, werr)
		}
	}
	if serr := saveDrillEvidence(g, rep); serr != nil {
		return rep, fmt.Errorf("drill %s: %w", rep.ID, serr)
	}
	return rep, err
}

// Package demo runs coffer end to end on the demo Airflow deployment in
// testdata/airflow-demo: keys, a local repository, one snapshot of the
// deployment (an airflow source: the SQLite metadata database, DAGs,
// plugins, configuration, logs and the Fernet key, checked against the
// database) and of the invoice documents, a second (deduplicated)
// snapshot, verification at every depth, a restore that is compared with
// the originals, and a restore drill of the latest snapshot.
package demo

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/cofferhq/coffer/backup"
	"github.com/cofferhq/coffer/drill"
	"github.com/cofferhq/coffer/internal/keys"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/restore"
	"github.com/cofferhq/coffer/source"
	"github.com/cofferhq/coffer/source/airflow"
	"github.com/cofferhq/coffer/source/registry"
	"github.com/cofferhq/coffer/source/sqlite"
	"github.com/cofferhq/coffer/storage"
)

// Options of a demo run.
type Options struct {
	// Dir is wiped and receives keys/, repo/, deployment/ and restored/.
	Dir string
	// Testdata is the demo deployment (testdata/airflow-demo).
	Testdata string
	Out      io.Writer
	// TempDir holds the drill's scratch folder; default the system's.
	TempDir string
	// Version is coffer's version, for the drill's report.
	Version string
}

// ErrNoTestdata is returned by FindTestdata when there is no demo deployment.
var ErrNoTestdata = errors.New("testdata/airflow-demo not found")

// FindTestdata looks for testdata/airflow-demo from the working directory
// upwards.
func FindTestdata() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, "testdata", "airflow-demo")
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", ErrNoTestdata
		}
		dir = parent
	}
}

// marker marks a folder the demo made, which a later run may wipe.
const marker = ".coffer-demo"

// ErrNotDemoDir is returned for a non-empty folder that an earlier demo
// run did not make: the demo wipes its folder, and never someone else's.
var ErrNotDemoDir = errors.New("folder is not empty and was not made by coffer demo")

// wipe removes dir if it is empty or was made by the demo.
func wipe(dir string) error {
	des, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(des) > 0 {
		if _, err := os.Lstat(filepath.Join(dir, marker)); err != nil {
			return fmt.Errorf("%s: %w", dir, ErrNotDemoDir)
		}
	}
	return os.RemoveAll(dir)
}

// Run runs the demo.
func Run(ctx context.Context, o Options) error {
	say := func(format string, args ...any) { fmt.Fprintf(o.Out, format+"\n", args...) }
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return err
	}
	if err := wipe(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, marker), nil, 0o600); err != nil {
		return err
	}
	deploy := filepath.Join(dir, "deployment")
	if err := copyTree(o.Testdata, deploy); err != nil {
		return fmt.Errorf("copy demo deployment: %w", err)
	}
	// The DAGs are a git repository of their own, as in a real
	// deployment: the snapshot records its HEAD and the drill compares it.
	// (Without this, a demo run inside a git checkout would find the
	// checkout's repository around the DAGs instead.)
	if err := gitInit(ctx, filepath.Join(deploy, "dags")); err != nil {
		return fmt.Errorf("make the demo DAGs a git repository: %w", err)
	}
	metadb := filepath.Join(deploy, "airflow.db")
	if err := buildMetadataDB(ctx, filepath.Join(deploy, "metadata.sql"), metadb, deploy); err != nil {
		return fmt.Errorf("build metadata database: %w", err)
	}
	say("1. demo Airflow deployment in %s", deploy)

	gen, err := keys.Generate(filepath.Join(dir, "keys"))
	if err != nil {
		return err
	}
	say("2. keys in %s: owner %s, recipient %s", gen.Dir, gen.Owner.Fingerprint(), gen.Recipient)

	st, err := storage.NewLocal(filepath.Join(dir, "repo"))
	if err != nil {
		return err
	}
	// The owner: owner key, recipients and the host's public key.
	owner, err := keys.LoadOwnerKey(gen.OwnerKey)
	if err != nil {
		return err
	}
	recipients, err := keys.LoadRecipientsFile(gen.Recipients)
	if err != nil {
		return err
	}
	hostPub, err := keys.LoadHostPublic(gen.SigningPub)
	if err != nil {
		return err
	}
	cfg, err := repo.Init(ctx, st, repo.InitOptions{Owner: owner, Recipients: recipients, Hosts: []keys.HostPublic{hostPub}})
	if err != nil {
		return err
	}
	say("3. repository %s at %s", repo.ShortID(cfg.ID), st.Location())

	// The backup host: its signing key only, which carries the owner pin;
	// no identity. The recipients come from the owner-signed config.
	sk, err := keys.LoadSigningKey(gen.SigningKey)
	if err != nil {
		return err
	}
	hostPin, err := keys.OwnerPin(gen.SigningKey)
	if err != nil {
		return err
	}
	host, err := repo.Open(ctx, st, repo.OpenOptions{Owner: hostPin, Signing: sk})
	if err != nil {
		return err
	}
	sources := func() []source.Source {
		var out []source.Source
		for _, s := range []struct{ name, kind, loc string }{
			{"deploy", "airflow", deploy},
			{"invoices", "dir", filepath.Join(deploy, "invoices")},
		} {
			c := source.Spec{Kind: s.kind, Location: s.loc}
			if s.kind == "airflow" {
				c.Airflow.IncludeLogs = true
			}
			src, err := registry.New(s.name, c)
			if err != nil {
				panic(err) // static list
			}
			out = append(out, src)
		}
		registry.BackupOrder(out)
		return out
	}
	cache := filepath.Join(dir, "cache")
	var first *repo.Manifest
	for i, tag := range []string{"first", "second"} {
		srcs := sources()
		res, err := backup.Run(ctx, backup.Options{Repo: host, Signing: sk, Sources: srcs, Tags: []string{"demo", tag}, CacheDir: cache})
		if err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		m, p := res.Manifest, res.Private
		say("%d. snapshot %s: %d sources, read %d bytes, new %d bytes, stored %d bytes, %s",
			4+i, repo.ShortID(m.ID), len(m.Sources), p.Stats.BytesRead, p.Stats.BytesNew, p.Stats.BytesStored, p.Duration.Round(time.Millisecond))
		for _, src := range srcs {
			if rp, ok := src.(source.Reporter); ok {
				rep := rp.Report()
				if len(rep.Unrestorable) > 0 {
					return fmt.Errorf("backup: %s", strings.Join(rep.Unrestorable, "; "))
				}
				for _, n := range rep.Notes {
					say("   %s", n)
				}
			}
		}
		if first == nil {
			first = m
		}
	}

	// The restore operator: the identity, which carries the owner pin.
	ids, err := keys.LoadIdentities(gen.Identity)
	if err != nil {
		return err
	}
	pin, err := keys.OwnerPin(gen.Identity)
	if err != nil {
		return err
	}
	op, err := repo.Open(ctx, st, repo.OpenOptions{Owner: pin, Identities: ids})
	if err != nil {
		return err
	}
	for _, d := range []restore.Depth{restore.Read, restore.Decrypt} {
		rep, err := restore.Verify(ctx, op, nil, d)
		if err != nil {
			return err
		}
		if !rep.OK() {
			return fmt.Errorf("verify %s: %d problems, first: %s: %s", rep.Depth, len(rep.Problems), rep.Problems[0].Object, rep.Problems[0].Error)
		}
		say("%d. verify (%s): %d snapshots, %d objects, %d files: ok", 6+int(d)-1, rep.Depth, rep.Snapshots, rep.Objects, rep.Files)
	}

	m, err := restore.Resolve(ctx, op, "latest", time.Time{})
	if err != nil {
		return err
	}
	snap, err := restore.Load(ctx, op, m)
	if err != nil {
		return err
	}
	restored := filepath.Join(dir, "restored")
	start := time.Now()
	deploySrc, err := snap.Source("deploy")
	if err != nil {
		return err
	}
	for _, s := range []struct{ name, sub, orig string }{
		{"deploy", "dags", filepath.Join(deploy, "dags")},
		{"deploy", "plugins", filepath.Join(deploy, "plugins")},
		{"invoices", "", filepath.Join(deploy, "invoices")},
	} {
		src, err := snap.Source(s.name)
		if err != nil {
			return err
		}
		to := filepath.Join(restored, filepath.Base(s.orig))
		if _, err := restore.RestoreDir(ctx, src, to, restore.DirOptions{SubPath: s.sub}); err != nil {
			return fmt.Errorf("restore %s: %w", filepath.Base(s.orig), err)
		}
		if err := compareTrees(s.orig, to); err != nil {
			return fmt.Errorf("restored %s differs: %w", filepath.Base(s.orig), err)
		}
	}
	if err := sqlite.Restore(ctx, source.Sub(deploySrc, airflow.PartMetaDB, "sqlite"), filepath.Join(restored, "airflow.db"), false); err != nil {
		return fmt.Errorf("restore metadb: %w", err)
	}
	say("8. restored snapshot %s into %s in %s: folders identical, metadata database passes integrity_check and its fingerprints match",
		repo.ShortID(m.ID), restored, time.Since(start).Round(time.Millisecond))
	// A restore drill of the latest snapshot: restored into a scratch
	// folder that is removed afterwards, checked, and timed.
	rep, err := drill.Run(ctx, drill.Options{Repo: op, Snapshot: m.ID, TempDir: o.TempDir, Version: o.Version})
	if err != nil {
		return fmt.Errorf("drill: %w", err)
	}
	passed, warned := 0, 0
	for _, c := range rep.Checks {
		if c.Result == drill.Pass {
			passed++
		} else if c.Result == drill.Warn {
			warned++
		}
	}
	for _, s := range rep.Sources {
		for _, c := range s.Checks {
			if c.Result == drill.Pass {
				passed++
			} else if c.Result == drill.Warn {
				warned++
			}
		}
	}
	say("9. drill of snapshot %s: %s, %d checks passed, %d warnings, RTO %s:", repo.ShortID(m.ID), strings.ToUpper(string(rep.Result)), passed, warned, rep.RTO.Duration().Round(time.Millisecond))
	var sum bytes.Buffer
	if err := drill.WriteText(&sum, rep); err != nil {
		return err
	}
	for _, l := range strings.Split(strings.TrimRight(sum.String(), "\n"), "\n") {
		say("   %s", l)
	}
	if rep.Result != drill.Pass && rep.Result != drill.Warn {
		return fmt.Errorf("drill of snapshot %s: %s", repo.ShortID(m.ID), rep.Result)
	}
	say("demo ok: the backup host held no identity; every object in %s is an age file or a signed document, but the backups' running markers (ids and times)", st.Location())
	return nil
}

// buildMetadataDB builds the metadata database from its SQL, whose DAG
// file locations (written for /opt/airflow) are moved to home, as Airflow
// would record them after parsing the deployment where it now is.
func buildMetadataDB(ctx context.Context, schema, path, home string) error {
	b, err := os.ReadFile(schema)
	if err != nil {
		return err
	}
	b = bytes.ReplaceAll(b, []byte("/opt/airflow/"), []byte(strings.ReplaceAll(home, "'", "''")+"/"))
	db, err := sql.Open("sqlite", path) // driver registered by the backup package
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.ExecContext(ctx, string(b))
	return err
}

// copyTree copies regular files, folders and symlinks with their modes.
func copyTree(from, to string) error {
	return filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(dst, info.Mode().Perm()|0o700)
		case info.Mode()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(l, dst)
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(dst, b, info.Mode().Perm())
		}
	})
}

// compareTrees checks that b holds exactly a's entries with equal
// contents, permission bits and symlink targets.
func compareTrees(a, b string) error {
	seen := 0
	err := filepath.WalkDir(a, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(a, p)
		seen++
		ia, err := os.Lstat(p)
		if err != nil {
			return err
		}
		ib, err := os.Lstat(filepath.Join(b, rel))
		if err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		if ia.Mode() != ib.Mode() {
			return fmt.Errorf("%s: mode %v, want %v", rel, ib.Mode(), ia.Mode())
		}
		if ia.Mode().IsRegular() {
			x, _ := os.ReadFile(p)
			y, err := os.ReadFile(filepath.Join(b, rel))
			if err != nil || !bytes.Equal(x, y) {
				return fmt.Errorf("%s: contents differ", rel)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	n := 0
	filepath.WalkDir(b, func(string, fs.DirEntry, error) error { n++; return nil })
	if n != seen {
		return fmt.Errorf("%d entries restored, want %d", n, seen)
	}
	return nil
}

// gitInit makes dir a git repository with one commit of everything in
// it. Without git on PATH it does nothing (the snapshot then records no
// HEAD and the drill has none to compare).
func gitInit(ctx context.Context, dir string) error {
	if _, err := exec.LookPath("git"); err != nil {
		return nil
	}
	for _, args := range [][]string{
		{"init", "-q"},
		{"add", "-A"},
		{"-c", "user.name=coffer demo", "-c", "user.email=demo@localhost", "-c", "commit.gpgsign=false",
			"commit", "-q", "-m", "demo DAGs"},
	} {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("git %s: %v: %s", args[len(args)-1], err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

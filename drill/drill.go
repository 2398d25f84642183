package drill

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"time"

	"github.com/cofferhq/coffer/internal/fingerprint"
	"github.com/cofferhq/coffer/internal/progress"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/restore"
	"github.com/cofferhq/coffer/source"
	"github.com/cofferhq/coffer/source/postgres"
	"github.com/cofferhq/coffer/source/registry"
)

// Options configure Run.
type Options struct {
	// Repo is the repository, opened with the identity.
	Repo *repo.Repository
	// Snapshot is an id, a unique prefix or "latest" (the default).
	Snapshot string
	// Random picks a snapshot at random instead (old snapshots rot too).
	Random bool
	// Sources restricts the drill to these sources; default all.
	Sources []string
	// PostgresServer is the DSN of a PostgreSQL drill server; empty: an
	// ephemeral cluster started for the drill.
	PostgresServer string
	// MySQLServer is the DSN of a MySQL/MariaDB drill server, needed for
	// MySQL sources and Airflow deployments on MySQL.
	MySQLServer string
	// Checks are the user checks, by source name.
	Checks map[string][]source.UserCheck
	// TempDir holds the scratch folder; default os.TempDir().
	TempDir string
	// Version is coffer's version, for the report.
	Version string
	// Progress, when set, is told what the drill does, one line at a time.
	Progress func(format string, args ...any)
	// Reporter, when set, is told the bytes and files each source's
	// restore has written (the CLI draws bars from it on a terminal).
	Reporter progress.Reporter
}

// ErrNoSource is wrapped when a source asked for is not in the snapshot.
var ErrNoSource = errors.New("no such source in the snapshot")

// Run restores a snapshot, or the chosen sources of it, into a scratch
// environment that it creates and always removes, checks what came back,
// and measures how long that took. It reads only the repository and writes
// only the scratch environment: PostgreSQL sources go to an ephemeral
// cluster (or to uniquely named databases on the configured drill server),
// MySQL sources to the MySQL drill server (or, without one, to an
// ephemeral MariaDB server when mariadbd is installed), SQLite databases, folders and
// AIRFLOW_HOME to a private folder.
//
// The report is returned in every case. Run returns an error, and the
// report's Result is Error, when the drill could not run (no snapshot, no
// key, no scratch environment); failed checks are not errors (Result
// Fail). Before it starts, Run removes what drills killed with SIGKILL
// left behind (see Marker).
func Run(ctx context.Context, o Options) (rep *Report, err error) {
	start := time.Now()
	rep = &Report{Version: ReportVersion, ID: NewID(), Started: start.UTC(), Coffer: o.Version, Checks: []Check{}, Sources: []SourceReport{}}
	rep.Host, _ = os.Hostname()
	if u, uerr := user.Current(); uerr == nil {
		rep.User = u.Username
	}
	progress := o.Progress
	if progress == nil {
		progress = func(string, ...any) {}
	}
	couldNot := func(err error) (*Report, error) {
		rep.Result, rep.Error = Error, err.Error()
		rep.Finished = time.Now().UTC()
		return rep, err
	}
	if o.Repo == nil {
		return couldNot(errors.New("drill: no repository"))
	}
	rep.Repository, rep.RepositoryID = o.Repo.Store.Location(), o.Repo.Config.ID

	// The drill servers, then what dead drills left behind.
	servers := map[string]Server{}
	byKind := map[string]Server{}
	if o.PostgresServer != "" {
		s, err := NewPostgresServer(o.PostgresServer)
		if err != nil {
			return couldNot(err)
		}
		servers[s.Key()], byKind["postgres"] = s, s
	}
	if o.MySQLServer != "" {
		s, err := NewMySQLServer(o.MySQLServer)
		if err != nil {
			return couldNot(err)
		}
		servers[s.Key()], byKind["mysql"] = s, s
	}
	if left, err := reapLeftovers(ctx, o.TempDir, servers); err != nil {
		progress("warning: removing a dead drill's leftovers: %v", err)
	} else {
		for _, l := range left {
			progress("removed the leftovers of drill %s (%s)", l.Drill, l.Folder)
		}
	}

	m, err := pick(ctx, o)
	if err != nil {
		return couldNot(err)
	}
	rep.Snapshot, rep.SnapshotTime = m.ID, m.Time.UTC()
	rep.RPO = Seconds(start.Sub(m.Time))
	// Hold the snapshot so that forget and prune leave it alone while the
	// drill restores it. A drill host that may not write drills anyway;
	// the report says the snapshot was not held.
	if release, err := o.Repo.Hold(ctx, m.ID, HoldTTL); err != nil {
		rep.Checks = append(rep.Checks, Check{Name: "hold", Result: Warn,
			Detail: "the snapshot could not be held against forget and prune during the drill: " + oneLine(err.Error())})
	} else {
		defer release()
	}
	snap, err := restore.Load(ctx, o.Repo, m)
	var ie *repo.IntegrityError
	if errors.As(err, &ie) {
		// A damaged catalog: the integrity check fails, nothing can be
		// restored.
		rep.Checks = append(rep.Checks, Check{Name: "integrity", Result: Fail, Detail: "the snapshot's catalog cannot be read: " + oneLine(err.Error())})
		rep.Result, rep.RTO, rep.Finished = Fail, Seconds(time.Since(start)), time.Now().UTC()
		return rep, nil
	}
	if err != nil {
		return couldNot(err)
	}
	if p, err := o.Repo.ReadPrivate(ctx, m); err == nil {
		rep.SnapshotHost = p.Host
	}
	names, err := selectSources(snap, o.Sources)
	if err != nil {
		return couldNot(err)
	}

	for src, cs := range o.Checks {
		if _, err := snap.Source(src); err != nil {
			for _, c := range cs {
				rep.Checks = append(rep.Checks, Check{Name: "user:" + c.Name, Result: Warn,
					Detail: fmt.Sprintf("not run: the snapshot has no source %q", src)})
			}
		}
	}
	sc, err := newScratch(o.TempDir, rep.ID, start)
	if err != nil {
		return couldNot(err)
	}
	if byKind["postgres"] == nil {
		byKind["postgres"] = &pgEphemeral{dir: sc.dir}
	}
	if byKind["mysql"] == nil {
		if s := newMySQLEphemeral(sc.dir); s != nil {
			byKind["mysql"] = s
		}
	}
	// The scratch environment goes, whatever happens: success, failure,
	// cancellation (SIGINT, SIGTERM) or a panic in this goroutine.
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		var errs []error
		for _, s := range byKind {
			if s.Key() != "" {
				if _, err := s.DropDrill(cctx, ScratchID(rep.ID)); err != nil {
					errs = append(errs, err)
				}
			}
			if err := s.Close(cctx); err != nil {
				errs = append(errs, err)
			}
		}
		if err := sc.remove(cctx); err != nil {
			errs = append(errs, err)
		}
		if cerr := errors.Join(errs...); cerr != nil {
			progress("warning: cleaning up the scratch environment: %v (the next drill retries)", cerr)
		}
	}()

	// Integrity runs beside the restores: signatures and the ciphertext
	// hashes of every object the snapshot references.
	integrity := make(chan Check, 1)
	go func() {
		t0 := time.Now()
		vr, err := restore.Verify(ctx, o.Repo, []string{m.ID}, restore.Read)
		switch {
		case err != nil:
			integrity <- Check{Name: "integrity", Result: Error, Detail: "verify could not run: " + err.Error()}
		case !vr.OK():
			var probs []string
			for _, p := range vr.Problems {
				probs = append(probs, p.Object+": "+p.Error)
			}
			integrity <- Check{Name: "integrity", Result: Fail, Detail: fmt.Sprintf("%d problems: %s", len(probs), strings.Join(first(probs, 5), "; "))}
		default:
			integrity <- Check{Name: "integrity", Result: Pass, Detail: fmt.Sprintf("manifest signature and the ciphertext hashes of %d objects (%d bytes) verified in %.1fs",
				vr.Objects, vr.Bytes, time.Since(t0).Seconds())}
		}
	}()

	d := &drill{o: o, rep: rep, snap: snap, sc: sc, servers: byKind, start: start, progress: progress}
	for i, name := range names {
		if ctx.Err() != nil {
			break
		}
		rep.Sources = append(rep.Sources, d.source(ctx, i, name))
	}
	var ic Check
	select {
	case ic = <-integrity:
	case <-ctx.Done():
	}
	if ctx.Err() != nil {
		return couldNot(fmt.Errorf("drill interrupted: %w", ctx.Err()))
	}
	rep.Checks = append(rep.Checks, ic)
	rep.RTO = Seconds(time.Since(start))
	rep.Finished = time.Now().UTC()
	for _, s := range rep.Sources {
		rep.BytesRead += s.BytesRead
	}
	if rep.RTO > 0 {
		rep.Throughput = float64(rep.BytesRead) / rep.RTO.Duration().Seconds()
	}
	rep.Result = Pass
	for _, c := range rep.Checks {
		rep.Result = Worse(rep.Result, c.Result)
	}
	for _, s := range rep.Sources {
		rep.Result = Worse(rep.Result, s.Result)
	}
	if rep.Result == Error {
		rep.Error = "a check could not run"
		for _, s := range rep.Sources {
			for _, c := range s.Checks {
				if c.Result == Error {
					rep.Error = s.Name + ": " + c.Name + ": " + c.Detail
				}
			}
		}
		return rep, errors.New(rep.Error)
	}
	return rep, nil
}

// HoldTTL is how long a drill's hold on its snapshot lasts when the drill
// cannot release it (killed): long enough for the largest drill, short
// enough that a forgotten snapshot's space frees the next day.
const HoldTTL = 12 * time.Hour

// pick resolves the snapshot to drill.
func pick(ctx context.Context, o Options) (*repo.Manifest, error) {
	if o.Random {
		if o.Snapshot != "" && o.Snapshot != "latest" {
			return nil, errors.New("drill: a snapshot and random were both given")
		}
		ms, bad, err := o.Repo.Manifests(ctx)
		if err != nil {
			return nil, err
		}
		if len(ms) == 0 {
			if len(bad) > 0 {
				return nil, fmt.Errorf("%w: no snapshot could be read: %v", restore.ErrNoSnapshot, bad[0])
			}
			return nil, fmt.Errorf("%w: the repository has no snapshots", restore.ErrNoSnapshot)
		}
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(ms))))
		if err != nil {
			return nil, err
		}
		return ms[n.Int64()], nil
	}
	spec := o.Snapshot
	if spec == "" {
		spec = "latest"
	}
	return restore.Resolve(ctx, o.Repo, spec, time.Time{})
}

func selectSources(snap *restore.Snapshot, want []string) ([]string, error) {
	var all []string
	for _, s := range snap.Catalog.Sources {
		all = append(all, s.Name)
	}
	if len(want) == 0 {
		return all, nil
	}
	have := map[string]bool{}
	for _, n := range all {
		have[n] = true
	}
	var out []string
	seen := map[string]bool{}
	for _, n := range want {
		if !have[n] {
			return nil, fmt.Errorf("%w: %q (it has: %s)", ErrNoSource, n, strings.Join(all, ", "))
		}
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out, nil
}

func first(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], fmt.Sprintf("and %d more", len(s)-n))
	}
	return s
}

// drill is one Run in progress.
type drill struct {
	o        Options
	rep      *Report
	snap     *restore.Snapshot
	sc       *scratch
	servers  map[string]Server
	start    time.Time
	progress func(string, ...any)
}

// source restores and checks one source.
func (d *drill) source(ctx context.Context, i int, name string) SourceReport {
	sr := SourceReport{Name: name, Checks: []Check{}}
	add := func(name string, r Result, format string, args ...any) {
		sr.Checks = append(sr.Checks, Check{Name: name, Result: r, Detail: fmt.Sprintf(format, args...)})
	}
	finish := func() SourceReport {
		sr.Timings.Total = Seconds(time.Since(d.start))
		sr.Result = Pass
		for _, c := range sr.Checks {
			sr.Result = Worse(sr.Result, c.Result)
		}
		return sr
	}
	src, err := d.snap.Source(name)
	if err != nil {
		add("restored", Error, "%v", err)
		return finish()
	}
	sr.Kind = src.Kind()
	d.progress("restoring %s (%s)", name, sr.Kind)
	if rp := d.o.Reporter; rp != nil {
		src.SetProgress(rp)
		rp.Start(name, src.Size(""))
		// A bar is drawn full only for a source that came back; a failed
		// one stays where it stopped.
		defer func() {
			if sr.Result == Pass || sr.Result == Warn {
				rp.Finish(name)
			}
		}()
	}
	kind, ok := registry.Lookup(sr.Kind)
	if !ok {
		add("restored", Error, "kind %q is not one this coffer knows", sr.Kind)
		return finish()
	}

	// Where it goes.
	var target string
	var ropts source.RestoreOptions
	var dbKind, database string
	dbTarget := func(kind string, roles []string) error {
		srv := d.servers[kind]
		if srv == nil {
			if kind == "mysql" {
				return errors.New("no mysql drill server configured (drill.mysql_server in the config file), and no MariaDB server binaries (mariadbd, mariadb-install-db) for an ephemeral one")
			}
			return fmt.Errorf("no %s drill server configured (drill.%s_server in the config file)", kind, kind)
		}
		if srv.Key() != "" {
			if err := d.sc.addServer(srv.Key()); err != nil {
				return err
			}
		}
		if err := srv.EnsureRoles(ctx, roles); err != nil {
			return err
		}
		dsn, name, err := srv.NewDatabase(ctx, ScratchID(d.rep.ID), i)
		if err != nil {
			return err
		}
		database = dsn
		sr.Scratch = "database " + name + " on the " + srv.Where()
		return nil
	}
	switch {
	case sr.Kind == "dir":
		target = filepath.Join(d.sc.work, fmt.Sprintf("%d-%s", i, name))
		sr.Scratch = "folder " + target
	case kind.Composite:
		var am struct {
			MetaDBKind string `json:"metadb_kind"`
		}
		if err := src.Meta("airflow", &am); err != nil {
			add("restored", Error, "%v", err)
			return finish()
		}
		target = filepath.Join(d.sc.work, fmt.Sprintf("%d-%s", i, name))
		dbKind = am.MetaDBKind
		switch dbKind {
		case "sqlite":
			database = filepath.Join(target, "airflow.db")
			sr.Scratch = "AIRFLOW_HOME " + target
		default:
			if err := dbTarget(dbKind, postgres.Roles(source.Sub(src, "metadb", dbKind))); err != nil {
				add("restored", Error, "%v", err)
				return finish()
			}
			sr.Scratch = "AIRFLOW_HOME " + target + ", metadata " + sr.Scratch
		}
		ropts = source.RestoreOptions{DatabaseKind: dbKind, Database: database, RewriteConfig: true, Paused: true, Jobs: 1}
	case sr.Kind == "sqlite":
		target = filepath.Join(d.sc.work, fmt.Sprintf("%d-%s.sqlite", i, name))
		sr.Scratch = "file " + target
	default:
		var roles []string
		if sr.Kind == "postgres" {
			roles = postgres.Roles(src)
		}
		if err := dbTarget(sr.Kind, roles); err != nil {
			add("restored", Error, "%v", err)
			return finish()
		}
		target = database
		ropts.Jobs = 1
	}

	// Restore, with the time spent reading the repository counted.
	stats := &repo.ReadStats{}
	rctx := repo.WithReadStats(ctx, stats)
	t0 := time.Now()
	var rerr error
	var detail string
	if sr.Kind == "dir" || kind.Restore == nil {
		var res *restore.DirResult
		res, rerr = restore.RestoreDir(rctx, src, target, restore.DirOptions{})
		if rerr == nil {
			detail = fmt.Sprintf("%d files, %d folders, %d symlinks, %d bytes", res.Files, res.Dirs, res.Symlinks, res.Bytes)
		}
	} else {
		var res *source.Restored
		res, rerr = kind.Restore(rctx, src, target, ropts)
		if rerr == nil {
			detail = strings.Join(first(res.Lines, 3), "; ")
		}
	}
	restoreWall := time.Since(t0)
	sr.BytesRead = stats.Bytes.Load()
	fetch, decrypt := time.Duration(stats.Fetch.Load()), time.Duration(stats.Decrypt.Load())
	if sum := fetch + decrypt; sum > restoreWall && sum > 0 {
		// Parallel readers: scale their summed time to the wall time.
		fetch = time.Duration(float64(fetch) * float64(restoreWall) / float64(sum))
		decrypt = restoreWall - fetch
	}
	sr.Timings.Fetch, sr.Timings.Decrypt = Seconds(fetch), Seconds(decrypt)
	sr.Timings.Restore = Seconds(restoreWall - fetch - decrypt)

	t1 := time.Now()
	var mismatch *fingerprint.MismatchError
	switch {
	case ctx.Err() != nil:
		add("restored", Error, "interrupted")
		return finish()
	case errors.As(rerr, &mismatch):
		add("restored", Fail, "the restore refused the database: its fingerprints differ from the backup's")
		add("fingerprints", Fail, "%s", diffs(mismatch.Diffs))
		out := finish()
		out.Timings.Check = Seconds(time.Since(t1))
		return out
	case rerr != nil:
		add("restored", Fail, "%s", oneLine(rerr.Error()))
		out := finish()
		out.Timings.Check = Seconds(time.Since(t1))
		return out
	}
	if detail == "" {
		detail = "restored"
	}
	add("restored", Pass, "%s", detail)

	// Fingerprints: the kind's restore recomputed them on the restored
	// database and refuses one that differs.
	if kind.Checks || kind.Composite {
		fsrc := source.Reader(src)
		if kind.Composite {
			fsrc = source.Sub(src, "metadb", dbKind)
		}
		var want fingerprint.Fingerprints
		if err := fsrc.Meta(fingerprint.MetaKey, &want); err != nil {
			add("fingerprints", Fail, "the snapshot holds no fingerprints: %v", err)
		} else {
			add("fingerprints", Pass, "row counts of %d tables and %d check queries equal the backup's (recomputed on the restored database)", len(want.Tables), len(want.Checks))
		}
	}
	if sr.Kind == "dir" {
		sr.Checks = append(sr.Checks, checkFiles(ctx, src, target))
	}
	if kind.Drill != nil {
		opts := source.DrillOptions{Checks: d.o.Checks[name], DatabaseKind: dbKind, Database: database}
		for _, c := range kind.Drill(ctx, src, target, opts) {
			sr.Checks = append(sr.Checks, Check{Name: c.Name, Result: Result(c.Result), Detail: c.Detail})
		}
	} else if len(d.o.Checks[name]) > 0 {
		add("user", Fail, "user checks apply to database sources only")
	}
	out := finish()
	out.Timings.Check = Seconds(time.Since(t1))
	return out
}

func diffs(ds []fingerprint.Diff) string {
	var s []string
	for _, d := range ds {
		s = append(s, d.String())
	}
	return strings.Join(first(s, 10), "; ")
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 500 {
		s = s[:500] + "..."
	}
	return s
}

package retention

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/backup"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/internal/testing/testrepo"
	"github.com/cofferhq/coffer/restore"
	"github.com/cofferhq/coffer/source"
	dirkind "github.com/cofferhq/coffer/source/dir"
	"github.com/cofferhq/coffer/storage"
)

// env is a repository with its keys, backed up from folders of random
// files.
type env struct {
	t  *testing.T
	tr *testrepo.Repo
	// seed makes each tree different.
	seed uint64
}

func newEnv(t *testing.T) *env {
	return &env{t: t, tr: testrepo.New(t)}
}

// tree writes a folder of n random files of size bytes each (different
// for every call).
func (e *env) tree(n, size int) string {
	e.t.Helper()
	e.seed++
	dir := e.t.TempDir()
	rnd := rand.NewChaCha8([32]byte{byte(e.seed), byte(e.seed >> 8), 42})
	for i := range n {
		b := make([]byte, size)
		rnd.Read(b)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d.bin", i)), b, 0o600); err != nil {
			e.t.Fatal(err)
		}
	}
	return dir
}

// skipping is a folder source that also reports one path it could not
// read: its snapshots are incomplete.
type skipping struct{ *dirkind.Source }

func (s skipping) Backup(ctx context.Context, w source.Writer) error {
	if err := s.Source.Backup(ctx, w); err != nil {
		return err
	}
	return w.(source.Skipper).Skip("unreadable.txt", errors.New("permission denied"))
}

// backup backs up dirs as sources (name=dir) and returns the manifest.
func (e *env) backup(tags []string, incomplete bool, srcs ...string) *repo.Manifest {
	e.t.Helper()
	var ss []source.Source
	for _, s := range srcs {
		name, dir, _ := strings.Cut(s, "=")
		d := &dirkind.Source{SourceName: name, Path: dir}
		if incomplete {
			ss = append(ss, skipping{d})
		} else {
			ss = append(ss, d)
		}
	}
	res, err := backup.Run(context.Background(), backup.Options{Repo: e.tr.Host(e.t), Signing: e.tr.Signing, Sources: ss, Tags: tags})
	if err != nil {
		e.t.Fatalf("backup: %v", err)
	}
	if res.Manifest.Incomplete != incomplete {
		e.t.Fatalf("snapshot incomplete = %v, want %v", res.Manifest.Incomplete, incomplete)
	}
	time.Sleep(2 * time.Millisecond) // distinct times
	return res.Manifest
}

// ids lists the snapshots every reader sees.
func (e *env) ids() []string {
	e.t.Helper()
	ids, err := e.tr.Host(e.t).SnapshotIDs(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	sort.Strings(ids)
	return ids
}

// verify runs verify at decrypt depth over every snapshot and returns its
// report.
func (e *env) verify() *restore.Report {
	e.t.Helper()
	rep, err := restore.Verify(context.Background(), e.tr.Operator(e.t), nil, restore.Decrypt)
	if err != nil {
		e.t.Fatal(err)
	}
	return rep
}

// mustVerify fails unless verify finds no problem.
func (e *env) mustVerify() {
	e.t.Helper()
	if rep := e.verify(); len(rep.Problems) > 0 {
		e.t.Fatalf("verify found problems: %+v", rep.Problems)
	}
}

// objects returns name → size of every object of the store under the
// given prefixes (all when none).
func objects(t *testing.T, st storage.Store, prefixes ...string) map[string]int64 {
	t.Helper()
	if len(prefixes) == 0 {
		prefixes = []string{""}
	}
	out := map[string]int64{}
	for _, p := range prefixes {
		if err := st.List(context.Background(), p, func(oi storage.ObjectInfo) error {
			out[oi.Name] = oi.Size
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func total(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// liveObjects returns the objects the listed (not forgotten) snapshots
// reference, with their manifests.
func liveObjects(t *testing.T, r *repo.Repository) map[string]int64 {
	t.Helper()
	ms, bad, err := r.Manifests(context.Background())
	if err != nil || len(bad) > 0 {
		t.Fatalf("manifests: %v %v", err, bad)
	}
	all := objects(t, r.Store)
	out := map[string]int64{}
	for _, m := range ms {
		out[repo.SnapshotName(m.ID)] = all[repo.SnapshotName(m.ID)]
		for _, ref := range m.Objects() {
			out[ref.Name] = ref.Size
		}
	}
	return out
}

var dataPrefixes = []string{repo.DataPrefix, repo.IndexPrefix, repo.CatalogPrefix, repo.PrivatePrefix, repo.SnapshotsPrefix}

// pruneNow prunes as if an hour had passed (so that nothing is too young),
// with no grace period.
func pruneNow(t *testing.T, r *repo.Repository) *PruneResult {
	t.Helper()
	res, err := Prune(context.Background(), r, PruneOptions{Now: time.Now().Add(time.Hour), GraceSet: true})
	if err != nil {
		t.Fatalf("prune: %v", err)
	}
	return res
}

func timeNowPlusHour() time.Time { return time.Now().Add(time.Hour) }

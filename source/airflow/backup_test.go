package airflow_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/backup"
	"github.com/cofferhq/coffer/internal/testing/airflowfixture"
	"github.com/cofferhq/coffer/internal/testing/testrepo"
	"github.com/cofferhq/coffer/restore"
	"github.com/cofferhq/coffer/source"
	"github.com/cofferhq/coffer/source/airflow"
	"github.com/cofferhq/coffer/source/airflow/fernet"
	"github.com/cofferhq/coffer/source/dir"
	"github.com/cofferhq/coffer/source/registry"
	"github.com/cofferhq/coffer/storage"
)

// backedUp is one airflow source backed up and read back.
type backedUp struct {
	src     *airflow.Source
	res     *backup.Result
	err     error
	log     string
	repo    *testrepo.Repo
	snap    *restore.Source
	meta    airflow.Meta
	secrets airflow.Secrets
}

func backupDeployment(t *testing.T, d *airflowfixture.Deployment, o airflow.Options, strict, logs bool) *backedUp {
	t.Helper()
	ctx := context.Background()
	if o.Home == "" {
		o.Home = d.Home
	}
	if o.Environ == nil {
		o.Environ = []string{"PATH=" + os.Getenv("PATH")}
	}
	b := &backedUp{src: &airflow.Source{SourceName: "deploy", Options: o, IncludeLogs: logs}, repo: testrepo.New(t)}
	var log bytes.Buffer
	b.res, b.err = backup.Run(ctx, backup.Options{Repo: b.repo.Host(t), Signing: b.repo.Signing, Sources: []source.Source{b.src},
		Strict: strict, Logger: slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	b.log = log.String()
	if b.err != nil {
		return b
	}
	op := b.repo.Operator(t)
	snap, err := restore.Load(ctx, op, b.res.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	if b.snap, err = snap.Source("deploy"); err != nil {
		t.Fatal(err)
	}
	if err := b.snap.Meta(airflow.MetaKey, &b.meta); err != nil {
		t.Fatal(err)
	}
	if err := b.snap.Meta(airflow.SecretsMetaKey, &b.secrets); err != nil {
		t.Fatal(err)
	}
	return b
}

// noSecrets fails when any of the deployment's secrets is in the
// repository's objects, the log or the warnings.
func (b *backedUp) noSecrets(t *testing.T, d *airflowfixture.Deployment) {
	t.Helper()
	var texts [][]byte
	filepath.WalkDir(b.repo.Dir, func(p string, de fs.DirEntry, err error) error {
		if err == nil && de.Type().IsRegular() && !strings.Contains(p, "/keys/") {
			bs, _ := os.ReadFile(p)
			texts = append(texts, bs)
		}
		return nil
	})
	texts = append(texts, []byte(b.log))
	if b.res != nil {
		texts = append(texts, []byte(strings.Join(b.res.Warnings, "\n")))
	}
	if b.err != nil {
		texts = append(texts, []byte(b.err.Error()))
	}
	rep := b.src.Report()
	texts = append(texts, []byte(strings.Join(append(rep.Notes, rep.Unrestorable...), "\n")))
	if len(texts) < 4 {
		t.Fatalf("only %d files in the repository", len(texts))
	}
	for _, s := range d.Secrets {
		for _, x := range texts {
			if bytes.Contains(x, []byte(s)) {
				t.Errorf("secret %.12s... is in the repository, the log or the output", s)
				break
			}
		}
	}
}

func (b *backedUp) paths() map[string]bool {
	out := map[string]bool{}
	for _, e := range b.snap.Entries() {
		out[e.Path] = true
	}
	return out
}

func (b *backedUp) read(t *testing.T, path string) string {
	t.Helper()
	rc, err := b.snap.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	bs, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(bs)
}

// TestBackupDeployment backs up the generated deployment on each metadata
// engine and schema and checks the snapshot's layout and metadata: every
// part, the git state, the Alembic revision and version, the Fernet check,
// the consistent points, the secrets; and that no secret is in the
// repository's objects or the output.
func TestBackupDeployment(t *testing.T) {
	for _, tc := range []struct {
		engine, version, dump, airflowVersion string
	}{
		{"postgres", "2.10", "metadb/dump.pgdump", "2.10.3"},
		{"postgres", "3.0", "metadb/dump.pgdump", "3.0.0"},
		{"mysql", "2.10", "metadb/dump.sql", "2.10.3"},
		{"sqlite", "2.10", "metadb/database.sqlite", "2.10.3"},
		{"sqlite", "3.0", "metadb/database.sqlite", "3.0.0"},
	} {
		t.Run(tc.engine+"-"+tc.version, func(t *testing.T) {
			t.Parallel()
			d := airflowfixture.New(t, tc.engine, airflowfixture.Options{Version: tc.version, Runs: 5})
			b := backupDeployment(t, d, airflow.Options{EnvFile: d.EnvFile}, true, true)
			if b.err != nil {
				t.Fatal(b.err)
			}
			paths := b.paths()
			for _, p := range []string{tc.dump, "dags", "dags/.git/HEAD", "dags/.git/refs/heads/feature/vendor-sync-v2", "dags/invoice_ingest.py",
				"dags/lib/invoices.py", "dags/notes.md", "plugins/invoice_macros.py", "config/airflow.cfg", "config/webserver_config.py",
				"config/airflow_local_settings.py", "logs/dag_id=payment_run"} {
				if !paths[p] {
					t.Errorf("snapshot lacks %s", p)
				}
			}
			for p := range paths {
				if strings.HasPrefix(p, ".env") || strings.Contains(p, ".secrets") || p == "airflow.db" {
					t.Errorf("snapshot holds %s, which is no part of the layout", p)
				}
			}
			if got, want := b.paths()["metadb"], true; got != want && tc.engine != "sqlite" {
				t.Logf("no metadb folder entry (kinds write none)")
			}
			cfg, _ := os.ReadFile(d.ConfigPath)
			if got := b.read(t, "config/airflow.cfg"); got != string(cfg) {
				t.Error("config/airflow.cfg differs from airflow.cfg")
			}
			m := b.meta
			if m.Version != 1 || m.Home != d.Home || m.MetaDBKind != tc.engine || m.AlembicRevision != d.Revision || m.AirflowVersion != tc.airflowVersion {
				t.Errorf("meta: version %d home %s kind %s revision %s airflow %s", m.Version, m.Home, m.MetaDBKind, m.AlembicRevision, m.AirflowVersion)
			}
			if strings.Join(m.Parts, ",") != "metadb,dags,plugins,config,logs" || !m.Logs {
				t.Errorf("parts %v, logs %v", m.Parts, m.Logs)
			}
			if m.DagsGit == nil || m.DagsGit.Head != d.Git.Head || m.DagsGit.Branch != "main" || !m.DagsGit.Dirty || m.DagsGit.Changes != 2 {
				t.Errorf("dags git %+v, want head %s on main, dirty", m.DagsGit, d.Git.Head)
			}
			if m.Fernet.Keys != 1 || m.Fernet.Encrypted != 9 || m.Fernet.Checked != 9 || m.Fernet.Failed != 0 {
				t.Errorf("fernet %+v", m.Fernet)
			}
			if tc.engine != "sqlite" && m.Owner.DBUser != d.Owner {
				t.Errorf("owner %+v, want %s", m.Owner, d.Owner)
			}
			if strings.Contains(m.MetaDBURL, d.Secrets[0]) || (tc.engine != "sqlite" && !strings.Contains(m.MetaDBURL, ":***@")) {
				t.Errorf("metadb url %s is not masked", m.MetaDBURL)
			}
			for _, part := range []string{"metadb", "dags", "plugins", "config", "logs"} {
				if m.Consistent[part].Time.IsZero() {
					t.Errorf("no consistent point for %s", part)
				}
			}
			if tc.engine == "postgres" && !strings.Contains(m.Consistent["metadb"].LSN, "/") {
				t.Errorf("metadb consistent point %+v has no LSN", m.Consistent["metadb"])
			}
			// The part's own metadata is there, under its prefix.
			var p source.ConsistentPoint
			if err := b.snap.Meta("metadb."+source.ConsistentKey, &p); err != nil || !p.Time.Equal(m.Consistent["metadb"].Time) {
				t.Errorf("metadb.consistent = %+v, %v", p, err)
			}
			if m.Consistent["metadb"].Time.After(m.Consistent["dags"].Time) {
				t.Error("the metadata database was not dumped first")
			}
			if b.secrets.FernetKey != d.FernetKeys[0] || b.secrets.WebserverSecretKey != d.WebserverSecretKey && tc.version == "2.10" {
				t.Error("airflow.secrets does not hold the deployment's keys")
			}
			if tc.version == "3.0" && (b.secrets.APISecretKey != d.APISecretKey || b.secrets.JWTSecret != d.JWTSecret) {
				t.Error("airflow.secrets lacks the 3.x API secret key and JWT secret")
			}
			if rep := b.src.Report(); len(rep.Unrestorable) != 0 || len(rep.Notes) != 1 || rep.Notes[0] != "deploy: snapshot holds the Fernet key(s): 9 values checked" {
				t.Errorf("report %+v", rep)
			}
			b.noSecrets(t, d)
		})
	}
}

// TestFernetCases: the key only in the environment, only behind a _CMD, a
// rotated list, a missing key and a wrong key.
func TestFernetCases(t *testing.T) {
	newKey, oldKey := fernet.GenerateKey(), fernet.GenerateKey()
	for _, tc := range []struct {
		name      string
		opts      airflowfixture.Options
		environ   []string
		noEnvFile bool
		checked   int
		failed    int
		problem   string
	}{
		{name: "env only", opts: airflowfixture.Options{KeyIn: "env"}, checked: 9},
		{name: "_CMD only", opts: airflowfixture.Options{KeyIn: "cmd"}, checked: 9},
		{name: "cfg _cmd", opts: airflowfixture.Options{KeyIn: "cfg_cmd"}, checked: 9},
		{name: "rotated list", opts: airflowfixture.Options{FernetKeys: []string{newKey, oldKey}, EncryptKeys: []string{newKey, oldKey}}, checked: 9},
		{name: "rotation lost the old key", opts: airflowfixture.Options{FernetKeys: []string{newKey, oldKey}, EncryptKeys: []string{newKey, oldKey}},
			environ: []string{"AIRFLOW__CORE__FERNET_KEY=" + newKey}, checked: 9, failed: 4, problem: "4 of 9 encrypted value(s) do not decrypt with the 1 Fernet key(s) from env AIRFLOW__CORE__FERNET_KEY"},
		{name: "env only, env file not given", opts: airflowfixture.Options{KeyIn: "env"}, noEnvFile: true, problem: "no Fernet key found"},
		{name: "missing", opts: airflowfixture.Options{KeyIn: "none"}, problem: "no Fernet key found"},
		{name: "wrong", environ: []string{"AIRFLOW__CORE__FERNET_KEY=" + fernet.GenerateKey()}, checked: 9, failed: 9,
			problem: `(connection "invoice_db" password, connection "erp_api" password, connection "erp_api" extra`},
		{name: "not a key", environ: []string{"AIRFLOW__CORE__FERNET_KEY=not-a-fernet-key"}, problem: "does not parse (a Fernet key must be 32 bytes in URL-safe base64)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := airflowfixture.New(t, "sqlite", airflowfixture.Options{KeyIn: tc.opts.KeyIn, FernetKeys: tc.opts.FernetKeys, EncryptKeys: tc.opts.EncryptKeys, Runs: 2, NoGit: true})
			o := airflow.Options{EnvFile: d.EnvFile, Environ: append([]string{"PATH=" + os.Getenv("PATH")}, tc.environ...)}
			if tc.noEnvFile {
				o.EnvFile = ""
			}
			b := backupDeployment(t, d, o, false, false)
			if b.err != nil {
				t.Fatal(b.err)
			}
			f := b.meta.Fernet
			if f.Encrypted != 9 || f.Checked != tc.checked || f.Failed != tc.failed {
				t.Errorf("fernet %+v, want %d checked, %d failed", f, tc.checked, tc.failed)
			}
			rep := b.src.Report()
			if tc.problem == "" {
				if len(rep.Unrestorable) > 0 || len(b.res.Warnings) > 0 {
					t.Errorf("report %+v, warnings %v", rep, b.res.Warnings)
				}
				if b.secrets.FernetKey != strings.Join(d.FernetKeys, ",") {
					t.Error("airflow.secrets does not hold the whole key list")
				}
			} else {
				if len(rep.Unrestorable) != 1 || !strings.Contains(rep.Unrestorable[0], tc.problem) {
					t.Errorf("unrestorable %q, want %q", rep.Unrestorable, tc.problem)
				}
				if len(b.res.Warnings) != 1 || !strings.Contains(b.res.Warnings[0], tc.problem) {
					t.Errorf("warnings %q, want %q", b.res.Warnings, tc.problem)
				}
				// Strict: the same problem fails the backup; nothing is saved.
				sb := backupDeployment(t, d, o, true, false)
				if !errors.Is(sb.err, source.ErrStrict) || !strings.Contains(sb.err.Error(), tc.problem) {
					t.Errorf("strict backup: %v", sb.err)
				}
				n := 0
				sb.repo.Store.List(context.Background(), "snapshots/", func(storage.ObjectInfo) error { n++; return nil })
				if n != 0 {
					t.Errorf("strict backup saved %d snapshots", n)
				}
				sb.noSecrets(t, d)
			}
			b.noSecrets(t, d)
		})
	}
}

// TestBackupRefusals: a missing DAGs folder and a database that is not
// there fail the backup with clear errors.
func TestBackupRefusals(t *testing.T) {
	d := airflowfixture.New(t, "sqlite", airflowfixture.Options{Runs: 1, NoGit: true})
	if err := os.RemoveAll(filepath.Join(d.Home, "dags")); err != nil {
		t.Fatal(err)
	}
	b := backupDeployment(t, d, airflow.Options{}, false, false)
	want := "DAGs folder " + filepath.Join(d.Home, "dags") + " (core.dags_folder from airflow.cfg [core] dags_folder): no such file or directory"
	if b.err == nil || !strings.Contains(b.err.Error(), want) {
		t.Errorf("missing DAGs folder: %v, want %q", b.err, want)
	}
	os.Mkdir(filepath.Join(d.Home, "dags"), 0o755)
	os.Remove(d.DBPath)
	b = backupDeployment(t, d, airflow.Options{}, false, false)
	if b.err == nil || !strings.Contains(b.err.Error(), "metadata database (sqlite:///"+d.DBPath+")") || !strings.Contains(b.err.Error(), "no such file") {
		t.Errorf("missing database: %v", b.err)
	}
}

// TestBackupOrder: airflow sources are backed up before the others,
// whatever the order they were named in.
func TestBackupOrder(t *testing.T) {
	srcs := []source.Source{&dir.Source{SourceName: "invoices"}, &dir.Source{SourceName: "docs"}, &airflow.Source{SourceName: "deploy"}}
	registry.BackupOrder(srcs)
	var names []string
	for _, s := range srcs {
		names = append(names, s.Name())
	}
	if got, want := strings.Join(names, ","), "deploy,invoices,docs"; got != want {
		t.Errorf("order %s, want %s", got, want)
	}
}

// TestGitStateRunsNoRepositoryCommands: whoever can write the DAG
// repository's .git/config must not make a backup or an inspect run a
// command (core.fsmonitor, a filter's clean or process command, hooks).
func TestGitStateRunsNoRepositoryCommands(t *testing.T) {
	d := airflowfixture.New(t, "sqlite", airflowfixture.Options{Version: "2.10"})
	dags := filepath.Join(d.Home, "dags")
	marker := filepath.Join(t.TempDir(), "PWNED")
	for _, kv := range [][2]string{
		{"core.fsmonitor", "touch " + marker + ".fsmonitor; false"},
		{"filter.evil.clean", "touch " + marker + ".clean; cat"},
		{"filter.evil.process", "touch " + marker + ".process"},
		{"filter.evil.required", "true"},
		{"diff.external", "touch " + marker + ".diff"},
	} {
		if out, err := exec.Command("git", "-C", dags, "config", kv[0], kv[1]).CombinedOutput(); err != nil {
			t.Fatalf("git config: %v %s", err, out)
		}
	}
	if err := os.MkdirAll(filepath.Join(dags, ".git", "info"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dags, ".git", "info", "attributes"), []byte("* filter=evil diff=evil\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A tracked file touched (stat changed, content not) makes git status
	// hash it through the clean filter.
	now := time.Now()
	if err := os.Chtimes(filepath.Join(dags, "invoice_ingest.py"), now, now); err != nil {
		t.Fatal(err)
	}
	b := backupDeployment(t, d, airflow.Options{EnvFile: d.EnvFile}, false, false)
	if b.err != nil {
		t.Fatal(b.err)
	}
	if b.meta.DagsGit == nil || b.meta.DagsGit.Head != d.Git.Head || !b.meta.DagsGit.Dirty {
		t.Errorf("dags git %+v, want head %s, dirty", b.meta.DagsGit, d.Git.Head)
	}
	dep, err := airflow.Discover(context.Background(), airflow.Options{Home: d.Home, EnvFile: d.EnvFile, Environ: []string{"PATH=" + os.Getenv("PATH")}})
	if err != nil {
		t.Fatal(err)
	}
	if ins := dep.Inspect(context.Background()); ins.DagsGit == nil || ins.DagsGit.Head != d.Git.Head {
		t.Errorf("inspect git %+v", ins.DagsGit)
	}
	for _, suffix := range []string{".fsmonitor", ".clean", ".process", ".diff"} {
		if _, err := os.Stat(marker + suffix); err == nil {
			t.Errorf("git ran the repository's %s command", suffix[1:])
		}
	}
}

// TestFernetCheckError: a check that failed part-way is recorded as not
// checked, and the summary says so instead of printing partial counts.
func TestFernetCheckError(t *testing.T) {
	d := airflowfixture.New(t, "sqlite", airflowfixture.Options{Runs: 1, NoGit: true})
	// Connections are checked first; variables then fail to read.
	out, err := exec.Command("sqlite3", d.DBPath, "alter table variable rename to variable_old; create table variable (id integer);").CombinedOutput()
	if err != nil {
		t.Fatalf("sqlite3: %v: %s", err, out)
	}
	b := backupDeployment(t, d, airflow.Options{EnvFile: d.EnvFile}, false, false)
	if b.err != nil {
		t.Fatal(b.err)
	}
	f := b.meta.Fernet
	if f.Checked == 0 || !strings.Contains(f.Error, "read variables") {
		t.Errorf("fernet %+v, want partial counts and the error", f)
	}
	sum, err := airflow.Summarize(b.snap)
	if err != nil {
		t.Fatal(err)
	}
	s := sum.String()
	if !strings.Contains(s, "Fernet NOT checked: read variables") || strings.Contains(s, "values checked") {
		t.Errorf("summary %q", s)
	}
	b.noSecrets(t, d)
}

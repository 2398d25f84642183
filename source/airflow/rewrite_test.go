package airflow

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/source/postgres"
)

const prodCfg = `[core]
# The folder where your airflow pipelines live
dags_folder = /srv/prod-airflow/dags
plugins_folder = /srv/prod-airflow/plugins
executor = CeleryExecutor
fernet_key = cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=
default_timezone = utc

[database]
# old: postgresql+psycopg2://airflow@pg-prod-1.corp.example/af_prod_main
sql_alchemy_conn = postgresql+psycopg2://airflow:s3cr3t-pw@pg-prod-1.corp.example:5432/af_prod_main?sslmode=require
sql_alchemy_pool_size = 5

[logging]
base_log_folder = /srv/prod-airflow/logs
dag_processor_manager_log_location = /srv/prod-airflow/logs/dag_processor_manager/dag_processor_manager.log
remote_logging = True
remote_base_log_folder = s3://prod-logs/airflow
remote_log_conn_id = aws_prod

[webserver]
base_url = https://airflow.corp.example
secret_key = web-secret-value-123
  continued-secret-line

[celery]
broker_url = redis://redis-prod.corp.example:6379/0
result_backend = db+postgresql://airflow:s3cr3t-pw@pg-prod-1.corp.example/af_prod_main
worker_concurrency = 16

[secrets]
backend = airflow.providers.hashicorp.secrets.vault.VaultBackend
backend_kwargs = {"url": "https://vault.corp.example"}

[smtp]
smtp_host = mail.corp.example
smtp_password_cmd = cat /srv/prod-airflow/smtp-password
smtp_mail_from = airflow@example.com

[scheduler]
child_process_log_directory = /srv/prod-airflow/logs/scheduler
statsd_note = pg-prod-1.corp.example is the db
`

func TestRewriteConfig(t *testing.T) {
	rw := cfgRewrite{
		home:         "/tmp/scratch/airflow",
		conn:         "postgresql+psycopg2://airflow@127.0.0.1:5432/af_scratch",
		executor:     "LocalExecutor",
		sourcePaths:  []string{"/srv/prod-airflow/dags", "/srv/prod-airflow"},
		sourceSecret: []string{"cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=", "web-secret-value-123"},
	}
	db := &metadb{conn: rw.conn, sourceDB: "af_prod_main"}
	info := Meta{Home: "/srv/prod-airflow", DagsFolder: "/srv/prod-airflow/dags"}
	rw = rewriteFor([]byte(prodCfg), info, db, rw.home, Secrets{FernetKey: rw.sourceSecret[0], WebserverSecretKey: rw.sourceSecret[1]})
	out, changes := rewriteConfig([]byte(prodCfg), rw)
	got := string(out)
	for _, bad := range []string{"/srv/prod-airflow", "pg-prod-1", "af_prod_main", "s3cr3t-pw", "cw_0x689RpI", "web-secret-value",
		"continued-secret-line", "redis-prod", "vault.corp", "mail.corp", "prod-logs", "airflow.corp.example", "CeleryExecutor"} {
		if strings.Contains(got, bad) {
			t.Errorf("rewritten airflow.cfg still names %q:\n%s", bad, got)
		}
	}
	for _, want := range []string{
		"dags_folder = /tmp/scratch/airflow/dags\n",
		"plugins_folder = /tmp/scratch/airflow/plugins\n",
		"base_log_folder = /tmp/scratch/airflow/logs\n",
		"dag_processor_manager_log_location = /tmp/scratch/airflow/logs/dag_processor_manager/dag_processor_manager.log\n",
		"child_process_log_directory = /tmp/scratch/airflow/logs/scheduler\n",
		"sql_alchemy_conn = postgresql+psycopg2://airflow@127.0.0.1:5432/af_scratch\n",
		"executor = LocalExecutor\n",
		"remote_logging = False\n",
		"base_url = http://localhost:8080\n",
		// Untouched lines stay as they were.
		"default_timezone = utc\n",
		"sql_alchemy_pool_size = 5\n",
		"worker_concurrency = 16\n",
		"smtp_mail_from = airflow@example.com\n",
		"# The folder where your airflow pipelines live\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("rewritten airflow.cfg lacks %q:\n%s", want, got)
		}
	}
	all := strings.Join(changes, "\n")
	for _, want := range []string{
		"[core] fernet_key: removed (a secret)",
		"[webserver] secret_key: removed (a secret)",
		"[smtp] smtp_password_cmd: removed (a command or secrets backend of the source)",
		"[celery] broker_url: removed (reaches the source's services)",
		"[scheduler] statsd_note: removed (named the source)",
		"[database] a comment that named the source: removed",
		"[database] sql_alchemy_conn: the restored database",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("changes lack %q:\n%s", want, all)
		}
	}
	for _, s := range rw.sourceSecret {
		if strings.Contains(all, s) {
			t.Errorf("a change names a secret: %s", all)
		}
	}
}

func TestRewriteConfigAddsDatabaseSection(t *testing.T) {
	in := "[core]\nsql_alchemy_conn = sqlite:////srv/a/airflow.db\nload_examples = False"
	rw := rewriteFor([]byte(in), Meta{Home: "/srv/a"}, &metadb{conn: "sqlite:////tmp/b/airflow.db"}, "/tmp/b", Secrets{})
	out, _ := rewriteConfig([]byte(in), rw)
	want := "[core]\nsql_alchemy_conn = sqlite:////tmp/b/airflow.db\nload_examples = False\n\n[database]\nsql_alchemy_conn = sqlite:////tmp/b/airflow.db\n"
	if string(out) != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
}

func TestRewriteConfigHomeInsideSourceName(t *testing.T) {
	// The restored home starts with the source home's path: rebased
	// values must not count as naming the source.
	in := "[core]\ndags_folder = /opt/airflow/dags\nexecutor = airflow.providers.celery.executors.celery_executor.CeleryExecutor\n"
	rw := rewriteFor([]byte(in), Meta{Home: "/opt/airflow", MetaDBKind: "sqlite", AlembicRevision: "5f2621c13b39"},
		&metadb{conn: "sqlite:////opt/airflow-restored/airflow.db"}, "/opt/airflow-restored", Secrets{})
	out, _ := rewriteConfig([]byte(in), rw)
	if !strings.Contains(string(out), "dags_folder = /opt/airflow-restored/dags\n") || !strings.Contains(string(out), "executor = SequentialExecutor\n") {
		t.Errorf("got\n%s", out)
	}
}

func TestVersionCheck(t *testing.T) {
	if err := checkVersion("2.10.3", "5f2621c13b39"); err != nil {
		t.Errorf("2.10.3 on its own head: %v", err)
	}
	err := checkVersion("3.0.0", "5f2621c13b39")
	if err == nil || !strings.Contains(err.Error(), "Airflow 2.10.3") || !strings.Contains(err.Error(), "29ce7909c52b") ||
		!strings.Contains(err.Error(), "your choice") {
		t.Errorf("3.0.0 on 2.10.3's head: %v", err)
	}
	if err := checkVersion("9.9.9", "5f2621c13b39"); err == nil || !strings.Contains(err.Error(), "not a version coffer knows") {
		t.Errorf("unknown version: %v", err)
	}
}

// TestRewrittenConnLoads: a restored database reached over a unix socket,
// or whose password needs percent-encoding, is written with '%' doubled so
// that the rewritten airflow.cfg loads and names that database.
func TestRewrittenConnLoads(t *testing.T) {
	for _, dsn := range []string{"host=/var/run/postgresql user=airflow dbname=af_restored", "postgres://airflow:p@ss%2Fw@127.0.0.1:5432/af_restored"} {
		conn, err := postgres.SQLAlchemyURL(dsn, "")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(conn, "%") {
			t.Fatalf("%s: %s has no '%%' to escape", dsn, conn)
		}
		for _, in := range []string{prodCfg, "[core]\nexecutor = LocalExecutor\n"} {
			home := t.TempDir()
			out, _ := rewriteConfig([]byte(in), cfgRewrite{home: home, conn: conn, executor: "LocalExecutor"})
			if err := os.WriteFile(filepath.Join(home, "airflow.cfg"), out, 0o600); err != nil {
				t.Fatal(err)
			}
			d, err := Discover(context.Background(), Options{Home: home, Environ: []string{}})
			if err != nil {
				t.Fatalf("%s: the rewritten airflow.cfg does not load: %v", dsn, err)
			}
			if d.MetaDB.URL != conn {
				t.Errorf("%s: sql_alchemy_conn read back %q, want %q", dsn, d.MetaDB.URL, conn)
			}
		}
	}
}

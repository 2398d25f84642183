package airflow_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/source/airflow"
	"github.com/cofferhq/coffer/source/airflow/fernet"
)

// home writes an AIRFLOW_HOME with airflow.cfg (when cfg is not "") and a
// dags folder.
func home(t *testing.T, cfg string) string {
	t.Helper()
	h := t.TempDir()
	if err := os.Mkdir(filepath.Join(h, "dags"), 0o755); err != nil {
		t.Fatal(err)
	}
	if cfg != "" {
		if err := os.WriteFile(filepath.Join(h, "airflow.cfg"), []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

func discover(t *testing.T, h string, environ []string, o airflow.Options) (*airflow.Deployment, error) {
	t.Helper()
	o.Home = h
	o.Environ = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=/home/airflow"}, environ...)
	return airflow.Discover(context.Background(), o)
}

const cfgPG = `[core]
dags_folder = {AIRFLOW_HOME}/dags
fernet_key = %s
[database]
sql_alchemy_conn = postgresql+psycopg2://airflow:cfg-pw@db.internal:5432/airflow
[logging]
base_log_folder = %%(airflow_logs)s/task
airflow_logs = $LOGROOT/airflow
log_format = [%%%%(asctime)s] %%%%(message)s
[webserver]
secret_key = cfg-web-secret
`

// TestDiscoverPrecedence: env > env _CMD > airflow.cfg > cfg _cmd >
// default, for the Fernet key and the database URL; the env file wins
// over the process environment; {AIRFLOW_HOME}, %(...)s and $VAR expand.
func TestDiscoverPrecedence(t *testing.T) {
	cfgKey, envKey, cmdKey, fileKey := fernet.GenerateKey(), fernet.GenerateKey(), fernet.GenerateKey(), fernet.GenerateKey()
	cfg := strings.ReplaceAll(cfgPG, "%s", cfgKey)
	cfg = strings.ReplaceAll(cfg, "%%", "%")
	h := home(t, cfg)
	keyFile := filepath.Join(t.TempDir(), "key")
	os.WriteFile(keyFile, []byte(cmdKey+"\n"), 0o600)

	for _, tc := range []struct {
		name    string
		environ []string
		envFile string
		key     string
		origin  airflow.Origin
	}{
		{"cfg", nil, "", cfgKey, "airflow.cfg [core] fernet_key"},
		{"env over cfg", []string{"AIRFLOW__CORE__FERNET_KEY=" + envKey}, "", envKey, "env AIRFLOW__CORE__FERNET_KEY"},
		{"_CMD over cfg", []string{"AIRFLOW__CORE__FERNET_KEY_CMD=cat '" + keyFile + "'"}, "", cmdKey, "env AIRFLOW__CORE__FERNET_KEY_CMD"},
		{"env over _CMD", []string{"AIRFLOW__CORE__FERNET_KEY_CMD=false", "AIRFLOW__CORE__FERNET_KEY=" + envKey}, "", envKey, "env AIRFLOW__CORE__FERNET_KEY"},
		{"env file over process", []string{"AIRFLOW__CORE__FERNET_KEY=" + envKey}, "export AIRFLOW__CORE__FERNET_KEY=\"" + fileKey + "\"\n", fileKey, "env file AIRFLOW__CORE__FERNET_KEY"},
		{"empty env wins", []string{"AIRFLOW__CORE__FERNET_KEY="}, "", "", "env AIRFLOW__CORE__FERNET_KEY"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := airflow.Options{}
			if tc.envFile != "" {
				o.EnvFile = filepath.Join(t.TempDir(), "airflow.env")
				os.WriteFile(o.EnvFile, []byte("# deployment\n"+tc.envFile), 0o600)
			}
			d, err := discover(t, h, append(tc.environ, "LOGROOT=/var/log"), o)
			if err != nil {
				t.Fatal(err)
			}
			if d.Secrets.FernetKey != tc.key || d.Origins["core.fernet_key"] != tc.origin {
				t.Errorf("fernet key from %q, want %q (value matches: %v)", d.Origins["core.fernet_key"], tc.origin, d.Secrets.FernetKey == tc.key)
			}
			if got, want := d.DagsFolder, filepath.Join(h, "dags"); got != want {
				t.Errorf("dags folder %s, want %s", got, want)
			}
			if got, want := d.LogFolder, "/var/log/airflow/task"; got != want {
				t.Errorf("log folder %s, want %s (interpolation and $VAR)", got, want)
			}
			if got, want := d.PluginsFolder, filepath.Join(h, "plugins"); got != want || d.Origins["core.plugins_folder"] != airflow.OriginDefault {
				t.Errorf("plugins folder %s from %s, want the default %s", got, d.Origins["core.plugins_folder"], want)
			}
			if d.MetaDB.Kind != "postgres" || d.MetaDB.User != "airflow" || d.MetaDB.Redacted != "postgresql+psycopg2://airflow:***@db.internal:5432/airflow" {
				t.Errorf("metadb %+v", d.MetaDB)
			}
			if d.Secrets.WebserverSecretKey != "cfg-web-secret" {
				t.Error("webserver secret_key not read")
			}
		})
	}

	// The database URL: the environment wins over [database], which wins
	// over the legacy [core]; a cfg _cmd comes after the cfg value.
	legacy := home(t, "[core]\nsql_alchemy_conn = mysql+mysqldb://old:pw@mysql/airflow\n")
	d, err := discover(t, legacy, nil, airflow.Options{})
	if err != nil || d.MetaDB.Kind != "mysql" || d.Origins["database.sql_alchemy_conn"] != "airflow.cfg [core] sql_alchemy_conn" {
		t.Errorf("legacy [core]: %+v, %v", d, err)
	}
	both := home(t, "[core]\nsql_alchemy_conn = mysql+mysqldb://old:pw@mysql/airflow\n[database]\nsql_alchemy_conn = sqlite:////data/airflow.db\n")
	d, err = discover(t, both, nil, airflow.Options{})
	if err != nil || d.MetaDB.Kind != "sqlite" || d.MetaDB.Location != "/data/airflow.db" {
		t.Errorf("[database] over [core]: %+v, %v", d, err)
	}
	d, err = discover(t, both, []string{"AIRFLOW__CORE__SQL_ALCHEMY_CONN=postgresql://x@h/db"}, airflow.Options{})
	if err != nil || d.MetaDB.Kind != "postgres" || d.Origins["database.sql_alchemy_conn"] != "env AIRFLOW__CORE__SQL_ALCHEMY_CONN" {
		t.Errorf("legacy env over cfg: %+v, %v", d, err)
	}
	cmd := home(t, "[database]\nsql_alchemy_conn_cmd = echo sqlite:////from/cmd.db\n[core]\nfernet_key_cmd = echo "+cfgKey+"\n")
	d, err = discover(t, cmd, nil, airflow.Options{})
	if err != nil || d.MetaDB.Location != "/from/cmd.db" || d.Secrets.FernetKey != cfgKey || d.Origins["core.fernet_key"] != "airflow.cfg [core] fernet_key_cmd" {
		t.Errorf("cfg _cmd: %+v, %v", d, err)
	}
	def := home(t, "[core]\nload_examples = False\n")
	d, err = discover(t, def, nil, airflow.Options{})
	if err != nil || d.MetaDB.Location != filepath.Join(def, "airflow.db") || d.Origins["database.sql_alchemy_conn"] != airflow.OriginDefault || d.Secrets.FernetKey != "" {
		t.Errorf("defaults: %+v, %v", d, err)
	}
	// AIRFLOW_CONFIG names the file.
	other := filepath.Join(t.TempDir(), "elsewhere.cfg")
	os.WriteFile(other, []byte("[database]\nsql_alchemy_conn = sqlite:////else/where.db\n"), 0o600)
	d, err = discover(t, def, []string{"AIRFLOW_CONFIG=" + other}, airflow.Options{})
	if err != nil || d.ConfigPath != other || d.MetaDB.Location != "/else/where.db" {
		t.Errorf("AIRFLOW_CONFIG: %+v, %v", d, err)
	}
}

// TestDiscoverErrors: every refusal is clear and shows no secret.
func TestDiscoverErrors(t *testing.T) {
	const secret = "s3cr3t-never-shown"
	okCfg := "[database]\nsql_alchemy_conn = sqlite:////x/airflow.db\n"
	for _, tc := range []struct {
		name    string
		cfg     string
		environ []string
		opts    airflow.Options
		want    string
		is      error
	}{
		{name: "missing airflow.cfg", want: "no airflow.cfg in AIRFLOW_HOME", is: airflow.ErrNoConfig},
		{name: "missing named airflow.cfg", cfg: okCfg, opts: airflow.Options{Config: "/nonexistent/airflow.cfg"}, want: "no airflow.cfg at /nonexistent/airflow.cfg", is: airflow.ErrNoConfig},
		{name: "missing env file", cfg: okCfg, opts: airflow.Options{EnvFile: "/nonexistent/env"}, want: "env file: open /nonexistent/env"},
		{name: "unsupported scheme", cfg: "[database]\nsql_alchemy_conn = mssql+pyodbc://sa:" + secret + "@mssql/airflow\n",
			want: `[database] sql_alchemy_conn (from airflow.cfg [database] sql_alchemy_conn): database URL scheme "mssql+pyodbc" is not supported`},
		{name: "not a URL", cfg: "[database]\nsql_alchemy_conn = " + secret + "\n", want: "not a database URL"},
		{name: "relative sqlite", cfg: "[database]\nsql_alchemy_conn = sqlite:///airflow.db\n", want: "a relative SQLite path"},
		{name: "failing _CMD", cfg: okCfg, environ: []string{"AIRFLOW__CORE__FERNET_KEY_CMD=sh -c 'echo " + secret + "; echo " + secret + " >&2; exit 3'"},
			want: "AIRFLOW__CORE__FERNET_KEY_CMD: command sh failed: exit status 3 (its output is not shown: it may hold the secret)"},
		{name: "missing program", cfg: okCfg, environ: []string{"AIRFLOW__CORE__FERNET_KEY_CMD=/no/such/vault-read " + secret},
			want: "command vault-read failed: cannot start it"},
		{name: "slow _CMD", cfg: okCfg, environ: []string{"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD=sleep 20"}, opts: airflow.Options{CommandTimeout: 300 * time.Millisecond},
			want: "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD: command sleep failed: timed out after 300ms", is: airflow.ErrCommandTimeout},
		{name: "env _SECRET", cfg: okCfg, environ: []string{"AIRFLOW__CORE__FERNET_KEY_SECRET=airflow/fernet"},
			want: "[core] fernet_key comes from AIRFLOW__CORE__FERNET_KEY_SECRET: secrets backends are not supported", is: airflow.ErrSecretBackend},
		{name: "cfg _secret", cfg: okCfg + "[webserver]\nsecret_key_secret = airflow/web\n",
			want: "[webserver] secret_key comes from airflow.cfg [webserver] secret_key_secret: secrets backends are not supported", is: airflow.ErrSecretBackend},
		{name: "bad percent", cfg: "[database]\nsql_alchemy_conn = postgresql://u:" + secret + "%40@h/db\n", want: "'%' must be written '%%' in airflow.cfg"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := home(t, tc.cfg)
			start := time.Now()
			_, err := discover(t, h, tc.environ, tc.opts)
			if err == nil {
				t.Fatal("Discover succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want %q", err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q shows the secret", err)
			}
			if time.Since(start) > 10*time.Second {
				t.Errorf("took %s", time.Since(start))
			}
		})
	}
	// A _SECRET is refused only when Airflow would reach it: the plain
	// variable wins first.
	h := home(t, okCfg)
	if _, err := discover(t, h, []string{"AIRFLOW__CORE__FERNET_KEY_SECRET=x", "AIRFLOW__CORE__FERNET_KEY=" + fernet.GenerateKey()}, airflow.Options{}); err != nil {
		t.Errorf("env over _SECRET: %v", err)
	}
}

// TestInspectMasksSecrets: what coffer airflow inspect prints holds no
// secret.
func TestInspectMasksSecrets(t *testing.T) {
	key := fernet.GenerateKey() + "," + fernet.GenerateKey()
	h := home(t, "[core]\nfernet_key = "+key+"\n[database]\nsql_alchemy_conn = postgresql://airflow:db-pw-123@db/airflow\n[webserver]\nsecret_key = web-secret-456\n")
	d, err := discover(t, h, nil, airflow.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ins := d.Inspect(context.Background())
	s := strings.Join([]string{ins.MetaDB.URL, string(ins.MetaDB.From)}, " ")
	for _, st := range ins.Secrets {
		s += " " + st.Option + " " + string(st.From) + " " + st.Problem
	}
	for _, secret := range append(strings.Split(key, ","), "db-pw-123", "web-secret-456") {
		if strings.Contains(s, secret) {
			t.Errorf("inspection shows %q", secret)
		}
	}
	if ins.Secrets[0].Keys != 2 || !ins.Secrets[0].Set {
		t.Errorf("fernet key state %+v", ins.Secrets[0])
	}
}

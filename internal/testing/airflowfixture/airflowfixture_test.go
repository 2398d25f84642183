package airflowfixture_test

import (
	"context"
	"database/sql"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/internal/testing/airflowfixture"
	"github.com/cofferhq/coffer/source/airflow/fernet"
)

// TestGenerateSQLite builds the SQLite variant of both schemas and checks
// what tests rely on: the DAGs, the encrypted values decrypting to the
// recorded plaintexts, the git repository's state.
func TestGenerateSQLite(t *testing.T) {
	for _, v := range []string{"2.10", "3.0"} {
		t.Run(v, func(t *testing.T) {
			d := airflowfixture.New(t, "sqlite", airflowfixture.Options{Version: v, Seed: 1})
			db, err := sql.Open("sqlite", d.DBPath)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			var dagsN, runs, tis int
			var rev string
			db.QueryRow("select count(*) from dag").Scan(&dagsN)
			db.QueryRow("select count(*) from dag_run").Scan(&runs)
			db.QueryRow("select count(*) from task_instance").Scan(&tis)
			db.QueryRow("select version_num from alembic_version").Scan(&rev)
			if dagsN != 4 || runs != 48 || tis < 100 || rev != d.Revision {
				t.Errorf("dags %d, runs %d, task instances %d, revision %s", dagsN, runs, tis, rev)
			}
			keys, _ := fernet.ParseKeys(strings.Join(d.FernetKeys, ","))
			rows, err := db.Query("select password from connection where is_encrypted union all select val from variable where is_encrypted union all select kwargs from trigger")
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for rows.Next() {
				var tok string
				rows.Scan(&tok)
				if _, err := fernet.Decrypt(keys, tok); err != nil {
					t.Errorf("token %d does not decrypt", n)
				}
				n++
			}
			if n != 7 {
				t.Errorf("%d encrypted passwords, variables and kwargs, want 7", n)
			}
			if len(d.Plain) != 9 {
				t.Errorf("%d encrypted values recorded, want 9", len(d.Plain))
			}
			cfg, _ := os.ReadFile(d.ConfigPath)
			if !strings.Contains(string(cfg), "fernet_key = "+d.FernetKeys[0]) || !strings.Contains(string(cfg), "sql_alchemy_conn = sqlite:////") {
				t.Errorf("airflow.cfg:\n%s", cfg)
			}
			out, err := exec.Command("git", "-C", filepath.Join(d.Home, "dags"), "status", "--porcelain").CombinedOutput()
			if err != nil || !strings.Contains(string(out), " M invoice_validate.py") || !strings.Contains(string(out), "?? notes.md") {
				t.Errorf("git status: %s %v", out, err)
			}
			if len(d.Git.Branches) != 3 {
				t.Errorf("branches %v", d.Git.Branches)
			}
		})
	}
}

// TestGenerateServers builds the PostgreSQL and MariaDB variants.
func TestGenerateServers(t *testing.T) {
	ctx := context.Background()
	for _, engine := range []string{"postgres", "mysql"} {
		for _, v := range []string{"2.10", "3.0"} {
			t.Run(engine+"-"+v, func(t *testing.T) {
				d := airflowfixture.New(t, engine, airflowfixture.Options{Version: v, Runs: 3})
				if !strings.HasPrefix(d.URL, map[string]string{"postgres": "postgresql+psycopg2://", "mysql": "mysql+mysqldb://"}[engine]) {
					t.Errorf("URL %s", d.URL)
				}
				_ = ctx
			})
		}
	}
}

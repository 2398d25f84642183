// Command mkairflow writes the invoice-processing Airflow deployment of
// package airflowfixture into a folder.
//
//	mkairflow -engine sqlite -home /tmp/airflow
//	mkairflow -engine postgres -dsn postgres://postgres@127.0.0.1/empty_db -home /tmp/airflow
//	mkairflow -demo testdata/airflow-demo
//
// With -demo it (re)writes the demo deployment that make demo backs up: the
// SQLite variant with {AIRFLOW_HOME} paths, the Fernet spec's test key, no
// git repository (it lives inside coffer's), and the database as
// metadata.sql, which the demo runs; invoices/ and README.md are kept.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cofferhq/coffer/internal/testing/airflowfixture"
)

// demoKey is the Fernet spec's test key: the demo's secrets are public.
const demoKey = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4="

func main() {
	engine := flag.String("engine", "sqlite", "postgres, mysql or sqlite")
	version := flag.String("version", "2.10", "schema: 2.10 or 3.0")
	home := flag.String("home", "", "AIRFLOW_HOME to write (must not exist or be empty)")
	dsn := flag.String("dsn", "", "an empty database (postgres, mysql), as an account that may create roles")
	keyIn := flag.String("key-in", "cfg", "where the Fernet key is: cfg, env, cmd, cfg_cmd, none")
	demo := flag.String("demo", "", "rewrite the demo deployment in this folder (testdata/airflow-demo)")
	flag.Parse()
	if err := run(*engine, *version, *home, *dsn, *keyIn, *demo); err != nil {
		fmt.Fprintln(os.Stderr, "mkairflow:", err)
		os.Exit(1)
	}
}

func run(engine, version, home, dsn, keyIn, demo string) error {
	ctx := context.Background()
	if demo == "" {
		if home == "" {
			return fmt.Errorf("give -home or -demo")
		}
		d, err := airflowfixture.Generate(ctx, airflowfixture.Options{Engine: engine, Version: version, Home: home, DSN: dsn, KeyIn: keyIn})
		if err != nil {
			return err
		}
		fmt.Printf("AIRFLOW_HOME=%s\nsql_alchemy_conn in %s\n", d.Home, d.ConfigPath)
		return nil
	}
	tmp, err := os.MkdirTemp("", "mkairflow-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	d, err := airflowfixture.Generate(ctx, airflowfixture.Options{Engine: "sqlite", Home: filepath.Join(tmp, "home"),
		FernetKeys: []string{demoKey}, Portable: true, NoGit: true, Runs: 30, Seed: 2026})
	if err != nil {
		return err
	}
	// Keep what the generator does not make.
	for _, p := range []string{"dags", "plugins", "config", "logs", "airflow.cfg", "webserver_config.py", "metadata.sql"} {
		if err := os.RemoveAll(filepath.Join(demo, p)); err != nil {
			return err
		}
	}
	for _, p := range []string{"dags", "plugins", "config", "logs", "airflow.cfg", "webserver_config.py"} {
		if err := os.Rename(filepath.Join(d.Home, p), filepath.Join(demo, p)); err != nil {
			return err
		}
	}
	sql := "-- The demo deployment's Airflow 2.10 metadata database (SQLite), written by\n" +
		"-- go run ./internal/testing/airflowfixture/cmd/mkairflow -demo testdata/airflow-demo\n" +
		strings.Join(d.SQL, ";\n") + ";\n"
	return os.WriteFile(filepath.Join(demo, "metadata.sql"), []byte(sql), 0o644)
}

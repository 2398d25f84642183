package main

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/cofferhq/coffer/internal/testing/airflowfixture"
)

func init() {
	scriptCmds["mkairflow"] = cmdMkAirflow
	scriptCmds["nosecrets"] = cmdNoSecrets
}

// secretsFile lists, one a line, the secrets of every deployment mkairflow
// made in a script.
const secretsFile = ".airflow-secrets"

// mkairflow ENGINE HOME [key-in=cfg|env|cmd|cfg_cmd|none] [version=2.10|3.0]
//
// generates the invoice-processing Airflow deployment (package
// airflowfixture) in HOME, its metadata database on ENGINE (postgres,
// mysql: a new database on the test server), and adds its secrets to the
// list nosecrets checks. It sets DAGS_HEAD to the DAG repository's HEAD.
func cmdMkAirflow(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: mkairflow ENGINE HOME [key-in=WHERE] [version=V]")
	}
	o := airflowfixture.Options{Home: ts.MkAbs(args[1]), Runs: 3}
	for _, a := range args[2:] {
		k, v, _ := strings.Cut(a, "=")
		switch k {
		case "key-in":
			o.KeyIn = v
		case "version":
			o.Version = v
		default:
			ts.Fatalf("mkairflow: unknown option %s", a)
		}
	}
	d := airflowfixture.New(scriptT(ts), args[0], o)
	f, err := os.OpenFile(ts.MkAbs(secretsFile), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	ts.Check(err)
	defer f.Close()
	for _, s := range d.Secrets {
		_, err := f.WriteString(s + "\n")
		ts.Check(err)
	}
	ts.Setenv("DAGS_HEAD", d.Git.Head)
}

// nosecrets stdout|stderr|PATH...
//
// fails when any secret of the deployments mkairflow made occurs in the
// last command's stdout or stderr, or in a file (a folder: every file
// below it).
func cmdNoSecrets(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) == 0 {
		ts.Fatalf("usage: nosecrets stdout|stderr|PATH...")
	}
	var secrets []string
	for _, l := range strings.Split(ts.ReadFile(secretsFile), "\n") {
		if l != "" {
			secrets = append(secrets, l)
		}
	}
	if len(secrets) == 0 {
		ts.Fatalf("nosecrets: no deployment made yet")
	}
	check := func(what string, b []byte) {
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				ts.Fatalf("%s holds the secret %.10s...", what, s)
			}
		}
	}
	n := 0
	for _, a := range args {
		if a == "stdout" || a == "stderr" {
			check(a, []byte(ts.ReadFile(a)))
			n++
			continue
		}
		err := filepath.WalkDir(ts.MkAbs(a), func(p string, de fs.DirEntry, err error) error {
			if err != nil || !de.Type().IsRegular() {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			check(p, b)
			n++
			return nil
		})
		ts.Check(err)
	}
	if n == 0 {
		ts.Fatalf("nosecrets: nothing to check")
	}
}

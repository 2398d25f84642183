package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestDemoScript runs the scripts in testdata/demo, which run coffer demo
// on the real demo deployment. They get SRC, the top of the source tree
// (the test runs in cmd/coffer), to run the demo from there as make demo
// does.
func TestDemoScript(t *testing.T) {
	t.Parallel()
	src, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(src, "testdata", "airflow-demo", "metadata.sql")); err != nil {
		t.Fatalf("the demo deployment: %v", err)
	}
	testscript.Run(t, testscript.Params{
		Dir: filepath.Join("testdata", "demo"),
		Setup: func(env *testscript.Env) error {
			if err := scriptSetup(env); err != nil {
				return err
			}
			env.Setenv("SRC", src)
			return nil
		},
		Cmds:      scriptCmds,
		Condition: scriptCondition,
	})
}

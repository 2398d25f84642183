package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// TestHelpExamples walks every command and subcommand and requires an
// Examples section in its --help, each example starting with "coffer" (or
// a shell line that runs it).
func TestHelpExamples(t *testing.T) {
	var walk func(path []string, cmds []*cli.Command)
	n := 0
	walk = func(path []string, cmds []*cli.Command) {
		for _, c := range cmds {
			if c.Name == "help" {
				continue
			}
			p := append(append([]string{}, path...), c.Name)
			n++
			var out, errOut bytes.Buffer
			args := append(append([]string{"coffer"}, p...), "--help")
			if code := run(args, &out, &errOut); code != 0 {
				t.Errorf("%s: exit %d: %s", strings.Join(args, " "), code, errOut.String())
				continue
			}
			help := out.String()
			_, ex, ok := strings.Cut(help, "Examples:\n")
			if !ok {
				t.Errorf("coffer %s --help has no Examples section:\n%s", strings.Join(p, " "), help)
				continue
			}
			first := strings.TrimSpace(strings.SplitN(ex, "\n", 2)[0])
			if !strings.Contains(first, "coffer ") {
				t.Errorf("coffer %s --help: first example %q does not run coffer", strings.Join(p, " "), first)
			}
			walk(p, c.Subcommands)
		}
	}
	walk(nil, newApp(nil, nil).Commands)
	if n < 15 {
		t.Errorf("walked %d commands, want every one (at least 15)", n)
	}
}

// TestManPage checks that the committed doc/coffer.1 is the page the
// command definitions make (make man writes it).
func TestManPage(t *testing.T) {
	want, err := manPage(newApp(nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{".TH coffer 1", "backup", "restore", "verify", "--json", ".SH EXAMPLES", "coffer completion bash"} {
		if !strings.Contains(want, s) {
			t.Errorf("the man page lacks %q", s)
		}
	}
	got, err := os.ReadFile(filepath.Join("..", "..", "doc", "coffer.1"))
	if err != nil {
		t.Fatalf("%v (run make man)", err)
	}
	if string(got) != want {
		t.Errorf("doc/coffer.1 is not the page the command definitions make: run make man and commit it")
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"coffer", "man"}, &out, &errOut); code != 0 || out.String() != want {
		t.Errorf("coffer man: exit %d, or its output differs from the page: %s", code, errOut.String())
	}
}

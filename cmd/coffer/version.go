package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/urfave/cli/v2"

	"github.com/cofferhq/coffer/internal/repo"
)

// versionJSON is coffer version --json.
type versionJSON struct {
	Version       string `json:"version"`
	Commit        string `json:"commit,omitempty"`
	Modified      bool   `json:"modified"`
	Go            string `json:"go"`
	FormatVersion int    `json:"format_version"`
}

func versionCommand(g *globals) *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print coffer's version, commit, Go version and repository format version",
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("version takes no arguments")
			}
			v := buildVersion()
			if g.json {
				return printJSON(g.stdout, v)
			}
			commit := v.Commit
			if commit == "" {
				commit = "unknown"
			} else if v.Modified {
				commit += " (modified)"
			}
			fmt.Fprintf(g.stdout, "coffer %s\ncommit: %s\ngo: %s\nrepository format: %d\n", v.Version, commit, v.Go, v.FormatVersion)
			return nil
		},
	}
}

// buildVersion reads coffer's version from the build information: the
// module version (set by go install MODULE@VERSION), else "(devel)", and
// the VCS revision and dirty flag when built from a checkout.
func buildVersion() versionJSON {
	v := versionJSON{Version: "(devel)", Go: runtime.Version(), FormatVersion: repo.Version}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if mv := bi.Main.Version; mv != "" {
		v.Version = mv
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

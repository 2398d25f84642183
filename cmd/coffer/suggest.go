package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// flagError is the usage error of a bad flag; an unknown flag gets a
// "did you mean" hint naming the closest flag of flags.
func flagError(flags []cli.Flag, err error) error {
	name, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: ")
	if !ok {
		return usagef("%v", err)
	}
	name = strings.TrimLeft(name, "-")
	ue := usagef("unknown flag --%s", name)
	var names []string
	for _, f := range flags {
		for _, n := range f.Names() {
			if len(n) > 1 {
				names = append(names, n)
			}
		}
	}
	if s := suggest(name, names); s != "" {
		return withHint(ue, "did you mean --%s?", s)
	}
	return ue
}

// commandUsageError is a command's OnUsageError: its own flags and the
// global ones are the candidates.
func commandUsageError(app *cli.App, cmd *cli.Command) cli.OnUsageErrorFunc {
	return func(c *cli.Context, err error, _ bool) error {
		return flagError(append(append([]cli.Flag{}, cmd.Flags...), app.Flags...), err)
	}
}

// commandNames lists the names and aliases of the visible commands.
func commandNames(cmds []*cli.Command) []string {
	var out []string
	for _, c := range cmds {
		if c.Hidden {
			continue
		}
		out = append(out, c.Names()...)
	}
	return out
}

// suggest returns the candidate closest to s by Levenshtein distance, if
// it is close enough to be a likely typo (at most a third of its length,
// and at least one edit allowed), else "".
func suggest(s string, candidates []string) string {
	best, bestD := "", -1
	for _, c := range candidates {
		d := levenshtein(s, c)
		if bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	limit := max(1, len(s)/3)
	if bestD < 0 || bestD > limit {
		return ""
	}
	return best
}

// levenshtein is the edit distance between a and b, over bytes, where
// swapping two neighbours counts as one edit ("tga" is one edit from
// "tag"; the optimal string alignment distance).
func levenshtein(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

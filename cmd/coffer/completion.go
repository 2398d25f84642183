package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// The shell scripts ask coffer itself for the words that may follow
// (urfave/cli's --generate-bash-completion), so they stay right as
// commands and flags change.

const bashCompletion = `# bash completion for coffer: source it, or copy it to
# /etc/bash_completion.d/coffer (or ~/.local/share/bash-completion/completions/coffer).
_coffer_complete() {
  local cur words
  COMPREPLY=()
  cur="${COMP_WORDS[COMP_CWORD]}"
  words=("${COMP_WORDS[@]:0:$COMP_CWORD}")
  local opts
  if [[ "$cur" == -* ]]; then
    opts=$("${words[@]}" "$cur" --generate-bash-completion 2>/dev/null)
  else
    opts=$("${words[@]}" --generate-bash-completion 2>/dev/null)
  fi
  COMPREPLY=($(compgen -W "${opts}" -- "${cur}"))
  return 0
}
complete -o bashdefault -o default -F _coffer_complete coffer
`

const zshCompletion = `#compdef coffer
# zsh completion for coffer: put it in a folder of $fpath as _coffer, or
# source it after compinit.
_coffer() {
  local -a opts
  local cur
  cur=${words[-1]}
  if [[ "$cur" == -* ]]; then
    opts=("${(@f)$(${words[@]:0:#words[@]-1} ${cur} --generate-bash-completion 2>/dev/null)}")
  else
    opts=("${(@f)$(${words[@]:0:#words[@]-1} --generate-bash-completion 2>/dev/null)}")
  fi
  if [[ "${opts[1]}" != "" ]]; then
    _describe 'values' opts
  else
    _files
  fi
}
if [[ "$funcstack[1]" == "_coffer" ]]; then
  _coffer "$@"
else
  compdef _coffer coffer
fi
`

func completionCommand(g *globals) *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print the shell completion script for bash, zsh or fish",
		ArgsUsage: "bash|zsh|fish",
		BashComplete: func(c *cli.Context) {
			if c.NArg() == 0 {
				fmt.Fprintln(g.stdout, "bash\nzsh\nfish")
			}
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("completion takes one argument: bash, zsh or fish")
			}
			switch sh := c.Args().First(); sh {
			case "bash":
				fmt.Fprint(g.stdout, bashCompletion)
			case "zsh":
				fmt.Fprint(g.stdout, zshCompletion)
			case "fish":
				s, err := c.App.ToFishCompletion()
				if err != nil {
					return err
				}
				fmt.Fprint(g.stdout, s)
			default:
				err := usagef("no completion for shell %q: bash, zsh or fish", sh)
				if s := suggest(sh, []string{"bash", "zsh", "fish"}); s != "" {
					return withHint(err, "did you mean %q?", s)
				}
				return err
			}
			return nil
		},
	}
}

// manCommand prints the manual page, made from the command definitions
// (make man writes it to doc/coffer.1).
func manCommand(g *globals) *cli.Command {
	return &cli.Command{
		Name:   "man",
		Usage:  "print the manual page (troff), made from the command definitions",
		Hidden: true,
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("man takes no arguments; %q given", c.Args().First())
			}
			s, err := manPage(c.App)
			if err != nil {
				return err
			}
			fmt.Fprint(g.stdout, s)
			return nil
		},
	}
}

// manPage is the app's manual page: urfave/cli's page (commands, usage,
// flags) and an EXAMPLES section with every command's examples.
func manPage(app *cli.App) (string, error) {
	app.Setup()
	page, err := app.ToManWithSection(1)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString(strings.TrimRight(page, "\n"))
	b.WriteString("\n\n.SH EXAMPLES\n")
	var walk func(prefix string, cmds []*cli.Command)
	walk = func(prefix string, cmds []*cli.Command) {
		for _, c := range cmds {
			path := strings.TrimSpace(prefix + " " + c.Name)
			if ex := examples[path]; len(ex) > 0 && !c.Hidden {
				fmt.Fprintf(&b, ".PP\n.B coffer %s\n.EX\n", path)
				for _, e := range ex {
					// troff: a leading dot or quote starts a request; a
					// backslash escapes.
					e = strings.ReplaceAll(e, `\`, `\e`)
					fmt.Fprintf(&b, "\\&%s\n", e)
				}
				b.WriteString(".EE\n")
			}
			walk(path, c.Subcommands)
		}
	}
	walk("", app.Commands)
	return b.String(), nil
}

package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// interleave moves a command's flags in front of its arguments, so that
// "coffer restore latest --to DIR" works as well as "--to DIR latest"
// (urfave/cli v2 stops parsing flags at the first argument), and moves
// global flags given after the command in front of it, so that
// "coffer init --repo URL" works as well as "coffer --repo URL init"
// (urfave/cli v2 only knows global flags before the command).
func interleave(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	// Skip global flags to find the command.
	i := 1
	for i < len(args) && strings.HasPrefix(args[i], "-") {
		if args[i] == "--" {
			return args
		}
		if !strings.Contains(args[i], "=") && takesValue(app.Flags, args[i]) {
			i++
		}
		i++
	}
	if i >= len(args) {
		return args
	}
	cmd := app.Command(args[i])
	if cmd == nil {
		return args
	}
	// A command with subcommands ("airflow inspect"): the subcommand's
	// flags are the ones to move.
	top := i
	for i+1 < len(args) && len(cmd.Subcommands) > 0 {
		sub := cmd.Command(args[i+1])
		if sub == nil {
			break
		}
		cmd = sub
		i++
	}
	var globalFlags, flags, pos []string
	rest := args[i+1:]
	for j := 0; j < len(rest); j++ {
		a := rest[j]
		if a == "--" {
			pos = append(pos, rest[j:]...)
			break
		}
		if strings.HasPrefix(a, "-") && a != "-" {
			fs, dst := cmd.Flags, &flags
			if !defines(cmd.Flags, a) && defines(app.Flags, a) {
				fs, dst = app.Flags, &globalFlags
			}
			*dst = append(*dst, a)
			if !strings.Contains(a, "=") && takesValue(fs, a) && j+1 < len(rest) {
				j++
				*dst = append(*dst, rest[j])
			}
			continue
		}
		pos = append(pos, a)
	}
	out := append([]string{}, args[:top]...)
	out = append(out, globalFlags...)
	out = append(out, args[top:i+1]...)
	out = append(out, flags...)
	return append(out, pos...)
}

// defines reports whether flags has the flag arg ("-name", "--name" or
// "--name=value").
func defines(flags []cli.Flag, arg string) bool {
	name, _, _ := strings.Cut(strings.TrimLeft(arg, "-"), "=")
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return true
			}
		}
	}
	return false
}

func takesValue(flags []cli.Flag, arg string) bool {
	name := strings.TrimLeft(arg, "-")
	for _, f := range flags {
		for _, n := range f.Names() {
			if n != name {
				continue
			}
			if _, ok := f.(*cli.BoolFlag); ok {
				return false
			}
			return true
		}
	}
	return false
}

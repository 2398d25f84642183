package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/cofferhq/coffer/drill"
	"github.com/cofferhq/coffer/internal/inspect"
	"github.com/cofferhq/coffer/internal/repo"
)

// Helpers that ls, find, diff and stats share.

// needIdentity refuses a command that reads catalogs without an identity,
// before anything is opened.
func needIdentity(g *globals, cmd string) error {
	if g.identity != "" {
		return nil
	}
	return withHint(fmt.Errorf("%s reads snapshot catalogs, which are sealed to the recipients: %w", cmd, repo.ErrNoIdentity),
		"pass --identity identity.txt or set COFFER_IDENTITY (a backup host holds none by design)")
}

// lookError adds the hints that name commands to inspect's errors.
func lookError(err error, spec string) error {
	switch {
	case errors.Is(err, inspect.ErrNoSource):
		return withHint(err, "run coffer ls %s to list its sources", spec)
	case errors.Is(err, inspect.ErrNoPath):
		return withHint(err, "run coffer ls on the folder above it to see what it holds")
	}
	return err
}

// showPath prints a path as it is unless it holds bytes that would garble
// a terminal or hide what it is (not UTF-8, control characters, format
// characters such as a right-to-left override): then Go-quoted.
func showPath(p string) string {
	if utf8.ValidString(p) && strings.IndexFunc(p, func(r rune) bool { return !unicode.IsPrint(r) }) < 0 {
		return p
	}
	return strconv.Quote(p)
}

// owner is user/group, or the numeric ids where the names are unknown.
func owner(e *inspect.Entry) string {
	u, g := e.User, e.Group
	if u == "" {
		u = strconv.Itoa(e.UID)
	}
	if g == "" {
		g = strconv.Itoa(e.GID)
	}
	return u + "/" + g
}

const timeLayout = "2006-01-02 15:04:05"

// longLines formats entries as ls -l does: mode, owner, size, mtime, path
// (with SOURCE: in front when withSource), columns aligned; a dump's
// fingerprints follow it, indented.
func longLines(es []inspect.Entry, withSource bool) []string {
	ow, sw := 0, 0
	for i := range es {
		ow = max(ow, len(owner(&es[i])))
		sw = max(sw, len(strconv.FormatInt(es[i].Size, 10)))
	}
	var out []string
	for i := range es {
		e := &es[i]
		p := showPath(e.Path)
		if withSource {
			p = e.Source + ":" + p
		}
		if e.Type == "symlink" {
			p += " -> " + showPath(e.Link)
		}
		out = append(out, fmt.Sprintf("%s  %-*s  %*d  %s  %s", e.Mode, ow, owner(e), sw, e.Size, e.ModTime.Local().Format(timeLayout), p))
		out = append(out, fingerprintLines(e, "    ")...)
	}
	return out
}

// fingerprintLines prints a dump's fingerprints, one a line, sorted.
func fingerprintLines(e *inspect.Entry, indent string) []string {
	fp := e.Fingerprints
	if fp == nil {
		return nil
	}
	var out []string
	for _, t := range sortedKeys(fp.Tables) {
		out = append(out, fmt.Sprintf("%sfingerprint: table %s: %d rows", indent, printable(t), fp.Tables[t]))
	}
	for _, c := range sortedKeys(fp.Checks) {
		out = append(out, fmt.Sprintf("%sfingerprint: check %s: %s", indent, printable(c), printable(strings.Join(fp.Checks[c], "; "))))
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sortStrings(keys)
	return keys
}

// parseRangeTime parses --since or --until: RFC 3339, or a date or minute
// in local time. A --until of a bare date means the end of that day.
func parseRangeTime(flag, s string, end bool) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if end {
		if t, err := time.ParseInLocation("2006-01-02", s, time.Local); err == nil {
			return t.AddDate(0, 0, 1).Add(-time.Nanosecond), nil
		}
	}
	t, err := parseTime(s)
	if err != nil {
		return time.Time{}, usagef("%s %q: use RFC 3339 (2006-01-02T15:04:05Z) or 2006-01-02", flag, s)
	}
	return t, nil
}

// printable escapes a string from a backed-up database (a table name, a
// check's result) as the drill reports do: control and format characters
// and invalid UTF-8 would act on a terminal.
func printable(s string) string { return drill.Printable(s) }

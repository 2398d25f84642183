package drill

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/cofferhq/coffer/internal/units"
)

// This file renders a report for machines (WriteJSON) and for the
// terminal (WriteText). html.go renders it for auditors.

// WriteJSON writes r as indented JSON (the layout of ReportVersion).
func WriteJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// ReadJSON reads a report written by WriteJSON.
func ReadJSON(rd io.Reader) (*Report, error) {
	var r Report
	dec := json.NewDecoder(rd)
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("read drill report: %w", err)
	}
	if r.Version != ReportVersion {
		return nil, fmt.Errorf("drill report version %d is not supported (this coffer reads %d)", r.Version, ReportVersion)
	}
	return &r, nil
}

// timeFormat is how reports show times: UTC, to the second.
const timeFormat = "2006-01-02 15:04:05 UTC"

func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(timeFormat)
}

// human shows a duration the way people read it: 0.42s, 12.3s, 1m23s,
// 9h32m, 3d4h.
func human(d time.Duration) string {
	switch {
	case d < 0:
		return "-" + human(-d)
	case d < time.Second:
		return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) + "s"
	case d < time.Minute:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
	case d < time.Hour:
		d = d.Round(time.Second)
		return fmt.Sprintf("%dm%02ds", int(d/time.Minute), int(d%time.Minute/time.Second))
	case d < 48*time.Hour:
		d = d.Round(time.Minute)
		return fmt.Sprintf("%dh%02dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
	}
	d = d.Round(time.Hour)
	return fmt.Sprintf("%dd%dh", int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour))
}

// throughput shows bytes per second.
func throughput(bps float64) string {
	if bps <= 0 {
		return "-"
	}
	return units.Bytes(int64(bps)) + "/s"
}

// printable makes a string from a restored database or a scratch
// environment safe for a terminal: control characters (escape sequences
// included), format characters (bidirectional overrides) and invalid UTF-8
// are shown escaped, so a check's detail cannot move the cursor, recolour
// the screen or reorder what follows.
func printable(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unicode.IsPrint(r):
			b.WriteRune(r)
		default:
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		}
		i += n
	}
	return b.String()
}

// label is a result as the terminal and the page show it.
func label(r Result) string {
	if r == "" {
		return "?"
	}
	return strings.ToUpper(string(r))
}

// checkLine is one check with the source it belongs to ("" for checks
// of the whole snapshot).
type checkLine struct {
	Source string
	Check
}

// orderedChecks returns every check, failures first, then errors,
// warnings and passes, each group in the report's order.
func orderedChecks(r *Report) []checkLine {
	var all []checkLine
	for _, c := range r.Checks {
		all = append(all, checkLine{"", c})
	}
	for _, s := range r.Sources {
		for _, c := range s.Checks {
			all = append(all, checkLine{s.Name, c})
		}
	}
	var out []checkLine
	for _, res := range []Result{Fail, Error, Warn, Pass} {
		for _, c := range all {
			if c.Result == res {
				out = append(out, c)
			}
		}
	}
	for _, c := range all {
		if c.Result != Fail && c.Result != Error && c.Result != Warn && c.Result != Pass {
			out = append(out, c)
		}
	}
	return out
}

// counts returns how many checks there are and how many failed or warned.
func counts(r *Report) (total, failed, warned int) {
	for _, c := range orderedChecks(r) {
		total++
		switch c.Result {
		case Fail, Error:
			failed++
		case Warn:
			warned++
		}
	}
	return total, failed, warned
}

// verdict is the one-line outcome: "PASS: 14 checks passed",
// "FAIL: 2 of 14 checks failed", ...
func verdict(r *Report) string {
	total, failed, warned := counts(r)
	switch {
	case r.Result == Error:
		return "ERROR: the drill could not run"
	case failed > 0:
		s := fmt.Sprintf("%s: %d of %d checks failed", label(r.Result), failed, total)
		if warned > 0 {
			s += fmt.Sprintf(", %d warned", warned)
		}
		return s
	case warned > 0:
		return fmt.Sprintf("%s: %d of %d checks warned, none failed", label(r.Result), warned, total)
	}
	return fmt.Sprintf("%s: %d checks passed", label(r.Result), total)
}

// WriteText writes the terminal summary: which snapshot, the result, RTO
// and RPO, bytes and throughput, the timings per source, then one line per
// check, failures first. Strings that come from restored data are escaped
// (printable).
func WriteText(w io.Writer, r *Report) error {
	var b strings.Builder
	fmt.Fprintf(&b, "drill %s: %s\n", short(r.ID), verdict(r))
	if r.Error != "" {
		fmt.Fprintf(&b, "error: %s\n", printable(r.Error))
	}
	snap := "-"
	if r.Snapshot != "" {
		snap = short(r.Snapshot) + ", taken " + when(r.SnapshotTime)
		if r.SnapshotHost != "" {
			snap += " on " + printable(r.SnapshotHost)
		}
	}
	fmt.Fprintf(&b, "snapshot:   %s\n", snap)
	fmt.Fprintf(&b, "repository: %s\n", printable(r.Repository))
	ran := when(r.Started)
	if r.Host != "" {
		ran += " on " + printable(r.Host)
	}
	if r.User != "" {
		ran += " by " + printable(r.User)
	}
	fmt.Fprintf(&b, "drill:      %s, coffer %s\n", ran, printable(r.Coffer))
	fmt.Fprintf(&b, "RTO %s   RPO %s   read %s at %s\n", human(r.RTO.Duration()), human(r.RPO.Duration()),
		units.Bytes(r.BytesRead), throughput(r.Throughput))
	if len(r.Sources) > 0 {
		b.WriteString("\n")
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SOURCE\tKIND\tRESULT\tTOTAL\tFETCH\tDECRYPT\tRESTORE\tCHECK\tREAD")
		for _, s := range r.Sources {
			t := s.Timings
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", printable(s.Name), printable(s.Kind), label(s.Result),
				human(t.Total.Duration()), human(t.Fetch.Duration()), human(t.Decrypt.Duration()),
				human(t.Restore.Duration()), human(t.Check.Duration()), units.Bytes(s.BytesRead))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if checks := orderedChecks(r); len(checks) > 0 {
		b.WriteString("\n")
		for _, c := range checks {
			name := printable(c.Name)
			if c.Source != "" {
				name = printable(c.Source) + "/" + name
			}
			tag := label(c.Result)
			if c.Result == Pass {
				tag = "ok"
			}
			line := fmt.Sprintf("%-5s %s", tag, name)
			if c.Detail != "" {
				line += ": " + printable(c.Detail)
			}
			b.WriteString(line + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// short is the first 8 characters of an id.
func short(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	if id == "" {
		return "-"
	}
	return id
}

// HumanDuration shows a drill's duration as the reports do (0.42s, 12.3s,
// 1m23s, 9h32m, 3d4h).
func HumanDuration(d time.Duration) string { return human(d) }

// Printable escapes what a terminal would act on (control and format
// characters, invalid UTF-8), as the terminal summary does.
func Printable(s string) string { return printable(s) }

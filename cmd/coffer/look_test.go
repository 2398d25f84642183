package main

import (
	"strings"
	"testing"
	"unicode"

	"github.com/cofferhq/coffer/internal/fingerprint"
	"github.com/cofferhq/coffer/internal/inspect"
)

// unsafeRune finds a rune a terminal would act on: a control or format
// character (escape sequences, bidirectional overrides).
func unsafeRune(s string) int {
	return strings.IndexFunc(s, func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) })
}

// TestShowPathEscapes: a file name can hold anything but "/" and NUL;
// ls, find and diff print it escaped when a terminal would act on it, a
// right-to-left override ("invoice<RLO>fdp.exe" shows as invoiceexe.pdf)
// included, and as it is otherwise.
func TestShowPathEscapes(t *testing.T) {
	for _, p := range []string{"/a/evil\x1b[31mRED", "/a/new\nline", "/invoice\u202efdp.exe", "/zero\u200bwidth", "/bad\xff"} {
		if got := showPath(p); unsafeRune(got) >= 0 || got == p {
			t.Errorf("showPath(%q) = %q: not escaped", p, got)
		}
	}
	for _, p := range []string{"/façade/Übersicht 2026.pdf", "/plain.txt", "/日本語"} {
		if got := showPath(p); got != p {
			t.Errorf("showPath(%q) = %q, want it as it is", p, got)
		}
	}
}

// TestFingerprintsEscaped: table names and check results come from the
// backed-up database, which its users fill: ls, find and diff print them
// escaped.
func TestFingerprintsEscaped(t *testing.T) {
	evil := "ev\x1b]0;pwned\a\x1b[2J\u202e"
	e := &inspect.Entry{Fingerprints: &fingerprint.Fingerprints{
		Tables: map[string]int64{evil: 2},
		Checks: map[string][]string{"c" + evil: {"1|" + evil}},
	}}
	lines := fingerprintLines(e, "    ")
	if len(lines) != 2 {
		t.Fatalf("fingerprintLines: %q, want 2 lines", lines)
	}
	lines = append(lines, fingerprintDiffLine(inspect.FingerprintDiff{Part: "/", What: "table " + evil, Old: evil, New: "2"}))
	for _, l := range lines {
		if i := unsafeRune(l); i >= 0 {
			t.Errorf("line %q holds %q as it is", l, l[i:i+1])
		}
		if !strings.Contains(l, `\x1b]0;pwned\a`) {
			t.Errorf("line %q does not show the name escaped", l)
		}
	}
}

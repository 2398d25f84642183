package bucket

import (
	"errors"
	"testing"
)

func TestParseLocation(t *testing.T) {
	for _, tc := range []struct{ in, bucket, prefix string }{
		{"invoices", "invoices", ""},
		{"invoices/prod", "invoices", "prod"},
		{"s3://invoices/prod/2026/", "invoices", "prod/2026"},
		{"my.bucket-1//", "my.bucket-1", ""},
	} {
		b, p, err := ParseLocation(tc.in)
		if err != nil || b != tc.bucket || p != tc.prefix {
			t.Errorf("ParseLocation(%q) = %q, %q, %v; want %q, %q", tc.in, b, p, err, tc.bucket, tc.prefix)
		}
	}
	for _, bad := range []string{"", "ab", "Invoices/x", "in_voices", "invoices/a//b", "/invoices"} {
		if _, _, err := ParseLocation(bad); !errors.Is(err, ErrLocation) {
			t.Errorf("ParseLocation(%q): %v, want ErrLocation", bad, err)
		}
	}
}

func TestBadPath(t *testing.T) {
	for p, bad := range map[string]bool{
		"a.pdf": false, "2026/01/a.pdf": false, "dir/": false, "ünïcode/ä b.txt": false,
		"a//b": true, "./a": true, "a/../b": true, "..": true, "/a": true, "a/./b": true, "a\x00b": true, "\xff": true,
	} {
		if got := badPath(p) != ""; got != bad {
			t.Errorf("badPath(%q) = %q, want bad=%v", p, badPath(p), bad)
		}
	}
}

func TestOverlaps(t *testing.T) {
	from := Location{Endpoint: "a:1", Bucket: "b", Prefix: "invoices"}
	for to, want := range map[Location]bool{
		{Endpoint: "a:1", Bucket: "b", Prefix: "invoices"}:          true,
		{Endpoint: "other:9", Bucket: "b", Prefix: "invoices/sub"}:  true, // one server, several names
		{Endpoint: "a:1", Bucket: "b", Prefix: ""}:                  true,
		{Endpoint: "a:1", Bucket: "b", Prefix: "invoices-restored"}: false,
		{Endpoint: "a:1", Bucket: "c", Prefix: "invoices"}:          false,
	} {
		if got := overlaps(from, to); got != want {
			t.Errorf("overlaps(%v, %v) = %v, want %v", from, to, got, want)
		}
	}
}

func TestContentEncoding(t *testing.T) {
	for in, want := range map[string]string{"aws-chunked": "", "aws-chunked,gzip": "gzip", "gzip, br": "gzip,br", "": ""} {
		if got := contentEncoding(in); got != want {
			t.Errorf("contentEncoding(%q) = %q, want %q", in, got, want)
		}
	}
}

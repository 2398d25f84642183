package main

import (
	"io"
	"slices"
	"testing"
)

func TestInterleave(t *testing.T) {
	app := newApp(io.Discard, io.Discard)
	tests := []struct {
		in, want []string
	}{
		{[]string{"coffer"}, []string{"coffer"}},
		{[]string{"coffer", "restore", "latest", "--to", "d"}, []string{"coffer", "restore", "--to", "d", "latest"}},
		{[]string{"coffer", "init", "--repo", "r", "-R", "f", "--signing-key=k"},
			[]string{"coffer", "--repo", "r", "--signing-key=k", "init", "-R", "f"}},
		{[]string{"coffer", "--json", "backup", "a=dir:x", "-v", "--tag", "t", "b=dir:y"},
			[]string{"coffer", "--json", "-v", "backup", "--tag", "t", "a=dir:x", "b=dir:y"}},
		{[]string{"coffer", "--repo", "r", "backup", "--", "--json=dir:x"},
			[]string{"coffer", "--repo", "r", "backup", "--", "--json=dir:x"}},
		{[]string{"coffer", "nosuch", "--repo", "r"}, []string{"coffer", "nosuch", "--repo", "r"}},
		{[]string{"coffer", "verify", "--json", "--decrypt", "abc"}, []string{"coffer", "--json", "verify", "--decrypt", "abc"}},
		{[]string{"coffer", "airflow", "inspect", "home", "--json", "--env-file", "e"}, []string{"coffer", "--json", "airflow", "inspect", "--env-file", "e", "home"}},
	}
	for _, tt := range tests {
		if got := interleave(app, tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("interleave(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

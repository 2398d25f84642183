package main

import (
	"os"
	"path/filepath"
	"sort"
)

func sortStrings(s []string) { sort.Strings(s) }

// cacheDir is where folder sources keep their change cache: the config's
// cache_dir, else $XDG_CACHE_HOME/coffer (usually ~/.cache/coffer).
func cacheDir(g *globals) string {
	if g.cfg.CacheDir != "" {
		return g.cfg.CacheDir
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "coffer")
	}
	return ""
}

// list returns s, or an empty slice for nil, so that JSON output prints
// lists as [] and never as null.
func list[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

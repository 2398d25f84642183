package memlimit

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// restore puts back the limit the test process had.
func restore(t *testing.T) {
	old := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
}

func TestSetDefault(t *testing.T) {
	restore(t)
	want := int64(40<<20 + 12<<20*runtime.GOMAXPROCS(0))
	if got := Set(env(nil)); got != want {
		t.Fatalf("Set returned %d, want %d", got, want)
	}
	if got := debug.SetMemoryLimit(-1); got != want {
		t.Fatalf("limit in force %d, want %d", got, want)
	}
	d := Describe(env(nil))
	if !strings.Contains(d, "soft memory limit") || !strings.Contains(d, "coffer's default") {
		t.Fatalf("Describe: %q", d)
	}
}

// GOMEMLIMIT in the environment wins: Set leaves the runtime's limit alone.
func TestSetGOMEMLIMITOverrides(t *testing.T) {
	restore(t)
	debug.SetMemoryLimit(300 << 20) // as the runtime does for GOMEMLIMIT=300MiB
	e := env(map[string]string{"GOMEMLIMIT": "300MiB"})
	if got := Set(e); got != 300<<20 {
		t.Fatalf("Set returned %d, want %d", got, 300<<20)
	}
	if got := debug.SetMemoryLimit(-1); got != 300<<20 {
		t.Fatalf("limit in force %d, want %d", got, 300<<20)
	}
	if d := Describe(e); !strings.Contains(d, "soft memory limit 300 MiB (GOMEMLIMIT=300MiB)") {
		t.Fatalf("Describe: %q", d)
	}
}

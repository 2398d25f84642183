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

var retained []byte

// A live heap near the default limit raises it, after a collection, so the collector does not run back to back (a fixed
// limit under a live heap that grew with the repository cost up to half
// the CPU); the limit is never lowered.
func TestLimitFollowsLiveHeap(t *testing.T) {
	restore(t)
	def := Set(env(nil))
	runtime.GC()
	runtime.GC()
	if got := Raise(); got != def {
		t.Fatalf("a test's small live heap raised the limit from %d to %d MiB", def>>20, got>>20)
	}
	retained = make([]byte, 2*def) // a live heap twice the default limit
	for i := range retained {
		retained[i] = byte(i)
	}
	defer func() { retained = nil }()
	want := 2*def + max(Slack, 2*def/4) // the live heap and its room
	var got int64
	for range 100 { // the finalizer runs Raise after a collection, on its own goroutine
		runtime.GC()
		if got = debug.SetMemoryLimit(-1); got >= want {
			break
		}
		runtime.Gosched()
	}
	if got < want {
		t.Fatalf("limit %d MiB with a live heap of %d MiB, want at least %d MiB", got>>20, 2*def>>20, want>>20)
	}
	if d := Describe(env(nil)); !strings.Contains(d, "raised from coffer's default") {
		t.Errorf("Describe: %q", d)
	}
	retained = nil
	runtime.GC()
	runtime.GC()
	if after := debug.SetMemoryLimit(-1); after < got {
		t.Errorf("limit lowered from %d to %d MiB when the live heap shrank", got>>20, after>>20)
	}
}

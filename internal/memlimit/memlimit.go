// Package memlimit sets coffer's soft memory limit (runtime/debug
// SetMemoryLimit) when a command starts, and describes the limit in force
// for coffer doctor.
//
// A backup's or restore's working set is a fixed set of buffers (chunk
// buffers, zstd encoders and windows, batches: doc/design.md section 14)
// that are allocated again and again. With only GOGC, the heap may grow to
// (1 + GOGC/100) times the live heap before a collection, so the peak RSS
// is about 1.5x the live heap at GOGC 50. A soft limit a little above the
// buffers makes the collector run earlier when the heap nears it and lets
// it grow past it when the live heap needs more: the limit is soft, Go
// never fails an allocation for it, and it caps the collector's CPU at
// about half of GOMAXPROCS when the live heap is over it.
package memlimit

import (
	"fmt"
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
)

const (
	// Base is the part of the default limit that does not grow with the
	// cores: metadata, the catalog stage, the runtime.
	Base = 40 << 20
	// PerProc is the part per GOMAXPROCS: a worker's chunk buffers, its
	// zstd encoder and its output buffer.
	PerProc = 12 << 20
)

// Default is the soft memory limit for procs = GOMAXPROCS.
func Default(procs int) int64 { return Base + PerProc*int64(procs) }

// GOGC is the collector's target heap growth coffer commands use instead
// of Go's 100: backups hold large, short-lived buffers (chunks, packs),
// and collecting at 50% growth keeps peak memory well lower for a few
// percent of CPU. GOGC in the environment overrides.
const GOGC = 50

// Configure sets the collector as a coffer command runs: GOGC unless the
// environment sets it, and the soft memory limit (Set). It returns the
// limit in force.
func Configure(getenv func(string) string) int64 {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(GOGC)
	}
	return Set(getenv)
}

// Set sets the soft memory limit to Default(GOMAXPROCS) unless the
// environment (getenv) sets GOMEMLIMIT, which the Go runtime has applied
// already ("off" for none). It returns the limit in force.
//
// The default limit then follows the live heap up (never down): after
// each collection, when the room between the live heap and the limit is
// less than Slack (or a quarter of the live heap, if more), the limit is
// raised to give it that room (Raise). A fixed limit under a live heap
// that grows with the repository (the chunks it already holds, a large
// index) would make the collector run back to back, at up to half the
// CPU; so the limit trims the peak while the live heap is small, and
// never collects more often than once every max(Slack, live/4) bytes
// allocated.
func Set(getenv func(string) string) int64 {
	if getenv("GOMEMLIMIT") != "" {
		return debug.SetMemoryLimit(-1)
	}
	l := Default(runtime.GOMAXPROCS(0))
	debug.SetMemoryLimit(l)
	raisedFrom.Store(l)
	follow()
	return l
}

// Slack is the least room Raise keeps between the live heap and the
// limit: with 16 MiB, a 1 GiB backup's collector costs what it does
// without a limit (doc/performance.md, "Soft memory limit").
const Slack = 16 << 20

// raising makes Raise's read and set of the limit one step, so that two
// calls never lower what the other raised.
var raising sync.Mutex

// raisedFrom is the default limit Set put in force, which Raise may have
// raised since (0: Set did not set one).
var raisedFrom atomic.Int64

// Raise raises the soft memory limit, when it is not off, so that the
// heap has room for max(Slack, live/4) bytes above the live heap besides
// the memory the limit counts outside the heap (stacks, the runtime's
// own), and returns the limit in force. It never lowers the limit.
func Raise() int64 {
	raising.Lock()
	defer raising.Unlock()
	cur := debug.SetMemoryLimit(-1)
	if cur == math.MaxInt64 {
		return cur
	}
	samples := []metrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
	}
	metrics.Read(samples)
	var v [6]int64
	for i, s := range samples {
		if s.Value.Kind() != metrics.KindUint64 {
			return cur
		}
		v[i] = int64(s.Value.Uint64())
	}
	live, total, released, objects, unused, free := v[0], v[1], v[2], v[3], v[4], v[5]
	outside := max(0, total-released-objects-unused-free)
	want := live + max(Slack, live/4) + outside
	if want <= cur {
		return cur
	}
	debug.SetMemoryLimit(want)
	return want
}

// sentinel is garbage as soon as it is made: its finalizer runs after the
// next collection and arms a new one, so Raise runs once a cycle.
// (32 bytes: the tiny allocator, whose objects' finalizers may never
// run, takes objects without pointers under 16.)
type sentinel struct {
	_ [32]byte
}

var following sync.Once

func follow() {
	following.Do(arm)
}

func arm() {
	s := &sentinel{}
	runtime.SetFinalizer(s, func(*sentinel) {
		Raise()
		arm()
	})
}

// Describe says which soft memory limit is in force and where it comes
// from, for coffer doctor.
func Describe(getenv func(string) string) string {
	l := debug.SetMemoryLimit(-1)
	var s string
	if l == math.MaxInt64 {
		s = "no soft memory limit"
	} else {
		s = fmt.Sprintf("soft memory limit %d MiB", l>>20)
	}
	procs := runtime.GOMAXPROCS(0)
	switch env := getenv("GOMEMLIMIT"); {
	case env != "":
		s += fmt.Sprintf(" (GOMEMLIMIT=%s)", env)
	case l == Default(procs):
		s += fmt.Sprintf(" (coffer's default: %d MiB + %d MiB x GOMAXPROCS %d, raised as the live heap grows; GOMEMLIMIT overrides)", Base>>20, PerProc>>20, procs)
	case raisedFrom.Load() != 0 && l > raisedFrom.Load():
		s += fmt.Sprintf(" (raised from coffer's default of %d MiB as the live heap grew; GOMEMLIMIT overrides)", raisedFrom.Load()>>20)
	}
	gogc := getenv("GOGC")
	if gogc == "" {
		gogc = fmt.Sprintf("%d (coffer's default)", GOGC)
	}
	return s + ", GOGC " + gogc
}

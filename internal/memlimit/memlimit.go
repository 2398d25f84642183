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

// Set sets the soft memory limit to Default(GOMAXPROCS) unless the
// environment (getenv) sets GOMEMLIMIT, which the Go runtime has applied
// already ("off" for none). It returns the limit in force.
func Set(getenv func(string) string) int64 {
	if getenv("GOMEMLIMIT") != "" {
		return debug.SetMemoryLimit(-1)
	}
	l := Default(runtime.GOMAXPROCS(0))
	debug.SetMemoryLimit(l)
	return l
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
		s += fmt.Sprintf(" (coffer's default: %d MiB + %d MiB x GOMAXPROCS %d; GOMEMLIMIT overrides)", Base>>20, PerProc>>20, procs)
	}
	gogc := getenv("GOGC")
	if gogc == "" {
		gogc = "50 (coffer's default)"
	}
	return s + ", GOGC " + gogc
}

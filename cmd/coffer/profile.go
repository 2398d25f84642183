package main

import (
	"os"
	"runtime/metrics"
	"runtime/pprof"
	"time"
)

// heapAtPeak writes a heap profile to path each time the live heap grows
// 10% past the largest size seen so far, so the file left at exit shows
// what was held near the peak (COFFER_MEMPROFILE; benchmarks only).
func heapAtPeak(path string) {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	var peak uint64
	for range time.Tick(100 * time.Millisecond) {
		metrics.Read(s)
		if v := s[0].Value.Uint64(); v > peak+peak/10 {
			peak = v
			if f, err := os.Create(path); err == nil {
				pprof.Lookup("heap").WriteTo(f, 0)
				f.Close()
			}
		}
	}
}

package testutil

import "runtime"

// LiveHeap collects garbage and returns the heap's live bytes. Twice:
// what sync.Pools hold survives one collection.
func LiveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

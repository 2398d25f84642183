// Package countstore is test support: a storage.Store decorator that
// counts the reads (Open calls) of each object, so that a test can say
// which objects a command read: catalogs but no data pack, or only the
// packs of the files it restored.
package countstore

import (
	"context"
	"io"
	"maps"
	"strings"
	"sync"

	"github.com/cofferhq/coffer/storage"
)

// Store counts the reads of the store it wraps.
type Store struct {
	storage.Store
	mu    sync.Mutex
	reads map[string]int
}

// New wraps st.
func New(st storage.Store) *Store { return &Store{Store: st, reads: map[string]int{}} }

// Unwrap returns the wrapped store.
func (s *Store) Unwrap() storage.Store { return s.Store }

// Open counts a read of name and opens it.
func (s *Store) Open(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	s.mu.Lock()
	s.reads[name]++
	s.mu.Unlock()
	return s.Store.Open(ctx, name, off, length)
}

// Reads returns the objects read since the last Reset, with how often,
// among those whose names start with prefix.
func (s *Store) Reads(prefix string) map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for name, n := range s.reads {
		if strings.HasPrefix(name, prefix) {
			out[name] = n
		}
	}
	return out
}

// All returns every read since the last Reset.
func (s *Store) All() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.reads)
}

// Reset forgets the reads so far.
func (s *Store) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.reads)
}

// Package countstore is test support: a storage.Store decorator that
// counts the reads (Open calls) of each object and the bytes read, so that
// a test can say which objects a command read (catalogs but no data pack,
// or only the packs of the files it restored) and how much of them.
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
	bytes map[string]int64
}

// New wraps st.
func New(st storage.Store) *Store {
	return &Store{Store: st, reads: map[string]int{}, bytes: map[string]int64{}}
}

// Unwrap returns the wrapped store.
func (s *Store) Unwrap() storage.Store { return s.Store }

// Open counts a read of name and opens it.
func (s *Store) Open(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	s.mu.Lock()
	s.reads[name]++
	s.mu.Unlock()
	rc, err := s.Store.Open(ctx, name, off, length)
	if err != nil {
		return nil, err
	}
	return &counted{ReadCloser: rc, s: s, name: name}, nil
}

type counted struct {
	io.ReadCloser
	s    *Store
	name string
}

func (c *counted) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.s.mu.Lock()
	c.s.bytes[c.name] += int64(n)
	c.s.mu.Unlock()
	return n, err
}

// Bytes returns the bytes read since the last Reset from the objects
// whose names start with prefix.
func (s *Store) Bytes(prefix string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for name, b := range s.bytes {
		if strings.HasPrefix(name, prefix) {
			n += b
		}
	}
	return n
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
	clear(s.bytes)
}

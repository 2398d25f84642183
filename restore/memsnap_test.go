package restore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"github.com/cofferhq/coffer/backup"
)

// memSnap is an in-memory backup.Writer and SourceReader: the test double of
// the chunk pipeline. A file whose reader fails is not stored.
type memSnap struct {
	name, kind string
	mu         sync.Mutex
	files      map[string][]byte
	entries    []backup.Entry
	meta       map[string][]byte
	onRead     func(path string, n int64)
}

var (
	_ backup.Writer = (*memSnap)(nil)
	_ SourceReader  = (*memSnap)(nil)
)

func newMemSnap(name, kind string) *memSnap {
	return &memSnap{name: name, kind: kind, files: map[string][]byte{}, meta: map[string][]byte{}}
}

func (m *memSnap) WriteFile(ctx context.Context, e backup.Entry, r io.Reader) error {
	var buf bytes.Buffer
	p := make([]byte, 64<<10)
	for {
		n, err := r.Read(p)
		buf.Write(p[:n])
		if m.onRead != nil {
			m.onRead(e.Path, int64(buf.Len()))
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", e.Path, err)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	e.Size = int64(buf.Len())
	m.files[e.Path] = buf.Bytes()
	m.entries = append(m.entries, e)
	return nil
}

func (m *memSnap) WriteEntry(ctx context.Context, e backup.Entry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.entries = append(m.entries, e)
	return nil
}

func (m *memSnap) SetMeta(key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.meta[key] = b
	return nil
}

func (m *memSnap) Warn(format string, args ...any) error { return nil }

func (m *memSnap) Name() string { return m.name }
func (m *memSnap) Kind() string { return m.kind }

func (m *memSnap) Meta(key string, v any) error {
	b, ok := m.meta[key]
	if !ok {
		return fmt.Errorf("meta %q: %w", key, ErrNoMeta)
	}
	return json.Unmarshal(b, v)
}

func (m *memSnap) Entries() []backup.Entry { return m.entries }

func (m *memSnap) Open(ctx context.Context, path string) (io.ReadCloser, error) {
	b, ok := m.files[path]
	if !ok {
		return nil, fmt.Errorf("open %s: no such file", path)
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

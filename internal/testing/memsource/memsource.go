// Package memsource is test support: an in-memory source.Writer and
// source.Reader, the test double of the chunk pipeline for a kind's own
// tests. A file whose reader fails is not stored, as in the real pipeline.
package memsource

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"github.com/cofferhq/coffer/source"
)

// Snap holds one source's entries, contents and metadata in memory.
type Snap struct {
	name, kind string
	mu         sync.Mutex
	Files      map[string][]byte
	List       []source.Entry
	MetaJSON   map[string][]byte
	Warnings   []string
	// OnRead, when set, is called after every read of a file's contents
	// with the number of bytes read so far.
	OnRead func(path string, n int64)
}

var (
	_ source.Writer = (*Snap)(nil)
	_ source.Reader = (*Snap)(nil)
)

// New returns an empty Snap of a source with this name and kind.
func New(name, kind string) *Snap {
	return &Snap{name: name, kind: kind, Files: map[string][]byte{}, MetaJSON: map[string][]byte{}}
}

// Backup runs src's backup into a new Snap.
func Backup(ctx context.Context, src source.Source) (*Snap, error) {
	s := New(src.Name(), src.Kind())
	return s, src.Backup(ctx, s)
}

func (m *Snap) WriteFile(ctx context.Context, e source.Entry, r io.Reader) error {
	var buf bytes.Buffer
	p := make([]byte, 64<<10)
	for {
		n, err := r.Read(p)
		buf.Write(p[:n])
		if m.OnRead != nil {
			m.OnRead(e.Path, int64(buf.Len()))
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
	m.Files[e.Path] = buf.Bytes()
	m.List = append(m.List, e)
	return nil
}

func (m *Snap) WriteEntry(ctx context.Context, e source.Entry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.List = append(m.List, e)
	return nil
}

func (m *Snap) SetMeta(key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.MetaJSON[key] = b
	return nil
}

func (m *Snap) Warn(format string, args ...any) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.Warnings = append(m.Warnings, fmt.Sprintf(format, args...))
	return nil
}

func (m *Snap) Name() string { return m.name }
func (m *Snap) Kind() string { return m.kind }

func (m *Snap) Meta(key string, v any) error {
	b, ok := m.MetaJSON[key]
	if !ok {
		return fmt.Errorf("meta %q: %w", key, source.ErrNoMeta)
	}
	return json.Unmarshal(b, v)
}

func (m *Snap) Entries() []source.Entry { return m.List }

func (m *Snap) Open(ctx context.Context, path string) (io.ReadCloser, error) {
	b, ok := m.Files[path]
	if !ok {
		return nil, fmt.Errorf("open %s: no such file", path)
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

var _ source.RangeReader = (*Snap)(nil)

// OpenRanges implements source.RangeReader.
func (m *Snap) OpenRanges(ctx context.Context, path string, ranges []source.Range) (io.ReadCloser, error) {
	b, ok := m.Files[path]
	if !ok {
		return nil, fmt.Errorf("open %s: no such file", path)
	}
	rs := make([]io.Reader, len(ranges))
	for i, r := range ranges {
		if r.Offset < 0 || r.Length < 0 || r.Offset > int64(len(b))-r.Length {
			return nil, fmt.Errorf("open %s: range of %d bytes at %d is outside its %d bytes", path, r.Length, r.Offset, len(b))
		}
		rs[i] = bytes.NewReader(b[r.Offset : r.Offset+r.Length])
	}
	return io.NopCloser(io.MultiReader(rs...)), nil
}

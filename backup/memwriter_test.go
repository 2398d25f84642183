package backup

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
)

// memWriter is an in-memory Writer for source tests: a file whose reader
// fails is not stored, as in the real pipeline.
type memWriter struct {
	mu      sync.Mutex
	files   map[string][]byte
	entries []Entry
	meta    map[string][]byte
	warns   []string
	// onRead, when set, is called after every read of a file's contents.
	onRead func(path string, n int64)
}

func newMemWriter() *memWriter {
	return &memWriter{files: map[string][]byte{}, meta: map[string][]byte{}}
}

func (w *memWriter) WriteFile(ctx context.Context, e Entry, r io.Reader) error {
	var buf bytes.Buffer
	p := make([]byte, 64<<10)
	for {
		n, err := r.Read(p)
		buf.Write(p[:n])
		if w.onRead != nil {
			w.onRead(e.Path, int64(buf.Len()))
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", e.Path, err)
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	e.Size = int64(buf.Len())
	w.files[e.Path] = buf.Bytes()
	w.entries = append(w.entries, e)
	return nil
}

func (w *memWriter) WriteEntry(ctx context.Context, e Entry) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.entries = append(w.entries, e)
	return nil
}

func (w *memWriter) SetMeta(key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.meta[key] = b
	return nil
}

func (w *memWriter) Warn(format string, args ...any) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.warns = append(w.warns, fmt.Sprintf(format, args...))
	return nil
}

func (w *memWriter) getMeta(key string, v any) error {
	b, ok := w.meta[key]
	if !ok {
		return fmt.Errorf("no meta %q", key)
	}
	return json.Unmarshal(b, v)
}

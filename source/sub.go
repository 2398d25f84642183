package source

import (
	"context"
	"fmt"
	"io"
	"strings"
)

// A composite kind (such as airflow) stores other kinds' contents inside
// its own source: each part under a path prefix ("metadb/") with its
// metadata under a key prefix ("metadb."). Prefix and Sub are the two
// halves: the part's Backup writes through Prefix, its Restore reads
// through Sub, and neither part knows it is nested.

// Prefix returns a Writer that stores w's entries under dir (a slash
// separated path without a trailing slash; the part's root "." becomes
// dir) and its metadata under key prefix dir+".".
func Prefix(w Writer, dir string) Writer {
	pw := &prefixWriter{w: w, dir: dir}
	if ct, ok := w.(ChangeTracker); ok {
		return &prefixTracker{prefixWriter: pw, ct: ct}
	}
	return pw
}

type prefixWriter struct {
	w   Writer
	dir string
	// started: the part's first entry was written.
	started bool
}

// start writes a folder entry for dir before the part's first entry
// unless that entry is the part's root: a part that has none (a database
// dump) still lands in a folder the catalog lists, so that the source
// restores into a folder (every entry's parent is a folder listed before
// it). The folders above dir are the caller's to write.
func (p *prefixWriter) start(ctx context.Context, e Entry) error {
	if p.started {
		return nil
	}
	p.started = true
	if e.Path == "." || e.Path == "" {
		return nil
	}
	return p.w.WriteEntry(ctx, Entry{Path: p.dir, Type: TypeDir, Mode: 0o700, ModTime: e.ModTime})
}

func (p *prefixWriter) path(rel string) string {
	if rel == "." || rel == "" {
		return p.dir
	}
	return p.dir + "/" + rel
}

func (p *prefixWriter) WriteFile(ctx context.Context, e Entry, r io.Reader) error {
	if err := p.start(ctx, e); err != nil {
		return err
	}
	e.Path = p.path(e.Path)
	return p.w.WriteFile(ctx, e, r)
}

func (p *prefixWriter) WriteEntry(ctx context.Context, e Entry) error {
	if err := p.start(ctx, e); err != nil {
		return err
	}
	e.Path = p.path(e.Path)
	return p.w.WriteEntry(ctx, e)
}

func (p *prefixWriter) SetMeta(key string, v any) error { return p.w.SetMeta(p.dir+"."+key, v) }

func (p *prefixWriter) Warn(format string, args ...any) error {
	return p.w.Warn(p.dir+": "+format, args...)
}

// Skip passes a part's unreadable path on, under dir, when w can leave it
// out (Skipper); otherwise the part fails, as it would unnested.
func (p *prefixWriter) Skip(path string, err error) error {
	if s, ok := p.w.(Skipper); ok {
		return s.Skip(p.path(path), err)
	}
	return fmt.Errorf("%q: %w", p.path(path), err)
}

type prefixTracker struct {
	*prefixWriter
	ct ChangeTracker
}

func (p *prefixTracker) Unchanged(e Entry, st FileState) (bool, error) {
	if err := p.start(context.Background(), e); err != nil {
		return false, err
	}
	e.Path = p.path(e.Path)
	return p.ct.Unchanged(e, st)
}

func (p *prefixTracker) Remember(path string, st FileState) { p.ct.Remember(p.path(path), st) }

// Sub returns a Reader of the part of r stored under dir by Prefix: its
// entries with dir stripped (dir itself becomes "."), and its metadata
// keys without the dir+"." prefix. kind is the part's kind.
func Sub(r Reader, dir, kind string) Reader {
	s := &subReader{r: r, dir: dir, kind: kind}
	if rr, ok := r.(RangeReader); ok {
		return &subRangeReader{subReader: s, rr: rr}
	}
	return s
}

// subRangeReader is a subReader of a RangeReader, and a RangeReader.
type subRangeReader struct {
	*subReader
	rr RangeReader
}

func (s *subRangeReader) OpenRanges(ctx context.Context, path string, ranges []Range) (io.ReadCloser, error) {
	return s.rr.OpenRanges(ctx, s.path(path), ranges)
}

type subReader struct {
	r         Reader
	dir, kind string
}

func (s *subReader) Name() string { return s.r.Name() + "/" + s.dir }
func (s *subReader) Kind() string { return s.kind }

func (s *subReader) Meta(key string, v any) error { return s.r.Meta(s.dir+"."+key, v) }

func (s *subReader) Entries() []Entry {
	var out []Entry
	for _, e := range s.r.Entries() {
		switch {
		case e.Path == s.dir:
			e.Path = "."
		case strings.HasPrefix(e.Path, s.dir+"/"):
			e.Path = strings.TrimPrefix(e.Path, s.dir+"/")
		default:
			continue
		}
		out = append(out, e)
	}
	return out
}

func (s *subReader) Open(ctx context.Context, path string) (io.ReadCloser, error) {
	return s.r.Open(ctx, s.path(path))
}

// path is the path in r of the part's path.
func (s *subReader) path(path string) string {
	p := strings.TrimPrefix(path, "/")
	if p == "." || p == "" {
		return s.dir
	}
	return s.dir + "/" + p
}

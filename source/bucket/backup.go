package bucket

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/minio/minio-go/v7"

	"github.com/cofferhq/coffer/source"
	"github.com/cofferhq/coffer/storage"
)

// Parallelism and memory bounds of a backup.
const (
	// Fetchers is the number of objects downloaded at once.
	Fetchers = 8
	// Listers is the number of prefixes listed at once.
	Listers = 4
	// smallObject is the size up to which a fetched object is held in
	// memory until its turn; larger ones stream when their turn comes.
	smallObject = 4 << 20
	// window is the number of fetches that may run ahead of the writer.
	window = 2 * Fetchers
)

// Source backs up the objects under a prefix of a bucket.
type Source struct {
	SourceName string
	Bucket     string
	// Prefix, without slashes at either end; "" is the whole bucket.
	Prefix string
	// S3 reaches the bucket's endpoint (its Bucket and Prefix are unused).
	S3 storage.S3Config
}

func (s *Source) Name() string { return s.SourceName }
func (s *Source) Kind() string { return Kind.Name }

// client is a bucket's client and endpoint.
type client struct {
	c        *minio.Client
	endpoint string
	bucket   string
}

// listed is one object of the listing.
type listed struct {
	key  string
	path string // below the prefix
	size int64
	mod  time.Time
	etag string
}

// Backup lists the prefix and stores every object in key order, under
// folders made of its key.
func (s *Source) Backup(ctx context.Context, w source.Writer) error {
	start := time.Now().UTC()
	c, err := connect(ctx, s.S3, s.Bucket)
	if err != nil {
		return fmt.Errorf("source %s: %w", s.SourceName, err)
	}
	loc := Location{Endpoint: c.endpoint, Bucket: s.Bucket, Prefix: s.Prefix}
	objs, err := c.list(ctx, keyPrefix(s.Prefix))
	if err != nil {
		return fmt.Errorf("source %s: list %s: %w", s.SourceName, loc, err)
	}
	if err := w.WriteEntry(ctx, source.Entry{Path: ".", Type: source.TypeDir, Mode: 0o755, ModTime: start, Size: 0}); err != nil {
		return err
	}
	ot, _ := w.(source.ObjectTracker)
	b := &backupRun{c: c, w: w, ot: ot, start: start, dirs: map[string]bool{".": true}, files: map[string]bool{},
		meta: map[string]Object{}}
	if err := b.run(ctx, objs); err != nil {
		return err
	}
	if err := w.SetMeta(BucketMeta, loc); err != nil {
		return err
	}
	if err := w.SetMeta(ObjectsMeta, b.meta); err != nil {
		return err
	}
	end := time.Now().UTC()
	return w.SetMeta(source.ConsistentKey, source.ConsistentPoint{Time: start, End: &end})
}

// list lists every object under prefix: the prefix's first-level
// "folders" are listed in parallel (Listers at a time), and the result
// sorted by key.
func (c *client) list(ctx context.Context, prefix string) ([]listed, error) {
	var (
		mu   sync.Mutex
		out  []listed
		subs []string
	)
	add := func(oi minio.ObjectInfo) {
		mu.Lock()
		out = append(out, listed{key: oi.Key, path: strings.TrimPrefix(oi.Key, prefix), size: oi.Size,
			mod: oi.LastModified, etag: oi.ETag})
		mu.Unlock()
	}
	// The first level, with a delimiter: objects, and the folders to list
	// in parallel.
	for oi := range c.c.ListObjects(ctx, c.bucket, minio.ListObjectsOptions{Prefix: prefix}) {
		if oi.Err != nil {
			return nil, oi.Err
		}
		if strings.HasSuffix(oi.Key, "/") && oi.Size == 0 && oi.ETag == "" {
			subs = append(subs, oi.Key) // a common prefix
			continue
		}
		add(oi)
	}
	errs := make(chan error, len(subs))
	sem := make(chan struct{}, Listers)
	var wg sync.WaitGroup
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, sub := range subs {
		wg.Add(1)
		go func(sub string) {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-lctx.Done():
				return
			}
			defer func() { <-sem }()
			ch := c.c.ListObjects(lctx, c.bucket, minio.ListObjectsOptions{Prefix: sub, Recursive: true})
			for oi := range ch {
				if oi.Err != nil {
					errs <- oi.Err
					cancel()
					for range ch { // let the lister goroutine finish
					}
					return
				}
				add(oi)
			}
		}(sub)
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out, nil
}

type backupRun struct {
	c     *client
	w     source.Writer
	ot    source.ObjectTracker
	start time.Time
	dirs  map[string]bool // folders written
	files map[string]bool // files written
	meta  map[string]Object
}

// fetch is one object's download, handed from a fetcher to the writer.
type fetch struct {
	obj  listed
	done chan struct{}
	data []byte        // a small object's contents
	rc   io.ReadCloser // a large object's stream
	info minio.ObjectInfo
	err  error
}

// plan is what the writer does with one listed object, in key order.
type plan struct {
	obj   listed
	state source.FileState
	known bool
	f     *fetch // when not known
}

func (b *backupRun) run(ctx context.Context, objs []listed) error {
	var plans []plan
	for _, o := range objs {
		if o.path == "" || o.path == "/" {
			continue // the prefix's own folder marker
		}
		if bad := badPath(o.path); bad != "" {
			if err := b.skip(o.key, bad); err != nil {
				return err
			}
			continue
		}
		st := source.FileState{Size: o.size, MTime: o.mod.UnixNano(), ETag: o.etag}
		p := plan{obj: o, state: st}
		if b.ot != nil && !strings.HasSuffix(o.path, "/") {
			p.known = b.ot.Known(o.path, st)
		}
		if !p.known && !strings.HasSuffix(o.path, "/") {
			p.f = &fetch{obj: o, done: make(chan struct{})}
		}
		plans = append(plans, p)
	}

	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan *fetch)
	var wg sync.WaitGroup
	for range Fetchers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range jobs {
				b.c.get(fctx, f)
			}
		}()
	}
	// The dispatcher runs at most window fetches ahead of the writer.
	ahead := make(chan struct{}, window)
	go func() {
		defer close(jobs)
		for _, p := range plans {
			if p.f == nil {
				continue
			}
			select {
			case ahead <- struct{}{}:
			case <-fctx.Done():
				return
			}
			select {
			case jobs <- p.f:
			case <-fctx.Done():
				return
			}
		}
	}()
	defer func() {
		cancel()
		wg.Wait()
		for _, p := range plans { // close what was fetched and not written
			if p.f != nil {
				select {
				case <-p.f.done:
					if p.f.rc != nil {
						p.f.rc.Close()
					}
				default:
				}
			}
		}
	}()

	for _, p := range plans {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := b.parents(ctx, p.obj.path); err != nil {
			return err
		}
		if strings.HasSuffix(p.obj.path, "/") { // a folder marker
			if err := b.dir(ctx, strings.TrimSuffix(p.obj.path, "/"), p.obj.mod); err != nil {
				return err
			}
			b.meta[p.obj.path] = Object{Key: p.obj.key, ETag: p.obj.etag}
			continue
		}
		e := source.Entry{Path: p.obj.path, Type: source.TypeFile, Mode: 0o644, ModTime: p.obj.mod, Size: p.obj.size}
		if b.dirs[e.Path] {
			if err := b.skip(p.obj.key, "a folder of other objects has the same name"); err != nil {
				return err
			}
			if p.f != nil {
				<-ahead
			}
			continue
		}
		if p.known {
			raw, ok, err := b.ot.UnchangedMeta(e, p.state)
			if err != nil {
				return err
			}
			var m Object
			if ok && json.Unmarshal(raw, &m) == nil && m.Key == p.obj.key {
				b.meta[e.Path], b.files[e.Path] = m, true
				continue
			}
			if ok {
				return fmt.Errorf("%q: the change cache holds no metadata for it; remove the change cache and back up again", p.obj.key)
			}
			// Gone from the cache since Known: fetch it now.
			p.f = &fetch{obj: p.obj, done: make(chan struct{})}
			b.c.get(ctx, p.f)
		} else {
			<-p.f.done
			<-ahead
		}
		if err := b.file(ctx, e, p); err != nil {
			return err
		}
	}
	return nil
}

// file writes one fetched object.
func (b *backupRun) file(ctx context.Context, e source.Entry, p plan) error {
	f := p.f
	if f.err != nil {
		if isNotFound(f.err) {
			return b.w.Warn("%q: vanished while the bucket was read", p.obj.key)
		}
		return fmt.Errorf("get %q: %w", p.obj.key, f.err)
	}
	r := io.Reader(bytes.NewReader(f.data))
	if f.rc != nil {
		defer f.rc.Close()
		r = f.rc
	}
	e.ModTime = f.info.LastModified
	e.Size = f.info.Size
	if err := b.w.WriteFile(ctx, e, r); err != nil {
		return err
	}
	b.files[e.Path] = true
	m := objectMeta(f.info)
	b.meta[e.Path] = m
	st := source.FileState{Size: f.info.Size, MTime: f.info.LastModified.UnixNano(), ETag: f.info.ETag}
	if st != p.state {
		// Not remembered: the next backup reads it again.
		return b.w.Warn("%q: changed while the bucket was read", p.obj.key)
	}
	if b.ot != nil {
		raw, err := json.Marshal(m)
		if err != nil {
			return err
		}
		b.ot.RememberMeta(e.Path, st, raw)
	}
	return nil
}

// parents writes the folders above p that were not written yet.
func (b *backupRun) parents(ctx context.Context, p string) error {
	p = strings.TrimSuffix(p, "/")
	dir := path.Dir(p)
	if dir == "." || b.dirs[dir] {
		return nil
	}
	if err := b.parents(ctx, dir); err != nil {
		return err
	}
	return b.dir(ctx, dir, b.start)
}

func (b *backupRun) dir(ctx context.Context, p string, mod time.Time) error {
	if b.dirs[p] {
		return nil
	}
	if b.files[p] {
		return fmt.Errorf("object %q and objects below %q/: a file and a folder of the same name; back up the two under separate prefixes", p, p)
	}
	b.dirs[p] = true
	return b.w.WriteEntry(ctx, source.Entry{Path: p, Type: source.TypeDir, Mode: 0o755, ModTime: mod})
}

// skip leaves out an object whose key cannot be a path.
func (b *backupRun) skip(key, why string) error {
	err := errors.New(why)
	if s, ok := b.w.(source.Skipper); ok {
		return s.Skip(key, err)
	}
	return fmt.Errorf("object %q: %w", key, err)
}

// badPath says why an object's path (its key below the prefix) cannot be
// restored as a file, or returns "".
func badPath(p string) string {
	q := strings.TrimSuffix(p, "/")
	switch {
	case q == "":
		return "a key equal to the prefix"
	case !utf8.ValidString(q) || strings.ContainsRune(q, 0):
		return "a key that is not valid UTF-8"
	case strings.HasPrefix(q, "/"):
		return "a key with an empty part (//)"
	}
	for _, el := range strings.Split(q, "/") {
		if el == "" || el == "." || el == ".." {
			return "a key with an empty, '.' or '..' part"
		}
	}
	return ""
}

// get downloads one object, in one GET that also returns its metadata: a
// small one into memory; a large one is left open to stream.
func (c *client) get(ctx context.Context, f *fetch) {
	defer close(f.done)
	body, info, _, err := minio.Core{Client: c.c}.GetObject(ctx, c.bucket, f.obj.key, minio.GetObjectOptions{})
	if err != nil {
		f.err = err
		return
	}
	info.Key = f.obj.key
	f.info = info
	if info.Size > smallObject {
		f.rc = body
		return
	}
	defer body.Close()
	f.data, f.err = io.ReadAll(io.LimitReader(body, smallObject+1))
	if f.err == nil && int64(len(f.data)) != info.Size {
		f.err = fmt.Errorf("read %d bytes, the object has %d", len(f.data), info.Size)
	}
}

func objectMeta(info minio.ObjectInfo) Object {
	m := Object{Key: info.Key, ETag: info.ETag, ContentType: info.ContentType, StorageClass: info.StorageClass,
		CacheControl:       info.Metadata.Get("Cache-Control"),
		ContentDisposition: info.Metadata.Get("Content-Disposition"),
		ContentEncoding:    contentEncoding(info.Metadata.Get("Content-Encoding")),
		ContentLanguage:    info.Metadata.Get("Content-Language"),
		Expires:            info.Metadata.Get("Expires"),
	}
	if len(info.UserMetadata) > 0 {
		m.UserMetadata = map[string]string{}
		for k, v := range info.UserMetadata {
			m.UserMetadata[strings.ToLower(k)] = v
		}
	}
	return m
}

// contentEncoding drops aws-chunked, the encoding of a streaming upload,
// which some servers keep although it is no property of the object.
func contentEncoding(s string) string {
	var keep []string
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" && !strings.EqualFold(e, "aws-chunked") {
			keep = append(keep, e)
		}
	}
	return strings.Join(keep, ",")
}

func isNotFound(err error) bool {
	code := minio.ToErrorResponse(err).Code
	return code == "NoSuchKey" || code == "NotFound"
}

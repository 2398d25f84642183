package bucket

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/cofferhq/coffer/source"
)

// Uploaders is the number of objects a restore uploads at once.
const Uploaders = 8

// ErrPrefixNotEmpty is wrapped (with source.ErrTargetExists) when a
// restore's target prefix already holds objects.
var ErrPrefixNotEmpty = errors.New("target prefix is not empty")

// OverSourceError is a restore whose target prefix is, holds or lies
// within the snapshot's source prefix. It wraps
// source.ErrRestoreOverSource.
type OverSourceError struct{ Source, Target Location }

func (e *OverSourceError) Error() string {
	return fmt.Sprintf("%s overlaps %s, where the snapshot's objects came from; a restore never writes among them unless forced", e.Target, e.Source)
}

func (e *OverSourceError) Unwrap() error { return source.ErrRestoreOverSource }

// RestoreError is a restore into a bucket that failed after it started
// uploads: it says how many objects were written, and whether they were
// removed.
type RestoreError struct {
	Target Location
	// Written counts the uploads that completed; Started those begun
	// (an upload cut short by the failure may have completed on the
	// server: each is removed too).
	Written, Started int
	// Removed reports that every object begun was deleted again.
	Removed bool
	// Left is why objects are left (a failed delete, or a restore with
	// Force into a prefix that held objects).
	Left string
	Err  error
}

func (e *RestoreError) Error() string {
	switch {
	case e.Started == 0:
		return fmt.Sprintf("restore into %s: %v (nothing was written)", e.Target, e.Err)
	case e.Removed:
		return fmt.Sprintf("restore into %s: %v; the %d objects written before the failure (and %d uploads cut short) were removed",
			e.Target, e.Err, e.Written, e.Started-e.Written)
	}
	return fmt.Sprintf("restore into %s: %v; %d objects written before the failure are left (%s)", e.Target, e.Err, e.Written, e.Left)
}

func (e *RestoreError) Unwrap() error { return e.Err }

// restoreBucket uploads every object of src, with its metadata, under
// target (BUCKET[/PREFIX]) at opts.S3's endpoint. The prefix must hold no
// object and must not be, or lie within, the source's own prefix, unless
// opts.Force. All or nothing: when an upload fails, the objects written
// are deleted again (into an empty prefix; with Force, they are left and
// counted).
func restoreBucket(ctx context.Context, src source.Reader, target string, opts source.RestoreOptions) (*source.Restored, error) {
	bucket, prefix, err := ParseLocation(target)
	if err != nil {
		return nil, err
	}
	var from Location
	if err := src.Meta(BucketMeta, &from); err != nil {
		return nil, fmt.Errorf("source %s: %w", src.Name(), err)
	}
	objs := map[string]Object{}
	if err := src.Meta(ObjectsMeta, &objs); err != nil && !errors.Is(err, source.ErrNoMeta) {
		return nil, fmt.Errorf("source %s: %w", src.Name(), err)
	}
	c, err := connect(ctx, opts.S3, bucket)
	if err != nil {
		return nil, err
	}
	to := Location{Endpoint: c.endpoint, Bucket: bucket, Prefix: prefix}
	if !opts.Force && overlaps(from, to) {
		return nil, &OverSourceError{Source: from, Target: to}
	}
	kp := keyPrefix(prefix)
	res, err := minio.Core{Client: c.c}.ListObjectsV2(bucket, kp, "", "", "", 1)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", to, err)
	}
	empty := len(res.Contents) == 0
	if !empty && !opts.Force {
		return nil, fmt.Errorf("%s: %w (%w)", to, ErrPrefixNotEmpty, source.ErrTargetExists)
	}

	var items []source.Entry
	var markers []string
	for _, e := range src.Entries() {
		switch {
		case e.Type == source.TypeFile:
			if opts.Select == nil || opts.Select(e.Path) {
				items = append(items, e)
			}
		case e.Type == source.TypeDir && e.Path != "." && opts.Select == nil:
			if _, ok := objs[e.Path+"/"]; ok {
				markers = append(markers, e.Path+"/")
			}
		}
	}
	start := time.Now()
	var (
		mu      sync.Mutex
		written int
		started []string
		bytes   int64
	)
	put := func(ctx context.Context, e source.Entry) error {
		mu.Lock()
		started = append(started, kp+e.Path)
		mu.Unlock()
		rc, err := src.Open(ctx, e.Path)
		if err != nil {
			return err
		}
		defer rc.Close()
		m := objs[e.Path]
		po := minio.PutObjectOptions{ContentType: m.ContentType, CacheControl: m.CacheControl,
			ContentDisposition: m.ContentDisposition, ContentEncoding: m.ContentEncoding,
			ContentLanguage: m.ContentLanguage, UserMetadata: m.UserMetadata, StorageClass: m.StorageClass}
		if t, err := time.Parse(time.RFC1123, m.Expires); err == nil {
			po.Expires = t
		}
		if po.ContentType == "" {
			po.ContentType = "application/octet-stream"
		}
		info, err := c.c.PutObject(ctx, bucket, kp+e.Path, rc, e.Size, po)
		if err != nil {
			return fmt.Errorf("put %q: %w", kp+e.Path, err)
		}
		mu.Lock()
		written++
		bytes += info.Size
		mu.Unlock()
		return nil
	}
	err = parallel(ctx, Uploaders, items, put)
	if err == nil {
		for _, k := range markers {
			started = append(started, kp+k)
			if _, err = c.c.PutObject(ctx, bucket, kp+k, strings.NewReader(""), 0, minio.PutObjectOptions{}); err != nil {
				err = fmt.Errorf("put %q: %w", kp+k, err)
				break
			}
			written++
		}
	}
	if err != nil {
		re := &RestoreError{Target: to, Written: written, Started: len(started), Err: err}
		switch {
		case len(started) == 0:
		case !empty:
			re.Left = "the prefix held objects before, and --force may have overwritten some: check it"
		default:
			re.Removed, re.Left = c.removeAll(kp, started)
		}
		return nil, re
	}
	out := &source.Restored{
		Lines: []string{fmt.Sprintf("%d objects (%d bytes) into %s at %s, with their content types and metadata, in %s",
			len(items)+len(markers), bytes, to, c.endpoint, time.Since(start).Round(time.Millisecond))},
		Facts: map[string]any{"target": to.String(), "endpoint": c.endpoint, "objects": len(items) + len(markers), "bytes": bytes,
			"source_location": from.String()},
		NextSteps: []string{fmt.Sprintf("point the application at %s (or copy its objects over %s once checked)", to, from)},
	}
	return out, nil
}

// overlaps reports whether a restore into to would write among from's
// objects: the same endpoint and bucket, and one prefix within the
// other.
func overlaps(from, to Location) bool {
	// Not the endpoint: one server may be reached under several names.
	if from.Bucket != to.Bucket {
		return false
	}
	a, b := keyPrefix(from.Prefix), keyPrefix(to.Prefix)
	return strings.HasPrefix(a, b) || strings.HasPrefix(b, a)
}

// settleTries and settleWait bound removeAll's second look at the prefix.
const (
	settleTries = 5
	settleWait  = 200 * time.Millisecond
)

// removeAll deletes the keys a failed restore began under the prefix kp,
// which was empty before it, then lists the prefix again and deletes what
// it finds, until a listing comes back empty. An upload canceled by the
// client may still complete on the server after the first delete (the
// server had its whole body): such an object would be left behind, with
// the error saying every object was removed.
func (c *client) removeAll(kp string, keys []string) (bool, string) {
	for try := 0; ; try++ {
		if ok, why := c.remove(keys); !ok {
			return false, why
		}
		if try == settleTries {
			return false, fmt.Sprintf("objects kept appearing under %q after %d removals: check it", kp, settleTries+1)
		}
		time.Sleep(settleWait)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		keys = nil // not the caller's slice, which may still be read
		for oi := range c.c.ListObjects(ctx, c.bucket, minio.ListObjectsOptions{Prefix: kp, Recursive: true}) {
			if oi.Err != nil {
				cancel()
				return false, fmt.Sprintf("could not list %q to check the removal: %v", kp, oi.Err)
			}
			keys = append(keys, oi.Key)
		}
		cancel()
		if len(keys) == 0 {
			return true, ""
		}
	}
}

// remove deletes keys, even when the restore was canceled, and reports
// whether every one is gone, else why not.
func (c *client) remove(keys []string) (bool, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ch := make(chan minio.ObjectInfo, len(keys))
	for _, k := range keys {
		ch <- minio.ObjectInfo{Key: k}
	}
	close(ch)
	for re := range c.c.RemoveObjects(ctx, c.bucket, ch, minio.RemoveObjectsOptions{}) {
		if re.Err != nil {
			return false, fmt.Sprintf("could not remove %q: %v", re.ObjectName, re.Err)
		}
	}
	return true, ""
}

// parallel runs fn on every item, n at a time, and returns the first
// error (canceling the rest).
func parallel(ctx context.Context, n int, items []source.Entry, fn func(context.Context, source.Entry) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan source.Entry)
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for e := range jobs {
				if err := fn(ctx, e); err != nil {
					once.Do(func() { first = err; cancel() })
				}
			}
		}()
	}
feed:
	for _, e := range items {
		select {
		case jobs <- e:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		first = ctx.Err()
	}
	return first
}

package storage

import (
	"context"
	"fmt"
	"net/url"
	"strings"
)

// Open opens the store at location: a plain path or a file:// URL gives a
// Local store, s3://bucket/prefix an S3 store (the bucket and prefix of the
// URL override those of s3) wrapped in WithRetry (for s3.RetryBudget). In a bucket that keeps
// versions (versioning or object lock), the S3 store reads through
// WithFirstVersions, so that overwrites and deletes by whoever holds write
// credentials do not change what coffer reads; a bucket whose versioning
// cannot be read (no s3:GetBucketVersioning) is read as unversioned. Open reads no
// environment: every S3 setting comes in s3 (package internal/config builds
// it from the file and the environment).
func Open(ctx context.Context, location string, s3 S3Config) (Store, error) {
	scheme, _, hasScheme := strings.Cut(location, "://")
	switch {
	case !hasScheme:
		return NewLocal(location)
	case scheme == "file":
		u, err := url.Parse(location)
		if err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("open store %s: file url with a host; want file:///path", location)
		}
		if u.Path == "" {
			return nil, fmt.Errorf("open store %s: no path", location)
		}
		return NewLocal(u.Path)
	case scheme == "s3":
		bucket, prefix, err := ParseS3URL(location)
		if err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
		s3.Bucket, s3.Prefix = bucket, prefix
		s, err := NewS3(ctx, s3)
		if err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
		var st Store = s
		if versioned, err := s.Versioning(ctx); err != nil && ctx.Err() != nil {
			return nil, fmt.Errorf("open store: %w", ctx.Err())
		} else if versioned {
			st = WithFirstVersions(s, s)
		}
		return WithRetry(st, RetryOptions{Budget: s3.RetryBudget}), nil
	default:
		// Do not echo the location: it may hold credentials.
		return nil, fmt.Errorf("open store: unsupported scheme %q; want a path, file:// or s3://", scheme)
	}
}

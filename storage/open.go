package storage

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
)

// Open opens the store at location: a plain path or a file:// URL gives a
// Local store, s3://bucket/prefix an S3 store (the bucket and prefix of the
// URL override those of s3) wrapped in WithRetry.
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
		st, err := NewS3(ctx, s3)
		if err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
		return WithRetry(st, RetryOptions{}), nil
	default:
		// Do not echo the location: it may hold credentials.
		return nil, fmt.Errorf("open store: unsupported scheme %q; want a path, file:// or s3://", scheme)
	}
}

// S3ConfigFromEnv reads S3 settings from the environment:
// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION
// (default us-east-1) and COFFER_S3_ENDPOINT ("host[:port]", "https://..."
// or "http://...", the last meaning plain http). The bucket and prefix come
// from the store URL.
func S3ConfigFromEnv() S3Config {
	cfg := S3Config{
		AccessKey:    os.Getenv("AWS_ACCESS_KEY_ID"),
		SecretKey:    os.Getenv("AWS_SECRET_ACCESS_KEY"),
		SessionToken: os.Getenv("AWS_SESSION_TOKEN"),
		Region:       os.Getenv("AWS_REGION"),
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	ep := strings.TrimSpace(os.Getenv("COFFER_S3_ENDPOINT"))
	switch {
	case strings.HasPrefix(ep, "http://"):
		ep, cfg.Insecure = strings.TrimPrefix(ep, "http://"), true
	case strings.HasPrefix(ep, "https://"):
		ep = strings.TrimPrefix(ep, "https://")
	}
	cfg.Endpoint = strings.TrimSuffix(ep, "/")
	// A custom endpoint is almost always a self-hosted server, where
	// virtual-host addressing needs DNS that rarely exists.
	cfg.PathStyle = cfg.Endpoint != ""
	return cfg
}

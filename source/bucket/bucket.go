// Package bucket is the S3 bucket source kind, NAME=s3:BUCKET/PREFIX: the
// objects under a prefix of a bucket, reached with settings and
// credentials of their own (not the repository's).
//
// An object is stored as a file whose path is its key below the prefix,
// under folders made of the key's slash-separated parts, so that a
// bucket's catalog reads like a folder's (ls, find, diff, --include and a
// restore into a folder all treat it as one). Each object's metadata
// (ETag, content type, cache control, content disposition, encoding and
// language, expiry, storage class, user metadata) is kept in the
// encrypted catalog under the source's ObjectsMeta key.
//
// Backups are incremental: an object whose ETag, size and last-modified
// time are those the change cache recorded is referenced without being
// downloaded (source.ObjectTracker). The rest are listed and fetched in
// parallel, with bounded memory.
//
// A snapshot restores into a bucket and prefix (Restore), or into a
// folder like any folder source.
package bucket

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/cofferhq/coffer/source"
	"github.com/cofferhq/coffer/storage"
)

// Kind is the bucket kind's registry entry.
var Kind = source.Kind{
	Name:     "s3",
	Location: "a bucket and prefix, BUCKET[/PREFIX] (its endpoint and credentials: the source's s3 settings)",
	Target:   "bucket and prefix (BUCKET[/PREFIX]; a new, empty prefix unless --force)",
	New: func(name string, spec source.Spec) (source.Source, error) {
		bucket, prefix, err := ParseLocation(spec.Location)
		if err != nil {
			return nil, fmt.Errorf("source %s: %w", name, err)
		}
		return &Source{SourceName: name, Bucket: bucket, Prefix: prefix, S3: spec.S3}, nil
	},
	Restore: restoreBucket,
}

// Metadata keys of a bucket source.
const (
	// BucketMeta holds where the objects came from (a Location).
	BucketMeta = "bucket"
	// ObjectsMeta holds every object's metadata: a map from the object's
	// path in the catalog to its Object.
	ObjectsMeta = "objects"
)

// Location is where a bucket source's objects came from.
type Location struct {
	Endpoint string `json:"endpoint"`
	Bucket   string `json:"bucket"`
	Prefix   string `json:"prefix,omitempty"`
}

// Object is the metadata of one object, as S3 returned it with the
// object.
type Object struct {
	Key                string            `json:"key"`
	ETag               string            `json:"etag"`
	ContentType        string            `json:"content_type,omitempty"`
	CacheControl       string            `json:"cache_control,omitempty"`
	ContentDisposition string            `json:"content_disposition,omitempty"`
	ContentEncoding    string            `json:"content_encoding,omitempty"`
	ContentLanguage    string            `json:"content_language,omitempty"`
	Expires            string            `json:"expires,omitempty"` // the HTTP date, as sent
	StorageClass       string            `json:"storage_class,omitempty"`
	UserMetadata       map[string]string `json:"user_metadata,omitempty"`
}

// ErrLocation is wrapped by ParseLocation's errors.
var ErrLocation = errors.New("not a bucket location")

// ParseLocation splits BUCKET[/PREFIX] (an s3:// prefix is allowed). The
// prefix comes back without slashes at either end.
func ParseLocation(loc string) (bucket, prefix string, err error) {
	loc = strings.TrimPrefix(loc, "s3://")
	bucket, prefix, _ = strings.Cut(loc, "/")
	prefix = strings.Trim(prefix, "/")
	if !validBucket(bucket) {
		return "", "", fmt.Errorf("%q: %w: want BUCKET[/PREFIX], with a bucket name of 3 to 63 lower-case letters, digits, '.' and '-'", loc, ErrLocation)
	}
	if strings.Contains(prefix, "//") {
		return "", "", fmt.Errorf("%q: %w: the prefix has an empty part (//)", loc, ErrLocation)
	}
	return bucket, prefix, nil
}

func validBucket(b string) bool {
	if len(b) < 3 || len(b) > 63 {
		return false
	}
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// keyPrefix is prefix as it starts keys: "" or "p/".
func keyPrefix(prefix string) string {
	if prefix == "" {
		return ""
	}
	return prefix + "/"
}

// String returns s3://BUCKET[/PREFIX].
func (l Location) String() string {
	if l.Prefix == "" {
		return "s3://" + l.Bucket
	}
	return "s3://" + l.Bucket + "/" + l.Prefix
}

// connect opens a client of cfg's endpoint for bucket, checking it exists.
func connect(ctx context.Context, cfg storage.S3Config, bucket string) (*client, error) {
	cfg.Bucket, cfg.Prefix = bucket, ""
	c, endpoint, err := storage.NewS3Client(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &client{c: c, endpoint: endpoint, bucket: bucket}, nil
}

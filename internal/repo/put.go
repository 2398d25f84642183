package repo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/cofferhq/coffer/storage"
)

// PutObject writes data under name, create-if-absent: coffer never replaces
// an object. Every name it writes is a content hash or a fresh random id,
// so an object already there with the same size and SHA-256 is a write
// that landed before (a retried upload whose answer was lost) and counts as
// success. Any other object under that name is an IntegrityError naming it
// that wraps storage.ErrExists.
//
// Every object of a repository is written here, so that a bucket policy
// that demands conditional writes (If-None-Match) never breaks a backup,
// and credentials that can only create objects are enough to write one.
func PutObject(ctx context.Context, st storage.Store, name string, data []byte) error {
	sum := sha256.Sum256(data)
	return PutObjectFrom(ctx, st, name, bytes.NewReader(data), int64(len(data)), hex.EncodeToString(sum[:]))
}

// PutObjectFrom is PutObject for content read from r: size bytes whose hex
// SHA-256 is sum. A store may rewind r to retry.
func PutObjectFrom(ctx context.Context, st storage.Store, name string, r io.ReadSeeker, size int64, sum string) error {
	err := st.Put(ctx, name, r, size, storage.PutOptions{IfNotExists: true})
	if err == nil {
		return nil
	}
	if !errors.Is(err, storage.ErrExists) {
		return fmt.Errorf("write %s: %w", name, err)
	}
	same, cerr := holds(ctx, st, name, size, sum)
	if cerr != nil {
		return fmt.Errorf("write %s: it exists, and reading it back failed: %w", name, cerr)
	}
	if !same {
		return &IntegrityError{Object: name, Err: fmt.Errorf("%w with other contents; coffer never replaces an object", storage.ErrExists)}
	}
	return nil
}

// holds reports whether the object name has exactly size bytes with the
// hex SHA-256 sum.
func holds(ctx context.Context, st storage.Store, name string, size int64, sum string) (bool, error) {
	rc, err := st.Open(ctx, name, 0, -1)
	if err != nil {
		return false, err
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(rc, size+1))
	if err != nil {
		return false, err
	}
	return n == size && hex.EncodeToString(h.Sum(nil)) == sum, nil
}

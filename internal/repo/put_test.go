package repo

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/storage"
)

// landedStore fails the first Put of every object after storing it, as an
// S3 write whose answer was lost does.
type landedStore struct {
	storage.Store
	failed map[string]bool
}

func (s *landedStore) Put(ctx context.Context, name string, r io.Reader, size int64, opts storage.PutOptions) error {
	if err := s.Store.Put(ctx, name, r, size, opts); err != nil {
		return err
	}
	if !s.failed[name] {
		s.failed[name] = true
		return errors.New("connection reset after the upload")
	}
	return nil
}

func TestPutObject(t *testing.T) {
	ctx := context.Background()
	st, err := storage.NewLocal(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("pack contents")
	name := PackName(HashHex(data))
	if err := PutObject(ctx, st, name, data); err != nil {
		t.Fatalf("first write: %v", err)
	}
	// The same object again (a retry whose first attempt landed) is fine.
	if err := PutObject(ctx, st, name, data); err != nil {
		t.Fatalf("second write of the same object: %v", err)
	}
	// Anything else under that name is refused and left alone, whether it
	// differs in size or only in content.
	for _, other := range [][]byte{[]byte("other"), []byte("pack contentS")} {
		err := PutObject(ctx, st, name, other)
		var ie *IntegrityError
		if !errors.As(err, &ie) || ie.Object != name || !errors.Is(err, storage.ErrExists) {
			t.Fatalf("write of other contents: err = %v, want an IntegrityError naming %s wrapping ErrExists", err, name)
		}
		if !strings.Contains(err.Error(), "never replaces") {
			t.Errorf("error %q does not say why", err)
		}
	}
	rc, err := st.Open(ctx, name, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, data) {
		t.Fatalf("object changed to %q", got)
	}
}

// A retried write whose first answer was lost (the retry decorator tries
// again and finds the object) is success.
func TestPutObjectRetried(t *testing.T) {
	ctx := context.Background()
	local, err := storage.NewLocal(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	st := storage.WithRetry(&landedStore{Store: local, failed: map[string]bool{}}, storage.RetryOptions{BaseDelay: 1})
	data := []byte("index contents")
	if err := PutObject(ctx, st, IndexPrefix+HashHex(data), data); err != nil {
		t.Fatalf("retried write: %v", err)
	}
}

package repo_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"sync"
	"testing"

	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/internal/testing/testrepo"
)

// TestChunkIDFunc: a chunk's id is HMAC-SHA256 of its bytes under the
// repository's chunk key, from every goroutine at once (the function
// reuses its HMACs).
func TestChunkIDFunc(t *testing.T) {
	ctx := context.Background()
	host := testrepo.New(t).Host(t)
	s, err := host.Secrets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	idf, err := host.ChunkIDFunc(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Go(func() {
			for i := range 500 {
				b := fmt.Appendf(nil, "chunk %d of goroutine %d", i, g)
				m := hmac.New(sha256.New, s.ChunkKey[:])
				m.Write(b)
				var want repo.ChunkID
				m.Sum(want[:0])
				if got := idf(b); got != want {
					errs <- fmt.Errorf("id of %q = %s, want %s", b, got, want)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

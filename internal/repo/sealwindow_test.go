package repo

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"
)

// TestSealWindow: a sealed document written as a stream (a backup's
// index, open for the whole backup) uses a zstd window of at most
// sealWindow, so its encoder holds that much history and not the chunks'
// 4 MiB; and it still decodes.
func TestSealWindow(t *testing.T) {
	id := mustIdentity(t)
	var ct bytes.Buffer
	var want bytes.Buffer
	err := SealTo(&ct, func(w io.Writer) error {
		for i := range 100000 {
			fmt.Fprintf(io.MultiWriter(w, &want), `{"id":"%064x","o":%d},`, i*7919, i)
		}
		return nil
	}, id.Recipient())
	if err != nil {
		t.Fatal(err)
	}
	r, err := age.Decrypt(&ct, id)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	var h zstd.Header
	if err := h.Decode(plain); err != nil {
		t.Fatal(err)
	}
	if h.WindowSize == 0 || h.WindowSize > sealWindow || sealWindow > 256<<10 {
		t.Fatalf("window %d bytes, want at most %d (256 KiB)", h.WindowSize, sealWindow)
	}
	d, err := zstd.NewReader(bytes.NewReader(plain))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	got, err := io.ReadAll(d)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("decoded %d bytes, want %d", len(got), want.Len())
	}
}

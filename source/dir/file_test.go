package dir

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestFileOneRead: a small file is read with one read(2); the reads after
// it (the chunker reads to io.EOF, twice) make no system call. The
// descriptor is closed after the first read, so a read(2) would fail.
func TestFileOneRead(t *testing.T) {
	p := filepath.Join(t.TempDir(), "small")
	want := bytes.Repeat([]byte("invoice "), 40)
	if err := os.WriteFile(p, want, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := openFile(p, int64(len(want)))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 512<<10)
	n, err := f.Read(buf)
	if err != nil || !bytes.Equal(buf[:n], want) {
		t.Fatalf("Read = %d, %v; want the file's %d bytes", n, err, len(want))
	}
	if err := syscall.Close(f.fd); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if n, err := f.Read(buf); n != 0 || err != io.EOF {
			t.Fatalf("Read after the end = %d, %v; want 0, io.EOF without a read(2)", n, err)
		}
	}
}

// TestFileReadsToTheEnd: a file is read whole whatever lstat said: one
// that lstat gave as empty (as some files in /proc are), one that grew
// since, and one read through a buffer smaller than the file.
func TestFileReadsToTheEnd(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	want := bytes.Repeat([]byte("0123456789"), 1000)
	if err := os.WriteFile(p, want, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		size int64
		buf  int
	}{
		{"empty in lstat", 0, 4096},
		{"grew since lstat", 100, 64 << 10},
		{"shrank since lstat", 20000, 4096},
		{"small buffer", int64(len(want)), 333},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := openFile(p, tc.size)
			if err != nil {
				t.Fatal(err)
			}
			defer f.close()
			var got []byte
			buf := make([]byte, tc.buf)
			for {
				n, err := f.Read(buf)
				got = append(got, buf[:n]...)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("read %d bytes, want %d", len(got), len(want))
			}
			st, err := f.stat()
			if err != nil || st.Size != int64(len(want)) {
				t.Fatalf("stat = %v, %v", st, err)
			}
		})
	}
}

// TestFileErrors: what cannot be opened or read is an *fs.PathError that
// names the operation, as os.File's are (the source tells a read error
// from a failure of the backup by it).
func TestFileErrors(t *testing.T) {
	d := t.TempDir()
	if _, err := openFile(filepath.Join(d, "missing"), 0); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("open of a missing file: %v, want fs.ErrNotExist", err)
	}
	link := filepath.Join(d, "link")
	if err := os.Symlink(d, link); err != nil {
		t.Fatal(err)
	}
	if _, err := openFile(link, 0); !errors.Is(err, syscall.ELOOP) {
		t.Fatalf("open of a symlink: %v, want ELOOP (not followed)", err)
	}
	f, err := openFile(d, 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer f.close()
	_, err = f.Read(make([]byte, 10))
	var pe *fs.PathError
	if !errors.As(err, &pe) || pe.Op != "read" || pe.Path != d || !errors.Is(err, syscall.EISDIR) {
		t.Fatalf("read of a folder: %#v, want a read *fs.PathError for EISDIR", err)
	}
}

// TestFileFIFO: a FIFO put in a file's place after lstat (anyone who can
// write to the folder can) neither blocks the open, which it did until a
// writer came, stalling the backup for good, nor passes for the file: it
// reads as empty, and its stat is not the regular file's.
func TestFileFIFO(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	type result struct {
		f   *file
		err error
	}
	done := make(chan result, 1)
	go func() {
		f, err := openFile(p, 100)
		done <- result{f, err}
	}()
	var f *file
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatal(r.err)
		}
		f = r.f
	case <-time.After(5 * time.Second):
		// Unblock the open so that the test ends.
		if w, err := os.OpenFile(p, os.O_WRONLY, 0); err == nil {
			w.Close()
		}
		t.Fatal("openFile of a FIFO blocked")
	}
	defer f.close()
	if n, err := f.Read(make([]byte, 64)); n != 0 || err != io.EOF {
		t.Fatalf("Read of a FIFO without a writer = %d, %v; want 0, io.EOF", n, err)
	}
	st, err := f.stat()
	if err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFIFO {
		t.Fatalf("stat = %v, %v; want a FIFO's", st, err)
	}
}

package backup

import (
	"errors"
	"io/fs"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cofferhq/coffer/internal/repo"
)

// TestKnownIndexTempErrors: the index of known chunks writes and reads
// its tables in TMPDIR while a source's files are chunked. Its errors must
// not be *fs.PathError: the folder source takes a PathError from its
// writer for a read error of the file it is reading, so a full TMPDIR
// would have been reported as that file's failure. They name TMPDIR.
func TestKnownIndexTempErrors(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	check := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s: no error", what)
		}
		var pe *fs.PathError
		if errors.As(err, &pe) || !strings.Contains(err.Error(), "TMPDIR") {
			t.Fatalf("%s: error %q (%T): want one naming TMPDIR, not a *fs.PathError", what, err, err)
		}
	}
	slot := &packSlot{sha: "aa", size: 1 << 20}
	id := func(i int) repo.ChunkID {
		var c repo.ChunkID
		c[0], c[1] = byte(i), byte(i>>8)
		return c
	}

	// Writing a table fails: the file size limit gives EFBIG on the write,
	// as a full disk gives ENOSPC.
	k := newKnownIndex()
	defer k.close()
	k.memMax = 4
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	lim := old
	lim.Cur = 1
	if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &lim); err != nil {
		t.Fatal(err)
	}
	var err error
	for i := 0; i < 64 && err == nil; i++ {
		err = k.add(id(i), loc{pack: slot, offset: int64(i) * 100, length: 100, raw: 100})
	}
	if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	check("write", err)

	// Reading a table fails.
	k2 := newKnownIndex()
	defer k2.close()
	k2.memMax = 4
	for i := 0; i < 64; i++ {
		if err := k2.add(id(i), loc{pack: slot, offset: int64(i) * 100, length: 100, raw: 100}); err != nil {
			t.Fatal(err)
		}
	}
	if len(k2.tables) == 0 {
		t.Fatal("no table written")
	}
	for _, tb := range k2.tables {
		tb.f.Close()
	}
	_, _, err = k2.get(id(0))
	check("read", err)
}

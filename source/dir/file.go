package dir

import (
	"io"
	"io/fs"
	"syscall"

	"golang.org/x/sys/unix"
)

// A file is a regular file open for reading through its descriptor with
// plain read(2) calls. A small file is read with one: an *os.File costs
// five more system calls a file (four fcntl and an epoll_ctl, as it offers
// the descriptor to the poller, which a regular file refuses), and the
// chunker's reads after the end two more, which is most of the system
// calls of a tree of small files (doc/performance.md).
//
// A read shorter than asked, once the size that lstat gave is reached, is
// taken as the end: a regular file returns a short read only at its end.
// A file that grew meanwhile has another size in stat, after the read, and
// is reported changed. A file that lstat gave as empty (some in /proc are,
// and are not) is read until read(2) returns 0.
//
// It is opened with O_NONBLOCK, which a regular file ignores: a FIFO put
// in a file's place between lstat and open (anyone who can write to the
// folder can) would otherwise block the open, and the backup, until a
// writer came. Opened so, the FIFO reads as empty or fails with EAGAIN,
// and the stat after the read reports the file changed.
type file struct {
	fd   int
	name string
	size int64 // from lstat, before opening
	n    int64 // bytes read
	eof  bool
}

func openFile(name string, size int64) (*file, error) {
	return openFileAt(unix.AT_FDCWD, name, name, size)
}

// openFileAt opens the file name in the folder dirfd (a descriptor, or
// AT_FDCWD); p is its full path, for errors.
func openFileAt(dirfd int, name, p string, size int64) (*file, error) {
	if len(p) >= pathMax {
		return nil, &fs.PathError{Op: "open", Path: p, Err: syscall.ENAMETOOLONG}
	}
	fd, err := retry(func() (int, error) {
		return syscall.Openat(dirfd, name, syscall.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
	})
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: p, Err: err}
	}
	return &file{fd: fd, name: p, size: size}, nil
}

func (f *file) Read(p []byte) (int, error) {
	if f.eof {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var err error
	for {
		n, err = syscall.Read(f.fd, p)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: err}
	}
	if n == 0 {
		f.eof = true
		return 0, io.EOF
	}
	f.n += int64(n)
	if n < len(p) && f.size > 0 && f.n >= f.size {
		f.eof = true
	}
	return n, nil
}

// stat returns the open file's state.
func (f *file) stat() (*syscall.Stat_t, error) {
	var st syscall.Stat_t
	var err error
	for {
		err = syscall.Fstat(f.fd, &st)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		return nil, &fs.PathError{Op: "stat", Path: f.name, Err: err}
	}
	return &st, nil
}

func (f *file) close() { syscall.Close(f.fd) }

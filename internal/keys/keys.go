package keys

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"filippo.io/age"
)

// Names of the files in a key folder. Scripts rely on them.
const (
	IdentityFile   = "identity.txt"
	RecipientsFile = "recipients.txt"
	SigningKeyFile = "signing.key"
	SigningPubFile = "signing.pub"
)

// Generated describes a key folder written by [Generate].
type Generated struct {
	Dir           string
	Recipient     string // the age1... recipient in recipients.txt
	SigningPublic string // the text form of the public key in signing.pub
}

// Generate creates a new key folder in dir: a fresh age X25519 identity and
// an Ed25519 signing key. It creates dir with mode 0700 if needed and never
// overwrites an existing file: if any of the four files exists it returns an
// error wrapping [fs.ErrExist] that names the file, and writes nothing.
func Generate(dir string) (*Generated, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create key folder: %w", err)
	}
	for _, name := range []string{IdentityFile, RecipientsFile, SigningKeyFile, SigningPubFile} {
		p := filepath.Join(dir, name)
		if _, err := os.Lstat(p); err == nil {
			return nil, fmt.Errorf("key file %s: %w", p, fs.ErrExist)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("check key file: %w", err)
		}
	}

	id, err := age.GenerateX25519Identity()
	if err != nil {
		return nil, fmt.Errorf("generate age identity: %w", err)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	recipient := id.Recipient().String()
	sk := &SigningKey{priv: priv}
	pk := PublicKey(pub)

	files := []struct {
		name string
		data string
		mode fs.FileMode
	}{
		{IdentityFile, fmt.Sprintf("# created: %s\n# public key: %s\n%s\n",
			time.Now().Format(time.RFC3339), recipient, id), 0o600},
		{RecipientsFile, recipient + "\n", 0o644},
		{SigningKeyFile, sk.text(), 0o600},
		{SigningPubFile, "# coffer signing public key (Ed25519)\n" + pk.String() + "\n", 0o644},
	}
	var written []string
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		if err := writeNew(p, []byte(f.data), f.mode); err != nil {
			for _, w := range written {
				os.Remove(w)
			}
			return nil, err
		}
		written = append(written, p)
	}
	if err := syncDir(dir); err != nil {
		return nil, err
	}
	return &Generated{Dir: dir, Recipient: recipient, SigningPublic: pk.String()}, nil
}

// writeNew writes data to a temporary file next to path, syncs it, and
// links it into place, failing with an error wrapping fs.ErrExist if path
// already exists.
func writeNew(path string, data []byte, mode fs.FileMode) (err error) {
	dir, name := filepath.Split(path)
	f, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return fmt.Errorf("write key file %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(mode); err != nil && runtime.GOOS != "windows" {
		f.Close()
		return fmt.Errorf("write key file %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write key file %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write key file %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write key file %s: %w", path, err)
	}
	// A hard link, unlike a rename, never replaces an existing file.
	err = os.Link(tmp, path)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("key file %s: %w", path, fs.ErrExist)
	}
	if err != nil {
		// Some file systems have no hard links: check, then rename.
		if _, serr := os.Lstat(path); serr == nil {
			return fmt.Errorf("key file %s: %w", path, fs.ErrExist)
		}
		if err := os.Rename(tmp, path); err != nil {
			return fmt.Errorf("write key file %s: %w", path, err)
		}
	}
	return nil
}

func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync key folder: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync key folder: %w", err)
	}
	return nil
}

// PermissionError reports a key file that group or others may access.
type PermissionError struct {
	Path string
	Mode fs.FileMode
}

func (e *PermissionError) Error() string {
	what := "accessible"
	switch {
	case e.Mode&0o044 != 0:
		what = "readable"
	case e.Mode&0o022 != 0:
		what = "writable"
	}
	return fmt.Sprintf("key file %s is %s by group or others (mode %04o)", e.Path, what, e.Mode.Perm())
}

// Hint says how to fix the permissions.
func (e *PermissionError) Hint() string {
	return "chmod 600 " + shellQuote(e.Path)
}

// CheckPrivate checks that path is a regular file that neither group nor
// others may access. It returns a [*PermissionError] if they may, and an
// error wrapping [fs.ErrNotExist] that names path if it does not exist.
// On Windows only existence is checked.
func CheckPrivate(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("key file %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("key file %s is not a regular file", path)
	}
	if runtime.GOOS == "windows" {
		return nil
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return &PermissionError{Path: path, Mode: fi.Mode().Perm()}
	}
	return nil
}

// readPrivate checks path with CheckPrivate and reads at most limit bytes.
func readPrivate(path string, limit int64) ([]byte, error) {
	if err := CheckPrivate(path); err != nil {
		return nil, err
	}
	return readLimited(path, limit)
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("key file %s is too large", path)
	}
	return b, nil
}

func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./+=:@,%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

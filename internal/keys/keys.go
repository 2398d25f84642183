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

// Names of the files and folders of a key folder. Scripts rely on them.
// A key folder written by [Generate] holds one folder per role, so that no
// folder holds two roles' secrets, and the public files at its top:
//
//	DIR/owner/owner.key        the owner key (0600; folder 0700): keep it offline
//	DIR/host/signing.key       the backup host's signing key (0600; folder 0700)
//	DIR/restore/identity.txt   the restore operators' age identity (0600; folder 0700)
//	DIR/owner.pub              the owner public key: the pin
//	DIR/signing.pub            the host's public key and box recipient, for init and key add-host
//	DIR/recipients.txt         the identity's age recipient, for init and key add-recipient
const (
	OwnerDir   = "owner"
	HostDir    = "host"
	RestoreDir = "restore"

	OwnerKeyFile   = "owner.key"
	OwnerPubFile   = "owner.pub"
	SigningKeyFile = "signing.key"
	SigningPubFile = "signing.pub"
	IdentityFile   = "identity.txt"
	RecipientsFile = "recipients.txt"
)

// Role is one of the three key roles.
type Role string

// The key roles.
const (
	RoleOwner   Role = "owner"
	RoleHost    Role = "host"
	RoleRestore Role = "restore"
)

// Roles lists the roles in the order Generate writes them.
var Roles = []Role{RoleOwner, RoleHost, RoleRestore}

// GenerateOptions say which roles' keys Generate makes.
type GenerateOptions struct {
	// Roles to generate; empty means all three.
	Roles []Role
	// Owner is the owner public key that a host key or an identity made
	// without the owner role carries on its "# coffer owner:" line.
	Owner OwnerPublic
}

// Generated describes a key folder written by [Generate]. Paths of files
// not written are empty.
type Generated struct {
	Dir string
	// Owner is the owner public key (generated, or given).
	Owner OwnerPublic
	// Recipient is the age1... recipient in recipients.txt.
	Recipient string
	// SigningPublic is the text form of the host public key in signing.pub.
	SigningPublic string
	// HostBox is the host's box recipient.
	HostBox string

	OwnerKey, OwnerPub, SigningKey, SigningPub, Identity, Recipients string
}

// Generate creates a key folder with all three roles in dir (see the file
// names above).
func Generate(dir string) (*Generated, error) { return GenerateWith(dir, GenerateOptions{}) }

// GenerateWith creates the keys of the roles o names in dir. It creates
// dir (0755) and the role folders (0700) if needed and never overwrites an
// existing file: if any file it would write exists it returns an error
// wrapping [fs.ErrExist] that names the file, and writes nothing.
func GenerateWith(dir string, o GenerateOptions) (*Generated, error) {
	roles := map[Role]bool{}
	for _, r := range o.Roles {
		if r != RoleOwner && r != RoleHost && r != RoleRestore {
			return nil, fmt.Errorf("unknown key role %q (owner, host or restore)", r)
		}
		roles[r] = true
	}
	if len(roles) == 0 {
		for _, r := range Roles {
			roles[r] = true
		}
	}
	if roles[RoleOwner] && o.Owner != nil {
		return nil, errors.New("an owner key is being generated: no other owner public key can be given")
	}
	g := &Generated{Dir: dir, Owner: o.Owner}
	type file struct {
		path *string
		rel  string
		data string
		mode fs.FileMode
	}
	var files []file
	var subdirs []string
	if roles[RoleOwner] {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate owner key: %w", err)
		}
		ok := &OwnerKey{priv: priv}
		g.Owner = ok.Public()
		subdirs = append(subdirs, OwnerDir)
		files = append(files,
			file{&g.OwnerKey, filepath.Join(OwnerDir, OwnerKeyFile), ok.text(), 0o600},
			file{&g.OwnerPub, OwnerPubFile, "# coffer owner public key: the pin every reader of the repository checks\n" +
				"# fingerprint " + g.Owner.Fingerprint() + "\n" + g.Owner.String() + "\n", 0o644})
	}
	if roles[RoleHost] {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate signing key: %w", err)
		}
		sk := &SigningKey{priv: priv}
		hp := sk.HostPublic()
		g.SigningPublic, g.HostBox = hp.Key.String(), hp.Box.String()
		subdirs = append(subdirs, HostDir)
		files = append(files,
			file{&g.SigningKey, filepath.Join(HostDir, SigningKeyFile), sk.text(g.Owner), 0o600},
			file{&g.SigningPub, SigningPubFile, hp.text(), 0o644})
	}
	if roles[RoleRestore] {
		id, err := age.GenerateX25519Identity()
		if err != nil {
			return nil, fmt.Errorf("generate age identity: %w", err)
		}
		g.Recipient = id.Recipient().String()
		owner := ""
		if g.Owner != nil {
			owner = OwnerLinePrefix + g.Owner.String() + "\n"
		}
		subdirs = append(subdirs, RestoreDir)
		files = append(files,
			file{&g.Identity, filepath.Join(RestoreDir, IdentityFile), fmt.Sprintf("# created: %s\n# public key: %s\n%s%s\n",
				time.Now().Format(time.RFC3339), g.Recipient, owner, id), 0o600},
			file{&g.Recipients, RecipientsFile, g.Recipient + "\n", 0o644})
	}

	for _, f := range files {
		p := filepath.Join(dir, f.rel)
		if _, err := os.Lstat(p); err == nil {
			return nil, fmt.Errorf("key file %s: %w", p, fs.ErrExist)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("check key file: %w", err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create key folder: %w", err)
	}
	var made []string
	for _, sub := range subdirs {
		p := filepath.Join(dir, sub)
		err := os.Mkdir(p, 0o700)
		if err == nil {
			made = append(made, p)
			continue
		}
		if fi, serr := os.Lstat(p); serr != nil || !fi.IsDir() {
			return nil, fmt.Errorf("create key folder: %w", err)
		}
	}
	var written []string
	for _, f := range files {
		p := filepath.Join(dir, f.rel)
		if err := writeNew(p, []byte(f.data), f.mode); err != nil {
			for _, w := range written {
				os.Remove(w)
			}
			for _, m := range made {
				os.Remove(m)
			}
			return nil, err
		}
		written = append(written, p)
		*f.path = p
	}
	for _, d := range append(subdirs, ".") {
		if err := syncDir(filepath.Join(dir, d)); err != nil {
			return nil, err
		}
	}
	return g, nil
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

// Path returns where a key folder written by [Generate] keeps the file
// called name: owner.key, signing.key and identity.txt in their role's
// folder, the public files at the top.
func Path(dir, name string) string {
	switch name {
	case OwnerKeyFile:
		return filepath.Join(dir, OwnerDir, name)
	case SigningKeyFile:
		return filepath.Join(dir, HostDir, name)
	case IdentityFile:
		return filepath.Join(dir, RestoreDir, name)
	}
	return filepath.Join(dir, name)
}

package keys

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/cofferhq/coffer/internal/testing/testutil"
	"golang.org/x/crypto/ssh"
)

func generate(t *testing.T) (*Generated, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "keys")
	g, err := Generate(dir)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	return g, dir
}

func encrypt(t *testing.T, plain []byte, rs ...age.Recipient) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, rs...)
	if err != nil {
		t.Fatalf("age.Encrypt: %v", err)
	}
	if _, err := w.Write(plain); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func decrypt(t *testing.T, ct []byte, ids ...age.Identity) []byte {
	t.Helper()
	r, err := age.Decrypt(bytes.NewReader(ct), ids...)
	if err != nil {
		t.Fatalf("age.Decrypt: %v", err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read decrypted: %v", err)
	}
	return b
}

func writeFile(t *testing.T, name, data string, mode fs.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // umask
		t.Fatal(err)
	}
	return p
}

func TestGenerate(t *testing.T) {
	g, dir := generate(t)

	for _, d := range []struct {
		path string
		mode fs.FileMode
	}{{dir, 0o755}, {filepath.Join(dir, OwnerDir), 0o700}, {filepath.Join(dir, HostDir), 0o700}, {filepath.Join(dir, RestoreDir), 0o700}} {
		fi, err := os.Stat(d.path)
		if err != nil {
			t.Fatal(err)
		}
		// The top folder's mode depends on the umask; it must never be
		// writable by others.
		if got := fi.Mode().Perm(); got != d.mode && (d.mode == 0o700 || got&0o022 != 0) {
			t.Errorf("%s mode = %04o, want %04o", d.path, got, d.mode)
		}
	}
	for name, want := range map[string]fs.FileMode{
		OwnerKeyFile: 0o600, OwnerPubFile: 0o644, IdentityFile: 0o600, RecipientsFile: 0o644, SigningKeyFile: 0o600, SigningPubFile: 0o644,
	} {
		fi, err := os.Stat(Path(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s mode = %04o, want %04o", name, got, want)
		}
	}
	for sub, want := range map[string]int{".": 6, OwnerDir: 1, HostDir: 1, RestoreDir: 1} {
		entries, _ := os.ReadDir(filepath.Join(dir, sub))
		if got := len(entries); got != want {
			t.Errorf("key folder %s has %d entries, want %d (temporary files left?)", sub, got, want)
		}
	}
	for name, want := range map[string]string{OwnerKeyFile: g.OwnerKey, OwnerPubFile: g.OwnerPub, IdentityFile: g.Identity,
		RecipientsFile: g.Recipients, SigningKeyFile: g.SigningKey, SigningPubFile: g.SigningPub} {
		if got := Path(dir, name); got != want {
			t.Errorf("Generated path of %s = %q, want %q", name, want, got)
		}
	}

	// identity.txt is in age-keygen's format and matches recipients.txt.
	idText, _ := os.ReadFile(Path(dir, IdentityFile))
	lines := strings.Split(string(idText), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "# created: ") ||
		lines[1] != "# public key: "+g.Recipient || lines[2] != OwnerLinePrefix+g.Owner.String() ||
		!strings.HasPrefix(lines[3], "AGE-SECRET-KEY-1") || lines[4] != "" {
		t.Errorf("identity.txt is not in age-keygen format with the owner line:\n%s", idText)
	}
	ids, err := age.ParseIdentities(bytes.NewReader(idText))
	if err != nil {
		t.Fatalf("age.ParseIdentities(identity.txt): %v", err)
	}
	recText, _ := os.ReadFile(Path(dir, RecipientsFile))
	if got, want := string(recText), ids[0].(*age.X25519Identity).Recipient().String()+"\n"; got != want {
		t.Errorf("recipients.txt = %q, want %q", got, want)
	}
	if got, want := strings.TrimSpace(string(recText)), g.Recipient; got != want {
		t.Errorf("Generated.Recipient = %q, want %q", want, got)
	}

	// Our loaders agree.
	rs, err := LoadRecipientsFile(Path(dir, RecipientsFile))
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := LoadIdentities(Path(dir, IdentityFile))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(decrypt(t, encrypt(t, []byte("hi"), AgeRecipients(rs)...), loaded...)), "hi"; got != want {
		t.Errorf("round trip = %q, want %q", got, want)
	}
	sk, err := LoadSigningKey(Path(dir, SigningKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	pk, err := LoadPublicKey(Path(dir, SigningPubFile))
	if err != nil {
		t.Fatal(err)
	}
	if !sk.Public().Equal(pk) || pk.String() != g.SigningPublic {
		t.Errorf("signing.pub does not match signing.key")
	}
	hp, err := LoadHostPublic(Path(dir, SigningPubFile))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := hp.Box.String(), sk.BoxIdentity().Recipient().String(); got != want || got != g.HostBox {
		t.Errorf("signing.pub box = %s, want %s (derived from signing.key)", got, want)
	}

	// The owner: owner.key, owner.pub, and the pin in the host's and the
	// operator's files.
	ok, err := LoadOwnerKey(Path(dir, OwnerKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	op, err := LoadOwnerPublic(Path(dir, OwnerPubFile))
	if err != nil {
		t.Fatal(err)
	}
	if !ok.Public().Equal(op) || !op.Equal(g.Owner) {
		t.Errorf("owner.pub does not match owner.key")
	}
	for _, f := range []string{IdentityFile, SigningKeyFile} {
		pin, err := OwnerPin(Path(dir, f))
		if err != nil || !pin.Equal(op) {
			t.Errorf("OwnerPin(%s) = %v, %v; want the owner key", f, pin, err)
		}
	}
	if pin, err := OwnerPin(Path(dir, RecipientsFile)); err != nil || pin != nil {
		t.Errorf("OwnerPin(recipients.txt) = %v, %v; want none", pin, err)
	}
}

func TestGenerateRefusesOverwrite(t *testing.T) {
	for _, name := range []string{OwnerKeyFile, OwnerPubFile, IdentityFile, RecipientsFile, SigningKeyFile, SigningPubFile} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			p := Path(dir, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte("keep me"), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Generate(dir)
			if !errors.Is(err, fs.ErrExist) {
				t.Fatalf("Generate over %s: err = %v, want fs.ErrExist", name, err)
			}
			if !strings.Contains(err.Error(), name) {
				t.Errorf("error %q does not name %s", err, name)
			}
			if b, _ := os.ReadFile(p); string(b) != "keep me" {
				t.Errorf("%s was overwritten", name)
			}
			n := 0
			filepath.WalkDir(dir, func(_ string, d fs.DirEntry, _ error) error {
				if !d.IsDir() {
					n++
				}
				return nil
			})
			if n != 1 {
				t.Errorf("Generate wrote files despite refusing: %d files", n)
			}
		})
	}
	_, dir := generate(t)
	if _, err := Generate(dir); !errors.Is(err, fs.ErrExist) {
		t.Errorf("second Generate: err = %v, want fs.ErrExist", err)
	}
}

// TestGenerateRoles: a new host key or identity for an existing owner
// carries that owner's pin; the owner role cannot take another owner.
func TestGenerateRoles(t *testing.T) {
	g, _ := generate(t)
	dir := filepath.Join(t.TempDir(), "newhost")
	h, err := GenerateWith(dir, GenerateOptions{Roles: []Role{RoleHost}, Owner: g.Owner})
	if err != nil {
		t.Fatal(err)
	}
	if h.OwnerKey != "" || h.Identity != "" || h.SigningKey == "" || h.SigningPub == "" {
		t.Errorf("host-only Generate wrote %+v", h)
	}
	if pin, err := OwnerPin(h.SigningKey); err != nil || !pin.Equal(g.Owner) {
		t.Errorf("new host key's pin = %v, %v", pin, err)
	}
	if _, err := os.Stat(filepath.Join(dir, OwnerDir)); err == nil {
		t.Error("host-only Generate made an owner folder")
	}
	// The same folder takes a restore identity next.
	r, err := GenerateWith(dir, GenerateOptions{Roles: []Role{RoleRestore}, Owner: g.Owner})
	if err != nil || r.Identity == "" {
		t.Fatalf("restore-only Generate: %+v, %v", r, err)
	}
	if _, err := GenerateWith(t.TempDir(), GenerateOptions{Roles: []Role{RoleOwner}, Owner: g.Owner}); err == nil {
		t.Error("Generate(owner role, another owner) = nil error")
	}
	if _, err := GenerateWith(t.TempDir(), GenerateOptions{Roles: []Role{"admin"}}); err == nil {
		t.Error("Generate(unknown role) = nil error")
	}
	// Without an owner, no pin line.
	n, err := GenerateWith(filepath.Join(t.TempDir(), "k"), GenerateOptions{Roles: []Role{RoleRestore}})
	if err != nil {
		t.Fatal(err)
	}
	if pin, err := OwnerPin(n.Identity); err != nil || pin != nil {
		t.Errorf("OwnerPin(identity without owner) = %v, %v", pin, err)
	}
}

func TestAgeCLI(t *testing.T) {
	agePath, err := exec.LookPath("age")
	if err != nil {
		testutil.Missing(t, "age binary not on PATH (Debian package age)")
	}
	_, dir := generate(t)
	plain := []byte("coffer interop test\n")
	tmp := t.TempDir()
	in := filepath.Join(tmp, "plain")
	if err := os.WriteFile(in, plain, 0o600); err != nil {
		t.Fatal(err)
	}

	// age CLI encrypts to recipients.txt, we decrypt.
	out := filepath.Join(tmp, "cli.age")
	if b, err := exec.Command(agePath, "-R", Path(dir, RecipientsFile), "-o", out, in).CombinedOutput(); err != nil {
		t.Fatalf("age -R: %v\n%s", err, b)
	}
	ct, _ := os.ReadFile(out)
	ids, err := LoadIdentities(Path(dir, IdentityFile))
	if err != nil {
		t.Fatal(err)
	}
	if got := decrypt(t, ct, ids...); !bytes.Equal(got, plain) {
		t.Errorf("decrypted %q, want %q", got, plain)
	}

	// We encrypt, the age CLI decrypts with identity.txt.
	rs, err := LoadRecipientsFile(Path(dir, RecipientsFile))
	if err != nil {
		t.Fatal(err)
	}
	ours := filepath.Join(tmp, "ours.age")
	if err := os.WriteFile(ours, encrypt(t, plain, AgeRecipients(rs)...), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := exec.Command(agePath, "-d", "-i", Path(dir, IdentityFile), ours).Output()
	if err != nil {
		t.Fatalf("age -d: %v", err)
	}
	if !bytes.Equal(got, plain) {
		t.Errorf("age -d gave %q, want %q", got, plain)
	}
}

func TestSSHEd25519(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub)))
	r, err := ParseRecipient(line + " alice@example")
	if err != nil {
		t.Fatalf("ParseRecipient(ssh-ed25519): %v", err)
	}
	if got, want := r.Text, line; got != want {
		t.Errorf("Text = %q, want %q (comment dropped)", got, want)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	p := writeFile(t, "id_ed25519", string(pem.EncodeToMemory(block)), 0o600)
	ids, err := LoadIdentities(p)
	if err != nil {
		t.Fatalf("LoadIdentities(ssh key): %v", err)
	}
	if got := decrypt(t, encrypt(t, []byte("ssh"), r), ids...); string(got) != "ssh" {
		t.Errorf("round trip = %q", got)
	}

	// A passphrase-protected key gets a clear error without key material.
	block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	pemText := string(pem.EncodeToMemory(block))
	p = writeFile(t, "id_enc", pemText, 0o600)
	_, err = LoadIdentities(p)
	if err == nil || !strings.Contains(err.Error(), "passphrase-protected") {
		t.Fatalf("LoadIdentities(encrypted ssh key) = %v, want passphrase-protected error", err)
	}
	assertNoLeak(t, err, pemText)
}

func TestSSHRSARecipient(t *testing.T) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub)))
	rs, err := ParseRecipients(strings.NewReader("# rsa\n"+line+" bob\n"), "rsa.txt")
	if err != nil {
		t.Fatalf("ParseRecipients(ssh-rsa): %v", err)
	}
	if got, want := rs[0].Text, line; got != want {
		t.Errorf("Text = %q, want %q", got, want)
	}
	block, err := ssh.MarshalPrivateKey(k, "")
	if err != nil {
		t.Fatal(err)
	}
	p := writeFile(t, "id_rsa", string(pem.EncodeToMemory(block)), 0o600)
	ids, err := LoadIdentities(p)
	if err != nil {
		t.Fatalf("LoadIdentities(rsa): %v", err)
	}
	if got := decrypt(t, encrypt(t, []byte("rsa"), AgeRecipients(rs)...), ids...); string(got) != "rsa" {
		t.Errorf("round trip = %q", got)
	}
}

func TestCheckPrivate(t *testing.T) {
	for _, mode := range []fs.FileMode{0o644, 0o640, 0o604, 0o620} {
		p := writeFile(t, "key", "x", mode)
		err := CheckPrivate(p)
		var pe *PermissionError
		if !errors.As(err, &pe) {
			t.Fatalf("CheckPrivate(%04o) = %v, want *PermissionError", mode, err)
		}
		if pe.Path != p || pe.Mode != mode {
			t.Errorf("PermissionError = %+v, want path %s mode %04o", pe, p, mode)
		}
		if got, want := pe.Hint(), "chmod 600 "+p; got != want {
			t.Errorf("Hint() = %q, want %q", got, want)
		}
		if !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "(mode "+octal(mode)+")") {
			t.Errorf("error %q lacks path or mode", err)
		}
	}
	if got, want := (&PermissionError{Path: "/k", Mode: 0o644}).Error(), "key file /k is readable by group or others (mode 0644)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if got, want := (&PermissionError{Path: "/my keys/k", Mode: 0o644}).Hint(), "chmod 600 '/my keys/k'"; got != want {
		t.Errorf("Hint() = %q, want %q", got, want)
	}
	for _, mode := range []fs.FileMode{0o600, 0o400} {
		if err := CheckPrivate(writeFile(t, "key", "x", mode)); err != nil {
			t.Errorf("CheckPrivate(%04o) = %v, want nil", mode, err)
		}
	}
	missing := filepath.Join(t.TempDir(), "nope")
	err := CheckPrivate(missing)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("CheckPrivate(missing) = %v, want fs.ErrNotExist naming the path", err)
	}
	if err := CheckPrivate(t.TempDir()); err == nil {
		t.Errorf("CheckPrivate(dir) = nil, want error")
	}
}

func octal(m fs.FileMode) string {
	const digits = "01234567"
	return string([]byte{'0', digits[m>>6&7], digits[m>>3&7], digits[m&7]})
}

func TestLoadersRefusePublicModes(t *testing.T) {
	_, dir := generate(t)
	for _, name := range []string{IdentityFile, SigningKeyFile, OwnerKeyFile} {
		p := Path(dir, name)
		if err := os.Chmod(p, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var pe *PermissionError
	if _, err := LoadIdentities(Path(dir, IdentityFile)); !errors.As(err, &pe) {
		t.Errorf("LoadIdentities(0644) = %v, want *PermissionError", err)
	}
	if _, err := LoadSigningKey(Path(dir, SigningKeyFile)); !errors.As(err, &pe) {
		t.Errorf("LoadSigningKey(0644) = %v, want *PermissionError", err)
	}
	if _, err := LoadOwnerKey(Path(dir, OwnerKeyFile)); !errors.As(err, &pe) {
		t.Errorf("LoadOwnerKey(0644) = %v, want *PermissionError", err)
	}
	if _, _, err := LoadOwner(Path(dir, OwnerKeyFile)); !errors.As(err, &pe) {
		t.Errorf("LoadOwner(owner.key 0644) = %v, want *PermissionError", err)
	}
}

func assertNoLeak(t *testing.T, err error, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		for _, line := range strings.Split(s, "\n") {
			line = strings.TrimSpace(line)
			if len(line) < 12 || strings.HasPrefix(line, "-----") || strings.HasPrefix(line, "#") {
				continue
			}
			// Any 12-character window of a secret line is a leak.
			for i := 12; i <= len(line); i++ {
				if w := line[i-12 : i]; strings.Contains(err.Error(), w) && !strings.HasPrefix(w, "AGE-SECRET-K") && !strings.HasPrefix(w, "coffer-signi") && !strings.HasPrefix(w, "coffer-owner") {
					t.Fatalf("error %q leaks key material %q", err, w)
				}
			}
		}
	}
}

// otherLast returns s with its last character replaced by another bech32
// character (a single changed character always fails the checksum).
func otherLast(s string) string {
	c := byte('q')
	if s[len(s)-1] == c {
		c = 'p'
	}
	return s[:len(s)-1] + string(c)
}

func TestParseRecipientsErrors(t *testing.T) {
	id, _ := age.GenerateX25519Identity()
	good := id.Recipient().String()
	secret := id.String()
	// A recipient whose last character is already 'q': the "bad age" case
	// must change it too (it once swapped the last character for 'q',
	// which left such a recipient valid, about one run in 32).
	endsInQ := good
	for endsInQ[len(endsInQ)-1] != 'q' {
		q, _ := age.GenerateX25519Identity()
		endsInQ = q.Recipient().String()
	}
	for _, tc := range []struct {
		name, input, want string
	}{
		{"identity", "# c\n" + good + "\n\n" + secret + "\n", "keys.txt: line 4: found an identity, not a recipient"},
		{"lowercase identity", good + "\n" + strings.ToLower(secret) + "\n", "line 2: found an identity, not a recipient"},
		{"garbage", "hello world\n", "line 1: unknown recipient type"},
		{"bad age", otherLast(good) + "\n", "line 1: malformed"},
		{"bad age ending in q", otherLast(endsInQ) + "\n", "line 1: malformed"},
		{"bad ssh", "ssh-ed25519 AAAAnotbase64\n", "line 1: malformed ssh recipient"},
		{"empty", "# only comments\n\n", "no recipients found"},
		{"pem", "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n", "line 1: found a private key"},
		{"invalid utf-8", "\xff\xfe\n", "line 1: not valid utf-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseRecipients(strings.NewReader(tc.input), "keys.txt")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseRecipients = %v, want error containing %q", err, tc.want)
			}
			assertNoLeak(t, err, secret, strings.ToLower(secret))
		})
	}
	// A secret key in a --recipient flag.
	_, err := ParseRecipient(secret)
	if err == nil || strings.Contains(err.Error(), secret[16:]) {
		t.Errorf("ParseRecipient(secret) = %v", err)
	}
	rs, err := ParseRecipients(strings.NewReader("# a\r\n"+good+"\r\n"), "crlf.txt")
	if err != nil || len(rs) != 1 || rs[0].Text != good {
		t.Errorf("ParseRecipients(crlf) = %v, %v", rs, err)
	}
}

// TestHybridRecipient: a post-quantum recipient is refused with a clear
// error, because age cannot mix it with the X25519 keys coffer also
// encrypts to (the index key); before, init accepted it and every backup
// failed.
func TestHybridRecipient(t *testing.T) {
	id, err := age.GenerateHybridIdentity()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseRecipient(id.Recipient().String()); !errors.Is(err, ErrPostQuantum) {
		t.Fatalf("ParseRecipient(age1pq) = %v, want ErrPostQuantum", err)
	}
	x, _ := age.GenerateX25519Identity()
	if _, err := age.Encrypt(io.Discard, id.Recipient(), x.Recipient()); err == nil {
		t.Fatal("age now mixes post-quantum and X25519 recipients: coffer could accept age1pq1 recipients")
	}
	_, err = ParseRecipients(strings.NewReader(x.Recipient().String()+"\n"+id.Recipient().String()+"\n"), "r.txt")
	if !errors.Is(err, ErrPostQuantum) {
		t.Fatalf("ParseRecipients = %v, want ErrPostQuantum", err)
	}
}

func TestLoadIdentitiesErrors(t *testing.T) {
	id, _ := age.GenerateX25519Identity()
	secret := id.String()
	broken := secret[:20] + "1" + secret[21:] // an extra separator moves the hrp
	for _, tc := range []struct{ name, input, want string }{
		{"recipient", id.Recipient().String() + "\n", "line 1: found a recipient, not an identity"},
		{"broken", "# x\n" + broken + "\n", "line 2: malformed or unsupported identity"},
		{"empty", "# nothing\n", "no identities found"},
		{"signing key", "coffer-signing-key-v1:AAAA\n", "line 1: found a coffer host signing key"},
		{"age encrypted", "age-encryption.org/v1\n-> scrypt x 10\n", "passphrase-encrypted"},
		{"bad pem", "-----BEGIN OPENSSH PRIVATE KEY-----\n" + secret + "\n-----END OPENSSH PRIVATE KEY-----\n", "malformed or unsupported ssh private key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadIdentities(writeFile(t, "id", tc.input, 0o600))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("LoadIdentities = %v, want error containing %q", err, tc.want)
			}
			assertNoLeak(t, err, secret, broken)
		})
	}
	missing := filepath.Join(t.TempDir(), "missing")
	if _, err := LoadIdentities(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadIdentities(missing) = %v, want fs.ErrNotExist", err)
	}
}

func TestSignVerify(t *testing.T) {
	_, dir := generate(t)
	sk, err := LoadSigningKey(Path(dir, SigningKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("manifest")
	sig := sk.Sign(msg)
	pk := sk.Public()
	if !pk.Verify(msg, sig) {
		t.Fatal("Verify(valid) = false")
	}
	if pk.Verify([]byte("manifesT"), sig) {
		t.Error("Verify(tampered message) = true")
	}
	bad := bytes.Clone(sig)
	bad[10] ^= 1
	if pk.Verify(msg, bad) {
		t.Error("Verify(tampered signature) = true")
	}
	if pk.Verify(msg, sig[:63]) {
		t.Error("Verify(short signature) = true")
	}
	if PublicKey(pk[:31]).Verify(msg, sig) {
		t.Error("Verify with short key = true")
	}
	pk2, err := ParsePublicKey(" " + pk.String() + "\n")
	if err != nil || !pk2.Equal(pk) {
		t.Errorf("ParsePublicKey(String()) = %v, %v", pk2, err)
	}
	_, other := generate(t)
	sk2, _ := LoadSigningKey(Path(other, SigningKeyFile))
	if sk2.Public().Verify(msg, sig) || sk2.Public().Equal(pk) {
		t.Error("another key verifies the signature")
	}

	for _, s := range []string{"", "coffer-signing-pub-v1:", "coffer-signing-pub-v1:AAAA", "nope", pk.String() + "x"} {
		if _, err := ParsePublicKey(s); err == nil {
			t.Errorf("ParsePublicKey(%q) = nil error", s)
		}
	}
	keyText, _ := os.ReadFile(Path(dir, SigningKeyFile))
	keyLine := strings.Split(string(keyText), "\n")[2]
	if _, err := ParsePublicKey(keyLine); err == nil || !strings.Contains(err.Error(), "found a host signing key") {
		t.Errorf("ParsePublicKey(signing key) = %v", err)
	} else {
		assertNoLeak(t, err, string(keyText))
	}
	// Loading a public key as the signing key and vice versa.
	pubAsKey := writeFile(t, "k", pk.String()+"\n", 0o600)
	if _, err := LoadSigningKey(pubAsKey); err == nil || !strings.Contains(err.Error(), "found a host public key") {
		t.Errorf("LoadSigningKey(pub) = %v", err)
	}
	twoKeys := writeFile(t, "k2", string(keyText)+string(keyText), 0o600)
	if _, err := LoadSigningKey(twoKeys); err == nil || !strings.Contains(err.Error(), "more than one key") {
		t.Errorf("LoadSigningKey(two keys) = %v", err)
	} else {
		assertNoLeak(t, err, string(keyText))
	}
}

func TestSecrets(t *testing.T) {
	d1, err := NewDerived()
	if err != nil {
		t.Fatal(err)
	}
	d2, err := NewDerived()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(d1.PolySeed), 64; got != want {
		t.Errorf("len(PolySeed) = %d, want %d", got, want)
	}
	if d1.ChunkKey == d2.ChunkKey || bytes.Equal(d1.PolySeed, d2.PolySeed) || d1.IndexIdentity.String() == d2.IndexIdentity.String() {
		t.Fatal("two NewDerived share secrets")
	}
	if d1.ChunkKey == [32]byte{} {
		t.Fatal("zero chunk key")
	}

	// The index identity decrypts what is encrypted to its recipient.
	ct := encrypt(t, []byte("index"), d1.IndexRecipient())
	if got := decrypt(t, ct, d1.IndexIdentity); string(got) != "index" {
		t.Errorf("index round trip = %q", got)
	}

	// Marshal round trip.
	b, err := d1.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(b), 18+32+64+32; got != want {
		t.Errorf("encoding is %d bytes, want %d", got, want)
	}
	d3, err := UnmarshalDerived(b)
	if err != nil {
		t.Fatal(err)
	}
	if d3.ChunkKey != d1.ChunkKey || !bytes.Equal(d3.PolySeed, d1.PolySeed) ||
		d3.IndexIdentity.String() != d1.IndexIdentity.String() {
		t.Error("UnmarshalDerived(MarshalBinary()) differs")
	}
	if got := decrypt(t, ct, d3.IndexIdentity); string(got) != "index" {
		t.Errorf("index round trip after unmarshal = %q", got)
	}
	for name, bad := range map[string][]byte{
		"empty": nil, "short": b[:len(b)-1], "long": append(bytes.Clone(b), 0), "magic": append([]byte("x"), b[1:]...),
	} {
		if _, err := UnmarshalDerived(bad); err == nil {
			t.Errorf("UnmarshalDerived(%s) = nil error", name)
		}
	}
	if _, err := (&Derived{PolySeed: make([]byte, 10), IndexIdentity: d1.IndexIdentity}).MarshalBinary(); err == nil {
		t.Error("MarshalBinary(short PolySeed) = nil error")
	}
}

// TestBoxVector pins the box derivations so that a change of label or
// construction, which would lock every host and owner out of their
// repositories' secrets, fails loudly.
func TestBoxVector(t *testing.T) {
	seed := make([]byte, 32)
	for i := range seed {
		seed[i] = byte(i)
	}
	sk := &SigningKey{priv: ed25519.NewKeyFromSeed(seed)}
	ok := &OwnerKey{priv: ed25519.NewKeyFromSeed(seed)}
	for _, c := range []struct {
		name, info string
		id         *age.X25519Identity
	}{{"host", "coffer host box v2", sk.BoxIdentity()}, {"owner", "coffer owner box v2", ok.BoxIdentity()}} {
		scalar, err := identityScalar(c.id)
		if err != nil {
			t.Fatal(err)
		}
		if want := boxReference(t, seed, c.info); !bytes.Equal(scalar, want) {
			t.Errorf("%s box scalar = %x, want %x", c.name, scalar, want)
		}
	}
	if sk.BoxIdentity().String() == ok.BoxIdentity().String() {
		t.Error("host and owner boxes of one seed are equal: labels not distinct")
	}
}

func TestOwnerKey(t *testing.T) {
	g, dir := generate(t)
	ok, err := LoadOwnerKey(Path(dir, OwnerKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("config")
	sig := ok.Sign(msg)
	if !ok.Public().Verify(msg, sig) {
		t.Fatal("owner signature does not verify")
	}
	// An owner signature never verifies under a host key of the same bytes'
	// holder, and owner and host keys do not stand in for each other.
	sk, _ := LoadSigningKey(Path(dir, SigningKeyFile))
	if sk.Public().Verify(msg, sig) {
		t.Error("owner signature verifies under the host key")
	}
	if got := ok.Public().Fingerprint(); !strings.HasPrefix(got, "SHA256:") || len(got) != 7+43 {
		t.Errorf("Fingerprint() = %q", got)
	}
	p, err := ParseOwnerPublic(" " + g.Owner.String() + "\n")
	if err != nil || !p.Equal(g.Owner) {
		t.Errorf("ParseOwnerPublic(String()) = %v, %v", p, err)
	}
	for _, c := range []struct{ in, want string }{
		{sk.Public().String(), "found a host public key, not an owner public key"},
		{"coffer-owner-pub-v1:AAAA", "malformed owner public key"},
		{"", "malformed owner public key"},
		{g.Recipient, "found an age recipient"},
	} {
		if _, err := ParseOwnerPublic(c.in); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseOwnerPublic(%.20q) = %v, want %q", c.in, err, c.want)
		}
	}
	if _, err := ParsePublicKey(g.Owner.String()); err == nil || !strings.Contains(err.Error(), "found an owner public key, not a host public key") {
		t.Errorf("ParsePublicKey(owner pub) = %v", err)
	}

	// Each loader refuses the other role's files, naming what it found.
	ownerText, _ := os.ReadFile(Path(dir, OwnerKeyFile))
	hostText, _ := os.ReadFile(Path(dir, SigningKeyFile))
	if _, err := LoadSigningKey(writeFile(t, "owner.key", string(ownerText), 0o600)); err == nil ||
		!strings.Contains(err.Error(), "found an owner key, not a host signing key") {
		t.Errorf("LoadSigningKey(owner.key) = %v", err)
	} else {
		assertNoLeak(t, err, string(ownerText))
	}
	if _, err := LoadOwnerKey(writeFile(t, "signing.key", string(hostText), 0o600)); err == nil ||
		!strings.Contains(err.Error(), "found a host signing key, not an owner key") {
		t.Errorf("LoadOwnerKey(signing.key) = %v", err)
	} else {
		assertNoLeak(t, err, string(hostText))
	}
	if _, err := LoadOwnerPublic(Path(dir, SigningPubFile)); err == nil {
		t.Error("LoadOwnerPublic(signing.pub) = nil error")
	}
	if _, err := LoadHostPublic(Path(dir, OwnerPubFile)); err == nil || !strings.Contains(err.Error(), "found an owner public key") {
		t.Errorf("LoadHostPublic(owner.pub) = %v", err)
	}
	if _, err := LoadIdentities(writeFile(t, "id", string(ownerText), 0o600)); err == nil {
		t.Error("LoadIdentities(owner.key) = nil error")
	} else {
		assertNoLeak(t, err, string(ownerText))
	}

	// LoadOwner takes the literal, owner.pub or owner.key.
	for _, arg := range []string{g.Owner.String(), Path(dir, OwnerPubFile), Path(dir, OwnerKeyFile)} {
		k, pub, err := LoadOwner(arg)
		if err != nil || !pub.Equal(g.Owner) || (k != nil) != (arg == Path(dir, OwnerKeyFile)) {
			t.Errorf("LoadOwner(%s) = %v, %v, %v", arg, k, pub, err)
		}
	}
	if _, _, err := LoadOwner(Path(dir, SigningPubFile)); err == nil {
		t.Error("LoadOwner(signing.pub) = nil error")
	}

	// Pins: a malformed line, and two different owners, are errors.
	if _, err := OwnerPin(writeFile(t, "i", OwnerLinePrefix+"coffer-owner-pub-v1:AAAA\n", 0o600)); err == nil {
		t.Error("OwnerPin(malformed) = nil error")
	}
	other, _ := generate(t)
	two := OwnerLinePrefix + g.Owner.String() + "\n" + OwnerLinePrefix + other.Owner.String() + "\n"
	if _, err := OwnerPin(writeFile(t, "i", two, 0o600)); err == nil || !strings.Contains(err.Error(), "a second, different owner key") {
		t.Errorf("OwnerPin(two owners) = %v", err)
	}
}

func TestHostPublicFile(t *testing.T) {
	_, dir := generate(t)
	text, _ := os.ReadFile(Path(dir, SigningPubFile))
	lines := strings.Split(strings.TrimSpace(string(text)), "\n")
	for name, c := range map[string]struct{ in, want string }{
		"no box":  {lines[0] + "\n" + lines[1] + "\n", "no coffer-host-box-v1 line"},
		"no key":  {lines[2] + "\n", "no host public key found"},
		"two":     {string(text) + lines[1] + "\n", "more than one key"},
		"bad box": {lines[1] + "\ncoffer-host-box-v1:age1nope\n", "malformed host box recipient"},
	} {
		if _, err := LoadHostPublic(writeFile(t, "pub", c.in, 0o644)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: LoadHostPublic = %v, want %q", name, err, c.want)
		}
	}
}

func TestBech32MatchesAge(t *testing.T) {
	for range 20 {
		id, err := age.GenerateX25519Identity()
		if err != nil {
			t.Fatal(err)
		}
		hrp, scalar, err := bech32Decode(id.String())
		if err != nil {
			t.Fatal(err)
		}
		if hrp != "AGE-SECRET-KEY-" || len(scalar) != 32 {
			t.Fatalf("decoded hrp %q, %d bytes", hrp, len(scalar))
		}
		s, err := bech32Encode("AGE-SECRET-KEY-", scalar)
		if err != nil {
			t.Fatal(err)
		}
		if s != id.String() {
			t.Fatal("bech32Encode differs from age's String()")
		}
		// Lowercase hrp, as for recipients.
		rs := id.Recipient().String()
		_, point, err := bech32Decode(rs)
		if err != nil {
			t.Fatal(err)
		}
		if s, _ := bech32Encode("age", point); s != rs {
			t.Fatalf("bech32Encode(age) = %q, want %q", s, rs)
		}
	}
	// BIP-173 test vectors.
	for _, v := range []string{"A12UEL5L", "a12uel5l", "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw", "split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w"} {
		if _, _, err := bech32Decode(v); err != nil {
			t.Errorf("bech32Decode(%q): %v", v, err)
		}
	}
	for _, v := range []string{"A1G7SGD8", "10a06t8", "1qzzfhee", "x1b4n0q5v", "li1dgmt3", "a12UEL5L", "abc1rzg"} {
		if _, _, err := bech32Decode(v); err == nil {
			t.Errorf("bech32Decode(%q) = nil error", v)
		}
	}
}

func FuzzParseRecipients(f *testing.F) {
	id, _ := age.GenerateX25519Identity()
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	sshPub, _ := ssh.NewPublicKey(pub)
	f.Add(id.Recipient().String() + "\n")
	f.Add("# comment\n\n" + string(ssh.MarshalAuthorizedKey(sshPub)))
	f.Add(id.String())
	f.Add("age1pq1qqqq\nssh-rsa AAAA\n")
	f.Add("\xff\n-----BEGIN\n")
	f.Fuzz(func(t *testing.T, s string) {
		rs, err := ParseRecipients(strings.NewReader(s), "fuzz")
		if err == nil && len(rs) == 0 {
			t.Fatal("no error and no recipients")
		}
		for _, r := range rs {
			// The canonical form parses to itself.
			r2, err := ParseRecipient(r.Text)
			if err != nil || r2.Text != r.Text {
				t.Fatalf("canonical form %q does not round-trip: %v", r.Text, err)
			}
		}
	})
}

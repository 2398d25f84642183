package keys

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"

	"filippo.io/age"
	"filippo.io/age/agessh"
	"golang.org/x/crypto/ssh"
)

// Recipient is an age recipient with its canonical text form, the form
// coffer stores in the repository config.
type Recipient struct {
	age.Recipient
	Text string
}

// AgeRecipients returns the age recipients of rs, for [age.Encrypt].
func AgeRecipients(rs []Recipient) []age.Recipient {
	out := make([]age.Recipient, len(rs))
	for i, r := range rs {
		out[i] = r.Recipient
	}
	return out
}

// ErrPostQuantum is returned for age1pq1... recipients. coffer encrypts
// some objects to X25519 keys of its own as well as to the recipients (the
// index to the index key), and age refuses to mix post-quantum and X25519
// recipients in one file, so such a repository could never be backed up
// to.
var ErrPostQuantum = errors.New("post-quantum recipients (age1pq1...) are not supported: coffer also encrypts to X25519 keys of its own, and age refuses to mix post-quantum and X25519 recipients; use an age1... or SSH recipient")

// ParseRecipient parses one recipient, for example from a --recipient flag:
// age1... (X25519), or an ssh-ed25519 or ssh-rsa public key as found in
// authorized_keys. Surrounding white space is ignored. Errors never
// include s. Post-quantum age1pq1... recipients are refused with
// [ErrPostQuantum].
func ParseRecipient(s string) (Recipient, error) {
	s = strings.TrimSpace(s)
	upper := strings.ToUpper(s)
	switch {
	case strings.HasPrefix(upper, "AGE-SECRET-KEY-"), strings.HasPrefix(upper, "AGE-PLUGIN-"):
		return Recipient{}, errors.New("found an identity, not a recipient")
	case strings.HasPrefix(s, "-----BEGIN"):
		return Recipient{}, errors.New("found a private key, not a recipient")
	case strings.HasPrefix(s, "age1pq1"):
		return Recipient{}, ErrPostQuantum
	case strings.HasPrefix(s, "age1"):
		r, err := age.ParseX25519Recipient(s)
		if err != nil {
			return Recipient{}, errors.New("malformed or unsupported age recipient")
		}
		return Recipient{Recipient: r, Text: r.String()}, nil
	case strings.HasPrefix(s, "ssh-"), strings.HasPrefix(s, "ecdsa-"), strings.HasPrefix(s, "sk-"):
		return parseSSHRecipient(s)
	case s == "":
		return Recipient{}, errors.New("empty recipient")
	default:
		return Recipient{}, errors.New("unknown recipient type")
	}
}

func parseSSHRecipient(s string) (Recipient, error) {
	pk, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(s))
	if err != nil || len(strings.TrimSpace(string(rest))) != 0 {
		return Recipient{}, errors.New("malformed ssh recipient")
	}
	var r age.Recipient
	switch pk.Type() {
	case ssh.KeyAlgoED25519:
		r, err = agessh.NewEd25519Recipient(pk)
	case ssh.KeyAlgoRSA:
		r, err = agessh.NewRSARecipient(pk)
	default:
		return Recipient{}, fmt.Errorf("unsupported ssh recipient type %q (only ssh-ed25519 and ssh-rsa)", pk.Type())
	}
	if err != nil {
		return Recipient{}, fmt.Errorf("invalid %s recipient: %w", pk.Type(), err)
	}
	// The canonical form drops any options and the comment.
	text := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pk)))
	return Recipient{Recipient: r, Text: text}, nil
}

const recipientsFileSizeLimit = 1 << 24 // 16 MiB, as in age

// ParseRecipients parses a recipients file like the age CLI does: one
// recipient per line (see [ParseRecipient]), with blank lines and lines
// starting with "#" ignored. name is used in errors, which give the line
// number and never the line's contents. It is an error to find none.
func ParseRecipients(r io.Reader, name string) ([]Recipient, error) {
	lr := &io.LimitedReader{R: r, N: recipientsFileSizeLimit + 1}
	sc := bufio.NewScanner(lr)
	var recs []Recipient
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimRight(sc.Text(), " \t\r")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !utf8.ValidString(line) {
			return nil, fmt.Errorf("recipients file %s: line %d: not valid utf-8", name, n)
		}
		rec, err := ParseRecipient(line)
		if err != nil {
			return nil, fmt.Errorf("recipients file %s: line %d: %w", name, n, err)
		}
		recs = append(recs, rec)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("recipients file %s: line %d: line too long", name, n+1)
		}
		return nil, fmt.Errorf("read recipients file %s: %w", name, err)
	}
	if lr.N == 0 {
		return nil, fmt.Errorf("recipients file %s is too large", name)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("recipients file %s: no recipients found", name)
	}
	return recs, nil
}

// LoadRecipientsFile reads and parses the recipients file at path.
func LoadRecipientsFile(path string) ([]Recipient, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open recipients file: %w", err)
	}
	defer f.Close()
	return ParseRecipients(f, path)
}

package keys

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"filippo.io/age"
	"filippo.io/age/agessh"
	"golang.org/x/crypto/ssh"
)

const identityFileSizeLimit = 1 << 24 // 16 MiB, as in age

// LoadIdentities reads the identities at path after checking its
// permissions with [CheckPrivate]. The file is either an age identity file
// (one AGE-SECRET-KEY-1... or AGE-SECRET-KEY-PQ-1... per line, "#" comments)
// or an unencrypted OpenSSH/PEM ssh-ed25519 or ssh-rsa private key.
// Passphrase-protected keys are not supported yet. Errors never include key
// material.
func LoadIdentities(path string) ([]age.Identity, error) {
	b, err := readPrivate(path, identityFileSizeLimit)
	if err != nil {
		return nil, err
	}
	trimmed := bytes.TrimSpace(b)
	switch {
	case bytes.HasPrefix(trimmed, []byte("-----BEGIN")):
		id, err := agessh.ParseIdentity(trimmed)
		var missing *ssh.PassphraseMissingError
		if errors.As(err, &missing) {
			return nil, fmt.Errorf("ssh key %s is passphrase-protected: passphrase-protected ssh keys are not supported yet", path)
		}
		if err != nil {
			// ssh parse errors can quote parts of the key; leave them out.
			return nil, fmt.Errorf("identity file %s: malformed or unsupported ssh private key (only unencrypted ssh-ed25519 and ssh-rsa keys are supported)", path)
		}
		return []age.Identity{id}, nil
	case bytes.HasPrefix(trimmed, []byte("age-encryption.org/")):
		return nil, fmt.Errorf("identity file %s is passphrase-encrypted: encrypted identity files are not supported yet", path)
	}
	return parseAgeIdentities(b, path)
}

// parseAgeIdentities parses an age identity file line by line with
// age.ParseIdentities, so that errors can name the line without quoting any
// part of it: age's own errors may echo fragments of a mistyped key.
func parseAgeIdentities(b []byte, path string) ([]age.Identity, error) {
	var ids []age.Identity
	for n, line := range strings.Split(string(b), "\n") {
		line = strings.TrimRight(line, " \t\r")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		switch {
		case strings.HasPrefix(line, "age1"), strings.HasPrefix(line, "ssh-"):
			return nil, fmt.Errorf("identity file %s: line %d: found a recipient, not an identity", path, n+1)
		case strings.HasPrefix(line, "coffer-"):
			what := keyKind(line)
			if what == "" {
				what = "key"
			}
			return nil, fmt.Errorf("identity file %s: line %d: found a coffer %s, not an age identity", path, n+1, what)
		case strings.HasPrefix(line, "AGE-PLUGIN-"):
			return nil, fmt.Errorf("identity file %s: line %d: plugin identities are not supported", path, n+1)
		}
		got, err := age.ParseIdentities(strings.NewReader(line))
		if err != nil || len(got) != 1 {
			return nil, fmt.Errorf("identity file %s: line %d: malformed or unsupported identity", path, n+1)
		}
		ids = append(ids, got[0])
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("identity file %s: no identities found", path)
	}
	return ids, nil
}

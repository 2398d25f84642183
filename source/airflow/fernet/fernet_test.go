package fernet_test

import (
	"crypto/aes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/source/airflow/fernet"
)

// The Fernet spec's test vector (generate.json / verify.json), also in
// ../shared/AIRFLOW.md.
const (
	specKey   = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4="
	specToken = "gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA=="
)

func specTime(t *testing.T) time.Time {
	tm, err := time.Parse(time.RFC3339, "1985-10-26T01:20:00-07:00")
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

func TestSpecVector(t *testing.T) {
	k, err := fernet.ParseKey(specKey)
	if err != nil {
		t.Fatal(err)
	}
	var iv [aes.BlockSize]byte
	for i := range iv {
		iv[i] = byte(i)
	}
	if got := k.EncryptWithIV([]byte("hello"), specTime(t), iv); got != specToken {
		t.Errorf("EncryptWithIV = %s, want %s", got, specToken)
	}
	pt, err := k.Decrypt(specToken)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(pt), "hello"; got != want {
		t.Errorf("Decrypt = %q, want %q", got, want)
	}
	ts, err := fernet.Timestamp(specToken)
	if err != nil || !ts.Equal(specTime(t)) {
		t.Errorf("Timestamp = %v, %v, want %v", ts, err, specTime(t))
	}
	if got, want := k.String(), specKey; got != want {
		t.Errorf("String() = %s, want %s", got, want)
	}
}

// The spec's invalid.json cases that apply without a TTL.
func TestInvalidTokens(t *testing.T) {
	k, _ := fernet.ParseKey(specKey)
	cases := map[string]string{
		"incorrect mac":    "gAAAAAAdwJ6xAAECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPAl1-szkFVzXTuGb4hR8AKtwcaX1YdykQUFBQUFBQUFBQQ==",
		"too short":        "gAAAAAAdwJ6xAAECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPA==",
		"invalid base64":   "%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%",
		"payload size":     "gAAAAAAdwJ6xAAECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPOKpZnRUXhmZl0-vXtjZfPwyY9yyKVOFFtR7dNoaftrZDQ==",
		"payload padding":  "gAAAAAAdwJ6xAAECAwQFBgcICQoLDA0ODySyyyjO2jTMUZLHWwhpyrp0WotuFr_BSxGMTZxzQ4OJpWRgMN7RjgBdJ-9LCyiUsQ==",
		"empty":            "",
		"wrong version":    strings.Replace(specToken, "gAAAAA", "gQAAAA", 1),
		"flipped MAC byte": specToken[:len(specToken)-6] + "A" + specToken[len(specToken)-5:],
	}
	for name, tok := range cases {
		if _, err := k.Decrypt(tok); !errors.Is(err, fernet.ErrInvalidToken) {
			t.Errorf("%s: Decrypt err = %v, want ErrInvalidToken", name, err)
		}
	}
}

func TestMultiFernet(t *testing.T) {
	oldKey, newKey, otherKey := fernet.GenerateKey(), fernet.GenerateKey(), fernet.GenerateKey()
	old, _ := fernet.ParseKey(oldKey)
	tok := old.Encrypt([]byte("s3cret"), time.Now())
	// Rotated: the new key first, the old one still listed.
	keys, err := fernet.ParseKeys(newKey + "," + oldKey)
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := fernet.Decrypt(keys, tok); err != nil || string(pt) != "s3cret" {
		t.Errorf("rotated list: Decrypt = %q, %v", pt, err)
	}
	// Only the new key: the old token fails.
	keys, _ = fernet.ParseKeys(newKey + ", " + otherKey)
	if _, err := fernet.Decrypt(keys, tok); !errors.Is(err, fernet.ErrInvalidToken) {
		t.Errorf("without the old key: err = %v, want ErrInvalidToken", err)
	}
	if !fernet.LooksLikeToken(tok) || fernet.LooksLikeToken("plain") {
		t.Error("LooksLikeToken is wrong")
	}
}

func TestParseKeysNeverShowsKey(t *testing.T) {
	bad := "not-a-key-but-a-secret-looking-string"
	for _, s := range []string{bad, fernet.GenerateKey() + "," + bad, fernet.GenerateKey() + ","} {
		_, err := fernet.ParseKeys(s)
		if err == nil {
			t.Fatalf("ParseKeys(%q) succeeded", s)
		}
		if strings.Contains(err.Error(), bad) || strings.Contains(err.Error(), "secret") {
			t.Errorf("error %q shows the key", err)
		}
	}
	if _, err := fernet.ParseKeys(fernet.GenerateKey() + ",x"); err == nil || !strings.Contains(err.Error(), "key 2 of 2") {
		t.Errorf("error %v does not name the position", err)
	}
}

package repo

import (
	"encoding/json"
	"testing"

	"filippo.io/age"
)

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func mustIdentity(t testing.TB) *age.X25519Identity {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

package storage_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testing/testutil"
	"github.com/cofferhq/coffer/storage"
)

// TestS3CredentialChain: static keys win (as they always did); without
// them the shared credentials file's profile is used, then the instance
// metadata service (here an ECS-style endpoint on loopback); with none,
// requests are anonymous and the server refuses them.
func TestS3CredentialChain(t *testing.T) {
	ctx := context.Background()
	srv := testutil.StartS3(t)
	file := filepath.Join(t.TempDir(), "credentials")
	content := fmt.Sprintf("[default]\naws_access_key_id = %s\naws_secret_access_key = wrong\n\n[backup]\naws_access_key_id = %s\naws_secret_access_key = %s\n", srv.AccessKey, srv.AccessKey, srv.SecretKey)
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	// Nothing in the process environment may answer for the chain.
	for _, v := range []string{"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_PROFILE"} {
		t.Setenv(v, "")
	}
	works := func(t *testing.T, cfg storage.S3Config) {
		t.Helper()
		s, err := storage.NewS3(ctx, cfg)
		if err != nil {
			t.Fatalf("NewS3: %v", err)
		}
		if err := s.Put(ctx, "x", bytes.NewReader([]byte("x")), 1, storage.PutOptions{}); err != nil {
			t.Fatalf("put: %v", err)
		}
	}
	denied := func(t *testing.T, cfg storage.S3Config) {
		t.Helper()
		_, err := storage.NewS3(ctx, cfg)
		if err == nil || !strings.Contains(err.Error(), "denied") {
			t.Fatalf("NewS3 = %v, want access denied", err)
		}
	}
	noKeys := srv
	noKeys.AccessKey, noKeys.SecretKey = "", ""

	t.Run("static keys", func(t *testing.T) {
		cfg := srv
		cfg.CredentialsFile, cfg.Profile = file, "default" // wrong keys, not used
		works(t, cfg)
		cfg.SecretKey = "wrong"
		cfg.Profile = "backup" // right keys, still not used: static keys win
		denied(t, cfg)
	})
	t.Run("credentials file", func(t *testing.T) {
		cfg := noKeys
		cfg.CredentialsFile, cfg.Profile = file, "backup"
		works(t, cfg)
		cfg.Profile = ""
		denied(t, cfg) // the default profile's keys are wrong
	})
	t.Run("instance metadata", func(t *testing.T) {
		var asked int
		meta := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			asked++
			json.NewEncoder(w).Encode(map[string]any{"AccessKeyId": srv.AccessKey, "SecretAccessKey": srv.SecretKey,
				"Token": "", "Expiration": time.Now().Add(time.Hour)})
		}))
		defer meta.Close()
		t.Setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", meta.URL+"/creds")
		cfg := noKeys
		cfg.CredentialsFile = filepath.Join(t.TempDir(), "missing")
		cfg.IAM = true
		works(t, cfg)
		if asked == 0 {
			t.Fatal("the metadata service was not asked")
		}
		cfg.IAM = false
		denied(t, cfg)
	})
	t.Run("none", func(t *testing.T) {
		start := time.Now()
		cfg := noKeys
		cfg.IAM = true // no metadata service here: give up quickly
		denied(t, cfg)
		if d := time.Since(start); d > 15*time.Second {
			t.Errorf("giving up on the metadata service took %v", d)
		}
		t.Logf("without any credentials: refused after %v", time.Since(start).Round(time.Millisecond))
	})
}

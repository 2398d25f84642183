package config

import (
	"errors"
	"strings"

	"github.com/cofferhq/coffer/storage"
)

// ErrDowngrade is s3.insecure with an https:// endpoint.
var ErrDowngrade = errors.New("s3.insecure asks for plain http, but the endpoint says https://; coffer never downgrades silently")

// S3Config returns the S3 settings as storage takes them (the bucket and
// prefix come from the repository URL, in storage.Open). The endpoint is
// "host[:port]" (TLS), "https://..." or "http://..." (plain http); a custom
// endpoint means path-style addressing; the region defaults to
// DefaultRegion. It refuses s3.insecure with an https:// endpoint
// (ErrDowngrade).
func (c *Config) S3Config() (storage.S3Config, error) { return c.S3.storage() }

// SourceS3 returns the S3 settings of the bucket source called name: its
// own s3 settings when the configuration file gives it some (an endpoint
// and credentials separate from the repository's, from the same kind of
// chain: keys, then a shared credentials file profile, then the instance
// metadata service), else the repository's.
func (c *Config) SourceS3(name string) (storage.S3Config, error) {
	if s, ok := c.Sources[name]; ok && s.S3 != nil {
		return s.S3.storage()
	}
	return c.S3Config()
}

func (s S3) storage() (storage.S3Config, error) {
	out := storage.S3Config{
		Region:    s.Region,
		AccessKey: s.AccessKey, SecretKey: s.SecretKey, SessionToken: s.SessionToken,
		CAFile: s.CAFile, SkipVerify: s.SkipVerify,
		CredentialsFile: s.CredentialsFile, Profile: s.Profile, IAM: s.IAM == nil || *s.IAM,
		RetryBudget: s.RetryBudget,
	}
	if out.RetryBudget == 0 {
		out.RetryBudget = DefaultRetryBudget
	}
	if out.Region == "" {
		out.Region = DefaultRegion
	}
	ep, https := strings.TrimSpace(s.Endpoint), false
	switch {
	case strings.HasPrefix(ep, "http://"):
		ep, out.Insecure = strings.TrimPrefix(ep, "http://"), true
	case strings.HasPrefix(ep, "https://"):
		ep, https = strings.TrimPrefix(ep, "https://"), true
	}
	out.Endpoint = strings.TrimSuffix(ep, "/")
	// A custom endpoint is almost always a self-hosted server, where
	// virtual-host addressing needs DNS that rarely exists.
	out.PathStyle = out.Endpoint != "" || s.PathStyle
	if s.Insecure {
		if https {
			return storage.S3Config{}, ErrDowngrade
		}
		out.Insecure = true
	}
	return out, nil
}

package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"
)

// Overrides are the settings given on a command line. The zero value of a
// field means not given.
type Overrides struct {
	Repository string
	Identity   string
	SigningKey string
	OwnerKey   string
	// JSON can only be turned on.
	JSON    bool
	Uploads int
	// DrillPostgresServer and DrillMySQLServer replace the file's drill
	// servers when given.
	DrillPostgresServer, DrillMySQLServer string
	// Pre and Post replace the file's hooks when given; HookTimeout its
	// timeout.
	Pre, Post   []string
	HookTimeout time.Duration
}

// LoadOptions say where Load reads from.
type LoadOptions struct {
	// File is the configuration file. When empty, COFFER_CONFIG names it;
	// when that is empty too, there is none and the defaults stand.
	File string
	// Env returns an environment variable; production passes os.Getenv,
	// tests their own. Nil is an empty environment.
	Env func(string) string
	// Flags win over everything else.
	Flags Overrides
}

// A ReadError is a configuration file that cannot be read.
type ReadError struct {
	Path string
	Err  error
}

func (e *ReadError) Error() string { return "config: " + e.Err.Error() }
func (e *ReadError) Unwrap() error { return e.Err }

// An InvalidError is a configuration file that does not parse or does not
// validate. Err lists the problems, one per line.
type InvalidError struct {
	Path string
	Err  error
}

func (e *InvalidError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e *InvalidError) Unwrap() error { return e.Err }

// Load reads the defaults, the file, the environment and the flags, in
// this order, each winning over the ones before it (see the package
// documentation), and returns the merged configuration. The file is
// validated and its relative paths resolved before the environment and
// the flags are applied.
func Load(o LoadOptions) (*Config, error) {
	env := o.Env
	if env == nil {
		env = func(string) string { return "" }
	}
	path := o.File
	if path == "" {
		path = env("COFFER_CONFIG")
	}
	c := defaults()
	if path != "" {
		f, err := os.Open(path)
		if err != nil {
			return nil, &ReadError{Path: path, Err: err}
		}
		defer f.Close()
		c, err = Parse(f)
		if err == nil {
			err = c.Validate()
		}
		if err != nil {
			return nil, &InvalidError{Path: path, Err: err}
		}
		if err := checkSecretFile(f, path, c); err != nil {
			return nil, err
		}
		c.resolvePaths(filepath.Dir(path))
	}
	c.applyEnv(env)
	if err := c.apply(o.Flags); err != nil {
		return nil, err
	}
	return c, nil
}

// A PermissionError is a configuration file that holds a secret (Key: an
// S3 secret key, a password in a source's DSN) and that group or others
// may access, refused like a key file.
type PermissionError struct {
	Path string
	Mode fs.FileMode
	Key  string
}

func (e *PermissionError) Error() string {
	return fmt.Sprintf("config file %s holds a secret (%s) and is accessible by group or others (mode %04o)", e.Path, e.Key, e.Mode.Perm())
}

// Hint says how to fix the permissions.
func (e *PermissionError) Hint() string { return "chmod 600 " + shellQuote(e.Path) }

func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./+,:@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// checkSecretFile refuses a file that holds a secret and that group or
// others may access.
func checkSecretFile(f *os.File, path string, c *Config) error {
	key := secretKey(c)
	if key == "" || runtime.GOOS == "windows" {
		return nil
	}
	fi, err := f.Stat()
	if err != nil {
		return &ReadError{Path: path, Err: err}
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return &PermissionError{Path: path, Mode: fi.Mode().Perm(), Key: key}
	}
	return nil
}

// secretKey names the first secret the file holds, or "".
func secretKey(c *Config) string {
	if c.S3.SecretKey != "" {
		return "s3.secret_access_key"
	}
	for key, dsn := range map[string]string{"drill.postgres_server": c.Drill.PostgresServer, "drill.mysql_server": c.Drill.MySQLServer} {
		if hasPassword(dsn) {
			return "a password in " + key
		}
	}
	names := make([]string, 0, len(c.Sources))
	for n := range c.Sources {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if s3 := c.Sources[n].S3; s3 != nil && s3.SecretKey != "" {
			return "sources." + n + ".s3.secret_access_key"
		}
	}
	for _, n := range names {
		loc := c.Sources[n].Location
		if u, err := url.Parse(loc); err == nil && u.User != nil {
			if _, ok := u.User.Password(); ok {
				return "a password in sources." + n
			}
		}
		if strings.Contains(loc, "password=") {
			return "a password in sources." + n
		}
	}
	return ""
}

// hasPassword reports whether a DSN carries a password (URL, keyword/value
// or go-sql-driver "user:password@tcp(...)").
func hasPassword(dsn string) bool {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			return true
		}
	}
	if strings.Contains(dsn, "password=") {
		return true
	}
	if at := strings.LastIndex(dsn, "@"); at > 0 && !strings.Contains(dsn, "://") {
		return strings.Contains(dsn[:at], ":")
	}
	return false
}

// resolvePaths makes the file's relative paths relative to dir, the
// file's folder.
func (c *Config) resolvePaths(dir string) {
	rel := func(p *string) {
		if *p == "" || filepath.IsAbs(*p) || strings.Contains(*p, "://") {
			return
		}
		*p = filepath.Join(dir, *p)
	}
	rel(&c.Repository)
	rel(&c.Identity)
	rel(&c.SigningKey)
	if !strings.HasPrefix(strings.TrimSpace(c.OwnerKey), "coffer-owner-pub-") {
		rel(&c.OwnerKey) // a file, not the key itself
	}
	rel(&c.CacheDir)
	rel(&c.Drill.TempDir)
	rel(&c.Drill.ReportDir)
	for name, s := range c.Sources {
		if fileLocation(s.Kind) {
			rel(&s.Location)
		}
		rel(&s.Airflow.Config)
		rel(&s.Airflow.EnvFile)
		c.Sources[name] = s
	}
}

// applyEnv applies the environment: over the file for the repository and
// the keys, under it for S3.
func (c *Config) applyEnv(env func(string) string) {
	set := func(dst *string, name string) {
		if v := env(name); v != "" {
			*dst = v
		}
	}
	set(&c.Repository, "COFFER_REPO")
	set(&c.Identity, "COFFER_IDENTITY")
	set(&c.SigningKey, "COFFER_SIGNING_KEY")
	set(&c.OwnerKey, "COFFER_OWNER_KEY")

	fill := func(dst *string, name string) {
		if *dst == "" {
			*dst = strings.TrimSpace(env(name))
		}
	}
	fill(&c.S3.Endpoint, "COFFER_S3_ENDPOINT")
	fill(&c.S3.Region, "AWS_REGION")
	if c.S3.AccessKey == "" {
		// The file's credentials are a pair: both or neither.
		c.S3.AccessKey, c.S3.SecretKey = env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")
	}
	c.S3.SessionToken = env("AWS_SESSION_TOKEN")
	fill(&c.S3.CredentialsFile, "AWS_SHARED_CREDENTIALS_FILE")
	if home := env("HOME"); c.S3.CredentialsFile == "" && home != "" {
		c.S3.CredentialsFile = filepath.Join(home, ".aws", "credentials")
	}
	fill(&c.S3.Profile, "AWS_PROFILE")
	// A bucket source's own settings take the shared credentials file
	// from the same place, but no keys or profile: those are the
	// repository's.
	for name, s := range c.Sources {
		if s.S3 != nil && s.S3.CredentialsFile == "" {
			s3 := *s.S3
			s3.CredentialsFile = c.S3.CredentialsFile
			s.S3 = &s3
			c.Sources[name] = s
		}
	}
}

// Apply applies flags that only one command knows (such as a backup's
// uploads) with the same precedence as Load: a flag given wins.
func (c *Config) Apply(f Overrides) error { return c.apply(f) }

// apply applies the flags.
func (c *Config) apply(f Overrides) error {
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&c.Repository, f.Repository)
	set(&c.Identity, f.Identity)
	set(&c.SigningKey, f.SigningKey)
	set(&c.OwnerKey, f.OwnerKey)
	set(&c.Drill.PostgresServer, f.DrillPostgresServer)
	set(&c.Drill.MySQLServer, f.DrillMySQLServer)
	c.JSON = c.JSON || f.JSON
	if len(f.Pre) > 0 {
		c.Hooks.Pre = f.Pre
	}
	if len(f.Post) > 0 {
		c.Hooks.Post = f.Post
	}
	if f.HookTimeout < 0 {
		return errors.New("hook-timeout: must not be negative")
	}
	if f.HookTimeout > 0 {
		c.Hooks.Timeout = f.HookTimeout
	}
	if f.Uploads != 0 {
		if msg := uploadsProblem(f.Uploads); msg != "" {
			return errors.New("uploads: " + msg)
		}
		c.Uploads = f.Uploads
	}
	return nil
}

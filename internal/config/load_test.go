package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/storage"
)

// mapEnv is an environment for Load.
func mapEnv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// writeFile writes a config file and returns its path.
func writeFile(t *testing.T, path, text string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestLoadPrecedence gives settings at every level they exist at and
// checks that each level wins over the ones below it: flag > environment >
// file > default.
func TestLoadPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, filepath.Join(dir, "coffer.yaml"),
		"repository: /file/repo\nidentity: /file/id\nsigning_key: /file/sk\nuploads: 5\njson: false\n")
	env := map[string]string{"COFFER_REPO": "/env/repo", "COFFER_IDENTITY": "/env/id", "COFFER_SIGNING_KEY": "/env/sk"}
	flags := Overrides{Repository: "/flag/repo", Identity: "/flag/id", SigningKey: "/flag/sk", JSON: true, Uploads: 7}

	for _, tc := range []struct {
		name         string
		file         string
		env          map[string]string
		flags        Overrides
		repo, id, sk string
		uploads      int
		json         bool
	}{
		{name: "default", uploads: DefaultUploads},
		{name: "file", file: file, repo: "/file/repo", id: "/file/id", sk: "/file/sk", uploads: 5},
		{name: "env over file", file: file, env: env, repo: "/env/repo", id: "/env/id", sk: "/env/sk", uploads: 5},
		{name: "flag over env", file: file, env: env, flags: flags, repo: "/flag/repo", id: "/flag/id", sk: "/flag/sk", uploads: 7, json: true},
		{name: "flag over default", flags: Overrides{Uploads: 9}, uploads: 9},
		{name: "empty env is unset", file: file, env: map[string]string{"COFFER_REPO": ""}, repo: "/file/repo", id: "/file/id", sk: "/file/sk", uploads: 5},
	} {
		c, err := Load(LoadOptions{File: tc.file, Env: mapEnv(tc.env), Flags: tc.flags})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got, want := c.Repository, tc.repo; got != want {
			t.Errorf("%s: repository = %q, want %q", tc.name, got, want)
		}
		if got, want := c.Identity, tc.id; got != want {
			t.Errorf("%s: identity = %q, want %q", tc.name, got, want)
		}
		if got, want := c.SigningKey, tc.sk; got != want {
			t.Errorf("%s: signing key = %q, want %q", tc.name, got, want)
		}
		if got, want := c.Uploads, tc.uploads; got != want {
			t.Errorf("%s: uploads = %d, want %d", tc.name, got, want)
		}
		if got, want := c.JSON, tc.json; got != want {
			t.Errorf("%s: json = %v, want %v", tc.name, got, want)
		}
	}
}

func TestLoadFlagUploadsOutOfRange(t *testing.T) {
	_, err := Load(LoadOptions{Flags: Overrides{Uploads: 65}})
	if err == nil || !strings.Contains(err.Error(), "uploads: must be between 1 and 64, not 65") {
		t.Fatalf("Load(uploads 65) error = %v", err)
	}
}

// TestLoadConfigFile: the file comes from LoadOptions.File, else
// COFFER_CONFIG; a missing one is a ReadError.
func TestLoadConfigFile(t *testing.T) {
	dir := t.TempDir()
	a := writeFile(t, filepath.Join(dir, "a.yaml"), "repository: /a\n")
	b := writeFile(t, filepath.Join(dir, "b.yaml"), "repository: /b\n")
	env := mapEnv(map[string]string{"COFFER_CONFIG": a})

	c, err := Load(LoadOptions{Env: env})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Repository, "/a"; got != want {
		t.Fatalf("repository with COFFER_CONFIG = %q, want %q", got, want)
	}
	c, err = Load(LoadOptions{File: b, Env: env})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Repository, "/b"; got != want {
		t.Fatalf("repository with File and COFFER_CONFIG = %q, want %q", got, want)
	}

	_, err = Load(LoadOptions{File: filepath.Join(dir, "nope.yaml")})
	var re *ReadError
	if !errors.As(err, &re) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load(missing file) error = %#v, want a ReadError for a missing file", err)
	}
	if got, want := err.Error(), "config: open "+filepath.Join(dir, "nope.yaml")+": no such file or directory"; got != want {
		t.Fatalf("error = %q, want %q", got, want)
	}
}

// TestLoadPathsRelativeToFile: paths in the file are relative to its
// folder; DSNs, URLs, absolute paths and paths from the environment are
// left alone.
func TestLoadPathsRelativeToFile(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, filepath.Join(dir, "etc", "coffer.yaml"), `
repository: repo
identity: keys/identity.txt
signing_key: keys/signing.key
owner_key: keys/owner.pub
cache_dir: cache
sources:
  dags: dir:dags
  abs: dir:/opt/abs
  lite: sqlite:db/app.sqlite
  meta: postgres:postgres://u@db/airflow
  shop: mysql:root@tcp(127.0.0.1:3306)/shop
`)
	etc := filepath.Join(dir, "etc")
	c, err := Load(LoadOptions{File: file})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ what, got, want string }{
		{"repository", c.Repository, filepath.Join(etc, "repo")},
		{"identity", c.Identity, filepath.Join(etc, "keys/identity.txt")},
		{"signing_key", c.SigningKey, filepath.Join(etc, "keys/signing.key")},
		{"owner_key", c.OwnerKey, filepath.Join(etc, "keys/owner.pub")},
		{"cache_dir", c.CacheDir, filepath.Join(etc, "cache")},
		{"sources.dags", c.Sources["dags"].Location, filepath.Join(etc, "dags")},
		{"sources.abs", c.Sources["abs"].Location, "/opt/abs"},
		{"sources.lite", c.Sources["lite"].Location, filepath.Join(etc, "db/app.sqlite")},
		{"sources.meta", c.Sources["meta"].Location, "postgres://u@db/airflow"},
		{"sources.shop", c.Sources["shop"].Location, "root@tcp(127.0.0.1:3306)/shop"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %q, want %q", tc.what, tc.got, tc.want)
		}
	}

	// The owner key's text is not a path.
	lit := "coffer-owner-pub-v1:hSJNzGDa0CwzE4k6IozXd/JJ0K21w2P3Qh6Vtvb5YPs="
	file = writeFile(t, filepath.Join(dir, "etc", "lit.yaml"), "owner_key: "+lit+"\n")
	if c, err = Load(LoadOptions{File: file}); err != nil || c.OwnerKey != lit {
		t.Errorf("owner_key literal = %q, %v; want %q", c.OwnerKey, err, lit)
	}
	if c, err = Load(LoadOptions{File: file, Env: mapEnv(map[string]string{"COFFER_OWNER_KEY": "env.pub"}),
		Flags: Overrides{OwnerKey: "flag.pub"}}); err != nil || c.OwnerKey != "flag.pub" {
		t.Errorf("owner_key with flag = %q, %v", c.OwnerKey, err)
	}

	// URLs stay as written; the environment's paths are the caller's.
	file = writeFile(t, filepath.Join(dir, "etc", "url.yaml"), "repository: s3://bucket/prefix\nidentity: id.txt\n")
	c, err = Load(LoadOptions{File: file, Env: mapEnv(map[string]string{"COFFER_IDENTITY": "mine/id.txt"})})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Repository, "s3://bucket/prefix"; got != want {
		t.Errorf("repository = %q, want %q", got, want)
	}
	if got, want := c.Identity, "mine/id.txt"; got != want {
		t.Errorf("identity from COFFER_IDENTITY = %q, want %q", got, want)
	}
}

// TestLoadReportsEveryProblem: a bad file is one InvalidError naming the
// file and listing every problem with its line.
func TestLoadReportsEveryProblem(t *testing.T) {
	file := writeFile(t, filepath.Join(t.TempDir(), "bad.yaml"), `repository: ftp://host/x
uploads: 65
sources:
  a: tape:/dev/st0
  b:
    kind: dir
`)
	_, err := Load(LoadOptions{File: file})
	var ie *InvalidError
	if !errors.As(err, &ie) {
		t.Fatalf("Load(bad file) error = %#v, want an InvalidError", err)
	}
	if got, want := ie.Path, file; got != want {
		t.Fatalf("InvalidError.Path = %q, want %q", got, want)
	}
	want := []string{
		"line 2: uploads: must be between 1 and 64, not 65",
		"line 1: repository: unsupported URL scheme (use a path, file:// or s3://)",
		`line 4: sources.a: unknown kind "tape" (kinds: dir, postgres, mysql, sqlite, s3, airflow)`,
		"line 5: sources.b: no location",
	}
	if got := strings.Split(ie.Err.Error(), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("problems:\n%s\nwant:\n%s", ie.Err, strings.Join(want, "\n"))
	}
}

// TestS3ConfigEndpoints covers the endpoint forms, from the file and from
// the environment, and what goes with them.
func TestS3ConfigEndpoints(t *testing.T) {
	for _, tc := range []struct {
		name      string
		file, env string
		endpoint  string
		insecure  bool
		pathStyle bool
	}{
		{name: "none", endpoint: "", insecure: false, pathStyle: false},
		{name: "env http", env: "http://127.0.0.1:9000", endpoint: "127.0.0.1:9000", insecure: true, pathStyle: true},
		{name: "env https", env: "https://s3.example.com/", endpoint: "s3.example.com", pathStyle: true},
		{name: "env bare", env: " minio.local:9000 ", endpoint: "minio.local:9000", pathStyle: true},
		{name: "file http", file: "http://10.0.0.1:9000/", endpoint: "10.0.0.1:9000", insecure: true, pathStyle: true},
		{name: "file bare", file: "minio.local:9000", endpoint: "minio.local:9000", pathStyle: true},
		{name: "file replaces env, scheme included", file: "https://s3.example.com", env: "http://127.0.0.1:9000", endpoint: "s3.example.com", pathStyle: true},
	} {
		path := writeFile(t, filepath.Join(t.TempDir(), "c.yaml"), "s3:\n  endpoint: "+quote(tc.file)+"\n")
		c, err := Load(LoadOptions{File: path, Env: mapEnv(map[string]string{"COFFER_S3_ENDPOINT": tc.env})})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		s, err := c.S3Config()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got, want := s.Endpoint, tc.endpoint; got != want {
			t.Errorf("%s: endpoint = %q, want %q", tc.name, got, want)
		}
		if got, want := s.Insecure, tc.insecure; got != want {
			t.Errorf("%s: insecure = %v, want %v", tc.name, got, want)
		}
		if got, want := s.PathStyle, tc.pathStyle; got != want {
			t.Errorf("%s: path style = %v, want %v", tc.name, got, want)
		}
		if got, want := s.Region, DefaultRegion; got != want {
			t.Errorf("%s: region = %q, want %q", tc.name, got, want)
		}
	}
}

func quote(s string) string { return `"` + s + `"` }

// TestS3ConfigSettings: the file's region and credentials win over the
// environment's, which fill what the file leaves out.
func TestS3ConfigSettings(t *testing.T) {
	env := mapEnv(map[string]string{"AWS_ACCESS_KEY_ID": "env-ak", "AWS_SECRET_ACCESS_KEY": "env-sk",
		"AWS_SESSION_TOKEN": "env-token", "AWS_REGION": "eu-west-3"})
	c, err := Load(LoadOptions{Env: env})
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.S3Config()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := [4]string{s.AccessKey, s.SecretKey, s.SessionToken, s.Region}, [4]string{"env-ak", "env-sk", "env-token", "eu-west-3"}; got != want {
		t.Fatalf("from the environment: %q, want %q", got, want)
	}

	path := writeFile(t, filepath.Join(t.TempDir(), "c.yaml"), `s3:
  region: ap-south-1
  access_key_id: file-ak
  secret_access_key: file-sk
  path_style: true
  ca_file: /etc/ca.pem
  skip_verify: true
`)
	if err := os.Chmod(path, 0o600); err != nil { // it holds a secret key
		t.Fatal(err)
	}
	c, err = Load(LoadOptions{File: path, Env: env})
	if err != nil {
		t.Fatal(err)
	}
	s, err = c.S3Config()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := [3]string{s.AccessKey, s.SecretKey, s.Region}, [3]string{"file-ak", "file-sk", "ap-south-1"}; got != want {
		t.Fatalf("from the file: %q, want %q", got, want)
	}
	if !s.PathStyle || !s.SkipVerify || s.CAFile != "/etc/ca.pem" || s.Insecure {
		t.Fatalf("from the file: %+v, want path style, skip_verify and ca_file, and TLS", s)
	}
}

// TestS3CredentialChainSettings: the shared credentials file and profile
// come from the file, else AWS_SHARED_CREDENTIALS_FILE and AWS_PROFILE,
// else ~/.aws/credentials; the metadata service is asked unless s3.iam is
// false.
func TestS3CredentialChainSettings(t *testing.T) {
	load := func(file string, env map[string]string) storage.S3Config {
		t.Helper()
		o := LoadOptions{Env: mapEnv(env)}
		if file != "" {
			o.File = writeFile(t, filepath.Join(t.TempDir(), "c.yaml"), file)
		}
		c, err := Load(o)
		if err != nil {
			t.Fatal(err)
		}
		s, err := c.S3Config()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := load("", map[string]string{"HOME": "/home/op"})
	if got, want := [2]string{s.CredentialsFile, s.Profile}, [2]string{"/home/op/.aws/credentials", ""}; got != want || !s.IAM {
		t.Fatalf("defaults: %q, IAM %v; want %q and IAM", got, s.IAM, want)
	}
	s = load("", map[string]string{"HOME": "/home/op", "AWS_SHARED_CREDENTIALS_FILE": "/etc/coffer/aws", "AWS_PROFILE": "backup"})
	if got, want := [2]string{s.CredentialsFile, s.Profile}, [2]string{"/etc/coffer/aws", "backup"}; got != want {
		t.Fatalf("from the environment: %q, want %q", got, want)
	}
	s = load("s3:\n  credentials_file: /srv/aws\n  profile: nightly\n  iam: false\n", map[string]string{"AWS_PROFILE": "backup"})
	if got, want := [2]string{s.CredentialsFile, s.Profile}, [2]string{"/srv/aws", "nightly"}; got != want || s.IAM {
		t.Fatalf("from the file: %q, IAM %v; want %q, no IAM", got, s.IAM, want)
	}
}

// TestS3ConfigRefusesDowngrade: s3.insecure with an https:// endpoint, from
// the file or the environment, is refused; with http:// or a bare host it
// means plain http.
func TestS3ConfigRefusesDowngrade(t *testing.T) {
	for _, tc := range []struct {
		file, env string
		refused   bool
	}{
		{file: "https://127.0.0.1:1", refused: true},
		{env: "https://127.0.0.1:1", refused: true},
		{file: "https://127.0.0.1:1", env: "http://127.0.0.1:1", refused: true},
		{file: "http://127.0.0.1:1", env: "https://127.0.0.1:1"},
		{file: "127.0.0.1:1"},
		{env: "http://127.0.0.1:1"},
	} {
		path := writeFile(t, filepath.Join(t.TempDir(), "c.yaml"), "s3:\n  insecure: true\n  endpoint: "+quote(tc.file)+"\n")
		c, err := Load(LoadOptions{File: path, Env: mapEnv(map[string]string{"COFFER_S3_ENDPOINT": tc.env})})
		if err != nil {
			t.Fatal(err)
		}
		s, err := c.S3Config()
		if got, want := errors.Is(err, ErrDowngrade), tc.refused; got != want {
			t.Fatalf("file %q env %q: S3Config() error = %v, refused %v, want %v", tc.file, tc.env, err, got, want)
		}
		if !tc.refused && !s.Insecure {
			t.Fatalf("file %q env %q: insecure = false, want plain http", tc.file, tc.env)
		}
	}
	if got, want := ErrDowngrade.Error(), "s3.insecure asks for plain http, but the endpoint says https://; coffer never downgrades silently"; got != want {
		t.Fatalf("ErrDowngrade = %q, want %q", got, want)
	}
}

// TestErrorsNameNoFlags: flags belong to the CLI, which adds hints naming
// them; this package's errors speak of keys and variables.
func TestErrorsNameNoFlags(t *testing.T) {
	dir := t.TempDir()
	bad := writeFile(t, filepath.Join(dir, "bad.yaml"), "uploads: 0\nrepository: ftp://x\nsources:\n  a: tape:x\n  b: {kind: dir, location: x, checks: [{name: n}]}\n")
	unknown := writeFile(t, filepath.Join(dir, "unknown.yaml"), "repo: x\n")
	var errs []error
	for _, o := range []LoadOptions{{File: bad}, {File: unknown}, {File: filepath.Join(dir, "nope")}, {Flags: Overrides{Uploads: -1}}} {
		_, err := Load(o)
		if err == nil {
			t.Fatalf("Load(%+v) = nil error", o)
		}
		errs = append(errs, err)
	}
	errs = append(errs, ErrDowngrade)
	for _, err := range errs {
		if strings.Contains(err.Error(), "--") {
			t.Errorf("error names a flag: %v", err)
		}
	}
}

// TestLoadAirflowAndHooks: an airflow source's settings (paths relative to
// the file) and the hooks, which flags replace.
func TestLoadAirflowAndHooks(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, filepath.Join(dir, "etc", "coffer.yaml"), `
hooks:
  pre: ["airflow dags pause invoice_ingest"]
  post: ["airflow dags unpause invoice_ingest"]
  timeout: 2m
sources:
  deploy:
    kind: airflow
    location: airflow
    airflow:
      config: airflow/airflow.cfg
      env_file: /etc/airflow.env
      include_logs: true
`)
	etc := filepath.Join(dir, "etc")
	c, err := Load(LoadOptions{File: file})
	if err != nil {
		t.Fatal(err)
	}
	spec := c.Sources["deploy"].Spec()
	for _, tc := range []struct{ what, got, want string }{
		{"location", spec.Location, filepath.Join(etc, "airflow")},
		{"airflow.config", spec.Airflow.Config, filepath.Join(etc, "airflow/airflow.cfg")},
		{"airflow.env_file", spec.Airflow.EnvFile, "/etc/airflow.env"},
		{"hooks.pre", strings.Join(c.Hooks.Pre, ";"), "airflow dags pause invoice_ingest"},
		{"hooks.timeout", c.Hooks.Timeout.String(), "2m0s"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %q, want %q", tc.what, tc.got, tc.want)
		}
	}
	if !spec.Airflow.IncludeLogs {
		t.Error("include_logs not read")
	}
	if err := c.Apply(Overrides{Pre: []string{"true"}}); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(c.Hooks.Pre, ";")+"|"+strings.Join(c.Hooks.Post, ";"), "true|airflow dags unpause invoice_ingest"; got != want {
		t.Errorf("hooks after --pre = %q, want %q", got, want)
	}

	bad := writeFile(t, filepath.Join(dir, "bad.yaml"), "hooks:\n  timeout: -1s\n  pre: ['']\nsources:\n  d:\n    kind: dir\n    location: x\n    airflow:\n      include_logs: true\n")
	_, err = Load(LoadOptions{File: bad})
	for _, want := range []string{"hooks.timeout: must not be negative", "hooks: a hook command is empty", "sources.d.airflow: airflow settings apply to airflow sources only"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Load(bad) = %v, want %q", err, want)
		}
	}
}

// TestLoadRefusesReadableSecrets: a file that holds a secret (the S3
// secret key, a password in a DSN) is refused, like a key file, when group
// or others may access it; without a secret any mode is fine.
func TestLoadRefusesReadableSecrets(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, text, key string
	}{
		{"s3", "s3:\n  access_key_id: ak\n  secret_access_key: sk\n", "s3.secret_access_key"},
		{"dsn", "sources:\n  metadb: postgres:postgres://airflow:hunter2@db/airflow\n", "a password in sources.metadb"},
		{"keywords", "sources:\n  metadb: {kind: postgres, location: \"host=db user=airflow password=hunter2\"}\n", "a password in sources.metadb"},
		{"bucket", "sources:\n  docs: {kind: s3, location: b1/p, s3: {access_key_id: ak, secret_access_key: sk}}\n", "sources.docs.s3.secret_access_key"},
		{"none", "repository: /r\nsources:\n  metadb: postgres:postgres://airflow@db/airflow\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, filepath.Join(dir, tc.name+".yaml"), tc.text)
			for _, mode := range []fs.FileMode{0o644, 0o640, 0o604, 0o600, 0o400} {
				if err := os.Chmod(path, mode); err != nil {
					t.Fatal(err)
				}
				_, err := Load(LoadOptions{File: path})
				var pe *PermissionError
				if tc.key == "" || mode&0o077 == 0 {
					if err != nil {
						t.Errorf("mode %04o: %v", mode, err)
					}
					continue
				}
				if !errors.As(err, &pe) {
					t.Fatalf("mode %04o: error %v, want a PermissionError", mode, err)
				}
				want := "config file " + path + " holds a secret (" + tc.key + ") and is accessible by group or others (mode 0" + strconv.FormatUint(uint64(mode), 8) + ")"
				if err.Error() != want {
					t.Errorf("error = %q, want %q", err, want)
				}
				if got, want := pe.Hint(), "chmod 600 "+path; got != want {
					t.Errorf("hint = %q, want %q", got, want)
				}
			}
		})
	}
}

// TestSourceS3: a bucket source's own s3 settings are separate from the
// repository's (no AWS_* variable reaches them, only the shared
// credentials file's location); without them, the source uses the
// repository's. Wrong settings are reported with their key.
func TestSourceS3(t *testing.T) {
	file := `s3: {endpoint: https://repo.example:9000, access_key_id: rk, secret_access_key: rs}
sources:
  docs:
    kind: s3
    location: invoices/prod
    s3: {endpoint: http://docs.example:9001, region: eu-west-1, profile: invoices, iam: false}
  other: {kind: s3, location: invoices/other}
`
	path := writeFile(t, filepath.Join(t.TempDir(), "c.yaml"), file)
	os.Chmod(path, 0o600)
	env := map[string]string{"HOME": "/home/op", "AWS_ACCESS_KEY_ID": "envkey", "AWS_SECRET_ACCESS_KEY": "envsecret", "AWS_PROFILE": "backup"}
	c, err := Load(LoadOptions{File: path, Env: mapEnv(env)})
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.SourceS3("docs")
	if err != nil {
		t.Fatal(err)
	}
	want := storage.S3Config{Endpoint: "docs.example:9001", Region: "eu-west-1", Insecure: true, PathStyle: true,
		CredentialsFile: "/home/op/.aws/credentials", Profile: "invoices", RetryBudget: DefaultRetryBudget}
	if s != want {
		t.Errorf("SourceS3(docs) = %+v\nwant %+v", s, want)
	}
	s, err = c.SourceS3("other")
	if err != nil {
		t.Fatal(err)
	}
	if s.Endpoint != "repo.example:9000" || s.AccessKey != "rk" {
		t.Errorf("SourceS3(other) = %+v, want the repository's settings", s)
	}

	for _, tc := range []struct{ text, want string }{
		{"sources:\n  d: {kind: dir, location: /x, s3: {region: x}}\n", "sources.d.s3: s3 settings apply to s3 (bucket) sources only"},
		{"sources:\n  d: {kind: s3, location: b1/p, s3: {access_key_id: ak}}\n", "sources.d.s3: give both access_key_id and secret_access_key, or neither"},
		{"sources:\n  d: {kind: s3, location: b1/p, s3: {endpoint: \"https://h\", insecure: true}}\n", "sources.d.s3: s3.insecure asks for plain http"},
	} {
		p := writeFile(t, filepath.Join(t.TempDir(), "bad.yaml"), tc.text)
		_, err := Load(LoadOptions{File: p, Env: mapEnv(nil)})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.text, err, tc.want)
		}
	}
}

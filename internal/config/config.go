package config

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/cofferhq/coffer/backup"
	"github.com/cofferhq/coffer/internal/fingerprint"
	"github.com/cofferhq/coffer/source"
	"github.com/cofferhq/coffer/source/registry"
)

// Config is coffer's configuration: what Parse read from the file, or,
// from Load, the file merged with the defaults, the environment and the
// flags.
type Config struct {
	// Repository is a local path, a file:// URL or s3://bucket/prefix.
	Repository string `yaml:"repository"`
	S3         S3     `yaml:"s3"`
	// Identity is the age identity file (restore operators only).
	Identity string `yaml:"identity"`
	// SigningKey is the backup host's signing.key.
	SigningKey string `yaml:"signing_key"`
	// OwnerKey pins the repository: the owner public key (owner.pub, or
	// its text coffer-owner-pub-v1:...), or owner.key where the owner
	// changes keys.
	OwnerKey string `yaml:"owner_key"`
	// JSON makes every command print machine-readable JSON.
	JSON bool `yaml:"json"`
	// CacheDir holds the change cache of folder sources.
	CacheDir string `yaml:"cache_dir"`
	// Uploads is the number of packs uploaded in parallel (default
	// DefaultUploads).
	Uploads int               `yaml:"uploads"`
	Sources map[string]Source `yaml:"sources"`
	// Hooks run around every backup made with this configuration.
	Hooks Hooks `yaml:"hooks"`
	// Drill configures restore drills.
	Drill Drill `yaml:"drill"`

	// Daemon, Backups, Drills and Alerts are coffer daemon's settings,
	// jobs and webhooks (see daemon.go).
	Daemon  Daemon               `yaml:"daemon"`
	Backups map[string]BackupJob `yaml:"backups"`
	Drills  map[string]DrillJob  `yaml:"drills"`
	Alerts  []Alert              `yaml:"alerts"`

	lines map[string]int
}

// S3 settings. In the file, Endpoint is "host[:port]", "https://..." or
// "http://..." (plain http); Load fills what the file leaves empty from the
// environment, and S3Config turns the result into storage's settings.
type S3 struct {
	Endpoint   string `yaml:"endpoint"`
	Region     string `yaml:"region"`
	PathStyle  bool   `yaml:"path_style"`
	Insecure   bool   `yaml:"insecure"`
	CAFile     string `yaml:"ca_file"`
	SkipVerify bool   `yaml:"skip_verify"`
	AccessKey  string `yaml:"access_key_id"`
	SecretKey  string `yaml:"secret_access_key"`
	// SessionToken comes from AWS_SESSION_TOKEN only.
	SessionToken string `yaml:"-"`
	// Without keys, credentials come from the profile (AWS_PROFILE,
	// default "default") of the shared credentials file
	// (AWS_SHARED_CREDENTIALS_FILE, default ~/.aws/credentials), then from
	// the instance metadata service unless iam is false.
	CredentialsFile string `yaml:"credentials_file"`
	Profile         string `yaml:"profile"`
	IAM             *bool  `yaml:"iam"`
	// RetryBudget is how long one storage operation is tried again
	// before it fails (default DefaultRetryBudget).
	RetryBudget time.Duration `yaml:"retry_budget"`
}

// Hooks are commands (run with sh -c) around a backup: pre before the
// first source is read (a failing one aborts the backup), post after it,
// always, whether the backup or a pre hook failed. Each runs under
// Timeout (default backup.DefaultHookTimeout).
type Hooks struct {
	Pre     []string      `yaml:"pre"`
	Post    []string      `yaml:"post"`
	Timeout time.Duration `yaml:"timeout"`
}

// Defaults.
const (
	DefaultUploads = backup.DefaultUploads
	DefaultRegion  = "us-east-1"
)

// defaults is the configuration before any file, environment or flag.
func defaults() *Config { return &Config{Uploads: DefaultUploads} }

// Source is one configured source. In YAML it is either the short form
// "KIND:LOCATION" or a mapping.
type Source struct {
	Kind     string              `yaml:"kind"`
	Location string              `yaml:"location"`
	Exclude  []string            `yaml:"exclude"`
	Checks   []fingerprint.Check `yaml:"checks"`
	Globals  bool                `yaml:"globals"`
	Airflow  Airflow             `yaml:"airflow"`
	// S3 reaches a bucket source (kind s3) with settings of its own; see
	// Config.SourceS3.
	S3 *S3 `yaml:"s3"`
}

// Airflow holds an airflow source's settings: its airflow.cfg (default
// $AIRFLOW_CONFIG, else LOCATION/airflow.cfg), a file of the deployment's
// AIRFLOW__... variables, and whether task logs are backed up.
type Airflow struct {
	Config      string `yaml:"config"`
	EnvFile     string `yaml:"env_file"`
	IncludeLogs bool   `yaml:"include_logs"`
}

// UnmarshalYAML accepts the short form "KIND:LOCATION".
func (s *Source) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		spec, err := registry.ParseSpec(n.Value)
		if err != nil {
			return fmt.Errorf("line %d: %w", n.Line, err)
		}
		s.Kind, s.Location = spec.Kind, spec.Location
		return nil
	}
	type plain Source
	return n.Decode((*plain)(s))
}

// Spec is the source.Spec of a configured source.
func (s Source) Spec() source.Spec {
	return source.Spec{Kind: s.Kind, Location: s.Location, Exclude: s.Exclude, Checks: s.Checks, Globals: s.Globals,
		Airflow: source.AirflowSpec{Config: s.Airflow.Config, EnvFile: s.Airflow.EnvFile, IncludeLogs: s.Airflow.IncludeLogs}}
}

// s3Problem says what is wrong with a source's s3 settings, or "".
func (s Source) s3Problem() string {
	if s.S3 == nil {
		return ""
	}
	if s.Kind != "s3" {
		return "s3 settings apply to s3 (bucket) sources only"
	}
	if _, err := s.S3.storage(); err != nil {
		return err.Error()
	}
	if (s.S3.AccessKey == "") != (s.S3.SecretKey == "") {
		return "give both access_key_id and secret_access_key, or neither"
	}
	return ""
}

// typeNames rewrites yaml's "field x not found in type config.S3", which
// names Go types, into words about the file.
var typeNames = regexp.MustCompile(`field (\S+) not found in type \S+`)

// Parse reads a configuration file over the defaults. Unknown keys are
// errors, with their line. Parse neither validates nor resolves paths; Load
// does both.
func Parse(r io.Reader) (*Config, error) {
	c := defaults()
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c.lines = map[string]int{}
	if len(root.Content) > 0 {
		recordLines(root.Content[0], "", c.lines)
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		dec.KnownFields(true)
		if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("config: %s", typeNames.ReplaceAllString(err.Error(), "unknown key $1"))
		}
	}
	return c, nil
}

func recordLines(n *yaml.Node, prefix string, lines map[string]int) {
	if n.Kind == yaml.SequenceNode {
		for i, item := range n.Content {
			k := prefix + fmt.Sprint(i)
			lines[k] = item.Line
			recordLines(item, k+".", lines)
		}
		return
	}
	if n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := prefix + n.Content[i].Value
		lines[k] = n.Content[i].Line
		recordLines(n.Content[i+1], k+".", lines)
		if v := n.Content[i+1]; v.Kind == yaml.SequenceNode {
			for j, item := range v.Content {
				ik := fmt.Sprintf("%s[%d]", k, j)
				lines[ik] = item.Line
				recordLines(item, ik+".", lines)
			}
		}
	}
}

// Line returns the line of a dotted key, or 0.
func (c *Config) Line(key string) int { return c.lines[key] }

// Validate returns every problem in the configuration, one per line of the
// error, each naming the key and, where known, its line.
func (c *Config) Validate() error {
	var probs []string
	add := func(key, format string, args ...any) {
		msg := key + ": " + fmt.Sprintf(format, args...)
		l := c.lines[key]
		for k := key; l == 0 && strings.Contains(k, "."); {
			// A key the file leaves out (a job without a schedule) is
			// placed at its parent's line.
			k = k[:strings.LastIndex(k, ".")]
			l = c.lines[k]
		}
		if l > 0 {
			msg = fmt.Sprintf("line %d: %s", l, msg)
		}
		probs = append(probs, msg)
	}
	if msg := uploadsProblem(c.Uploads); msg != "" {
		add("uploads", "%s", msg)
	}
	if c.Hooks.Timeout < 0 {
		add("hooks.timeout", "must not be negative")
	}
	for _, h := range [][]string{c.Hooks.Pre, c.Hooks.Post} {
		for _, cmd := range h {
			if strings.TrimSpace(cmd) == "" {
				add("hooks", "a hook command is empty")
			}
		}
	}
	if c.Repository != "" && strings.Contains(c.Repository, "://") &&
		!strings.HasPrefix(c.Repository, "file://") && !strings.HasPrefix(c.Repository, "s3://") {
		add("repository", "unsupported URL scheme (use a path, file:// or s3://)")
	}
	names := make([]string, 0, len(c.Sources))
	for n := range c.Sources {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		key := "sources." + n
		if !registry.ValidName(n) {
			add(key, "source names may not contain '=', ':', '/' or spaces")
		}
		validateSource(key, c.Sources[n], add)
	}
	c.validateDaemon(add)
	c.validateDrill(add)
	if len(probs) == 0 {
		return nil
	}
	return errors.New(strings.Join(probs, "\n"))
}

// uploadsProblem says what is wrong with a number of parallel uploads, or
// returns "".
func uploadsProblem(n int) string {
	if n < 1 || n > 64 {
		return fmt.Sprintf("must be between 1 and 64, not %d", n)
	}
	return ""
}

// validateSource checks one source, the part of Validate that depends on
// its kind; add reports a problem under a key ("sources.NAME" or below).
func validateSource(key string, s Source, add func(key, format string, args ...any)) {
	if msg := s.s3Problem(); msg != "" {
		add(key+".s3", "%s", msg)
	}
	for _, p := range registry.Check(s.Spec()) {
		k := key
		if p.Field != "" {
			k += "." + p.Field
		}
		add(k, "%s", p.Msg)
	}
}

// fileLocation reports whether the location of a source of this kind is a
// file path (relative to the config file when written in it) rather than
// a DSN.
func fileLocation(kind string) bool {
	k, ok := registry.Lookup(kind)
	return ok && k.Path
}

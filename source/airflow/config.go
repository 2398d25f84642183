package airflow

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"
)

// This file reads Airflow's configuration the way Airflow does
// (airflow/configuration.py, AirflowConfigParser.get):
//
//  1. the environment variable AIRFLOW__{SECTION}__{KEY};
//  2. AIRFLOW__{SECTION}__{KEY}_CMD: a command whose output is the value
//     (sensitive options only);
//  3. AIRFLOW__{SECTION}__{KEY}_SECRET: a secrets backend path (refused:
//     coffer cannot run a secrets backend);
//  4. the option in airflow.cfg;
//  5. {key}_cmd in airflow.cfg (sensitive options only);
//  6. {key}_secret in airflow.cfg (refused, as 3);
//  7. the default.
//
// An option that moved (sql_alchemy_conn from [core] to [database] in
// 2.3) is looked up under its new name first and its old one second at
// each of steps 1 to 3 and at each of steps 4 to 6. The environment is the
// process's, with the variables of the deployment's env file over it.
// Values from the environment and airflow.cfg are expanded like Python's
// os.path.expanduser(os.path.expandvars(...)); airflow.cfg values are also
// interpolated (%% is %, %(other)s another option of the section) and
// {AIRFLOW_HOME} is replaced by the deployment's home. Command output is
// used as it is, without its trailing newline.

// option names one configuration option.
type option struct {
	section, key string
	// old is where the option lived before it moved, if it did.
	old *option
	// sensitive options also accept _CMD and _SECRET.
	sensitive bool
	def       string
}

func (o option) String() string { return "[" + o.section + "] " + o.key }

func (o option) envName() string {
	return "AIRFLOW__" + strings.ToUpper(strings.ReplaceAll(o.section, ".", "_")) + "__" + strings.ToUpper(o.key)
}

// The options coffer reads.
var (
	optDagsFolder    = option{section: "core", key: "dags_folder", def: "{AIRFLOW_HOME}/dags"}
	optPluginsFolder = option{section: "core", key: "plugins_folder", def: "{AIRFLOW_HOME}/plugins"}
	optSQLAlchemy    = option{section: "database", key: "sql_alchemy_conn", sensitive: true,
		old: &option{section: "core", key: "sql_alchemy_conn", sensitive: true}, def: "sqlite:///{AIRFLOW_HOME}/airflow.db"}
	optSQLSchema = option{section: "database", key: "sql_alchemy_schema",
		old: &option{section: "core", key: "sql_alchemy_schema"}}
	optLogFolder = option{section: "logging", key: "base_log_folder",
		old: &option{section: "core", key: "base_log_folder"}, def: "{AIRFLOW_HOME}/logs"}
	optRemoteLogging   = option{section: "logging", key: "remote_logging", old: &option{section: "core", key: "remote_logging"}, def: "False"}
	optFernetKey       = option{section: "core", key: "fernet_key", sensitive: true}
	optWebserverSecret = option{section: "webserver", key: "secret_key", sensitive: true}
	optAPISecret       = option{section: "api", key: "secret_key", sensitive: true}
	optJWTSecret       = option{section: "api_auth", key: "jwt_secret", sensitive: true}
	optWebserverConfig = option{section: "webserver", key: "config_file", def: "{AIRFLOW_HOME}/webserver_config.py"}
)

// Origin says where a value came from, for people: "env
// AIRFLOW__CORE__FERNET_KEY_CMD", "airflow.cfg [core] fernet_key",
// "default". It never holds the value.
type Origin string

// OriginDefault is a value no setting gave.
const OriginDefault Origin = "default"

// cfgFile is a parsed airflow.cfg.
type cfgFile struct {
	path     string
	sections map[string]map[string]string // lower-case section and key
}

var sectionRE = regexp.MustCompile(`^\[([^\]]+)\]`)

// parseCfg reads an INI file as Python's configparser does with Airflow's
// settings: '#' and ';' start comment lines, keys are lower-cased and end
// at the first '=' or ':', indented lines continue a value, [DEFAULT]
// applies to every section. A later duplicate wins.
func parseCfg(path string, r io.Reader) (*cfgFile, error) {
	f := &cfgFile{path: path, sections: map[string]map[string]string{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var sec map[string]string
	var lastKey string
	line := 0
	for sc.Scan() {
		line++
		raw := strings.TrimRight(sc.Text(), "\r")
		trimmed := strings.TrimSpace(raw)
		if trimmed == "" || trimmed[0] == '#' || trimmed[0] == ';' {
			continue
		}
		if raw[0] == ' ' || raw[0] == '\t' {
			if sec != nil && lastKey != "" {
				sec[lastKey] += "\n" + trimmed
				continue
			}
		}
		if m := sectionRE.FindStringSubmatch(trimmed); m != nil {
			name := m[1]
			if name != "DEFAULT" {
				name = strings.ToLower(name)
			}
			if f.sections[name] == nil {
				f.sections[name] = map[string]string{}
			}
			sec, lastKey = f.sections[name], ""
			continue
		}
		if sec == nil {
			return nil, fmt.Errorf("%s line %d: an option before the first [section]", path, line)
		}
		i := strings.IndexAny(trimmed, "=:")
		if i <= 0 {
			return nil, fmt.Errorf("%s line %d: not \"key = value\"", path, line)
		}
		lastKey = strings.ToLower(strings.TrimSpace(trimmed[:i]))
		sec[lastKey] = strings.TrimSpace(trimmed[i+1:])
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// raw returns an option's value before interpolation, with [DEFAULT] under
// the section.
func (f *cfgFile) raw(section, key string) (string, bool) {
	if f == nil {
		return "", false
	}
	if v, ok := f.sections[section][key]; ok {
		return v, true
	}
	v, ok := f.sections["DEFAULT"][key]
	return v, ok
}

// get returns an option's value, interpolated the way configparser's
// BasicInterpolation does. Errors name the option, never its value.
func (f *cfgFile) get(section, key string) (string, bool, error) {
	v, ok := f.raw(section, key)
	if !ok {
		return "", false, nil
	}
	out, err := f.interpolate(section, key, v, 0)
	return out, true, err
}

func (f *cfgFile) interpolate(section, key, v string, depth int) (string, error) {
	if depth > 10 {
		return "", fmt.Errorf("%s [%s] %s: interpolation nested too deeply", filepath.Base(f.path), section, key)
	}
	var b strings.Builder
	for {
		i := strings.IndexByte(v, '%')
		if i < 0 {
			b.WriteString(v)
			return b.String(), nil
		}
		b.WriteString(v[:i])
		v = v[i:]
		switch {
		case strings.HasPrefix(v, "%%"):
			b.WriteByte('%')
			v = v[2:]
		case strings.HasPrefix(v, "%("):
			end := strings.Index(v, ")s")
			if end < 0 {
				return "", fmt.Errorf("%s [%s] %s: bad interpolation syntax (write %% as %%%%)", filepath.Base(f.path), section, key)
			}
			name := strings.ToLower(v[2:end])
			ref, ok := f.raw(section, name)
			if !ok {
				return "", fmt.Errorf("%s [%s] %s: interpolation refers to %q, which is not set", filepath.Base(f.path), section, key, name)
			}
			sub, err := f.interpolate(section, name, ref, depth+1)
			if err != nil {
				return "", err
			}
			b.WriteString(sub)
			v = v[end+2:]
		default:
			return "", fmt.Errorf("%s [%s] %s: '%%' must be written '%%%%' in airflow.cfg", filepath.Base(f.path), section, key)
		}
	}
}

// env is the deployment's environment: the process's, with the env file's
// variables over it.
type env struct {
	vars map[string]string
	// fromFile names the variables the env file set.
	fromFile map[string]bool
	file     string
}

func newEnv(process []string, file string) (*env, error) {
	e := &env{vars: map[string]string{}, fromFile: map[string]bool{}, file: file}
	for _, kv := range process {
		if k, v, ok := strings.Cut(kv, "="); ok {
			e.vars[k] = v
		}
	}
	if file == "" {
		return e, nil
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("env file: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	line := 0
	for sc.Scan() {
		line++
		l := strings.TrimSpace(sc.Text())
		if l == "" || l[0] == '#' {
			continue
		}
		l = strings.TrimPrefix(l, "export ")
		k, v, ok := strings.Cut(l, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			return nil, fmt.Errorf("env file %s line %d: not KEY=VALUE", file, line)
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' && v[len(v)-1] == '"' || v[0] == '\'' && v[len(v)-1] == '\'') {
			v = v[1 : len(v)-1]
		}
		e.vars[k], e.fromFile[k] = v, true
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("env file %s: %w", file, err)
	}
	return e, nil
}

func (e *env) lookup(name string) (string, bool) {
	v, ok := e.vars[name]
	return v, ok
}

// origin names an environment variable and where it was set.
func (e *env) origin(name string) Origin {
	if e.fromFile[name] {
		return Origin("env file " + name)
	}
	return Origin("env " + name)
}

func (e *env) list() []string {
	out := make([]string, 0, len(e.vars))
	for k, v := range e.vars {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// expand is Python's os.path.expandvars after os.path.expanduser, applied
// until the value no longer changes (Airflow's expand_env_var): $NAME and
// ${NAME} of set variables are replaced, others left alone; a leading ~ is
// the home folder.
func (e *env) expand(v string) string {
	for i := 0; i < 10; i++ {
		next := e.expandOnce(v)
		if next == v {
			return v
		}
		v = next
	}
	return v
}

var varRE = regexp.MustCompile(`\$(\w+|\{[^}]*\})`)

func (e *env) expandOnce(v string) string {
	if v == "~" || strings.HasPrefix(v, "~/") {
		if home, ok := e.lookup("HOME"); ok && home != "" {
			v = home + v[1:]
		}
	}
	return varRE.ReplaceAllStringFunc(v, func(m string) string {
		name := strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(m, "$"), "{"), "}")
		if val, ok := e.lookup(name); ok {
			return val
		}
		return m
	})
}

// resolver looks options up in one deployment's environment and
// airflow.cfg.
type resolver struct {
	env  *env
	cfg  *cfgFile
	home string
	// cmdTimeout bounds each _CMD.
	cmdTimeout time.Duration
}

// ErrSecretBackend is wrapped when a value would come from a secrets
// backend (_SECRET), which coffer does not read.
var ErrSecretBackend = errors.New("secrets backends are not supported")

// get resolves an option, returning its value and where it came from.
func (r *resolver) get(ctx context.Context, o option) (string, Origin, error) {
	names := []option{o}
	if o.old != nil {
		names = append(names, *o.old)
	}
	for _, n := range names {
		name := n.envName()
		if v, ok := r.env.lookup(name); ok {
			return r.placeholders(r.env.expand(v)), r.env.origin(name), nil
		}
		if n.sensitive {
			if c, ok := r.env.lookup(name + "_CMD"); ok {
				v, err := r.run(ctx, name+"_CMD", c)
				return v, r.env.origin(name + "_CMD"), err
			}
			if _, ok := r.env.lookup(name + "_SECRET"); ok {
				return "", r.env.origin(name + "_SECRET"), fmt.Errorf("%s comes from %s: %w; set %s or %s_CMD instead",
					o, name+"_SECRET", ErrSecretBackend, name, name)
			}
		}
	}
	for _, n := range names {
		v, ok, err := r.cfg.get(n.section, n.key)
		if err != nil {
			return "", "", err
		}
		if ok {
			return r.placeholders(r.env.expand(v)), Origin("airflow.cfg " + n.String()), nil
		}
	}
	for _, n := range names {
		if !n.sensitive {
			continue
		}
		c, ok, err := r.cfg.get(n.section, n.key+"_cmd")
		if err != nil {
			return "", "", err
		}
		if ok {
			v, err := r.run(ctx, "airflow.cfg "+n.String()+"_cmd", c)
			return v, Origin("airflow.cfg " + n.String() + "_cmd"), err
		}
		if _, ok := r.cfg.raw(n.section, n.key+"_secret"); ok {
			return "", Origin("airflow.cfg " + n.String() + "_secret"), fmt.Errorf("%s comes from airflow.cfg %s_secret: %w; set the value, or %s_cmd, instead",
				o, n, ErrSecretBackend, n.key)
		}
	}
	return r.placeholders(o.def), OriginDefault, nil
}

func (r *resolver) placeholders(v string) string {
	return strings.ReplaceAll(v, "{AIRFLOW_HOME}", r.home)
}

// CommandError is a _CMD that failed. It names the setting and the
// program, never the command line's arguments or its output, which may
// hold the secret.
type CommandError struct {
	Setting string // "AIRFLOW__CORE__FERNET_KEY_CMD", "airflow.cfg [core] fernet_key_cmd"
	Program string
	Err     error
}

func (e *CommandError) Error() string {
	return fmt.Sprintf("%s: command %s failed: %v (its output is not shown: it may hold the secret)", e.Setting, e.Program, e.Err)
}

func (e *CommandError) Unwrap() error { return e.Err }

// ErrCommandTimeout is wrapped by a CommandError of a command that ran too
// long.
var ErrCommandTimeout = errors.New("timed out")

// run runs a _CMD the way Airflow does (split like shlex.split, no shell)
// with the deployment's environment and returns its standard output
// without trailing newlines. Standard error is discarded.
func (r *resolver) run(ctx context.Context, setting, command string) (string, error) {
	args, err := shlexSplit(command)
	if err != nil || len(args) == 0 {
		return "", &CommandError{Setting: setting, Program: "?", Err: errors.New("cannot split the command line")}
	}
	prog := filepath.Base(args[0])
	timeout := r.cmdTimeout
	if timeout <= 0 {
		timeout = DefaultCommandTimeout
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(cctx, args[0], args[1:]...)
	cmd.Env = r.env.list()
	cmd.Dir = r.home
	cmd.WaitDelay = time.Second
	// The command's own children (a shell's) go with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out limitedBuffer
	out.max = 1 << 20
	cmd.Stdout = &out
	err = cmd.Run()
	switch {
	case cctx.Err() == context.DeadlineExceeded:
		return "", &CommandError{Setting: setting, Program: prog, Err: fmt.Errorf("%w after %s", ErrCommandTimeout, timeout)}
	case err != nil:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = errors.New(ee.ProcessState.String())
		} else if errors.Is(err, exec.ErrNotFound) {
			err = errors.New("program not found")
		} else {
			err = errors.New("cannot start it")
		}
		return "", &CommandError{Setting: setting, Program: prog, Err: err}
	case out.over:
		return "", &CommandError{Setting: setting, Program: prog, Err: errors.New("printed more than 1 MiB")}
	}
	return strings.TrimRight(string(out.b), "\r\n"), nil
}

// DefaultCommandTimeout bounds each _CMD.
const DefaultCommandTimeout = 30 * time.Second

type limitedBuffer struct {
	b    []byte
	max  int
	over bool
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if len(l.b)+len(p) > l.max {
		l.over = true
		return len(p), nil
	}
	l.b = append(l.b, p...)
	return len(p), nil
}

// shlexSplit splits a command line like Python's shlex.split (POSIX mode,
// no comments).
func shlexSplit(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\\':
			inWord = true
			if i+1 < len(s) {
				i++
				cur.WriteByte(s[i])
			}
		case c == '\'':
			inWord = true
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated quote")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
		case c == '"':
			inWord = true
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\\\"$`\n", s[i+1]) >= 0 {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errors.New("unterminated quote")
			}
		default:
			inWord = true
			cur.WriteByte(c)
		}
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out, nil
}

package airflow

import (
	"bytes"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Rewriting airflow.cfg for a scratch deployment
//
// With RewriteConfig the restored airflow.cfg is edited line by line, so
// that everything else (comments, order, unknown keys) stays as it was:
//
//   - [database] sql_alchemy_conn (and a legacy [core] sql_alchemy_conn)
//     name the restored database;
//   - [core] dags_folder and plugins_folder, [logging] base_log_folder,
//     and every value that starts with one of the source's folders, name
//     the folders under the restored AIRFLOW_HOME;
//   - the secrets (fernet_key, [webserver] and [api] secret_key,
//     [api_auth] jwt_secret) and every *_cmd and *_secret variant (commands
//     and secrets backends that reach the source's environment) are
//     removed: the secrets go to secrets.env;
//   - what would reach the source's services is turned off or removed: an
//     executor that needs a broker or a cluster becomes LocalExecutor
//     (SequentialExecutor on SQLite with Airflow 2), [celery] broker_url
//     and result_backend, remote logging, the secrets backend, SMTP
//     server and credentials, StatsD host, Sentry DSN, and base_url
//     becomes localhost;
//   - finally any line that still names something of the source (its
//     database host, database name in a connection string, folders,
//     password or secrets) is removed, comments included.
//
// Every change is reported by section and key, never with a value.

// cfgRewrite is what rewriteConfig needs to know.
type cfgRewrite struct {
	home         string // the restored AIRFLOW_HOME
	conn         string // SQLAlchemy URL of the restored database
	executor     string // the executor a broker-based one becomes
	sourcePaths  []string
	sourceHosts  []string // matched as whole words anywhere
	sourceDBs    []string // matched in connection strings only
	sourceSecret []string // matched anywhere
	// pausedAtCreation sets [core] dags_are_paused_at_creation = True, so
	// that DAGs not yet in the restored database start paused.
	pausedAtCreation bool
}

// cfgLine is one line of an INI file; a key line owns its continuation
// lines.
type cfgLine struct {
	section string // lower case
	key     string // lower case, "" for comments, blanks and headers
	text    []string
	drop    bool
}

var cfgKeyRE = regexp.MustCompile(`^([^=:\s#;\[][^=:]*?)\s*[=:]`)

func parseCfgLines(in []byte) []*cfgLine {
	var out []*cfgLine
	section := ""
	lines := strings.SplitAfter(string(in), "\n")
	for _, l := range lines {
		if l == "" {
			continue
		}
		trim := strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(trim, "[") && strings.Contains(trim, "]") && l[0] == '[':
			section = strings.ToLower(strings.TrimSpace(trim[1:strings.Index(trim, "]")]))
			out = append(out, &cfgLine{section: section, text: []string{l}})
		case trim != "" && (l[0] == ' ' || l[0] == '\t') && len(out) > 0 && out[len(out)-1].key != "":
			// A continuation of the previous key's value.
			prev := out[len(out)-1]
			prev.text = append(prev.text, l)
		default:
			c := &cfgLine{section: section, text: []string{l}}
			if m := cfgKeyRE.FindStringSubmatch(l); m != nil && !strings.HasPrefix(trim, "#") && !strings.HasPrefix(trim, ";") {
				c.key = strings.ToLower(strings.TrimSpace(m[1]))
			}
			out = append(out, c)
		}
	}
	return out
}

func (c *cfgLine) value() string {
	first := c.text[0]
	i := strings.IndexAny(first, "=:")
	v := strings.TrimSpace(first[i+1:])
	for _, more := range c.text[1:] {
		v += "\n" + strings.TrimSpace(more)
	}
	return v
}

// set replaces the value with v, a literal value: '%' is doubled, as
// Airflow's configparser interpolation reads "%%" as "%".
func (c *cfgLine) set(v string) {
	v = cfgEscape(v)
	first := c.text[0]
	i := strings.IndexAny(first, "=:")
	c.text = []string{first[:i+1] + " " + v + "\n"}
}

// cfgEscape doubles '%' for airflow.cfg; cfgUnescape undoes it.
func cfgEscape(v string) string   { return strings.ReplaceAll(v, "%", "%%") }
func cfgUnescape(v string) string { return strings.ReplaceAll(v, "%%", "%") }

// secretKeys are the keys that hold secrets, by section.
var secretKeys = map[string][]string{
	"core":      {"fernet_key"},
	"webserver": {"secret_key"},
	"api":       {"secret_key"},
	"api_auth":  {"jwt_secret"},
}

// offKeys are removed because they reach the source's services.
var offKeys = map[string][]string{
	"celery":        {"broker_url", "result_backend", "flower_basic_auth"},
	"logging":       {"remote_base_log_folder", "remote_log_conn_id", "remote_task_handler_kwargs", "encrypt_s3_logs", "google_key_path"},
	"secrets":       {"backend", "backend_kwargs"},
	"smtp":          {"smtp_host", "smtp_user", "smtp_password", "smtp_port"},
	"metrics":       {"statsd_host", "statsd_port", "otel_host", "otel_port"},
	"sentry":        {"sentry_dsn"},
	"elasticsearch": {"host"},
	"opensearch":    {"host", "username", "password"},
	"openlineage":   {"transport", "config_path"},
}

// setOff are keys set to a safe value.
var setOff = map[string]map[string]string{
	"logging":   {"remote_logging": "False"},
	"metrics":   {"statsd_on": "False", "otel_on": "False"},
	"sentry":    {"sentry_on": "False"},
	"webserver": {"base_url": "http://localhost:8080"},
	"api":       {"base_url": "http://localhost:8080"},
}

var remoteExecutors = map[string]bool{
	"celeryexecutor": true, "celerykubernetesexecutor": true, "kubernetesexecutor": true,
	"localkubernetesexecutor": true, "edgeexecutor": true, "dasksexecutor": true, "daskexecutor": true,
}

// rewriteConfig rewrites an airflow.cfg as described above. It returns the
// new file and the changes, as "[section] key: what".
func rewriteConfig(in []byte, rw cfgRewrite) ([]byte, []string) {
	lines := parseCfgLines(in)
	var changes []string
	note := func(c *cfgLine, what string) {
		changes = append(changes, fmt.Sprintf("[%s] %s: %s", c.section, c.key, what))
	}
	has := func(section, key string) bool {
		for _, c := range lines {
			if c.section == section && c.key == key && !c.drop {
				return true
			}
		}
		return false
	}
	for _, c := range lines {
		if c.key == "" {
			continue
		}
		sec, key := c.section, c.key
		switch {
		case key == "sql_alchemy_conn" && (sec == "database" || sec == "core"):
			c.set(rw.conn)
			note(c, "the restored database")
		case contains(secretKeys[sec], key):
			c.drop = true
			note(c, "removed (a secret)")
		case strings.HasSuffix(key, "_cmd") || strings.HasSuffix(key, "_secret"):
			c.drop = true
			note(c, "removed (a command or secrets backend of the source)")
		case sec == "core" && key == "dags_folder":
			c.set(rw.home + "/dags")
			note(c, "the restored folder")
		case sec == "core" && key == "plugins_folder":
			c.set(rw.home + "/plugins")
			note(c, "the restored folder")
		case sec == "logging" && key == "base_log_folder":
			c.set(rw.home + "/logs")
			note(c, "the restored folder")
		case sec == "core" && key == "executor" && remoteExecutor(c.value()):
			c.set(rw.executor)
			note(c, "became "+rw.executor+" (the source's needs a broker or a cluster)")
		case sec == "core" && key == "dags_are_paused_at_creation" && rw.pausedAtCreation:
			if !strings.EqualFold(c.value(), "True") {
				c.set("True")
				note(c, "set to True (DAGs new to the restored database start paused)")
			}
		case contains(offKeys[sec], key):
			c.drop = true
			note(c, "removed (reaches the source's services)")
		case setOff[sec][key] != "":
			if v := setOff[sec][key]; !strings.EqualFold(c.value(), v) {
				c.set(v)
				note(c, "set to "+v)
			}
		default:
			if v, ok := rebase(cfgUnescape(c.value()), rw.sourcePaths, rw.home); ok {
				c.set(v)
				note(c, "the restored folder")
			}
		}
	}
	// Whatever still names the source goes.
	for _, c := range lines {
		if c.drop {
			continue
		}
		text := strings.Join(c.text, "")
		if c.key != "" && c.key == "sql_alchemy_conn" {
			continue
		}
		if namesSource(text, rw) {
			c.drop = true
			if c.key != "" {
				note(c, "removed (named the source)")
			} else if strings.TrimSpace(text) != "" && !strings.HasPrefix(strings.TrimSpace(text), "[") {
				changes = append(changes, fmt.Sprintf("[%s] a comment that named the source: removed", c.section))
			} else {
				c.drop = false // a section header stays
			}
		}
	}
	// Keys that must be there, added at the end of their section (or in
	// a new section at the end) when the file has none.
	type addKey struct{ section, key, value, what string }
	var adds []*addKey
	if !has("database", "sql_alchemy_conn") {
		adds = append(adds, &addKey{"database", "sql_alchemy_conn", cfgEscape(rw.conn), "the restored database"})
	}
	if rw.pausedAtCreation && !has("core", "dags_are_paused_at_creation") {
		adds = append(adds, &addKey{"core", "dags_are_paused_at_creation", "True", "set to True (DAGs new to the restored database start paused)"})
	}
	var b bytes.Buffer
	newline := func() {
		if b.Len() > 0 && !bytes.HasSuffix(b.Bytes(), []byte("\n")) {
			b.WriteString("\n")
		}
	}
	for i, c := range lines {
		if !c.drop {
			for _, t := range c.text {
				b.WriteString(t)
			}
		}
		for j, a := range adds {
			if a != nil && c.section == a.section && (i+1 == len(lines) || lines[i+1].section != a.section) {
				newline()
				fmt.Fprintf(&b, "%s = %s\n", a.key, a.value)
				changes = append(changes, fmt.Sprintf("[%s] %s: %s", a.section, a.key, a.what))
				adds[j] = nil
			}
		}
	}
	for _, a := range adds {
		if a != nil {
			newline()
			fmt.Fprintf(&b, "\n[%s]\n%s = %s\n", a.section, a.key, a.value)
			changes = append(changes, fmt.Sprintf("[%s] %s: %s", a.section, a.key, a.what))
		}
	}
	return b.Bytes(), dedupSorted(changes)
}

// remoteExecutor reports whether an executor setting (a class, a list of
// them) names one that needs a broker or a cluster.
func remoteExecutor(v string) bool {
	for _, e := range strings.Split(v, ",") {
		if i := strings.LastIndex(e, ":"); i >= 0 { // "Alias:module.Class"
			e = e[i+1:]
		}
		if remoteExecutors[strings.ToLower(lastDotted(strings.TrimSpace(e)))] {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func lastDotted(s string) string {
	if i := strings.LastIndex(s, "."); i >= 0 {
		return s[i+1:]
	}
	return s
}

// rebase replaces a leading source folder in v by the same place under
// home ({AIRFLOW_HOME} placeholders are left as they are: they follow the
// new home by themselves).
func rebase(v string, from []string, home string) (string, bool) {
	for _, p := range from {
		if p == "" || p == "/" {
			continue
		}
		if v == p || strings.HasPrefix(v, p+"/") {
			return home + strings.TrimPrefix(v, p), true
		}
	}
	return "", false
}

// namesSource reports whether text names the source's database host,
// folders, secrets, or (inside a connection string) its database.
func namesSource(text string, rw cfgRewrite) bool {
	// The restored home may start with a source folder's name
	// (/opt/airflow-restored and /opt/airflow).
	rest := strings.ReplaceAll(text, rw.home, "")
	for _, p := range rw.sourcePaths {
		if p != "" && p != "/" && strings.Contains(rest, p) {
			return true
		}
	}
	for _, s := range rw.sourceSecret {
		if len(s) >= 6 && strings.Contains(text, s) {
			return true
		}
	}
	for _, h := range rw.sourceHosts {
		if h != "" && wordIn(text, h) {
			return true
		}
	}
	if strings.Contains(text, "://") || strings.Contains(text, "dbname=") {
		for _, d := range rw.sourceDBs {
			if d != "" && (strings.Contains(text, "/"+d) || strings.Contains(text, "dbname="+d)) {
				return true
			}
		}
	}
	return false
}

// wordIn reports whether w occurs in s not as part of a longer host name
// or word.
func wordIn(s, w string) bool {
	isWord := func(b byte) bool {
		return b == '-' || b == '_' || b == '.' || (b >= '0' && b <= '9') || (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z')
	}
	for i := 0; ; {
		j := strings.Index(s[i:], w)
		if j < 0 {
			return false
		}
		j += i
		end := j + len(w)
		before := j == 0 || !isWord(s[j-1])
		after := end == len(s) || !isWord(s[end]) || (s[end] == '.' && (end+1 == len(s) || !isWord(s[end+1])))
		if before && after {
			return true
		}
		i = j + 1
	}
}

func dedupSorted(in []string) []string {
	sort.Strings(in)
	out := in[:0]
	for i, s := range in {
		if i == 0 || s != in[i-1] {
			out = append(out, s)
		}
	}
	return out
}

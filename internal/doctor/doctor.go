// Package doctor checks a coffer setup as a host runs it: its
// configuration, its key files and whether they belong on this host, the
// repository (reach, write permission, Object Lock, clock skew), the
// database clients against the servers, the Airflow deployments' Fernet
// keys, and the space drills need. Each check gives OK, WARN or FAIL with
// the fix. It changes nothing but one probe object, doctor-probe, which it
// deletes when the credentials allow.
package doctor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cofferhq/coffer/internal/config"
	"github.com/cofferhq/coffer/internal/keys"
	"github.com/cofferhq/coffer/internal/memlimit"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/internal/units"
	"github.com/cofferhq/coffer/source/airflow"
	"github.com/cofferhq/coffer/source/mysql"
	"github.com/cofferhq/coffer/source/postgres"
	"github.com/cofferhq/coffer/storage"
)

// Status of a check, ordered: the worst decides the exit code.
type Status int

const (
	OK Status = iota
	Warn
	Fail
)

func (s Status) String() string { return [...]string{"OK", "WARN", "FAIL"}[s] }

// MarshalText implements encoding.TextMarshaler.
func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Result of one check.
type Result struct {
	Check   string `json:"check"`
	Status  Status `json:"status"`
	Message string `json:"message"`
	// Fix says what to do, for WARN and FAIL.
	Fix string `json:"fix,omitempty"`
}

// Worst is the worst status of rs (OK for none).
func Worst(rs []Result) Status {
	w := OK
	for _, r := range rs {
		w = max(w, r.Status)
	}
	return w
}

// Options of a run.
type Options struct {
	// Config is the loaded configuration; nil when it did not load, and
	// ConfigErr says why.
	Config    *config.Config
	ConfigErr error
	// ConfigFile is the file given, "" for none.
	ConfigFile string
	// TempDir is where drills make their scratch folders (os.TempDir).
	TempDir string
	// MinFree is the free space below which drills are a WARN (default
	// 1 GiB).
	MinFree int64
	// HTTP is the client of the clock check (default: one with a 10 s
	// timeout and the repository's TLS settings: s3.ca_file,
	// s3.skip_verify).
	HTTP *http.Client
	// Now is the local clock (default time.Now).
	Now func() time.Time
	// Getenv reads the environment (default os.Getenv).
	Getenv func(string) string
}

// MaxSkew is the clock difference to the S3 server that is a FAIL: a
// manifest dated that far ahead is refused as "in the future".
const MaxSkew = repo.MaxClockSkew

// WarnSkew is the clock difference that is a WARN.
const WarnSkew = 30 * time.Second

// Run runs every check that applies.
func Run(ctx context.Context, o Options) []Result {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.TempDir == "" {
		o.TempDir = os.TempDir()
	}
	if o.MinFree == 0 {
		o.MinFree = 1 << 30
	}
	var out []Result
	out = append(out, checkConfig(o)...)
	if o.Config == nil {
		return append(out, checkTemp(o), checkMemory(o))
	}
	out = append(out, checkKeys(o.Config)...)
	out = append(out, checkRoles(o.Config)...)
	out = append(out, checkRepository(ctx, o)...)
	out = append(out, checkDatabases(ctx, o.Config)...)
	out = append(out, checkAirflow(ctx, o.Config, o.ConfigFile)...)
	return append(out, checkTemp(o), checkMemory(o))
}

// checkMemory says which soft memory limit and GOGC this process runs
// with (internal/memlimit); always OK.
func checkMemory(o Options) Result {
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	return Result{"memory", OK, memlimit.Describe(getenv), ""}
}

func checkConfig(o Options) []Result {
	const name = "config"
	if o.ConfigErr != nil {
		var ie *config.InvalidError
		if errors.As(o.ConfigErr, &ie) {
			var out []Result
			for _, l := range strings.Split(ie.Err.Error(), "\n") {
				if l = strings.TrimSpace(l); l != "" {
					out = append(out, Result{name, Fail, ie.Path + ": " + l, "fix " + ie.Path + " and run coffer doctor again"})
				}
			}
			if len(out) > 0 {
				return out
			}
		}
		var pe *config.PermissionError
		if errors.As(o.ConfigErr, &pe) {
			return []Result{{name, Fail, o.ConfigErr.Error(), pe.Hint()}}
		}
		return []Result{{name, Fail, o.ConfigErr.Error(), "check --config or COFFER_CONFIG"}}
	}
	c := o.Config
	if o.ConfigFile == "" {
		return []Result{{name, OK, "no config file: settings from flags and the environment", ""}}
	}
	noun := "sources"
	if len(c.Sources) == 1 {
		noun = "source"
	}
	return []Result{{name, OK, fmt.Sprintf("%s loads: %d %s", o.ConfigFile, len(c.Sources), noun), ""}}
}

// keyFile checks one private key file: present, owner-only, loads.
func keyFile(check, path string, load func(string) error) Result {
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Result{check, Fail, path + " does not exist", "check the path, or run coffer keygen --out DIR"}
		}
		return Result{check, Fail, err.Error(), "check the path"}
	}
	if m := fi.Mode().Perm(); m&0o077 != 0 {
		who := "group or others"
		if m&0o004 != 0 {
			who = "everyone"
		}
		return Result{check, Fail, fmt.Sprintf("%s is readable or writable by %s (mode %04o): a key must be the owner's only", path, who, m),
			"chmod 600 " + path}
	}
	if err := load(path); err != nil {
		var pe *keys.PermissionError
		if errors.As(err, &pe) {
			return Result{check, Fail, err.Error(), pe.Hint()}
		}
		return Result{check, Fail, fmt.Sprintf("%s does not load: %v", path, err), "give the file coffer keygen wrote"}
	}
	return Result{check, OK, path + " loads, mode " + fmt.Sprintf("%04o", fi.Mode().Perm()), ""}
}

func checkKeys(c *config.Config) []Result {
	var out []Result
	if c.Identity != "" {
		out = append(out, keyFile("identity", c.Identity, func(p string) error { _, err := keys.LoadIdentities(p); return err }))
	}
	if c.SigningKey != "" {
		out = append(out, keyFile("signing key", c.SigningKey, func(p string) error { _, err := keys.LoadSigningKey(p); return err }))
	}
	if c.OwnerKey != "" && ownerPrivate(c.OwnerKey) {
		out = append(out, keyFile("owner key", c.OwnerKey, func(p string) error { _, err := keys.LoadOwnerKey(p); return err }))
	}
	if len(out) == 0 {
		out = append(out, Result{"keys", Warn, "no key configured (identity, signing_key, owner_key)", "set them in the config file or with --identity, --signing-key, --owner-key"})
	}
	return out
}

// ownerPrivate reports whether the owner key setting names the private
// owner key (not owner.pub or its text).
func ownerPrivate(arg string) bool {
	k, _, err := keys.LoadOwner(arg)
	if err != nil {
		// A key that does not load: keyFile says why, when it is a file
		// that is not the public key.
		_, perr := keys.LoadOwnerPublic(arg)
		return perr != nil && !strings.HasPrefix(strings.TrimSpace(arg), "coffer-owner-pub-")
	}
	return k != nil
}

// checkRoles: which keys sit on this host, and whether they should. A
// backup host (a signing key and sources to back up) needs no identity
// and no owner key: a thief of the host would get them.
func checkRoles(c *config.Config) []Result {
	backupHost := c.SigningKey != "" && len(c.Sources) > 0
	var out []Result
	if backupHost && c.Identity != "" {
		out = append(out, Result{"roles", Warn, "an identity on a backup host (it has a signing key and sources to back up): whoever takes this host can decrypt every backup",
			"keep identity.txt on restore and drill hosts only; remove identity from this host's config and the file from this host"})
	}
	if backupHost && c.OwnerKey != "" && ownerPrivate(c.OwnerKey) {
		out = append(out, Result{"roles", Warn, "the owner key on a backup host: whoever takes this host can authorise their own keys",
			"keep owner.key offline; pin the repository with owner.pub here"})
	}
	if len(out) == 0 {
		role := "no backup role"
		if backupHost {
			role = "backup host: signing key only"
		}
		out = append(out, Result{"roles", OK, role, ""})
	}
	return out
}

func checkRepository(ctx context.Context, o Options) []Result {
	c := o.Config
	if c.Repository == "" {
		return []Result{{"repository", Fail, "no repository configured", "give --repo, COFFER_REPO or repository: in the config file"}}
	}
	s3, err := c.S3Config()
	if err != nil {
		return []Result{{"repository", Fail, err.Error(), "fix the s3: settings"}}
	}
	// The clock is asked of the S3 server even when the repository is
	// out of reach: a skewed clock is a reason S3 refuses requests.
	var clock []Result
	if strings.HasPrefix(c.Repository, "s3://") {
		clock = append(clock, checkClock(ctx, o, s3))
	}
	st, err := storage.Open(ctx, c.Repository, s3)
	if err != nil {
		fix := "check the repository location"
		switch {
		case errors.Is(err, storage.ErrBucketNotFound):
			fix = "create the bucket, or check the bucket name in the repository URL"
		case errors.Is(err, storage.ErrUnreachable):
			fix = "check s3.endpoint (COFFER_S3_ENDPOINT) and that the server is up and reachable from this host"
		}
		return append([]Result{{"repository", Fail, fmt.Sprintf("%s: %v", redactURL(c.Repository), err), fix}}, clock...)
	}
	var out []Result
	cfg, err := repo.PeekConfig(ctx, st)
	switch {
	case errors.Is(err, repo.ErrNotInitialized):
		out = append(out, Result{"repository", Fail, st.Location() + " is not a coffer repository yet", "run coffer init"})
	case err != nil:
		out = append(out, Result{"repository", Fail, fmt.Sprintf("%s: %v", st.Location(), err), "check the location and the credentials"})
	default:
		out = append(out, Result{"repository", OK, fmt.Sprintf("%s reachable: repository %s, config %d", st.Location(), repo.ShortID(cfg.ID), cfg.Seq), ""})
	}
	out = append(out, checkWrite(ctx, st))
	if strings.HasPrefix(c.Repository, "s3://") {
		out = append(out, checkLock(ctx, st))
	}
	return append(out, clock...)
}

// ProbeName is the write probe. One name for every run: where deletes are
// refused (append-only credentials), each run overwrites the one probe
// instead of leaving another. It sits at the top of the repository, in no
// folder: a local store makes a folder for an object's folder and leaves
// it when the object is deleted (removing it could race with a writer).
const ProbeName = "doctor-probe"

// redactURL masks a password written into a location (which storage
// refuses): doctor's output gets pasted into tickets.
func redactURL(loc string) string {
	u, err := url.Parse(loc)
	if err != nil || u.User == nil {
		if i := strings.LastIndex(loc, "@"); i >= 0 && err != nil {
			return "xxxxx" + loc[i:]
		}
		return loc
	}
	return u.Redacted()
}

// checkWrite writes a probe object and deletes it.
func checkWrite(ctx context.Context, st storage.Store) Result {
	name := ProbeName
	body := "coffer doctor write probe; safe to delete\n"
	if err := st.Put(ctx, name, strings.NewReader(body), int64(len(body)), storage.PutOptions{}); err != nil {
		return Result{"write", Fail, fmt.Sprintf("cannot write to the repository: %v", err),
			"a backup host needs write (put) permission on the repository: check the credentials, the bucket policy or the folder's permissions"}
	}
	if err := st.Delete(ctx, name); err != nil {
		return Result{"write", OK, fmt.Sprintf("can write; cannot delete (%v): append-only credentials, as a backup host should have; the probe %s stays", err, name), ""}
	}
	if _, err := st.Stat(ctx, name); err == nil {
		return Result{"write", OK, "can write; a delete left the object in place (object lock or versioning): the probe " + name + " stays", ""}
	}
	return Result{"write", OK, "can write and delete (a probe, " + ProbeName + ")", ""}
}

func checkLock(ctx context.Context, st storage.Store) Result {
	l, ok := storage.As[storage.Locker](st)
	if !ok {
		return Result{"object lock", Warn, "the store cannot tell its Object Lock status", ""}
	}
	on, err := l.ObjectLockEnabled(ctx)
	switch {
	case err != nil:
		return Result{"object lock", Warn, fmt.Sprintf("cannot read the bucket's Object Lock configuration: %v", err), "allow s3:GetBucketObjectLockConfiguration to see it"}
	case !on:
		return Result{"object lock", Warn, "the bucket has no Object Lock: credentials that may delete can remove every backup",
			"use a bucket created with Object Lock and coffer init --object-lock-days N"}
	}
	return Result{"object lock", OK, "the bucket has Object Lock enabled", ""}
}

// checkClock compares this host's clock with the S3 server's Date header.
func checkClock(ctx context.Context, o Options, s3 storage.S3Config) Result {
	scheme := "https"
	if s3.Insecure {
		scheme = "http"
	}
	ep := s3.Endpoint
	if ep == "" {
		ep = "s3.amazonaws.com"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, scheme+"://"+ep+"/", nil)
	if err != nil {
		return Result{"clock", Warn, err.Error(), ""}
	}
	client := o.HTTP
	if client == nil {
		tr, err := storage.S3Transport(s3)
		if err != nil {
			return Result{"clock", Warn, err.Error(), "fix s3.ca_file"}
		}
		client = &http.Client{Timeout: 10 * time.Second, Transport: tr}
	}
	before := o.Now()
	resp, err := client.Do(req)
	if err != nil {
		return Result{"clock", Warn, fmt.Sprintf("cannot ask the S3 server for its time: %v", err), "check s3.endpoint"}
	}
	resp.Body.Close()
	after := o.Now()
	server, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil {
		return Result{"clock", Warn, "the S3 server sent no usable Date header", ""}
	}
	local := before.Add(after.Sub(before) / 2)
	skew := local.Sub(server)
	// The Date header has whole seconds.
	if skew.Abs() < 2*time.Second {
		return Result{"clock", OK, "this host's clock agrees with the S3 server's", ""}
	}
	msg := fmt.Sprintf("this host's clock is %s %s the S3 server's", skew.Abs().Round(time.Second), map[bool]string{true: "ahead of", false: "behind"}[skew > 0])
	fix := "synchronise the clock (NTP: systemd-timesyncd, chrony)"
	switch {
	case skew.Abs() > MaxSkew:
		return Result{"clock", Fail, msg + fmt.Sprintf(": more than %s, so S3 refuses requests or readers refuse manifests as dated in the future", MaxSkew), fix}
	case skew.Abs() > WarnSkew:
		return Result{"clock", Warn, msg, fix}
	}
	return Result{"clock", OK, msg, ""}
}

// databases the config backs up, by kind: postgres and mysql sources, and
// airflow sources' metadata databases.
type database struct {
	source, kind, location string
}

func databases(c *config.Config) []database {
	var out []database
	for _, name := range sortedNames(c) {
		s := c.Sources[name]
		switch s.Kind {
		case "postgres", "mysql":
			out = append(out, database{name, s.Kind, s.Location})
		}
	}
	return out
}

func sortedNames(c *config.Config) []string {
	names := make([]string, 0, len(c.Sources))
	for n := range c.Sources {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func checkDatabases(ctx context.Context, c *config.Config) []Result {
	var out []Result
	for _, db := range databases(c) {
		switch db.kind {
		case "postgres":
			out = append(out, checkPostgres(ctx, db.source, db.location)...)
		case "mysql":
			out = append(out, checkMySQL(ctx, db.source, db.location)...)
		}
	}
	return out
}

func checkPostgres(ctx context.Context, name, location string) []Result {
	check := "postgres " + name
	dsn, err := postgres.DSN(location)
	if err != nil {
		return []Result{{check, Fail, err.Error(), "fix the source's location"}}
	}
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	conn, err := postgres.Connect(cctx, dsn)
	if err != nil {
		return []Result{{check, Fail, fmt.Sprintf("cannot connect: %v", err), "check that the server is up, the DSN, and pg_hba.conf for this host"}}
	}
	var server string
	err = conn.QueryRow(cctx, "select current_setting('server_version')").Scan(&server)
	conn.Close(context.WithoutCancel(ctx))
	if err != nil {
		return []Result{{check, Fail, fmt.Sprintf("cannot read the server version: %v", err), "check the role's privileges"}}
	}
	server = strings.Fields(server)[0]
	return []Result{pgDumpCheck(check, server)}
}

// pgDumpCheck judges the pg_dump coffer would run against a server of
// version server, and warns of an older pg_dump first on PATH.
func pgDumpCheck(check, server string) Result {
	path, version, err := postgres.FindTool("pg_dump", "", server)
	var ve *postgres.ToolVersionError
	switch {
	case errors.As(err, &ve):
		return Result{check, Fail, fmt.Sprintf("server %s; %v", server, err), "install postgresql-client of the server's major version (or newer)"}
	case err != nil:
		return Result{check, Fail, fmt.Sprintf("server %s; %v", server, err), "install postgresql-client of the server's major version (or newer)"}
	}
	if p, lerr := exec.LookPath("pg_dump"); lerr == nil && p != path {
		if v, verr := commandVersion(p, pgVersionRE); verr == nil && postgres.MajorLess(v, server) {
			return Result{check, Warn, fmt.Sprintf("server %s; coffer runs pg_dump %s (%s), but the pg_dump first on PATH (%s) is %s, older than the server", server, version, path, p, v),
				"put postgresql-client " + majorOf(server) + " first on PATH, so that manual dumps work too"}
		}
	}
	return Result{check, OK, fmt.Sprintf("server %s; pg_dump %s (%s)", server, version, path), ""}
}

var (
	pgVersionRE    = regexp.MustCompile(`\(PostgreSQL\) (\d+(?:\.\d+)*)`)
	mariaVersionRE = regexp.MustCompile(`(?:Distrib |from )(\d+\.\d+(?:\.\d+)?)`)
)

func commandVersion(path string, re *regexp.Regexp) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return "", err
	}
	m := re.FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("unexpected version output %q", strings.TrimSpace(string(out)))
	}
	return string(m[1]), nil
}

func majorOf(v string) string {
	parts := strings.Split(v, ".")
	if len(parts) > 1 && parts[0] < "10" && len(parts[0]) == 1 {
		return parts[0] + "." + parts[1]
	}
	return parts[0]
}

func checkMySQL(ctx context.Context, name, location string) []Result {
	check := "mysql " + name
	cfg, err := mysql.ParseDSN(location)
	if err != nil {
		return []Result{{check, Fail, err.Error(), "fix the source's location"}}
	}
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	db, err := mysql.Open(cctx, cfg)
	if err != nil {
		return []Result{{check, Fail, fmt.Sprintf("cannot connect: %v", err), "check that the server is up, the DSN and the account's host"}}
	}
	defer db.Close()
	var server string
	if err := db.QueryRowContext(cctx, "SELECT VERSION()").Scan(&server); err != nil {
		return []Result{{check, Fail, fmt.Sprintf("cannot read the server version: %v", err), "check the account's privileges"}}
	}
	server, _, _ = strings.Cut(server, "-")
	// coffer dumps MySQL and MariaDB itself; mariadb-dump matters for a
	// recovery by hand.
	for _, tool := range []string{"mariadb-dump", "mysqldump"} {
		p, err := exec.LookPath(tool)
		if err != nil {
			continue
		}
		v, err := commandVersion(p, mariaVersionRE)
		if err == nil && versionLess(v, server) {
			return []Result{{check, Warn, fmt.Sprintf("server %s; coffer dumps it itself, but %s (%s) is %s, older than the server, for a dump by hand", server, tool, p, v),
				"install a client as new as the server"}}
		}
		break
	}
	return []Result{{check, OK, fmt.Sprintf("server %s reachable (coffer dumps it itself, no client needed)", server), ""}}
}

// versionLess compares dotted versions numerically.
func versionLess(a, b string) bool {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) && i < len(bs); i++ {
		var x, y int
		fmt.Sscan(as[i], &x)
		fmt.Sscan(bs[i], &y)
		if x != y {
			return x < y
		}
	}
	return len(as) < len(bs)
}

// checkAirflow checks each airflow source; configFile is the file the
// sources come from, for the fix's command to read too.
func checkAirflow(ctx context.Context, c *config.Config, configFile string) []Result {
	inspect := "coffer airflow inspect "
	if configFile != "" {
		inspect = "coffer --config " + configFile + " airflow inspect "
	}
	var out []Result
	for _, name := range sortedNames(c) {
		s := c.Sources[name]
		if s.Kind != "airflow" {
			continue
		}
		check := "airflow " + name
		d, err := airflow.Discover(ctx, airflow.Options{Home: s.Location, Config: s.Airflow.Config, EnvFile: s.Airflow.EnvFile})
		if err != nil {
			out = append(out, Result{check, Fail, fmt.Sprintf("discovery: %v", err), "check the source's location (AIRFLOW_HOME), airflow.config and airflow.env_file; " + inspect + name + " shows what it finds"})
			continue
		}
		out = append(out, Result{check, OK, fmt.Sprintf("deployment at %s: metadata database %s (%s), DAGs %s", d.Home, d.MetaDB.Redacted, d.MetaDB.Kind, d.DagsFolder), ""})
		if d.MetaDB.Kind == "postgres" {
			if dsn, err := postgres.DSN(d.MetaDB.Location); err == nil {
				for _, r := range checkPostgres(ctx, name+" metadata", dsn) {
					r.Check = check + " metadata database"
					out = append(out, r)
				}
			}
		}
		fc, err := airflow.CheckFernet(ctx, d)
		fernetCheck := check + " fernet"
		switch {
		case err != nil:
			out = append(out, Result{fernetCheck, Fail, fmt.Sprintf("cannot check the Fernet key: %v", err), "check that the metadata database is up and reachable with sql_alchemy_conn"})
		case airflow.FernetProblem(d, fc) != "":
			out = append(out, Result{fernetCheck, Fail, airflow.FernetProblem(d, fc),
				"give coffer the deployment's Fernet key: its env_file (airflow.env_file), AIRFLOW__CORE__FERNET_KEY or _CMD, or [core] fernet_key"})
		case fc.Encrypted == 0:
			out = append(out, Result{fernetCheck, OK, fmt.Sprintf("%d Fernet key(s); no encrypted values yet", fc.Keys), ""})
		default:
			out = append(out, Result{fernetCheck, OK, fmt.Sprintf("%d Fernet key(s) decrypt all %d encrypted values", fc.Keys, fc.Checked), ""})
		}
	}
	return out
}

// checkTemp: the temp dir drills restore into exists, is writable, and
// has room.
func checkTemp(o Options) Result {
	dir := o.TempDir
	f, err := os.CreateTemp(dir, ".coffer-doctor-")
	if err != nil {
		return Result{"drill space", Fail, fmt.Sprintf("cannot write in %s: %v", dir, err), "set TMPDIR to a writable folder with room for a restore"}
	}
	f.Close()
	os.Remove(f.Name())
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return Result{"drill space", Warn, fmt.Sprintf("cannot read the free space of %s: %v", dir, err), ""}
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	msg := fmt.Sprintf("%s has %s free for drills' scratch restores", dir, units.Bytes(free))
	if free < o.MinFree {
		return Result{"drill space", Warn, msg + fmt.Sprintf(", less than %s", units.Bytes(o.MinFree)), "free space there, or set TMPDIR to a folder with room for the largest source"}
	}
	return Result{"drill space", OK, msg, ""}
}

package airflow

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cofferhq/coffer/source"
	"github.com/cofferhq/coffer/source/airflow/fernet"
	"github.com/cofferhq/coffer/source/sqlite"
)

// Options say where a deployment is.
type Options struct {
	// Home is AIRFLOW_HOME.
	Home string
	// Config is airflow.cfg; default $AIRFLOW_CONFIG from the deployment's
	// environment, else Home/airflow.cfg.
	Config string
	// EnvFile holds the deployment's AIRFLOW__... variables; they win over
	// the process's own environment.
	EnvFile string
	// Environ is the process environment the deployment shares; nil means
	// os.Environ().
	Environ []string
	// CommandTimeout bounds each _CMD; default DefaultCommandTimeout.
	CommandTimeout time.Duration
}

// Deployment is what Discover found: where every part of an Airflow
// deployment is, its metadata database, and its secrets.
type Deployment struct {
	Home       string
	ConfigPath string
	EnvFile    string

	DagsFolder    string
	PluginsFolder string
	LogFolder     string
	RemoteLogging bool
	// ConfigFiles are the configuration files that exist, by their name in
	// a snapshot's config/ folder ("airflow.cfg", "webserver_config.py",
	// "airflow_local_settings.py").
	ConfigFiles map[string]string

	MetaDB MetaDB
	// Secrets hold the values themselves: never print them.
	Secrets Secrets
	// FernetKeys is the number of keys in Secrets.FernetKey; FernetKeyErr
	// says why they do not parse.
	FernetKeys   int
	FernetKeyErr error

	// Origins says where each option came from ("core.fernet_key": "env
	// AIRFLOW__CORE__FERNET_KEY_CMD").
	Origins map[string]Origin
}

// MetaDB is the metadata database sql_alchemy_conn names.
type MetaDB struct {
	// URL is sql_alchemy_conn as resolved; it may hold a password.
	URL string
	// Redacted is URL with the password masked.
	Redacted string
	// Kind is the source kind that backs it up ("postgres", "mysql",
	// "sqlite") and Location that kind's LOCATION.
	Kind, Location string
	// User is the role Airflow connects as; Schema is
	// sql_alchemy_schema (PostgreSQL), "" for the default.
	User, Schema string
}

// Secrets are the deployment's secret settings as resolved. Stored only in
// the snapshot's encrypted catalog (metadata key airflow.secrets).
type Secrets struct {
	// FernetKey is the whole comma-separated list, first key first.
	FernetKey          string `json:"fernet_key,omitempty"`
	WebserverSecretKey string `json:"webserver_secret_key,omitempty"`
	APISecretKey       string `json:"api_secret_key,omitempty"`
	JWTSecret          string `json:"jwt_secret,omitempty"`
}

// The config/ folder of a snapshot holds these files when they exist.
const (
	CfgAirflow       = "airflow.cfg"
	CfgWebserver     = "webserver_config.py"
	CfgLocalSettings = "airflow_local_settings.py"
)

// ErrNoConfig is wrapped when airflow.cfg is missing.
var ErrNoConfig = errors.New("no airflow.cfg")

// Discover reads a deployment's configuration with Airflow's precedence
// (see config.go) and returns where everything is. It connects to
// nothing, but runs the _CMD commands the configuration names. Its errors
// and the Deployment's Origins never contain a secret.
func Discover(ctx context.Context, o Options) (*Deployment, error) {
	if o.Home == "" {
		return nil, errors.New("airflow: no AIRFLOW_HOME")
	}
	home, err := filepath.Abs(o.Home)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(home); err != nil {
		return nil, fmt.Errorf("AIRFLOW_HOME %s: %w", home, unwrapPath(err))
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("AIRFLOW_HOME %s is not a folder", home)
	}
	environ := o.Environ
	if environ == nil {
		environ = os.Environ()
	}
	envFile := o.EnvFile
	if envFile != "" {
		if envFile, err = filepath.Abs(envFile); err != nil {
			return nil, err
		}
	}
	e, err := newEnv(environ, envFile)
	if err != nil {
		return nil, err
	}
	// Airflow's processes run with AIRFLOW_HOME set to the deployment's.
	e.vars["AIRFLOW_HOME"] = home

	cfgPath, explicit := o.Config, o.Config != ""
	if cfgPath == "" {
		if v, ok := e.lookup("AIRFLOW_CONFIG"); ok && v != "" {
			cfgPath, explicit = e.expand(v), true
		} else {
			cfgPath = filepath.Join(home, CfgAirflow)
		}
	}
	if cfgPath, err = filepath.Abs(cfgPath); err != nil {
		return nil, err
	}
	f, err := os.Open(cfgPath)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if explicit {
				return nil, fmt.Errorf("%w at %s", ErrNoConfig, cfgPath)
			}
			return nil, fmt.Errorf("%w in AIRFLOW_HOME %s (Airflow writes one when it first starts; name another with the source's airflow config, or AIRFLOW_CONFIG)", ErrNoConfig, home)
		}
		return nil, fmt.Errorf("airflow.cfg: %w", err)
	}
	cfg, err := parseCfg(cfgPath, f)
	f.Close()
	if err != nil {
		return nil, err
	}

	r := &resolver{env: e, cfg: cfg, home: home, cmdTimeout: o.CommandTimeout}
	d := &Deployment{Home: home, ConfigPath: cfgPath, EnvFile: envFile, Origins: map[string]Origin{},
		ConfigFiles: map[string]string{CfgAirflow: cfgPath}}
	get := func(opt option) (string, error) {
		v, origin, err := r.get(ctx, opt)
		d.Origins[opt.section+"."+opt.key] = origin
		return v, err
	}
	path := func(opt option, dst *string) error {
		v, err := get(opt)
		if err != nil {
			return err
		}
		if v != "" && !filepath.IsAbs(v) {
			v = filepath.Join(home, v)
		}
		*dst = filepath.Clean(v)
		return nil
	}
	if err := path(optDagsFolder, &d.DagsFolder); err != nil {
		return nil, err
	}
	if err := path(optPluginsFolder, &d.PluginsFolder); err != nil {
		return nil, err
	}
	if err := path(optLogFolder, &d.LogFolder); err != nil {
		return nil, err
	}
	remote, err := get(optRemoteLogging)
	if err != nil {
		return nil, err
	}
	d.RemoteLogging = strings.EqualFold(strings.TrimSpace(remote), "true")

	var wsConfig string
	if err := path(optWebserverConfig, &wsConfig); err != nil {
		return nil, err
	}
	for name, p := range map[string]string{
		CfgWebserver:     wsConfig,
		CfgLocalSettings: filepath.Join(home, "config", CfgLocalSettings),
	} {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			d.ConfigFiles[name] = p
		}
	}

	conn, err := get(optSQLAlchemy)
	if err != nil {
		return nil, err
	}
	if d.MetaDB, err = metaDB(conn); err != nil {
		return nil, fmt.Errorf("%s (from %s): %w", optSQLAlchemy, d.Origins["database.sql_alchemy_conn"], err)
	}
	if d.MetaDB.Schema, err = get(optSQLSchema); err != nil {
		return nil, err
	}

	for _, s := range []struct {
		opt option
		dst *string
	}{
		{optFernetKey, &d.Secrets.FernetKey},
		{optWebserverSecret, &d.Secrets.WebserverSecretKey},
		{optAPISecret, &d.Secrets.APISecretKey},
		{optJWTSecret, &d.Secrets.JWTSecret},
	} {
		if *s.dst, err = get(s.opt); err != nil {
			return nil, err
		}
	}
	if strings.TrimSpace(d.Secrets.FernetKey) != "" {
		keys, err := fernet.ParseKeys(d.Secrets.FernetKey)
		d.FernetKeys, d.FernetKeyErr = len(keys), err
		if err != nil {
			d.FernetKeys = len(strings.Split(d.Secrets.FernetKey, ","))
		}
	}
	return d, nil
}

// metaDB turns sql_alchemy_conn into the kind that backs it up.
func metaDB(conn string) (MetaDB, error) {
	u, err := source.ParseSQLAlchemyURL(conn)
	if err != nil {
		return MetaDB{}, err
	}
	kind, err := u.KindOf()
	if err != nil {
		return MetaDB{}, err
	}
	m := MetaDB{URL: conn, Redacted: u.Redacted(), Kind: kind, Location: conn, User: u.User}
	if kind == "sqlite" {
		p, err := sqlite.PathOf(conn)
		if err != nil {
			return MetaDB{}, err
		}
		if !filepath.IsAbs(p) {
			// Airflow refuses relative SQLite paths too.
			return MetaDB{}, errors.New("a relative SQLite path: write sqlite:////absolute/path/airflow.db")
		}
		m.Location = p
	}
	return m, nil
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

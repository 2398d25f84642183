package airflow

import (
	"context"
	"os"
	"sort"
)

// Inspection is what Discover found, with every secret masked: what
// coffer airflow inspect prints.
type Inspection struct {
	Home       string `json:"home"`
	ConfigPath string `json:"config_path"`
	EnvFile    string `json:"env_file,omitempty"`
	// MetaDB is the database with its URL's password masked.
	MetaDB struct {
		Kind   string `json:"kind"`
		URL    string `json:"url"`
		User   string `json:"user,omitempty"`
		Schema string `json:"schema,omitempty"`
		From   Origin `json:"from"`
	} `json:"metadb"`
	Folders []Folder `json:"folders"`
	// ConfigFiles are the configuration files a backup stores.
	ConfigFiles []string  `json:"config_files"`
	DagsGit     *GitState `json:"dags_git,omitempty"`
	// Secrets says, for each secret setting, whether it is set, where
	// from, and for the Fernet key how many keys it holds.
	Secrets []SecretState `json:"secrets"`
	// Problems are what a backup would fail on or warn about.
	Problems []string `json:"problems,omitempty"`
}

// Folder is one folder of the deployment.
type Folder struct {
	Part   string `json:"part"` // "dags", "plugins", "logs"
	Path   string `json:"path"`
	Exists bool   `json:"exists"`
	From   Origin `json:"from"`
}

// SecretState describes a secret setting without its value.
type SecretState struct {
	Option string `json:"option"`
	Set    bool   `json:"set"`
	From   Origin `json:"from"`
	// Keys is the number of Fernet keys (core.fernet_key only).
	Keys int `json:"keys,omitempty"`
	// Problem says why the value is unusable.
	Problem string `json:"problem,omitempty"`
}

// Inspect describes the deployment, reading the DAGs folder's git state.
func (d *Deployment) Inspect(ctx context.Context) *Inspection {
	ins := &Inspection{Home: d.Home, ConfigPath: d.ConfigPath, EnvFile: d.EnvFile}
	ins.MetaDB.Kind, ins.MetaDB.URL, ins.MetaDB.User, ins.MetaDB.Schema = d.MetaDB.Kind, d.MetaDB.Redacted, d.MetaDB.User, d.MetaDB.Schema
	ins.MetaDB.From = d.Origins["database.sql_alchemy_conn"]
	for _, f := range []Folder{
		{Part: PartDags, Path: d.DagsFolder, From: d.Origins["core.dags_folder"]},
		{Part: PartPlugins, Path: d.PluginsFolder, From: d.Origins["core.plugins_folder"]},
		{Part: PartLogs, Path: d.LogFolder, From: d.Origins["logging.base_log_folder"]},
	} {
		fi, err := os.Stat(f.Path)
		f.Exists = err == nil && fi.IsDir()
		ins.Folders = append(ins.Folders, f)
		if f.Part == PartDags && !f.Exists {
			ins.Problems = append(ins.Problems, "the DAGs folder "+f.Path+" does not exist: a backup fails")
		}
	}
	for name := range d.ConfigFiles {
		ins.ConfigFiles = append(ins.ConfigFiles, name)
	}
	sort.Strings(ins.ConfigFiles)
	if g, err := gitState(ctx, d.DagsFolder); err == nil {
		ins.DagsGit = g
	} else {
		ins.Problems = append(ins.Problems, "DAGs folder: "+err.Error())
	}
	for _, s := range []struct {
		opt option
		v   string
	}{
		{optFernetKey, d.Secrets.FernetKey},
		{optWebserverSecret, d.Secrets.WebserverSecretKey},
		{optAPISecret, d.Secrets.APISecretKey},
		{optJWTSecret, d.Secrets.JWTSecret},
	} {
		st := SecretState{Option: s.opt.section + "." + s.opt.key, Set: s.v != "", From: d.Origins[s.opt.section+"."+s.opt.key]}
		if s.opt == optFernetKey {
			st.Keys = d.FernetKeys
			switch {
			case !st.Set:
				st.Problem = "no Fernet key: a backup exits 5 (not restorable as is)"
			case d.FernetKeyErr != nil:
				st.Problem = d.FernetKeyErr.Error()
			}
			if st.Problem != "" {
				ins.Problems = append(ins.Problems, "core.fernet_key: "+st.Problem)
			}
		}
		ins.Secrets = append(ins.Secrets, st)
	}
	return ins
}

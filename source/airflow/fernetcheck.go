package airflow

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer/source/airflow/fernet"
	"github.com/cofferhq/coffer/source/mysql"
	"github.com/cofferhq/coffer/source/postgres"
	"github.com/cofferhq/coffer/source/sqlite"
)

// CheckFernet connects to the deployment's metadata database and checks
// its encrypted values against the deployment's Fernet keys, as a backup
// does, reading only (a read-only transaction on PostgreSQL, a read-only
// open of SQLite). It is coffer doctor's check; errors never hold a
// secret.
func CheckFernet(ctx context.Context, d *Deployment) (FernetCheck, error) {
	var keys []fernet.Key
	if d.FernetKeyErr == nil && d.Secrets.FernetKey != "" {
		keys, _ = fernet.ParseKeys(d.Secrets.FernetKey)
	}
	var info dbInfo
	var err error
	switch d.MetaDB.Kind {
	case "postgres":
		dsn, derr := postgres.DSN(d.MetaDB.Location)
		if derr != nil {
			return FernetCheck{}, fmt.Errorf("metadata database: %s", scrubSecrets(d, derr.Error()))
		}
		conn, cerr := postgres.Connect(ctx, dsn)
		if cerr != nil {
			return FernetCheck{}, fmt.Errorf("metadata database (%s): %s", d.MetaDB.Redacted, scrubSecrets(d, cerr.Error()))
		}
		defer conn.Close(context.WithoutCancel(ctx))
		tx, terr := conn.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
		if terr != nil {
			return FernetCheck{}, fmt.Errorf("metadata database (%s): %s", d.MetaDB.Redacted, scrubSecrets(d, terr.Error()))
		}
		defer tx.Rollback(context.WithoutCancel(ctx))
		info, err = inspectDB(ctx, pgQuerier{tx: tx, schema: d.MetaDB.Schema}, keys)
	case "mysql":
		cfg, perr := mysql.ParseDSN(d.MetaDB.Location)
		if perr != nil {
			return FernetCheck{}, fmt.Errorf("metadata database: %s", scrubSecrets(d, perr.Error()))
		}
		db, oerr := mysql.Open(ctx, cfg)
		if oerr != nil {
			return FernetCheck{}, fmt.Errorf("metadata database (%s): %s", d.MetaDB.Redacted, scrubSecrets(d, oerr.Error()))
		}
		defer db.Close()
		info, err = inspectDB(ctx, sqlQuerier{q: db, mysql: true}, keys)
	case "sqlite":
		db, oerr := sqlite.Open(d.MetaDB.Location, true)
		if oerr != nil {
			return FernetCheck{}, fmt.Errorf("metadata database %s: %v", d.MetaDB.Location, oerr)
		}
		defer db.Close()
		info, err = inspectDB(ctx, sqlQuerier{q: db}, keys)
	default:
		return FernetCheck{}, fmt.Errorf("metadata database kind %q", d.MetaDB.Kind)
	}
	if err != nil {
		return info.fernet, fmt.Errorf("metadata database (%s): %s", d.MetaDB.Redacted, scrubSecrets(d, err.Error()))
	}
	return info.fernet, nil
}

// FernetProblem says why a restored Airflow could not read the values a
// check found, as a backup reports it, or "" when it could.
func FernetProblem(d *Deployment, fc FernetCheck) string {
	switch {
	case fc.Encrypted > 0 && d.Secrets.FernetKey == "":
		return fmt.Sprintf("no Fernet key found (looked at AIRFLOW__CORE__FERNET_KEY, its _CMD, and [core] fernet_key and fernet_key_cmd in %s): "+
			"the %d encrypted value(s) in the metadata database cannot be read by a restored Airflow", d.ConfigPath, fc.Encrypted)
	case d.FernetKeyErr != nil:
		return fmt.Sprintf("the Fernet key from %s does not parse (%v)", d.Origins["core.fernet_key"], d.FernetKeyErr)
	case fc.Failed > 0:
		return fmt.Sprintf("%d of %d encrypted value(s) do not decrypt with the %d Fernet key(s) from %s", fc.Failed, fc.Checked, fc.Keys, d.Origins["core.fernet_key"])
	}
	return ""
}

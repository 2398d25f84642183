package mysql

import (
	"context"
	"net/url"
)

// SQLAlchemyURL returns the SQLAlchemy URL (mysql+mysqldb://) of the
// database dsn names, connecting as user (dsn's user when empty). The
// password is included only when user is dsn's user.
func SQLAlchemyURL(dsn, user string) (string, error) {
	cfg, err := ParseDSN(dsn)
	if err != nil {
		return "", err
	}
	if user == "" {
		user = cfg.User
	}
	u := url.URL{Scheme: "mysql+mysqldb", Path: "/" + cfg.DBName}
	if user == cfg.User && cfg.Passwd != "" {
		u.User = url.UserPassword(user, cfg.Passwd)
	} else {
		u.User = url.User(user)
	}
	q := url.Values{}
	if cfg.Net == "unix" {
		u.Host = "localhost"
		q.Set("unix_socket", cfg.Addr)
	} else {
		u.Host = cfg.Addr
	}
	q.Set("charset", "utf8mb4")
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// DropDatabase drops the database dsn names; a composite restore uses it
// to undo a restore whose other parts failed. Grants the restore made on
// it are revoked first.
func DropDatabase(ctx context.Context, dsn string, grants *GrantResult) error {
	cfg, err := ParseDSN(dsn)
	if err != nil {
		return err
	}
	name := cfg.DBName
	admin := cfg.Clone()
	admin.DBName = ""
	db, err := Open(ctx, admin)
	if err != nil {
		return err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return ServerError(admin, err)
	}
	defer conn.Close()
	if grants != nil {
		for _, a := range grants.Accounts {
			// Grants outlive a dropped database in MySQL.
			conn.ExecContext(context.WithoutCancel(ctx), "REVOKE ALL PRIVILEGES ON "+mysqlIdent(name)+".* FROM "+a.Account) //nolint:errcheck
			for _, table := range a.Tables {
				conn.ExecContext(context.WithoutCancel(ctx), "REVOKE ALL PRIVILEGES ON "+mysqlIdent(name)+"."+mysqlIdent(table)+" FROM "+a.Account) //nolint:errcheck
			}
		}
	}
	return dropMySQLDatabase(ctx, conn, name)
}

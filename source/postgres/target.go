package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// SQLAlchemyURL returns the SQLAlchemy URL (postgresql+psycopg2://) of the
// database dsn names, connecting as user (dsn's user when empty). The
// password is included only when user is dsn's user; sslmode is kept.
func SQLAlchemyURL(dsn, user string) (string, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return "", errors.New("postgres: invalid DSN")
	}
	u := url.URL{Scheme: "postgresql+psycopg2", Path: "/" + cfg.Database}
	if user == "" {
		user = cfg.User
	}
	// The password only from the DSN's own text: pgx.ParseConfig also
	// fills it from PGPASSWORD and ~/.pgpass, the restoring user's
	// credentials, which must not land in a rewritten airflow.cfg.
	if pw := dsnPassword(dsn); user == cfg.User && pw != "" {
		u.User = url.UserPassword(user, pw)
	} else {
		u.User = url.User(user)
	}
	q := url.Values{}
	if strings.HasPrefix(cfg.Host, "/") {
		q.Set("host", cfg.Host)
		if cfg.Port != 5432 {
			q.Set("port", strconv.Itoa(int(cfg.Port)))
		}
	} else {
		u.Host = postgresAddr(cfg)
	}
	if mode := dsnParam(dsn, "sslmode"); mode != "" {
		q.Set("sslmode", mode)
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// dsnPassword returns the password written in the DSN itself (userinfo of
// a URL, or its password parameter), never one from the environment.
func dsnPassword(dsn string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		if u, err := url.Parse(dsn); err == nil {
			if pw, ok := u.User.Password(); ok {
				return pw
			}
		}
	}
	return dsnParam(dsn, "password")
}

// dsnParam returns a parameter of a URL or keyword/value DSN.
func dsnParam(dsn, key string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		if u, err := url.Parse(dsn); err == nil {
			return u.Query().Get(key)
		}
		return ""
	}
	kv, err := parseKeywordDSN(dsn)
	if err != nil {
		return ""
	}
	v := ""
	for _, p := range kv {
		if p[0] == key {
			v = p[1]
		}
	}
	return v
}

// DropDatabase drops the database dsn names, ending its connections; a
// composite restore uses it to undo a restore whose other parts failed.
func DropDatabase(ctx context.Context, dsn string) error {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return errors.New("postgres: invalid DSN")
	}
	name := cfg.Database
	admin := cfg.Copy()
	admin.Database = "postgres"
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	conn, err := ConnectConfig(ctx, admin)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "drop database if exists "+pgx.Identifier{name}.Sanitize()+" with (force)"); err != nil {
		return fmt.Errorf("drop database %q: %w", name, err)
	}
	return nil
}

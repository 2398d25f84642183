package postgres

import (
	"errors"
	"fmt"
	"net"
	"net/url"

	"github.com/cofferhq/coffer/source"
)

// DSN turns a location into a DSN that pgx and libpq understand: a
// SQLAlchemy URL (postgresql+psycopg2://user:pass@host:port/db?sslmode=...,
// as Airflow's sql_alchemy_conn holds it) becomes the equivalent
// postgresql:// URL, query parameters kept (psycopg2 hands them to libpq as
// they are); anything else is returned unchanged. Its errors never contain
// the password.
func DSN(location string) (string, error) {
	if !source.LooksLikeSQLAlchemyURL(location) {
		return location, nil
	}
	u, err := source.ParseSQLAlchemyURL(location)
	if err != nil {
		return "", fmt.Errorf("postgres: %w", err)
	}
	if u.Dialect != "postgresql" && u.Dialect != "postgres" {
		if _, err := u.KindOf(); err != nil {
			return "", err
		}
		return "", fmt.Errorf("postgres: a %s URL names no PostgreSQL database", u.Scheme())
	}
	switch u.Driver {
	case "", "psycopg2", "psycopg", "psycopg2cffi", "pg8000", "asyncpg":
	default:
		return "", fmt.Errorf("postgres: unknown SQLAlchemy driver %q", u.Driver)
	}
	if u.Database == "" {
		return "", errors.New("postgres: the URL names no database")
	}
	out := url.URL{Scheme: "postgresql", Path: "/" + u.Database, RawQuery: u.Query.Encode()}
	switch {
	case u.User != "" && u.Password != "":
		out.User = url.UserPassword(u.User, u.Password)
	case u.User != "":
		out.User = url.User(u.User)
	}
	out.Host = u.Host
	if u.Port != "" {
		out.Host = net.JoinHostPort(u.Host, u.Port)
	} else if u.Host != "" && net.ParseIP(u.Host) != nil && net.ParseIP(u.Host).To4() == nil {
		out.Host = "[" + u.Host + "]"
	}
	return out.String(), nil
}

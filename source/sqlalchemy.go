package source

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// SQLAlchemyURL is a database URL in SQLAlchemy's form,
// dialect[+driver]://user:password@host:port/database?key=value, the form
// of Airflow's sql_alchemy_conn. The postgres, mysql and sqlite kinds
// accept it as LOCATION; each turns it into its own DSN.
type SQLAlchemyURL struct {
	Dialect  string // "postgresql", "mysql", "sqlite", ...
	Driver   string // "psycopg2", "mysqldb", "pymysql"; "" when none
	User     string
	Password string
	Host     string // "" when none; an IPv6 address without brackets
	Port     string
	// Database is the database name, or for sqlite the file path
	// (sqlite:////abs/path gives "/abs/path", sqlite:///rel gives "rel";
	// "" is an in-memory database).
	Database string
	Query    url.Values
}

// sqlalchemyRE is SQLAlchemy's own pattern (sqlalchemy.engine.url._parse_url).
var sqlalchemyRE = regexp.MustCompile(`^(?s)([\w+]+)://` +
	`(?:([^:/]*)(?::([^@]*))?@)?` +
	`(?:(?:\[([^/?]+)\]|([^/:?]+))?(?::([^/?]*))?)?` +
	`(?:/([^?]*))?` +
	`(?:\?(.*))?$`)

// LooksLikeSQLAlchemyURL reports whether s is written in SQLAlchemy's
// form with a driver ("postgresql+psycopg2://") or is a sqlite: URL, the
// forms the kinds' own DSN parsers do not know.
func LooksLikeSQLAlchemyURL(s string) bool {
	scheme, _, ok := strings.Cut(s, "://")
	if !ok || strings.ContainsAny(scheme, "@/ ") {
		return false
	}
	return strings.Contains(scheme, "+") || scheme == "sqlite"
}

// ParseSQLAlchemyURL parses a SQLAlchemy URL the way SQLAlchemy does: user
// and password are percent-decoded, the database is not, query parameters
// are. Its errors never contain the URL (it may hold a password).
func ParseSQLAlchemyURL(s string) (*SQLAlchemyURL, error) {
	m := sqlalchemyRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return nil, errors.New("not a database URL of the form dialect[+driver]://user:password@host:port/database")
	}
	u := &SQLAlchemyURL{Port: m[6], Database: m[7], Host: m[5]}
	u.Dialect, u.Driver, _ = strings.Cut(strings.ToLower(m[1]), "+")
	if m[4] != "" {
		u.Host = m[4]
	}
	var err error
	if u.User, err = url.PathUnescape(m[2]); err != nil {
		return nil, errors.New("database URL: malformed user name")
	}
	if u.Password, err = url.PathUnescape(m[3]); err != nil {
		return nil, errors.New("database URL: malformed password")
	}
	if u.Query, err = url.ParseQuery(m[8]); err != nil {
		return nil, errors.New("database URL: malformed query parameters")
	}
	return u, nil
}

// Scheme returns "dialect" or "dialect+driver".
func (u *SQLAlchemyURL) Scheme() string {
	if u.Driver == "" {
		return u.Dialect
	}
	return u.Dialect + "+" + u.Driver
}

// String returns the URL in SQLAlchemy's form, password included.
func (u *SQLAlchemyURL) String() string { return u.render(u.Password) }

// Redacted returns the URL with the password replaced by "***".
// Passwords given as query parameters (password=, passwd=, pwd=,
// sslpassword=, any case) are masked too.
func (u *SQLAlchemyURL) Redacted() string {
	r := *u
	if len(u.Query) > 0 {
		r.Query = make(map[string][]string, len(u.Query))
		for k, vs := range u.Query {
			if secretQueryKey(k) {
				masked := make([]string, len(vs))
				for i := range masked {
					masked[i] = "***"
				}
				vs = masked
			}
			r.Query[k] = vs
		}
	}
	if u.Password == "" {
		return r.render("")
	}
	return r.render("***")
}

// secretQueryKey reports whether a URL query key carries a password.
func secretQueryKey(k string) bool {
	switch strings.ToLower(k) {
	case "password", "passwd", "pwd", "sslpassword", "pass":
		return true
	}
	return false
}

func (u *SQLAlchemyURL) render(pw string) string {
	var b strings.Builder
	b.WriteString(u.Scheme() + "://")
	if u.User != "" || pw != "" {
		b.WriteString(escapeUserinfo(u.User))
		if pw != "" {
			if pw == "***" {
				b.WriteString(":***")
			} else {
				b.WriteString(":" + escapeUserinfo(pw))
			}
		}
		b.WriteString("@")
	}
	if strings.Contains(u.Host, ":") {
		b.WriteString("[" + u.Host + "]")
	} else {
		b.WriteString(u.Host)
	}
	if u.Port != "" {
		b.WriteString(":" + u.Port)
	}
	if u.Database != "" || u.Dialect == "sqlite" {
		b.WriteString("/" + u.Database)
	}
	if len(u.Query) > 0 {
		b.WriteString("?" + u.Query.Encode())
	}
	return b.String()
}

// UnsupportedDialectError is a database URL of a dialect no kind reads.
type UnsupportedDialectError struct{ Scheme string }

func (e *UnsupportedDialectError) Error() string {
	return fmt.Sprintf("database URL scheme %q is not supported: coffer backs up PostgreSQL (postgresql://, postgresql+psycopg2://), MySQL/MariaDB (mysql://, mysql+mysqldb://, mysql+pymysql://) and SQLite (sqlite:////path)", e.Scheme)
}

// KindOf returns the kind that backs up a database of this URL's dialect.
func (u *SQLAlchemyURL) KindOf() (string, error) {
	switch u.Dialect {
	case "postgresql", "postgres":
		return "postgres", nil
	case "mysql", "mariadb":
		return "mysql", nil
	case "sqlite":
		return "sqlite", nil
	}
	return "", &UnsupportedDialectError{Scheme: u.Scheme()}
}

// escapeUserinfo percent-encodes everything but RFC 3986's unreserved
// characters.
func escapeUserinfo(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

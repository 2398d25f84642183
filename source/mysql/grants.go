package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Grants
//
// MySQL databases have no owner: an application account uses a database
// through grants, which live in the server's mysql schema and are not part
// of a dump. A backup records the database- and table-level grants on the
// database that the backing-up account can see (information_schema
// SCHEMA_PRIVILEGES and TABLE_PRIVILEGES; column grants and grants through
// wildcard database names are not recorded). A restore grants them again
// on the restored database to the accounts that exist on the target
// server, or, with Options.Owner, grants ALL PRIVILEGES on it to that one
// account instead. Grants are the last step before the restore succeeds;
// when they fail, those already made are revoked and the new database is
// dropped.

// Grant is one privilege of one account on the database (Table "") or on
// one of its tables.
type Grant struct {
	User      string `json:"user"`
	Host      string `json:"host"`
	Table     string `json:"table,omitempty"`
	Privilege string `json:"privilege"`
	Grantable bool   `json:"grantable,omitempty"`
}

// Account is "'user'@'host'" as MySQL quotes it.
func (g Grant) Account() string { return accountString(g.User, g.Host) }

// accountQuoter escapes a string literal for MySQL's default sql_mode,
// where a backslash is an escape character.
var accountQuoter = strings.NewReplacer(`\`, `\\`, "'", "''")

func accountString(user, host string) string {
	return "'" + accountQuoter.Replace(user) + "'@'" + accountQuoter.Replace(host) + "'"
}

// readGrants returns the grants on the current database.
func readGrants(ctx context.Context, conn *sql.Conn) ([]Grant, error) {
	out := []Grant{}
	for _, q := range []string{
		"SELECT GRANTEE, '', PRIVILEGE_TYPE, IS_GRANTABLE FROM information_schema.SCHEMA_PRIVILEGES WHERE TABLE_SCHEMA = DATABASE()",
		"SELECT GRANTEE, TABLE_NAME, PRIVILEGE_TYPE, IS_GRANTABLE FROM information_schema.TABLE_PRIVILEGES WHERE TABLE_SCHEMA = DATABASE()",
	} {
		rows, err := conn.QueryContext(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("read grants: %w", err)
		}
		for rows.Next() {
			var grantee, table, priv, grantable string
			if err := rows.Scan(&grantee, &table, &priv, &grantable); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read grants: %w", err)
			}
			user, host, ok := parseGrantee(grantee)
			if !ok {
				continue
			}
			out = append(out, Grant{User: user, Host: host, Table: table, Privilege: priv, Grantable: grantable == "YES"})
		}
		if err := rows.Close(); err != nil {
			return nil, fmt.Errorf("read grants: %w", err)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read grants: %w", err)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.User != b.User {
			return a.User < b.User
		}
		if a.Host != b.Host {
			return a.Host < b.Host
		}
		if a.Table != b.Table {
			return a.Table < b.Table
		}
		return a.Privilege < b.Privilege
	})
	return out, nil
}

// parseGrantee splits "'user'@'host'"; a role has no host part, or an empty one.
func parseGrantee(s string) (user, host string, ok bool) {
	if !strings.HasPrefix(s, "'") {
		return "", "", false
	}
	i := strings.LastIndex(s, "'@'")
	if i <= 0 || !strings.HasSuffix(s, "'") {
		if len(s) >= 2 && strings.HasSuffix(s, "'") {
			return strings.ReplaceAll(s[1:len(s)-1], "''", "'"), "", true
		}
		return "", "", false
	}
	return strings.ReplaceAll(s[1:i], "''", "'"), strings.ReplaceAll(s[i+3:len(s)-1], "''", "'"), true
}

// ParseAccount reads an account as a user gives it: "user", "user@host",
// or quoted "'user'@'host'". The host defaults to "%".
func ParseAccount(s string) (user, host string, err error) {
	user, host, ok := parseGrantee(s)
	if ok {
		if host == "" {
			host = "%"
		}
	} else {
		var found bool
		if user, host, found = strings.Cut(s, "@"); !found {
			host = "%"
		}
	}
	if user == "" || strings.ContainsAny(user+host, "'`\"\\") {
		return "", "", fmt.Errorf("account %q: give user or user@host", s)
	}
	return user, host, nil
}

var mysqlPrivilegeRE = regexp.MustCompile(`^[A-Z]+( [A-Z]+)*$`)

// GrantResult says which accounts may use a restored database.
type GrantResult struct {
	// Accounts were granted privileges on the restored database, as
	// 'user'@'host' with their privileges ("ALL PRIVILEGES" or a list).
	Accounts []AccountGrants
	// Given reports that Options.Owner chose the one account.
	Given bool
	// Missing are accounts that held grants at backup time but do not
	// exist on the target; their grants were left out.
	Missing []string
	// Recorded is false for a snapshot that records no grants.
	Recorded bool
}

// AccountGrants are the privileges one account got.
type AccountGrants struct {
	Account    string
	Privileges []string
	Tables     []string // tables it was granted privileges on, by name
}

func (r *GrantResult) String() string {
	if len(r.Accounts) == 0 {
		switch {
		case !r.Recorded:
			return "usable by the restoring account only (the snapshot records no grants)"
		case len(r.Missing) > 0:
			return fmt.Sprintf("usable by the restoring account only: %s, which held grants at backup time, do not exist on this server", strings.Join(r.Missing, ", "))
		}
		return "usable by the restoring account only (no account held grants on the database at backup time)"
	}
	var parts []string
	for _, a := range r.Accounts {
		if len(a.Privileges) > 4 {
			parts = append(parts, fmt.Sprintf("%s (%d privileges)", a.Account, len(a.Privileges)))
			continue
		}
		parts = append(parts, a.Account+" ("+strings.Join(a.Privileges, ", ")+")")
	}
	s := "granted to " + strings.Join(parts, "; ")
	if r.Given {
		s += ", as asked"
	}
	if len(r.Missing) > 0 {
		s += fmt.Sprintf("; left out the grants of %s, missing on this server", strings.Join(r.Missing, ", "))
	}
	return s
}

// Owner names the account that may use the database: the given one, else
// the first account granted ALL PRIVILEGES or the most privileges.
func (r *GrantResult) Owner() string {
	best, n := "", -1
	for _, a := range r.Accounts {
		k := len(a.Privileges)
		if len(a.Privileges) == 1 && a.Privileges[0] == "ALL PRIVILEGES" {
			k = 1 << 20
		}
		if k > n {
			best, n = a.Account, k
		}
	}
	return best
}

// ErrNoSuchAccount is wrapped when the account a restore is to grant the
// database to does not exist on the target server.
var ErrNoSuchAccount = errors.New("no such account")

// applyGrants grants the recorded privileges on database db (or ALL
// PRIVILEGES to owner, when given). On failure it revokes what it granted.
func applyGrants(ctx context.Context, conn *sql.Conn, db string, recorded []Grant, owner string, undo bool) (*GrantResult, error) {
	haveRecord := recorded != nil
	res := &GrantResult{Recorded: haveRecord}
	exists := map[string]bool{}
	accountExists := func(user, host string) (bool, error) {
		k := accountString(user, host)
		if v, ok := exists[k]; ok {
			return v, nil
		}
		var n int
		err := conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM mysql.user WHERE User = ? AND Host = ?", user, host).Scan(&n)
		if err != nil {
			return false, fmt.Errorf("look up account %s: %w", k, err)
		}
		exists[k] = n > 0
		return n > 0, nil
	}
	type stmt struct{ grant, revoke string }
	var stmts []stmt
	if owner != "" {
		user, host, err := ParseAccount(owner)
		if err != nil {
			return nil, err
		}
		ok, err := accountExists(user, host)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("account %s: %w on the target server", accountString(user, host), ErrNoSuchAccount)
		}
		acc := accountString(user, host)
		stmts = append(stmts, stmt{"GRANT ALL PRIVILEGES ON " + mysqlIdent(db) + ".* TO " + acc, "REVOKE ALL PRIVILEGES ON " + mysqlIdent(db) + ".* FROM " + acc})
		res.Accounts = []AccountGrants{{Account: acc, Privileges: []string{"ALL PRIVILEGES"}}}
		res.Given = true
	} else {
		// One GRANT per account and object, with its privileges listed.
		type key struct{ user, host, table string }
		privs := map[key][]string{}
		grantable := map[key]bool{}
		var order []key
		missing := map[string]bool{}
		for _, g := range recorded {
			if !mysqlPrivilegeRE.MatchString(g.Privilege) {
				return nil, fmt.Errorf("recorded grant %q of %s is not a privilege name", g.Privilege, g.Account())
			}
			ok, err := accountExists(g.User, g.Host)
			if err != nil {
				return nil, err
			}
			if !ok {
				missing[g.Account()] = true
				continue
			}
			k := key{g.User, g.Host, g.Table}
			if _, seen := privs[k]; !seen {
				order = append(order, k)
			}
			privs[k] = append(privs[k], g.Privilege)
			grantable[k] = grantable[k] || g.Grantable
		}
		byAccount := map[string]int{}
		for _, k := range order {
			obj := mysqlIdent(db) + ".*"
			if k.table != "" {
				obj = mysqlIdent(db) + "." + mysqlIdent(k.table)
			}
			acc := accountString(k.user, k.host)
			list := strings.Join(privs[k], ", ")
			g := "GRANT " + list + " ON " + obj + " TO " + acc
			if grantable[k] {
				g += " WITH GRANT OPTION"
			}
			stmts = append(stmts, stmt{g, "REVOKE " + list + " ON " + obj + " FROM " + acc})
			what := privs[k]
			if k.table != "" {
				what = []string{strings.Join(privs[k], ", ") + " on " + k.table}
			}
			i, ok := byAccount[acc]
			if !ok {
				i = len(res.Accounts)
				byAccount[acc] = i
				res.Accounts = append(res.Accounts, AccountGrants{Account: acc})
			}
			res.Accounts[i].Privileges = append(res.Accounts[i].Privileges, what...)
			if k.table != "" {
				res.Accounts[i].Tables = append(res.Accounts[i].Tables, k.table)
			}
		}
		for m := range missing {
			res.Missing = append(res.Missing, m)
		}
		sort.Strings(res.Missing)
	}
	for i, s := range stmts {
		if _, err := conn.ExecContext(ctx, s.grant); err != nil {
			for _, u := range stmts[:i] {
				if !undo {
					break
				}
				conn.ExecContext(context.WithoutCancel(ctx), u.revoke) //nolint:errcheck
			}
			return nil, fmt.Errorf("grant on %s: %w", db, err)
		}
	}
	return res, nil
}

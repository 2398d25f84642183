package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/cofferhq/coffer/internal/fingerprint"
	"github.com/cofferhq/coffer/source"
)

// Drill runs a restore drill's MySQL checks on the database targetDSN
// names, where Restore restored src: CHECK TABLE on every base table and
// the user checks.
func Drill(ctx context.Context, src source.Reader, targetDSN string, o source.DrillOptions) []source.DrillCheck {
	fail := func(err error) []source.DrillCheck {
		return []source.DrillCheck{{Name: "engine", Result: source.DrillFail, Detail: err.Error()}}
	}
	cfg, err := ParseDSN(targetDSN)
	if err != nil {
		return fail(err)
	}
	db, err := Open(ctx, cfg)
	if err != nil {
		return fail(err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return fail(ServerError(cfg, err))
	}
	defer conn.Close()
	out := []source.DrillCheck{checkTables(ctx, conn)}
	if len(o.Checks) > 0 {
		var want fingerprint.Fingerprints
		_ = src.Meta(fingerprint.MetaKey, &want)
		out = append(out, source.RunUserChecks(o.Checks, want.Checks, func(q string) ([]string, error) { return mysqlCheck(ctx, conn, q) })...)
	}
	return out
}

// checkTables runs CHECK TABLE on every base table of conn's database.
func checkTables(ctx context.Context, conn *sql.Conn) source.DrillCheck {
	c := source.DrillCheck{Name: "engine"}
	d := &mysqlDumper{conn: conn}
	if err := d.listTables(ctx); err != nil {
		c.Result, c.Detail = source.DrillFail, err.Error()
		return c
	}
	var bad []string
	for _, t := range d.tables {
		rows, err := conn.QueryContext(ctx, "CHECK TABLE "+mysqlIdent(t.name))
		if err != nil {
			c.Result, c.Detail = source.DrillFail, fmt.Sprintf("CHECK TABLE %s: %v", t.name, err)
			return c
		}
		for rows.Next() {
			var table, op, typ, text sql.NullString
			if err := rows.Scan(&table, &op, &typ, &text); err != nil {
				rows.Close()
				c.Result, c.Detail = source.DrillFail, fmt.Sprintf("CHECK TABLE %s: %v", t.name, err)
				return c
			}
			if strings.EqualFold(typ.String, "error") || (strings.EqualFold(typ.String, "status") && !strings.EqualFold(text.String, "OK")) {
				bad = append(bad, t.name+": "+text.String)
			}
		}
		rows.Close()
	}
	if len(bad) > 0 {
		c.Result, c.Detail = source.DrillFail, "CHECK TABLE: "+strings.Join(bad, "; ")
		return c
	}
	c.Result, c.Detail = source.DrillPass, fmt.Sprintf("CHECK TABLE: %d tables OK", len(d.tables))
	return c
}

// DropScratch drops the databases on the server adminDSN connects to whose
// names start with prefix and for which keep returns false, revoking the
// grants on them first (MySQL keeps grants of a dropped database). A drill
// uses it to remove its scratch databases. It returns the names dropped.
func DropScratch(ctx context.Context, adminDSN, prefix string, keep func(name string) bool) ([]string, error) {
	if prefix == "" {
		return nil, fmt.Errorf("mysql: refusing to drop scratch databases without a prefix")
	}
	cfg, err := ParseDSN(adminDSN)
	if err != nil {
		return nil, err
	}
	admin := cfg.Clone()
	admin.DBName = ""
	db, err := Open(ctx, admin)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, ServerError(admin, err)
	}
	defer conn.Close()
	rows, err := conn.QueryContext(ctx, "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA")
	if err != nil {
		return nil, err
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return nil, err
		}
		if strings.HasPrefix(n, prefix) && (keep == nil || !keep(n)) {
			names = append(names, n)
		}
	}
	rows.Close()
	var dropped []string
	for _, n := range names {
		for _, q := range []string{"SELECT User, Host, '' FROM mysql.db WHERE Db = ?", "SELECT User, Host, Table_name FROM mysql.tables_priv WHERE Db = ?"} {
			rs, err := conn.QueryContext(ctx, q, n)
			if err != nil {
				continue // not allowed to read the grant tables: nothing to revoke that we could see
			}
			var revokes []string
			for rs.Next() {
				var user, host, table string
				if rs.Scan(&user, &host, &table) == nil {
					on := mysqlIdent(n) + ".*"
					if table != "" {
						on = mysqlIdent(n) + "." + mysqlIdent(table)
					}
					revokes = append(revokes, "REVOKE ALL PRIVILEGES ON "+on+" FROM "+mysqlString(user)+"@"+mysqlString(host))
				}
			}
			rs.Close()
			for _, r := range revokes {
				conn.ExecContext(ctx, r) //nolint:errcheck
			}
		}
		if err := dropMySQLDatabase(ctx, conn, n); err != nil {
			return dropped, fmt.Errorf("drop scratch database %s: %w", n, err)
		}
		dropped = append(dropped, n)
	}
	return dropped, nil
}

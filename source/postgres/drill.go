package postgres

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer/internal/fingerprint"
	"github.com/cofferhq/coffer/source"
)

// Drill runs a restore drill's PostgreSQL checks on the database targetDSN
// names, where Restore restored src: pg_amcheck (a warning when it is not
// installed) and the user checks.
func Drill(ctx context.Context, src source.Reader, targetDSN string, o source.DrillOptions) []source.DrillCheck {
	out := []source.DrillCheck{Amcheck(ctx, targetDSN)}
	if len(o.Checks) > 0 {
		var want fingerprint.Fingerprints
		_ = src.Meta(fingerprint.MetaKey, &want)
		conn, err := Connect(ctx, targetDSN)
		if err != nil {
			for _, c := range o.Checks {
				out = append(out, source.DrillCheck{Name: "user:" + c.Name, Result: source.DrillFail, Detail: "connect to the restored database: " + err.Error()})
			}
			return out
		}
		defer conn.Close(context.WithoutCancel(ctx))
		out = append(out, source.RunUserChecks(o.Checks, want.Checks, func(q string) ([]string, error) { return queryText(ctx, conn, q) })...)
	}
	return out
}

// Amcheck runs pg_amcheck (B-tree indexes and heap tables, installing the
// amcheck extension in the database when missing) on the database dsn
// names. Without pg_amcheck the check is a warning.
func Amcheck(ctx context.Context, dsn string) source.DrillCheck {
	c := source.DrillCheck{Name: "engine"}
	conn, err := Connect(ctx, dsn)
	if err != nil {
		c.Result, c.Detail = source.DrillFail, err.Error()
		return c
	}
	info, err := ServerInfo(ctx, conn)
	conn.Close(context.WithoutCancel(ctx))
	if err != nil {
		c.Result, c.Detail = source.DrillFail, err.Error()
		return c
	}
	tool, _, err := FindTool("pg_amcheck", "", info.ServerVersion)
	if err != nil {
		c.Result, c.Detail = source.DrillWarn, "pg_amcheck not installed: the engine's own check was not run"
		var ve *ToolVersionError
		if errors.As(err, &ve) {
			c.Detail = "pg_amcheck is older than the server: the engine's own check was not run"
		}
		return c
	}
	env, err := CommandEnv(dsn, "")
	if err != nil {
		c.Result, c.Detail = source.DrillFail, err.Error()
		return c
	}
	cmd := pgCommand(ctx, tool, env.Env, "--install-missing", "--no-password", "--heapallindexed", env.ConnString)
	tail := &pgTail{}
	cmd.Stdout, cmd.Stderr = tail, tail
	if err := cmd.Run(); err != nil {
		msg := tail.last(5)
		if strings.Contains(msg, "permission denied") {
			c.Result, c.Detail = source.DrillWarn, "pg_amcheck could not run here (permission denied: the drill server's user must be allowed to create the amcheck extension)"
			return c
		}
		c.Result, c.Detail = source.DrillFail, fmt.Sprintf("pg_amcheck found corruption or failed (%v): %s", err, msg)
		return c
	}
	c.Result, c.Detail = source.DrillPass, "pg_amcheck --heapallindexed: no corruption found"
	return c
}

// Roles returns the roles a restore of src gives objects or privileges to
// (the owners and grantees recorded at backup time), without predefined
// roles and PUBLIC, sorted. A drill creates them on its scratch cluster.
func Roles(src source.Reader) []string {
	var info Info
	if err := src.Meta(MetaKey, &info); err != nil || info.Owners == nil {
		return nil
	}
	set := map[string]bool{}
	add := func(r string) {
		if r != "" && !strings.HasPrefix(r, "pg_") && !strings.EqualFold(r, "public") {
			set[r] = true
		}
	}
	add(info.Owners.Database)
	for _, o := range info.Owners.Objects {
		add(o.Owner)
		for _, g := range o.ACL {
			add(g.Grantee)
		}
	}
	out := make([]string, 0, len(set))
	for r := range set {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

// CanWrite reports whether role may insert into, update and delete from
// every table of the database dsn names (schema-qualified names, outside
// the system schemas), as has_table_privilege says. It returns the tables
// it may not write to.
func CanWrite(ctx context.Context, dsn, role string) (tables int, denied []string, err error) {
	conn, err := Connect(ctx, dsn)
	if err != nil {
		return 0, nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := conn.QueryRow(ctx, "select exists (select 1 from pg_roles where rolname = $1)", role).Scan(&exists); err != nil {
		return 0, nil, err
	}
	if !exists {
		return 0, nil, fmt.Errorf("role %s: %w", pgx.Identifier{role}.Sanitize(), ErrNoSuchRole)
	}
	rows, err := conn.Query(ctx, `select format('%I.%I', n.nspname, c.relname),
	  has_table_privilege($1, c.oid, 'INSERT') and has_table_privilege($1, c.oid, 'UPDATE') and has_table_privilege($1, c.oid, 'DELETE')
	from pg_class c join pg_namespace n on n.oid = c.relnamespace
	where c.relkind in ('r', 'p') and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg_toast%'
	order by 1`, role)
	if err != nil {
		return 0, nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var ok bool
		if err := rows.Scan(&name, &ok); err != nil {
			return 0, nil, err
		}
		tables++
		if !ok {
			denied = append(denied, name)
		}
	}
	return tables, denied, rows.Err()
}

// DropScratch drops the databases on the server dsn connects to (through
// its "postgres" database) whose names start with prefix and for which
// keep returns false, ending their connections. A drill uses it to remove
// its scratch databases. It returns the names dropped.
func DropScratch(ctx context.Context, dsn, prefix string, keep func(name string) bool) ([]string, error) {
	if prefix == "" {
		return nil, errors.New("postgres: refusing to drop scratch databases without a prefix")
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, errors.New("postgres: invalid DSN")
	}
	cfg.Database = "postgres"
	conn, err := ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, "select datname from pg_database where starts_with(datname, $1) order by 1", prefix)
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
		if keep == nil || !keep(n) {
			names = append(names, n)
		}
	}
	rows.Close()
	var dropped []string
	for _, n := range names {
		if _, err := conn.Exec(ctx, "drop database if exists "+pgx.Identifier{n}.Sanitize()+" with (force)"); err != nil {
			return dropped, fmt.Errorf("drop scratch database %s: %w", n, err)
		}
		dropped = append(dropped, n)
	}
	return dropped, nil
}

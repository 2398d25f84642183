package airflow

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer/source/airflow/fernet"
)

// FernetCheck is what the backup found about the metadata database's
// encrypted values (metadata key airflow, field fernet).
type FernetCheck struct {
	// Keys is the number of Fernet keys found (0: none).
	Keys int `json:"keys"`
	// Encrypted counts the values stored encrypted: connection passwords
	// and extras and variable values flagged is_encrypted, and trigger
	// kwargs that are Fernet tokens.
	Encrypted int `json:"encrypted"`
	// Checked counts the values tried with the keys (all of Encrypted when
	// there is a usable key, else 0); Failed those no key decrypts.
	Checked int `json:"checked"`
	Failed  int `json:"failed"`
	// Failures names the first values that failed ("connection
	// invoice_db password"), never their contents.
	Failures []string `json:"failures,omitempty"`
	// Error says why the check could not be completed (the counts above
	// are then partial), with no secret in it; "" when it ran to the end.
	Error string `json:"error,omitempty"`
}

const maxFailuresListed = 10

// dbInfo is what the backup reads from the metadata database inside the
// dump's snapshot.
type dbInfo struct {
	alembic, alembicFAB string
	fernet              FernetCheck
}

// querier runs the check's queries on one kind's connection.
type querier interface {
	// rows runs q and returns every row, NULL as nil.
	rows(ctx context.Context, q string) ([][]*string, error)
	// has reports whether the metadata database has table name.
	has(ctx context.Context, name string) (bool, error)
	// ident quotes a table name (schema-qualified where Airflow uses a
	// schema of its own); column quotes a column name.
	ident(name string) string
	column(name string) string
}

// inspectDB reads the Alembic revisions and checks every encrypted value
// against keys (nil when none was found or they do not parse; then values
// are counted, not checked).
func inspectDB(ctx context.Context, q querier, keys []fernet.Key) (dbInfo, error) {
	var info dbInfo
	for _, t := range []struct {
		table string
		dst   *string
	}{{"alembic_version", &info.alembic}, {"alembic_version_fab", &info.alembicFAB}} {
		ok, err := q.has(ctx, t.table)
		if err != nil {
			return info, err
		}
		if !ok {
			continue
		}
		rows, err := q.rows(ctx, "select version_num from "+q.ident(t.table))
		if err != nil {
			return info, fmt.Errorf("read %s: %w", t.table, err)
		}
		var revs []string
		for _, r := range rows {
			if r[0] != nil {
				revs = append(revs, *r[0])
			}
		}
		*t.dst = strings.Join(revs, ",")
	}

	fc := &info.fernet
	fc.Keys = len(keys)
	try := func(what, token string) {
		fc.Encrypted++
		if len(keys) == 0 {
			return
		}
		fc.Checked++
		if _, err := fernet.Decrypt(keys, token); err != nil {
			fc.Failed++
			if len(fc.Failures) < maxFailuresListed {
				fc.Failures = append(fc.Failures, what)
			}
		}
	}
	if ok, err := q.has(ctx, "connection"); err != nil {
		return info, err
	} else if ok {
		rows, err := q.rows(ctx, "select conn_id, password, is_encrypted, extra, is_extra_encrypted from "+q.ident("connection")+" order by id")
		if err != nil {
			return info, fmt.Errorf("read connections: %w", err)
		}
		for _, r := range rows {
			id := str(r[0])
			if truthy(r[2]) && r[1] != nil && *r[1] != "" {
				try(fmt.Sprintf("connection %q password", id), *r[1])
			}
			if truthy(r[4]) && r[3] != nil && *r[3] != "" {
				try(fmt.Sprintf("connection %q extra", id), *r[3])
			}
		}
	}
	if ok, err := q.has(ctx, "variable"); err != nil {
		return info, err
	} else if ok {
		rows, err := q.rows(ctx, "select "+q.column("key")+", val, is_encrypted from "+q.ident("variable")+" order by id")
		if err != nil {
			return info, fmt.Errorf("read variables: %w", err)
		}
		for _, r := range rows {
			if truthy(r[2]) && r[1] != nil && *r[1] != "" {
				try(fmt.Sprintf("variable %q", str(r[0])), *r[1])
			}
		}
	}
	if ok, err := q.has(ctx, "trigger"); err != nil {
		return info, err
	} else if ok {
		// Encrypted since 2.9, without a flag: a token is encrypted, JSON
		// (older schemas) is not.
		rows, err := q.rows(ctx, "select id, kwargs from "+q.ident("trigger")+" order by id")
		if err != nil {
			return info, fmt.Errorf("read triggers: %w", err)
		}
		for _, r := range rows {
			if r[1] != nil && fernet.LooksLikeToken(*r[1]) {
				try(fmt.Sprintf("trigger %s kwargs", str(r[0])), *r[1])
			}
		}
	}
	return info, nil
}

func str(p *string) string {
	if p == nil {
		return "NULL"
	}
	return *p
}

func truthy(p *string) bool {
	if p == nil {
		return false
	}
	switch strings.ToLower(strings.TrimSpace(*p)) {
	case "t", "true", "1", "y", "yes", "on":
		return true
	}
	return false
}

// pgQuerier reads through the dump's snapshot transaction.
type pgQuerier struct {
	tx     pgx.Tx
	schema string
}

func (p pgQuerier) ident(name string) string {
	if p.schema != "" {
		return pgx.Identifier{p.schema, name}.Sanitize()
	}
	return pgx.Identifier{name}.Sanitize()
}

func (p pgQuerier) has(ctx context.Context, name string) (bool, error) {
	var ok bool
	err := p.tx.QueryRow(ctx, "select to_regclass($1) is not null", p.ident(name)).Scan(&ok)
	return ok, err
}

func (p pgQuerier) rows(ctx context.Context, q string) ([][]*string, error) {
	rows, err := p.tx.Query(ctx, q, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out [][]*string
	for rows.Next() {
		raw := rows.RawValues()
		row := make([]*string, len(raw))
		for i, v := range raw {
			if v != nil {
				s := string(v)
				row[i] = &s
			}
		}
		out = append(out, row)
	}
	return out, rows.Err()
}

// sqlQuerier reads through database/sql: MySQL's snapshot connection or
// SQLite's consistent copy.
type sqlQuerier struct {
	q interface {
		QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	}
	mysql bool
}

func (p pgQuerier) column(name string) string { return pgx.Identifier{name}.Sanitize() }

func (s sqlQuerier) column(name string) string { return s.ident(name) }

func (s sqlQuerier) ident(name string) string {
	if s.mysql {
		return "`" + strings.ReplaceAll(name, "`", "``") + "`"
	}
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

func (s sqlQuerier) has(ctx context.Context, name string) (bool, error) {
	q := "select count(*) from sqlite_schema where type = 'table' and name = ?"
	if s.mysql {
		q = "select count(*) from information_schema.tables where table_schema = database() and table_name = ?"
	}
	rows, err := s.q.QueryContext(ctx, q, name)
	if err != nil {
		return false, err
	}
	defer rows.Close()
	var n int
	if rows.Next() {
		if err := rows.Scan(&n); err != nil {
			return false, err
		}
	}
	return n > 0, rows.Err()
}

func (s sqlQuerier) rows(ctx context.Context, q string) ([][]*string, error) {
	rows, err := s.q.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out [][]*string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		row := make([]*string, len(cols))
		for i, v := range vals {
			var s string
			switch v := v.(type) {
			case nil:
				continue
			case []byte:
				s = string(v)
			case bool:
				s = "false"
				if v {
					s = "true"
				}
			default:
				s = fmt.Sprint(v)
			}
			row[i] = &s
		}
		out = append(out, row)
	}
	return out, rows.Err()
}

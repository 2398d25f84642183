package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Owners
//
// pg_restore runs with --no-owner, so every restored object belongs to the
// restoring user, and the application's role would get "permission denied
// for table ..." or "must be owner of table ...". A backup therefore
// records who owns the database and each schema, table, sequence, view,
// materialized view, foreign table, function, procedure, domain and type
// (Info.Owners). A restore then gives the database and what the original
// database owner owned to one role: Options.Owner when given, else the
// original owner when that role exists on the target server. Objects that
// belonged to another role keep it when it exists there, and go to the
// same role otherwise. It does so with ALTER ... OWNER TO, in one
// transaction, before the restored database is published; sequences that
// belong to a table (serial and identity columns) follow their table.
// Objects owned by a predefined role (pg_database_owner owns the public
// schema) are left alone.

// Owners is who owned the database and its objects at backup time.
type Owners struct {
	Database string        `json:"database"`
	Objects  []ObjectOwner `json:"objects,omitempty"`
}

// ObjectOwner is the owner of one object. Name is the function's or
// procedure's identity ("f(integer, text)") for those.
type ObjectOwner struct {
	Type   string `json:"type"` // schema, table, sequence, view, materialized view, foreign table, function, procedure, domain, type
	Schema string `json:"schema,omitempty"`
	Name   string `json:"name"`
	Owner  string `json:"owner"`
	// ACL holds the object's privileges; nil means the defaults.
	ACL []Grant `json:"acl,omitempty"`
}

// Grant is one privilege on an object. Grantee "" is PUBLIC.
type Grant struct {
	Grantee   string `json:"grantee"`
	Privilege string `json:"privilege"` // SELECT, INSERT, ..., USAGE, EXECUTE
	Grantable bool   `json:"grantable,omitempty"`
}

func (o ObjectOwner) key() string { return o.Type + "\x00" + o.Schema + "\x00" + o.Name }

// pgObjectsQuery lists the objects whose owner a restore sets, outside the
// system schemas and extensions: type, schema, name, owner, the access
// privileges as JSON (NULL for the defaults), the statement's object
// reference (quoted by the server), and whether the object is a sequence
// that belongs to a table column.
var pgObjectsQuery = `
with ns as (
  select oid, nspname, nspowner, nspacl from pg_namespace
  where nspname not in ('pg_catalog', 'information_schema')
    and nspname not like 'pg\_toast%' and nspname not like 'pg\_temp\_%'
), ext as (
  select classid, objid from pg_depend where deptype = 'e'
)
select 'schema', '', n.nspname, pg_get_userbyid(n.nspowner), ` + aclJSON("n.nspacl") + `,
       quote_ident(n.nspname), false
from ns n
where not exists (select 1 from ext where classid = 'pg_namespace'::regclass and objid = n.oid)
union all
select case c.relkind when 'r' then 'table' when 'p' then 'table' when 'S' then 'sequence' when 'v' then 'view'
         when 'm' then 'materialized view' else 'foreign table' end,
       n.nspname, c.relname, pg_get_userbyid(c.relowner), ` + aclJSON("c.relacl") + `,
       quote_ident(n.nspname) || '.' || quote_ident(c.relname),
       c.relkind = 'S' and exists (select 1 from pg_depend d where d.classid = 'pg_class'::regclass
           and d.objid = c.oid and d.refclassid = 'pg_class'::regclass and d.deptype in ('a', 'i'))
from pg_class c join ns n on n.oid = c.relnamespace
where c.relkind in ('r', 'p', 'S', 'v', 'm', 'f')
  and not exists (select 1 from ext where classid = 'pg_class'::regclass and objid = c.oid)
union all
select case p.prokind when 'p' then 'procedure' else 'function' end,
       n.nspname, p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')', pg_get_userbyid(p.proowner),
       ` + aclJSON("p.proacl") + `,
       quote_ident(n.nspname) || '.' || quote_ident(p.proname) || '(' || pg_get_function_identity_arguments(p.oid) || ')', false
from pg_proc p join ns n on n.oid = p.pronamespace
where p.prokind in ('f', 'p')
  and not exists (select 1 from ext where classid = 'pg_proc'::regclass and objid = p.oid)
union all
select case t.typtype when 'd' then 'domain' else 'type' end,
       n.nspname, t.typname, pg_get_userbyid(t.typowner), ` + aclJSON("t.typacl") + `,
       quote_ident(n.nspname) || '.' || quote_ident(t.typname), false
from pg_type t join ns n on n.oid = t.typnamespace
where (t.typtype in ('d', 'e', 'r')
       or (t.typtype = 'c' and (select relkind from pg_class where oid = t.typrelid) = 'c'))
  and not exists (select 1 from ext where classid = 'pg_type'::regclass and objid = t.oid)
order by 1, 2, 3`

// aclJSON renders an aclitem[] column as a JSON array of [grantee,
// privilege, grantable] ("" is PUBLIC), or NULL when it holds the
// defaults.
func aclJSON(col string) string {
	return "case when " + col + " is null then null else coalesce((select json_agg(json_build_array(" +
		"case when a.grantee = 0 then '' else pg_get_userbyid(a.grantee) end, a.privilege_type, a.is_grantable) " +
		"order by 1, 2) from aclexplode(" + col + ") a)::text, '[]') end"
}

type pgObject struct {
	ObjectOwner
	ref    string // quoted reference for ALTER and GRANT
	linked bool   // a sequence of a table column: its owner follows the table
}

func pgObjects(ctx context.Context, q Querier) ([]pgObject, error) {
	rows, err := q.Query(ctx, pgObjectsQuery)
	if err != nil {
		return nil, fmt.Errorf("list owners: %w", err)
	}
	defer rows.Close()
	var out []pgObject
	for rows.Next() {
		var o pgObject
		var acl *string
		if err := rows.Scan(&o.Type, &o.Schema, &o.Name, &o.Owner, &acl, &o.ref, &o.linked); err != nil {
			return nil, fmt.Errorf("list owners: %w", err)
		}
		if acl != nil {
			var items [][3]any
			if err := json.Unmarshal([]byte(*acl), &items); err != nil {
				return nil, fmt.Errorf("list owners: privileges of %s: %w", o.ref, err)
			}
			o.ACL = []Grant{}
			for _, it := range items {
				g, _ := it[0].(string)
				p, _ := it[1].(string)
				opt, _ := it[2].(bool)
				o.ACL = append(o.ACL, Grant{Grantee: g, Privilege: p, Grantable: opt})
			}
		}
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list owners: %w", err)
	}
	return out, nil
}

// readOwners records the owners of the current database and its objects.
func readOwners(ctx context.Context, tx pgx.Tx) (*Owners, error) {
	var ow Owners
	if err := tx.QueryRow(ctx, "select pg_get_userbyid(datdba) from pg_database where datname = current_database()").Scan(&ow.Database); err != nil {
		return nil, fmt.Errorf("database owner: %w", err)
	}
	objs, err := pgObjects(ctx, tx)
	if err != nil {
		return nil, err
	}
	for _, o := range objs {
		ow.Objects = append(ow.Objects, o.ObjectOwner)
	}
	return &ow, nil
}

// OwnerResult says who owns a restored database and why.
type OwnerResult struct {
	// Role owns the restored database and what its original owner owned.
	Role string
	// Reason is "given" (Options.Owner), "original" (the owner at backup
	// time exists on the target) or "restoring user" (it does not, or the
	// snapshot records no owners).
	Reason string
	// Original is the database's owner at backup time ("" when unknown).
	Original string
	// Changed counts the objects whose owner the restore set.
	Changed int
	// MissingGrantees are roles that held privileges at backup time but
	// do not exist on the target: those privileges were left out.
	MissingGrantees []string
}

func (r *OwnerResult) String() string {
	switch r.Reason {
	case "given":
		return fmt.Sprintf("owned by role %s (as asked; the original owner was %s)", r.Role, orUnknown(r.Original))
	case "original":
		return fmt.Sprintf("owned by role %s, its original owner", r.Role)
	}
	if r.Original == "" {
		return fmt.Sprintf("owned by role %s, the restoring user (the snapshot records no owner)", r.Role)
	}
	if r.Original == r.Role {
		return fmt.Sprintf("owned by role %s, its original owner", r.Role)
	}
	return fmt.Sprintf("owned by role %s, the restoring user: the original owner %s does not exist on this server", r.Role, r.Original)
}

// Notes says what a reader of the restore should know beyond the owner.
func (r *OwnerResult) Notes() []string {
	if len(r.MissingGrantees) == 0 {
		return nil
	}
	return []string{fmt.Sprintf("privileges of roles missing on this server were left out: %s", strings.Join(r.MissingGrantees, ", "))}
}

func orUnknown(s string) string {
	if s == "" {
		return "not recorded"
	}
	return s
}

// ErrNoSuchRole is wrapped when the role a restore is to give the database
// to does not exist on the target server.
var ErrNoSuchRole = fmt.Errorf("no such role")

// privileges a Grant may name; anything else in a snapshot is refused.
var pgPrivileges = map[string]bool{"SELECT": true, "INSERT": true, "UPDATE": true, "DELETE": true, "TRUNCATE": true,
	"REFERENCES": true, "TRIGGER": true, "EXECUTE": true, "USAGE": true, "CREATE": true, "MAINTAIN": true}

// grantClass is the object class GRANT names for an object type.
func grantClass(typ string) string {
	switch typ {
	case "table", "view", "materialized view", "foreign table":
		return "table"
	}
	return typ
}

// pgSetOwners gives the restored database (connected as conn, named db)
// and its objects to their owner, and grants the recorded privileges to
// the roles that exist on the target, as described above, in one
// transaction.
func pgSetOwners(ctx context.Context, conn *pgx.Conn, db string, rec *Owners, given string) (*OwnerResult, error) {
	var me string
	if err := conn.QueryRow(ctx, "select current_user").Scan(&me); err != nil {
		return nil, err
	}
	res := &OwnerResult{Role: me, Reason: "restoring user"}
	if rec != nil {
		res.Original = rec.Database
	}
	exists := map[string]bool{"": true} // PUBLIC
	roleExists := func(role string) (bool, error) {
		if v, ok := exists[role]; ok {
			return v, nil
		}
		var ok bool
		err := conn.QueryRow(ctx, "select exists (select 1 from pg_roles where rolname = $1)", role).Scan(&ok)
		exists[role] = ok
		return ok, err
	}
	primary := ""
	switch {
	case given != "":
		ok, err := roleExists(given)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("role %q: %w on the target server", given, ErrNoSuchRole)
		}
		primary, res.Reason = given, "given"
	case rec != nil && rec.Database != "" && !strings.HasPrefix(rec.Database, "pg_"):
		ok, err := roleExists(rec.Database)
		if err != nil {
			return nil, err
		}
		if ok {
			primary, res.Reason = rec.Database, "original"
		}
	}
	recorded := map[string]ObjectOwner{}
	if rec != nil {
		for _, o := range rec.Objects {
			recorded[o.key()] = o
		}
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	objs, err := pgObjects(ctx, tx)
	if err != nil {
		return nil, err
	}
	// Schemas first, so that what is inside is altered after its schema;
	// then the rest in the query's order.
	sort.SliceStable(objs, func(i, j int) bool { return objs[i].Type == "schema" && objs[j].Type != "schema" })
	if primary != "" {
		res.Role = primary
		for _, o := range objs {
			if o.linked || strings.HasPrefix(o.Owner, "pg_") {
				continue
			}
			want := primary
			if was, ok := recorded[o.key()]; ok && given == "" && was.Owner != rec.Database && !strings.HasPrefix(was.Owner, "pg_") {
				ok, err := roleExists(was.Owner)
				if err != nil {
					return nil, err
				}
				if ok {
					want = was.Owner
				}
			}
			if o.Owner == want {
				continue
			}
			stmt := "alter " + o.Type + " " + o.ref + " owner to " + pgx.Identifier{want}.Sanitize()
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return nil, fmt.Errorf("give %s %s to role %s: %w", o.Type, o.ref, want, err)
			}
			res.Changed++
		}
		if _, err := tx.Exec(ctx, "alter database "+pgx.Identifier{db}.Sanitize()+" owner to "+pgx.Identifier{primary}.Sanitize()); err != nil {
			return nil, fmt.Errorf("give database %s to role %s: %w", db, primary, err)
		}
	}
	// The dump's own GRANTs were left out (pg_restore --no-privileges):
	// one naming a role missing here would fail the whole restore.
	missing := map[string]bool{}
	for _, o := range objs {
		was, ok := recorded[o.key()]
		if !ok || was.ACL == nil {
			continue
		}
		class := grantClass(o.Type)
		if _, err := tx.Exec(ctx, "revoke all on "+class+" "+o.ref+" from public"); err != nil {
			return nil, fmt.Errorf("privileges of %s %s: %w", o.Type, o.ref, err)
		}
		for _, g := range was.ACL {
			if g.Grantee == was.Owner || !pgPrivileges[g.Privilege] {
				continue
			}
			ok, err := roleExists(g.Grantee)
			if err != nil {
				return nil, err
			}
			if !ok {
				missing[g.Grantee] = true
				continue
			}
			to := "public"
			if g.Grantee != "" {
				to = pgx.Identifier{g.Grantee}.Sanitize()
			}
			stmt := "grant " + g.Privilege + " on " + class + " " + o.ref + " to " + to
			if g.Grantable {
				stmt += " with grant option"
			}
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return nil, fmt.Errorf("privileges of %s %s: %w", o.Type, o.ref, err)
			}
		}
	}
	for r := range missing {
		res.MissingGrantees = append(res.MissingGrantees, r)
	}
	sort.Strings(res.MissingGrantees)
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	return res, nil
}

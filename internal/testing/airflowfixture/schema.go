package airflowfixture

import (
	"fmt"
	"strings"
)

// A slice of Airflow's metadata schema, written once and rendered for each
// engine with the column types Airflow's own migrations use there
// (../../../../shared/AIRFLOW.md): timestamps with time zone on
// PostgreSQL, timestamp(6) on MySQL; utf8mb3_bin ids on MySQL; JSON as
// json.

type col struct {
	name    string
	typ     string // see colType
	notNull bool
	def     string // a default, in SQL common to the engines
}

type fk struct {
	cols, refTable, refCols string
	cascade                 bool
}

type table struct {
	name    string
	cols    []col
	pk      string // comma-separated columns; "" with an "id" column of type serial
	uniques []string
	fks     []fk
}

// Column types: serial (integer primary key with a sequence), int, bigint,
// float, bool, ts, text, json, bytes, str:N (varchar), id:N (varchar of an
// identifier: binary collation on MySQL), uuid.
func colType(engine, typ string) string {
	kind, n, _ := strings.Cut(typ, ":")
	switch engine {
	case "postgres":
		switch kind {
		case "serial":
			return "serial primary key"
		case "int":
			return "integer"
		case "bigint":
			return "bigint"
		case "float":
			return "double precision"
		case "bool":
			return "boolean"
		case "ts":
			return "timestamp with time zone"
		case "text":
			return "text"
		case "json":
			return "json"
		case "bytes":
			return "bytea"
		case "str", "id":
			return "varchar(" + n + ")"
		case "uuid":
			return "uuid"
		}
	case "mysql":
		switch kind {
		case "serial":
			return "integer not null auto_increment primary key"
		case "int":
			return "integer"
		case "bigint":
			return "bigint"
		case "float":
			return "double"
		case "bool":
			return "tinyint(1)"
		case "ts":
			return "timestamp(6) null"
		case "text":
			return "mediumtext"
		case "json":
			return "json"
		case "bytes":
			return "longblob"
		case "str":
			return "varchar(" + n + ")"
		case "id":
			return "varchar(" + n + ") character set utf8mb3 collate utf8mb3_bin"
		case "uuid":
			return "varchar(36)"
		}
	case "sqlite":
		switch kind {
		case "serial":
			return "integer not null primary key autoincrement"
		case "int":
			return "integer"
		case "bigint":
			return "bigint"
		case "float":
			return "float"
		case "bool":
			return "boolean"
		case "ts":
			return "timestamp"
		case "text":
			return "text"
		case "json":
			return "json"
		case "bytes":
			return "blob"
		case "str", "id":
			return "varchar(" + n + ")"
		case "uuid":
			return "varchar(36)"
		}
	}
	panic(fmt.Sprintf("column type %s on %s", typ, engine))
}

func quote(engine, name string) string {
	if engine == "mysql" {
		return "`" + name + "`"
	}
	return `"` + name + `"`
}

func quoteList(engine, cols string) string {
	var out []string
	for _, c := range strings.Split(cols, ",") {
		out = append(out, quote(engine, strings.TrimSpace(c)))
	}
	return strings.Join(out, ", ")
}

// ddl renders CREATE TABLE statements, parents first.
func ddl(engine string, tables []table) []string {
	var out []string
	for _, t := range tables {
		var parts []string
		for _, c := range t.cols {
			s := quote(engine, c.name) + " " + colType(engine, c.typ)
			if c.notNull && !strings.HasPrefix(c.typ, "serial") {
				s += " not null"
			}
			if c.def != "" {
				s += " default " + c.def
			}
			parts = append(parts, s)
		}
		if t.pk != "" {
			parts = append(parts, "primary key ("+quoteList(engine, t.pk)+")")
		}
		for i, u := range t.uniques {
			parts = append(parts, fmt.Sprintf("constraint %s unique (%s)", quote(engine, fmt.Sprintf("%s_uq%d", t.name, i+1)), quoteList(engine, u)))
		}
		for i, f := range t.fks {
			s := fmt.Sprintf("constraint %s foreign key (%s) references %s (%s)", quote(engine, fmt.Sprintf("%s_fk%d", t.name, i+1)),
				quoteList(engine, f.cols), quote(engine, f.refTable), quoteList(engine, f.refCols))
			if f.cascade {
				s += " on delete cascade"
			}
			parts = append(parts, s)
		}
		stmt := "create table " + quote(engine, t.name) + " (\n  " + strings.Join(parts, ",\n  ") + "\n)"
		if engine == "mysql" {
			stmt += " engine=InnoDB default charset=utf8mb4 collate=utf8mb4_unicode_ci"
		}
		out = append(out, stmt)
	}
	return out
}

// schema returns the tables of an Airflow version ("2.10" or "3.0").
func schema(version string) []table {
	v3 := strings.HasPrefix(version, "3")
	logical := "execution_date"
	if v3 {
		logical = "logical_date"
	}
	dagCols := []col{
		{name: "dag_id", typ: "id:250", notNull: true},
		{name: "is_paused", typ: "bool"},
		{name: "is_active", typ: "bool"},
		{name: "last_parsed_time", typ: "ts"},
		{name: "fileloc", typ: "str:2000"},
		{name: "owners", typ: "str:2000"},
		{name: "description", typ: "text"},
		{name: "timetable_description", typ: "str:1000"},
		{name: "max_active_tasks", typ: "int", notNull: true},
		{name: "max_active_runs", typ: "int"},
		{name: "has_task_concurrency_limits", typ: "bool", notNull: true},
		{name: "has_import_errors", typ: "bool", def: "false"},
		{name: "next_dagrun", typ: "ts"},
		{name: "next_dagrun_data_interval_start", typ: "ts"},
		{name: "next_dagrun_data_interval_end", typ: "ts"},
		{name: "next_dagrun_create_after", typ: "ts"},
	}
	if v3 {
		dagCols[2] = col{name: "is_stale", typ: "bool"}
		dagCols = append(dagCols, col{name: "bundle_name", typ: "str:250"})
	}
	tiCols := []col{
		{name: "task_id", typ: "id:250", notNull: true},
		{name: "dag_id", typ: "id:250", notNull: true},
		{name: "run_id", typ: "id:250", notNull: true},
		{name: "map_index", typ: "int", notNull: true, def: "-1"},
		{name: "start_date", typ: "ts"},
		{name: "end_date", typ: "ts"},
		{name: "duration", typ: "float"},
		{name: "state", typ: "str:20"},
		{name: "try_number", typ: "int"},
		{name: "max_tries", typ: "int", def: "-1"},
		{name: "hostname", typ: "str:1000"},
		{name: "unixname", typ: "str:1000"},
		{name: "job_id", typ: "int"},
		{name: "pool", typ: "str:256", notNull: true},
		{name: "pool_slots", typ: "int", notNull: true},
		{name: "queue", typ: "str:256"},
		{name: "priority_weight", typ: "int"},
		{name: "operator", typ: "str:1000"},
		{name: "queued_dttm", typ: "ts"},
		{name: "pid", typ: "int"},
		{name: "executor_config", typ: "bytes"},
		{name: "updated_at", typ: "ts"},
	}
	ti := table{name: "task_instance", cols: tiCols, pk: "dag_id, task_id, run_id, map_index",
		fks: []fk{{cols: "dag_id, run_id", refTable: "dag_run", refCols: "dag_id, run_id", cascade: true}}}
	if v3 {
		ti.cols = append([]col{{name: "id", typ: "uuid", notNull: true}}, tiCols...)
		ti.pk = "id"
		ti.uniques = []string{"dag_id, task_id, run_id, map_index"}
		ti.cols = append(ti.cols, col{name: "dag_version_id", typ: "uuid"})
	}

	ts := []table{
		{name: "alembic_version", cols: []col{{name: "version_num", typ: "str:32", notNull: true}}, pk: "version_num"},
		{name: "ab_role", cols: []col{{name: "id", typ: "serial"}, {name: "name", typ: "str:64", notNull: true}}, uniques: []string{"name"}},
		{name: "ab_user", cols: []col{
			{name: "id", typ: "serial"}, {name: "first_name", typ: "str:256", notNull: true}, {name: "last_name", typ: "str:256", notNull: true},
			{name: "username", typ: "str:512", notNull: true}, {name: "password", typ: "str:256"}, {name: "active", typ: "bool"},
			{name: "email", typ: "str:512", notNull: true}, {name: "last_login", typ: "ts"}, {name: "login_count", typ: "int"},
			{name: "created_on", typ: "ts"}}, uniques: []string{"username", "email"}},
		{name: "ab_user_role", cols: []col{{name: "id", typ: "serial"}, {name: "user_id", typ: "int"}, {name: "role_id", typ: "int"}},
			uniques: []string{"user_id, role_id"},
			fks:     []fk{{cols: "user_id", refTable: "ab_user", refCols: "id"}, {cols: "role_id", refTable: "ab_role", refCols: "id"}}},
		{name: "connection", cols: []col{
			{name: "id", typ: "serial"}, {name: "conn_id", typ: "id:250", notNull: true}, {name: "conn_type", typ: "str:500", notNull: true},
			{name: "description", typ: "text"}, {name: "host", typ: "str:500"}, {name: "schema", typ: "str:500"}, {name: "login", typ: "text"},
			{name: "password", typ: "text"}, {name: "port", typ: "int"}, {name: "is_encrypted", typ: "bool"},
			{name: "is_extra_encrypted", typ: "bool"}, {name: "extra", typ: "text"}}, uniques: []string{"conn_id"}},
		{name: "variable", cols: []col{
			{name: "id", typ: "serial"}, {name: "key", typ: "id:250"}, {name: "val", typ: "text"},
			{name: "description", typ: "text"}, {name: "is_encrypted", typ: "bool"}}, uniques: []string{"key"}},
		{name: "slot_pool", cols: []col{
			{name: "id", typ: "serial"}, {name: "pool", typ: "str:256"}, {name: "slots", typ: "int"},
			{name: "description", typ: "text"}, {name: "include_deferred", typ: "bool", notNull: true}}, uniques: []string{"pool"}},
		{name: "dag", cols: dagCols, pk: "dag_id"},
		{name: "dag_tag", cols: []col{{name: "name", typ: "str:100", notNull: true}, {name: "dag_id", typ: "id:250", notNull: true}},
			pk: "name, dag_id", fks: []fk{{cols: "dag_id", refTable: "dag", refCols: "dag_id", cascade: true}}},
		{name: "log_template", cols: []col{{name: "id", typ: "serial"}, {name: "filename", typ: "text", notNull: true},
			{name: "elasticsearch_id", typ: "text", notNull: true}, {name: "created_at", typ: "ts", notNull: true}}},
		{name: "job", cols: []col{
			{name: "id", typ: "serial"}, {name: "dag_id", typ: "str:250"}, {name: "state", typ: "str:20"}, {name: "job_type", typ: "str:30"},
			{name: "start_date", typ: "ts"}, {name: "end_date", typ: "ts"}, {name: "latest_heartbeat", typ: "ts"},
			{name: "executor_class", typ: "str:500"}, {name: "hostname", typ: "str:500"}, {name: "unixname", typ: "str:1000"}}},
		{name: "dag_run", cols: []col{
			{name: "id", typ: "serial"}, {name: "dag_id", typ: "id:250", notNull: true}, {name: "queued_at", typ: "ts"},
			{name: logical, typ: "ts", notNull: !v3}, {name: "start_date", typ: "ts"}, {name: "end_date", typ: "ts"},
			{name: "state", typ: "str:50"}, {name: "run_id", typ: "id:250", notNull: true}, {name: "creating_job_id", typ: "int"},
			{name: "external_trigger", typ: "bool"}, {name: "run_type", typ: "str:50", notNull: true}, {name: "conf", typ: "bytes"},
			{name: "data_interval_start", typ: "ts"}, {name: "data_interval_end", typ: "ts"},
			{name: "last_scheduling_decision", typ: "ts"}, {name: "log_template_id", typ: "int"}, {name: "updated_at", typ: "ts"},
			{name: "clear_number", typ: "int", notNull: true, def: "0"}},
			uniques: []string{"dag_id, run_id", "dag_id, " + logical},
			fks:     []fk{{cols: "log_template_id", refTable: "log_template", refCols: "id"}}},
		ti,
		{name: "xcom", cols: []col{
			{name: "dag_run_id", typ: "int", notNull: true}, {name: "task_id", typ: "id:250", notNull: true},
			{name: "map_index", typ: "int", notNull: true, def: "-1"}, {name: "key", typ: "id:512", notNull: true},
			{name: "dag_id", typ: "id:250", notNull: true}, {name: "run_id", typ: "id:250", notNull: true},
			{name: "value", typ: "bytes"}, {name: "timestamp", typ: "ts", notNull: true}},
			pk: "dag_run_id, task_id, map_index, key"},
		{name: "log", cols: []col{
			{name: "id", typ: "serial"}, {name: "dttm", typ: "ts"}, {name: "dag_id", typ: "id:250"}, {name: "task_id", typ: "id:250"},
			{name: "map_index", typ: "int"}, {name: "event", typ: "str:60"}, {name: logical, typ: "ts"}, {name: "run_id", typ: "id:250"},
			{name: "owner", typ: "str:500"}, {name: "owner_display_name", typ: "str:500"}, {name: "extra", typ: "text"},
			{name: "try_number", typ: "int"}}},
		{name: "trigger", cols: []col{
			{name: "id", typ: "serial"}, {name: "classpath", typ: "str:1000", notNull: true}, {name: "kwargs", typ: "text", notNull: true},
			{name: "created_date", typ: "ts", notNull: true}, {name: "triggerer_id", typ: "int"}}},
		{name: "import_error", cols: []col{
			{name: "id", typ: "serial"}, {name: "timestamp", typ: "ts"}, {name: "filename", typ: "str:1024"},
			{name: "stacktrace", typ: "text"}, {name: "processor_subdir", typ: "str:2000"}}},
	}
	if v3 {
		ts = append(ts,
			table{name: "dag_bundle", cols: []col{{name: "name", typ: "str:250", notNull: true}, {name: "active", typ: "bool"},
				{name: "version", typ: "str:200"}, {name: "last_refreshed", typ: "ts"}}, pk: "name"},
			table{name: "dag_version", cols: []col{{name: "id", typ: "uuid", notNull: true}, {name: "version_number", typ: "int", notNull: true},
				{name: "dag_id", typ: "id:250", notNull: true}, {name: "bundle_name", typ: "str:250"}, {name: "bundle_version", typ: "str:250"},
				{name: "created_at", typ: "ts", notNull: true}, {name: "last_updated", typ: "ts", notNull: true}}, pk: "id",
				uniques: []string{"dag_id, version_number"}, fks: []fk{{cols: "dag_id", refTable: "dag", refCols: "dag_id", cascade: true}}},
			table{name: "serialized_dag", cols: []col{{name: "id", typ: "uuid", notNull: true}, {name: "dag_id", typ: "id:250", notNull: true},
				{name: "data", typ: "json"}, {name: "data_compressed", typ: "bytes"}, {name: "created_at", typ: "ts", notNull: true},
				{name: "last_updated", typ: "ts", notNull: true}, {name: "dag_hash", typ: "str:32", notNull: true},
				{name: "dag_version_id", typ: "uuid", notNull: true}}, pk: "id",
				fks: []fk{{cols: "dag_version_id", refTable: "dag_version", refCols: "id", cascade: true}}},
			table{name: "dag_code", cols: []col{{name: "id", typ: "uuid", notNull: true}, {name: "dag_id", typ: "id:250", notNull: true},
				{name: "fileloc", typ: "str:2000", notNull: true}, {name: "created_at", typ: "ts", notNull: true},
				{name: "last_updated", typ: "ts", notNull: true}, {name: "source_code", typ: "text", notNull: true},
				{name: "source_code_hash", typ: "str:64", notNull: true}, {name: "dag_version_id", typ: "uuid", notNull: true}}, pk: "id",
				fks: []fk{{cols: "dag_version_id", refTable: "dag_version", refCols: "id", cascade: true}}},
		)
	} else {
		ts = append(ts,
			table{name: "serialized_dag", cols: []col{{name: "dag_id", typ: "id:250", notNull: true}, {name: "fileloc", typ: "str:2000", notNull: true},
				{name: "fileloc_hash", typ: "bigint", notNull: true}, {name: "data", typ: "json"}, {name: "data_compressed", typ: "bytes"},
				{name: "last_updated", typ: "ts", notNull: true}, {name: "dag_hash", typ: "str:32", notNull: true},
				{name: "processor_subdir", typ: "str:2000"}}, pk: "dag_id"},
			table{name: "dag_code", cols: []col{{name: "fileloc_hash", typ: "bigint", notNull: true}, {name: "fileloc", typ: "str:2000", notNull: true},
				{name: "last_updated", typ: "ts", notNull: true}, {name: "source_code", typ: "text", notNull: true}}, pk: "fileloc_hash"},
			table{name: "alembic_version_fab", cols: []col{{name: "version_num", typ: "str:32", notNull: true}}, pk: "version_num"},
		)
	}
	return ts
}

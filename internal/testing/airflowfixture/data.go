package airflowfixture

import (
	"crypto/aes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/cofferhq/coffer/source/airflow/fernet"
)

// dagSpec is one DAG of the invoice deployment.
type dagSpec struct {
	id, file, owner, schedule string
	every                     time.Duration
	tasks                     []string
	operators                 []string
	tags                      []string
}

var dags = []dagSpec{
	{id: "invoice_ingest", file: "invoice_ingest.py", owner: "finance", schedule: "*/15 * * * *", every: 15 * time.Minute,
		tasks:     []string{"wait_for_files", "list_landing", "parse_invoice", "load_invoice"},
		operators: []string{"SFTPSensor", "PythonOperator", "PythonOperator", "PythonOperator"}, tags: []string{"finance", "invoices"}},
	{id: "invoice_validate", file: "invoice_validate.py", owner: "finance", schedule: "@hourly", every: time.Hour,
		tasks:     []string{"check_totals", "check_vendor", "flag_duplicates"},
		operators: []string{"PythonOperator", "PythonOperator", "PythonOperator"}, tags: []string{"finance", "invoices", "quality"}},
	{id: "payment_run", file: "payment_run.py", owner: "treasury", schedule: "0 2 * * *", every: 24 * time.Hour,
		tasks:     []string{"select_due", "build_batch", "submit_batch", "reconcile"},
		operators: []string{"PythonOperator", "PythonOperator", "PythonOperator", "PythonOperator"}, tags: []string{"finance", "payments"}},
	{id: "vendor_sync", file: "vendor_sync.py", owner: "finance", schedule: "0 6 * * *", every: 24 * time.Hour,
		tasks:     []string{"fetch_vendors", "upsert_vendors"},
		operators: []string{"HttpOperator", "PythonOperator"}, tags: []string{"finance", "master-data"}},
}

// DAGIDs are the fixture's DAGs.
func DAGIDs() []string {
	var out []string
	for _, d := range dags {
		out = append(out, d.id)
	}
	return out
}

// Alembic heads of the fixture's two schemas.
const (
	Revision210 = "5f2621c13b39" // Airflow 2.10.3
	Revision30  = "29ce7909c52b" // Airflow 3.0.0
	// RevisionFAB is the FAB auth provider 1.4.0's head.
	RevisionFAB = "6709f7a774b9"
)

// data builds every row of the fixture. Values are encrypted with the keys
// in enc, in turn; secrets collects every secret plaintext.
type data struct {
	engine, version string
	rng             *rand.Rand
	enc             []fernet.Key
	home            string
	now             time.Time
	// Plain maps a value's name ("connection invoice_db password") to
	// its plaintext, for the encrypted ones.
	plain   map[string]string
	secrets []string
	n       int // tokens made
}

func (d *data) v3() bool { return strings.HasPrefix(d.version, "3") }

// token encrypts s with the next key, deterministically.
func (d *data) token(name, s string) string {
	k := d.enc[d.n%len(d.enc)]
	d.n++
	var iv [aes.BlockSize]byte
	binary.BigEndian.PutUint64(iv[:8], d.rng.Uint64())
	binary.BigEndian.PutUint64(iv[8:], d.rng.Uint64())
	d.plain[name] = s
	d.secrets = append(d.secrets, s)
	return k.EncryptWithIV([]byte(s), d.now.Add(-time.Duration(d.n)*time.Hour), iv)
}

func (d *data) secret(prefix string) string {
	return fmt.Sprintf("%s-%016x", prefix, d.rng.Uint64())
}

func (d *data) uuid() string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], d.rng.Uint64())
	binary.BigEndian.PutUint64(b[8:], d.rng.Uint64())
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func filelocHash(s string) int64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return int64(h.Sum64() >> 8)
}

// build returns the rows, parents first. runs is the number of runs per
// DAG; sources maps a DAG file to its text.
func (d *data) build(runs int, sources map[string]string) []*rows {
	logical := "execution_date"
	if d.v3() {
		logical = "logical_date"
	}
	var out []*rows
	add := func(table string, cols ...string) *rows {
		r := &rows{table: table, cols: cols}
		out = append(out, r)
		return r
	}
	rev := Revision210
	if d.v3() {
		rev = Revision30
	}
	add("alembic_version", "version_num").add(rev)
	if !d.v3() {
		add("alembic_version_fab", "version_num").add(RevisionFAB)
	}

	roles := add("ab_role", "id", "name")
	for i, r := range []string{"Admin", "Op", "User", "Viewer", "Public"} {
		roles.add(i+1, r)
	}
	users := add("ab_user", "id", "first_name", "last_name", "username", "password", "active", "email", "last_login", "login_count", "created_on")
	userRoles := add("ab_user_role", "id", "user_id", "role_id")
	for i, u := range []struct{ first, last, login string }{{"Ada", "Admin", "admin"}, {"Tom", "Treasury", "treasury"}, {"Fiona", "Finance", "finance"}} {
		// FAB stores werkzeug password hashes; the fixture's are made up.
		pwHash := fmt.Sprintf("pbkdf2:sha256:600000$%x", sha256.Sum256([]byte(u.login)))
		users.add(i+1, u.first, u.last, u.login, pwHash, true, u.login+"@invoices.example", d.now.Add(-time.Duration(i+1)*time.Hour), 10+i, d.now.AddDate(0, -6, 0))
		userRoles.add(i+1, i+1, []int{1, 2, 4}[i])
	}

	conns := add("connection", "id", "conn_id", "conn_type", "description", "host", "schema", "login", "password", "port", "is_encrypted", "is_extra_encrypted", "extra")
	apiKey := d.secret("erp-api-key")
	conns.add(1, "invoice_db", "postgres", "invoice store", "invoices-db.internal", "invoices", "invoice_app",
		d.token(`connection "invoice_db" password`, d.secret("invoice-db-pw")), 5432, true, false, `{"sslmode": "require"}`)
	conns.add(2, "erp_api", "http", "ERP vendor API", "erp.internal", nil, "coffer-sync",
		d.token(`connection "erp_api" password`, d.secret("erp-pw")), 443, true, true,
		d.token(`connection "erp_api" extra`, `{"api_key": "`+apiKey+`", "timeout": 30}`))
	d.secrets = append(d.secrets, apiKey)
	conns.add(3, "sftp_landing", "sftp", "supplier landing zone", "sftp.suppliers.example", nil, "invoices",
		d.token(`connection "sftp_landing" password`, d.secret("sftp-pw")), 22, true, false, `{"no_host_key_check": false}`)
	conns.add(4, "bank_gateway", "http", "bank payment gateway", "api.bank.example", nil, "payer-4711",
		d.token(`connection "bank_gateway" password`, d.secret("bank-pw")), 443, true, true,
		d.token(`connection "bank_gateway" extra`, `{"client_cert": "`+d.secret("bank-cert")+`"}`))
	conns.add(5, "smtp_default", "smtp", nil, "smtp.internal", nil, nil, nil, 25, false, false, nil)

	vars := add("variable", "id", "key", "val", "description", "is_encrypted")
	vars.add(1, "invoice_landing_path", "/data/invoices/landing", "where suppliers drop invoices", false)
	vars.add(2, "payment_api_token", d.token(`variable "payment_api_token"`, d.secret("pay-token")), "bank API token", true)
	vars.add(3, "vendor_sync_batch_size", "500", nil, false)
	vars.add(4, "bank_iban_whitelist", d.token(`variable "bank_iban_whitelist"`, `["DE89370400440532013000","FR1420041010050500013M02606"]`), nil, true)

	add("slot_pool", "id", "pool", "slots", "description", "include_deferred").add(1, "default_pool", 128, "Default pool", false)
	add("log_template", "id", "filename", "elasticsearch_id", "created_at").
		add(1, "dag_id={{ ti.dag_id }}/run_id={{ ti.run_id }}/task_id={{ ti.task_id }}/{% if ti.map_index >= 0 %}map_index={{ ti.map_index }}/{% endif %}attempt={{ try_number }}.log",
			"{dag_id}-{task_id}-{run_id}-{map_index}-{try_number}", d.now.AddDate(0, -6, 0))

	jobs := add("job", "id", "dag_id", "state", "job_type", "start_date", "end_date", "latest_heartbeat", "executor_class", "hostname", "unixname")
	jobs.add(1, nil, "running", "SchedulerJob", d.now.AddDate(0, 0, -3), nil, d.now.Add(-5*time.Second), "LocalExecutor", "scheduler-0", "airflow")
	jobs.add(2, nil, "running", "TriggererJob", d.now.AddDate(0, 0, -3), nil, d.now.Add(-3*time.Second), nil, "triggerer-0", "airflow")

	dagCols := []string{"dag_id", "is_paused", "is_active", "last_parsed_time", "fileloc", "owners", "description", "timetable_description",
		"max_active_tasks", "max_active_runs", "has_task_concurrency_limits", "has_import_errors", "next_dagrun",
		"next_dagrun_data_interval_start", "next_dagrun_data_interval_end", "next_dagrun_create_after"}
	if d.v3() {
		dagCols[2] = "is_stale"
		dagCols = append(dagCols, "bundle_name")
	}
	dagRows := add("dag", dagCols...)
	tags := add("dag_tag", "name", "dag_id")
	var versions, sers, codes *rows
	if d.v3() {
		add("dag_bundle", "name", "active", "version", "last_refreshed").add("dags-folder", true, nil, d.now.Add(-time.Minute))
		versions = add("dag_version", "id", "version_number", "dag_id", "bundle_name", "bundle_version", "created_at", "last_updated")
		sers = add("serialized_dag", "id", "dag_id", "data", "data_compressed", "created_at", "last_updated", "dag_hash", "dag_version_id")
		codes = add("dag_code", "id", "dag_id", "fileloc", "created_at", "last_updated", "source_code", "source_code_hash", "dag_version_id")
	} else {
		sers = add("serialized_dag", "dag_id", "fileloc", "fileloc_hash", "data", "data_compressed", "last_updated", "dag_hash", "processor_subdir")
		codes = add("dag_code", "fileloc_hash", "fileloc", "last_updated", "source_code")
	}
	dagVersion := map[string]string{}
	for _, g := range dags {
		loc := d.home + "/dags/" + g.file
		next := d.now.Truncate(g.every).Add(g.every)
		row := []any{g.id, false, !d.v3(), d.now.Add(-30 * time.Second), loc, g.owner, nil, g.schedule, 16, 1, false, false,
			next, next.Add(-g.every), next, next.Add(g.every)}
		if d.v3() {
			row[2] = false // is_stale
			row = append(row, "dags-folder")
		}
		dagRows.add(row...)
		for _, t := range g.tags {
			tags.add(t, g.id)
		}
		ser, _ := json.Marshal(map[string]any{"__version": 1, "dag": map[string]any{"_dag_id": g.id, "fileloc": loc, "tasks": g.tasks, "schedule_interval": g.schedule, "tags": g.tags}})
		hash := fmt.Sprintf("%x", sha256.Sum256(ser))[:32]
		if d.v3() {
			vid := d.uuid()
			dagVersion[g.id] = vid
			versions.add(vid, 1, g.id, "dags-folder", nil, d.now.AddDate(0, 0, -3), d.now.AddDate(0, 0, -3))
			sers.add(d.uuid(), g.id, string(ser), nil, d.now.AddDate(0, 0, -3), d.now.Add(-time.Minute), hash, vid)
			src := sources[g.file]
			codes.add(d.uuid(), g.id, loc, d.now.AddDate(0, 0, -3), d.now.Add(-time.Minute), src, fmt.Sprintf("%x", sha256.Sum256([]byte(src))), vid)
		} else {
			sers.add(g.id, loc, filelocHash(loc), string(ser), nil, d.now.Add(-time.Minute), hash, d.home+"/dags")
			codes.add(filelocHash(loc), loc, d.now.Add(-time.Minute), sources[g.file])
		}
	}

	runCols := []string{"id", "dag_id", "queued_at", logical, "start_date", "end_date", "state", "run_id", "creating_job_id",
		"external_trigger", "run_type", "conf", "data_interval_start", "data_interval_end", "last_scheduling_decision",
		"log_template_id", "updated_at", "clear_number"}
	dagRuns := add("dag_run", runCols...)
	tiCols := []string{"task_id", "dag_id", "run_id", "map_index", "start_date", "end_date", "duration", "state", "try_number", "max_tries",
		"hostname", "unixname", "job_id", "pool", "pool_slots", "queue", "priority_weight", "operator", "queued_dttm", "pid", "executor_config", "updated_at"}
	if d.v3() {
		tiCols = append([]string{"id"}, tiCols...)
		tiCols = append(tiCols, "dag_version_id")
	}
	tis := add("task_instance", tiCols...)
	xcoms := add("xcom", "dag_run_id", "task_id", "map_index", "key", "dag_id", "run_id", "value", "timestamp")
	logs := add("log", "id", "dttm", "dag_id", "task_id", "map_index", "event", logical, "run_id", "owner", "owner_display_name", "extra", "try_number")
	runID, logID := 0, 0
	for _, g := range dags {
		last := d.now.Truncate(g.every)
		for i := runs; i >= 1; i-- {
			runID++
			start := last.Add(-time.Duration(i) * g.every)
			state := "success"
			switch {
			case i == 1:
				state = "running"
			case d.rng.IntN(9) == 0:
				state = "failed"
			}
			if g.id == "invoice_ingest" && i == 3 {
				state = "failed"
			}
			rid := "scheduled__" + start.Format("2006-01-02T15:04:05+00:00")
			runStart := start.Add(g.every).Add(5 * time.Second)
			var end any
			if state != "running" {
				end = runStart.Add(time.Duration(30+d.rng.IntN(600)) * time.Second)
			}
			dagRuns.add(runID, g.id, runStart.Add(-time.Second), start, runStart, end, state, rid, 1, false, "scheduled",
				[]byte("\x80\x05}\x94."), start, start.Add(g.every), runStart, 1, runStart, 0)
			tstart := runStart
			for ti, task := range g.tasks {
				tstate := "success"
				switch {
				case state == "failed" && ti == len(g.tasks)-1:
					tstate = "failed"
				case state == "running" && ti == len(g.tasks)-1:
					tstate = "running"
				case state == "running" && ti == 0 && g.id == "invoice_ingest":
					tstate = "deferred"
				}
				dur := float64(1+d.rng.IntN(120)) + 0.25
				tend := tstart.Add(time.Duration(dur * float64(time.Second)))
				var tendV, durV any = tend, dur
				if tstate == "running" || tstate == "deferred" {
					tendV, durV = nil, nil
				}
				row := []any{task, g.id, rid, -1, tstart, tendV, durV, tstate, 1, 2, "worker-" + fmt.Sprint(d.rng.IntN(3)), "airflow", 1,
					"default_pool", 1, "default", len(g.tasks) - ti, g.operators[ti], tstart.Add(-time.Second), 1000 + d.rng.IntN(30000), []byte("\x80\x05}\x94."), tend}
				if d.v3() {
					row = append([]any{d.uuid()}, row...)
					row = append(row, dagVersion[g.id])
				}
				tis.add(row...)
				if tstate == "success" && ti < len(g.tasks)-1 {
					val, _ := json.Marshal(map[string]any{"files": d.rng.IntN(40), "task": task})
					xcoms.add(runID, task, -1, "return_value", g.id, rid, val, tend)
				}
				tstart = tend
			}
			if state == "failed" {
				logID++
				logs.add(logID, end, g.id, g.tasks[len(g.tasks)-1], -1, "failed", start, rid, "airflow", nil, nil, 1)
			}
		}
	}
	logID++
	logs.add(logID, d.now.AddDate(0, 0, -1), "payment_run", nil, nil, "paused", nil, nil, "treasury", "Tom Treasury", `{"is_paused": true}`, nil)
	logID++
	logs.add(logID, d.now.AddDate(0, 0, -1).Add(time.Hour), "payment_run", nil, nil, "unpaused", nil, nil, "treasury", "Tom Treasury", `{"is_paused": false}`, nil)

	// The deferred sensor of the running invoice_ingest run.
	kwargs := fmt.Sprintf(`{"path": "/incoming", "sftp_conn_id": "sftp_landing", "poke_interval": 60, "token": "%s"}`, d.secret("trigger-token"))
	add("trigger", "id", "classpath", "kwargs", "created_date", "triggerer_id").
		add(1, "airflow.providers.sftp.triggers.sftp.SFTPTrigger", d.token("trigger 1 kwargs", kwargs), d.now.Add(-2*time.Minute), 2)
	add("import_error", "id", "timestamp", "filename", "stacktrace", "processor_subdir")
	return out
}

// serialTables are the tables whose id column a sequence feeds (PostgreSQL
// needs its sequences moved past the inserted ids).
func serialTables(version string) []string {
	var out []string
	for _, t := range schema(version) {
		for _, c := range t.cols {
			if c.typ == "serial" {
				out = append(out, t.name)
			}
		}
	}
	return out
}

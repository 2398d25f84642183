-- A slice of Airflow 2.10's metadata database (alembic head 22ed7efa9da2), in SQLite.
CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY);
INSERT INTO alembic_version VALUES ('22ed7efa9da2');

CREATE TABLE connection (
  id INTEGER PRIMARY KEY, conn_id VARCHAR(250) NOT NULL UNIQUE, conn_type VARCHAR(500) NOT NULL,
  description TEXT, host VARCHAR(500), schema VARCHAR(500), login TEXT, password TEXT, port INTEGER,
  is_encrypted BOOLEAN, is_extra_encrypted BOOLEAN, extra TEXT);
-- password 'hello' encrypted with the demo fernet_key (the Fernet spec's test vector).
INSERT INTO connection VALUES (1, 'invoice_db', 'postgres', 'invoice database', 'db.internal', 'invoices',
  'airflow', 'gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA==',
  5432, 1, 0, NULL);

CREATE TABLE variable (id INTEGER PRIMARY KEY, key VARCHAR(250) UNIQUE, val TEXT, description TEXT, is_encrypted BOOLEAN);
INSERT INTO variable VALUES (1, 'invoice_landing', '/data/invoices', NULL, 0);

CREATE TABLE dag (dag_id VARCHAR(250) PRIMARY KEY, is_paused BOOLEAN, is_active BOOLEAN, fileloc VARCHAR(2000),
  owners VARCHAR(2000), schedule_interval TEXT, next_dagrun TIMESTAMP, max_active_runs INTEGER, has_import_errors BOOLEAN);
INSERT INTO dag VALUES ('invoice_ingest', 0, 1, '/opt/airflow/dags/invoice_ingest.py', 'finance', '"*/15 * * * *"', '2026-11-29 09:00:00', 16, 0);
INSERT INTO dag VALUES ('payment_reconcile', 0, 1, '/opt/airflow/dags/payment_reconcile.py', 'finance', '"0 2 * * *"', '2026-11-30 02:00:00', 16, 0);

CREATE TABLE dag_run (id INTEGER PRIMARY KEY, dag_id VARCHAR(250) NOT NULL, execution_date TIMESTAMP NOT NULL,
  run_id VARCHAR(250) NOT NULL, run_type VARCHAR(50) NOT NULL, state VARCHAR(50), queued_at TIMESTAMP,
  start_date TIMESTAMP, end_date TIMESTAMP, data_interval_start TIMESTAMP, data_interval_end TIMESTAMP,
  conf BLOB, external_trigger BOOLEAN, UNIQUE (dag_id, run_id));
CREATE TABLE task_instance (dag_id VARCHAR(250) NOT NULL, task_id VARCHAR(250) NOT NULL, run_id VARCHAR(250) NOT NULL,
  map_index INTEGER NOT NULL DEFAULT -1, state VARCHAR(20), try_number INTEGER, max_tries INTEGER, pool VARCHAR(256),
  queue VARCHAR(256), priority_weight INTEGER, operator VARCHAR(1000), hostname VARCHAR(1000),
  PRIMARY KEY (dag_id, task_id, run_id, map_index),
  FOREIGN KEY (dag_id, run_id) REFERENCES dag_run (dag_id, run_id) ON DELETE CASCADE);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 400)
INSERT INTO dag_run (id, dag_id, execution_date, run_id, run_type, state, start_date, end_date, external_trigger)
SELECT i, 'invoice_ingest', datetime('2026-11-25', printf('+%d minutes', i * 15)),
  printf('scheduled__%s', datetime('2026-11-25', printf('+%d minutes', i * 15))), 'scheduled',
  CASE WHEN i % 37 = 0 THEN 'failed' ELSE 'success' END,
  datetime('2026-11-25', printf('+%d minutes', i * 15 + 1)), datetime('2026-11-25', printf('+%d minutes', i * 15 + 2)), 0
FROM n;
INSERT INTO task_instance (dag_id, task_id, run_id, state, try_number, max_tries, pool, queue, priority_weight, operator, hostname)
SELECT dag_id, 'ingest', run_id, state, 1, 1, 'default_pool', 'default', 1, 'PythonOperator', 'worker-1' FROM dag_run;

CREATE TABLE slot_pool (id INTEGER PRIMARY KEY, pool VARCHAR(256) UNIQUE, slots INTEGER, description TEXT, include_deferred BOOLEAN);
INSERT INTO slot_pool VALUES (1, 'default_pool', 128, 'Default pool', 0);

CREATE TABLE log (id INTEGER PRIMARY KEY, dttm TIMESTAMP, dag_id VARCHAR(250), task_id VARCHAR(250), event VARCHAR(60),
  owner VARCHAR(500), extra TEXT, run_id VARCHAR(250));
INSERT INTO log VALUES (1, '2026-11-28 08:00:00', 'payment_reconcile', NULL, 'paused', 'admin', '{"is_paused": false}', NULL);

"""Ingest supplier invoices from the SFTP landing folder into the invoice database."""
from datetime import datetime, timedelta

from airflow import DAG
from airflow.operators.python import PythonOperator
from airflow.providers.sftp.sensors.sftp import SFTPSensor

from lib.invoices import list_landing, parse_invoice, load_invoice

default_args = {"owner": "finance", "retries": 2, "retry_delay": timedelta(minutes=5)}

with DAG(
    dag_id="invoice_ingest",
    start_date=datetime(2026, 1, 1),
    schedule="*/15 * * * *",
    catchup=False,
    max_active_runs=1,
    default_args=default_args,
    tags=["finance", "invoices"],
) as dag:
    wait = SFTPSensor(task_id="wait_for_files", sftp_conn_id="sftp_landing", path="/incoming", deferrable=True)
    listed = PythonOperator(task_id="list_landing", python_callable=list_landing,
                            op_kwargs={"landing": "{{ var.value.invoice_landing_path }}"})
    parsed = PythonOperator(task_id="parse_invoice", python_callable=parse_invoice)
    loaded = PythonOperator(task_id="load_invoice", python_callable=load_invoice,
                            op_kwargs={"conn_id": "invoice_db"})
    wait >> listed >> parsed >> loaded

"""Synchronise the vendor master data (names, bank details) from the ERP."""
from datetime import datetime

from airflow import DAG
from airflow.providers.http.operators.http import HttpOperator
from airflow.operators.python import PythonOperator

from lib.vendors import upsert_vendors

with DAG(
    dag_id="vendor_sync",
    start_date=datetime(2026, 1, 1),
    schedule="0 6 * * *",
    catchup=False,
    tags=["finance", "master-data"],
) as dag:
    fetch = HttpOperator(task_id="fetch_vendors", http_conn_id="erp_api", endpoint="/api/v2/vendors",
                         method="GET", response_filter=lambda r: r.json()["vendors"])
    upsert = PythonOperator(task_id="upsert_vendors", python_callable=upsert_vendors,
                            op_kwargs={"conn_id": "invoice_db", "batch_size": "{{ var.value.vendor_sync_batch_size }}"})
    fetch >> upsert

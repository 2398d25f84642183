"""Validate newly loaded invoices: totals, vendors, duplicates."""
from datetime import datetime

from airflow import DAG
from airflow.operators.python import PythonOperator

from lib.invoices import check_totals, check_vendor, flag_duplicates

with DAG(
    dag_id="invoice_validate",
    start_date=datetime(2026, 1, 1),
    schedule="@hourly",
    catchup=False,
    tags=["finance", "invoices", "quality"],
) as dag:
    totals = PythonOperator(task_id="check_totals", python_callable=check_totals, op_kwargs={"conn_id": "invoice_db"})
    vendor = PythonOperator(task_id="check_vendor", python_callable=check_vendor, op_kwargs={"conn_id": "invoice_db"})
    dupes = PythonOperator(task_id="flag_duplicates", python_callable=flag_duplicates, op_kwargs={"conn_id": "invoice_db"})
    [totals, vendor] >> dupes

"""Ingest supplier invoices from the landing folder into the invoice database."""
from datetime import datetime

from airflow import DAG
from airflow.operators.python import PythonOperator


def ingest(**context):
    from invoices.ingest import load_new_invoices

    load_new_invoices(conn_id="invoice_db", landing="/data/invoices")


with DAG(
    dag_id="invoice_ingest",
    start_date=datetime(2026, 1, 1),
    schedule="*/15 * * * *",
    catchup=False,
    tags=["finance", "invoices"],
) as dag:
    PythonOperator(task_id="ingest", python_callable=ingest)

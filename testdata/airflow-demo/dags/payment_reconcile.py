"""Match bank statement lines against open invoices every night."""
from datetime import datetime

from airflow import DAG
from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator

with DAG(
    dag_id="payment_reconcile",
    start_date=datetime(2026, 1, 1),
    schedule="0 2 * * *",
    catchup=False,
    tags=["finance"],
) as dag:
    SQLExecuteQueryOperator(
        task_id="mark_paid",
        conn_id="invoice_db",
        sql="update invoice set status = 'paid' where id in (select invoice_id from payment)",
    )

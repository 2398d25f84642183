"""Pay approved invoices that are due: one bank batch a day."""
from datetime import datetime, timedelta

from airflow import DAG
from airflow.models import Variable
from airflow.operators.python import PythonOperator

from lib.payments import select_due, build_batch, submit_batch, reconcile

with DAG(
    dag_id="payment_run",
    start_date=datetime(2026, 1, 1),
    schedule="0 2 * * *",
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "treasury", "retries": 0},
    tags=["finance", "payments"],
) as dag:
    due = PythonOperator(task_id="select_due", python_callable=select_due, op_kwargs={"conn_id": "invoice_db"})
    batch = PythonOperator(task_id="build_batch", python_callable=build_batch,
                           op_kwargs={"iban_whitelist": "{{ var.json.bank_iban_whitelist }}"})
    submit = PythonOperator(task_id="submit_batch", python_callable=submit_batch,
                            op_kwargs={"conn_id": "bank_gateway"}, execution_timeout=timedelta(minutes=30))
    rec = PythonOperator(task_id="reconcile", python_callable=reconcile, op_kwargs={"conn_id": "invoice_db"})
    due >> batch >> submit >> rec

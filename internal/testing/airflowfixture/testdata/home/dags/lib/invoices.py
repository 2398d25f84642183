"""Invoice helpers shared by the invoice DAGs."""
import json
from pathlib import Path


def list_landing(landing, **context):
    return sorted(str(p) for p in Path(landing).glob("*.json"))


def parse_invoice(ti, **context):
    files = ti.xcom_pull(task_ids="list_landing") or []
    return [json.loads(Path(f).read_text()) for f in files]


def load_invoice(ti, conn_id, **context):
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    hook = PostgresHook(postgres_conn_id=conn_id)
    for inv in ti.xcom_pull(task_ids="parse_invoice") or []:
        hook.run("insert into invoice (number, vendor_id, total_cents) values (%s, %s, %s)",
                 parameters=(inv["number"], inv["vendor_id"], inv["total_cents"]))


def check_totals(conn_id, **context):
    pass


def check_vendor(conn_id, **context):
    pass


def flag_duplicates(conn_id, **context):
    pass

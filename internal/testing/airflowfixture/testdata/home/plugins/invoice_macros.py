from airflow.plugins_manager import AirflowPlugin


def invoice_prefix(year):
    return f"INV-{year}-"


class InvoiceMacros(AirflowPlugin):
    name = "invoice_macros"
    macros = [invoice_prefix]

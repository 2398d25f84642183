"""Payment batch helpers."""


def select_due(conn_id, **context):
    return []


def build_batch(iban_whitelist, **context):
    return {"payments": [], "whitelist": iban_whitelist}


def submit_batch(conn_id, **context):
    pass


def reconcile(conn_id, **context):
    pass

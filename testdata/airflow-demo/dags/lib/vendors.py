"""Vendor master data helpers."""


def upsert_vendors(conn_id, batch_size, **context):
    pass

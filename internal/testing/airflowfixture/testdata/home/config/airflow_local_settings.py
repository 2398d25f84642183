"""Cluster policies of the invoice deployment."""


def task_policy(task):
    # Payments never retry on their own: a second bank batch would pay twice.
    if task.dag_id == "payment_run":
        task.retries = 0

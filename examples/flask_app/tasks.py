"""The jobs: what ``fastjobs worker flask_app.tasks:jobs`` imports (it needs no Flask)."""

from __future__ import annotations

import os

import fastjobs

# A worker in another process runs the jobs, so they live in Redis (memory:// is one process's).
jobs = fastjobs.App(os.environ.get("FASTJOBS_URL", "redis://127.0.0.1:6379/0"),
                    prefix=os.environ.get("FASTJOBS_PREFIX", "fastjobs"))


@jobs.task(name="reports.export", queue="reports", timeout=300)
def export_report(user_id: int, fmt: str = "csv") -> str:
    # A plain def: the worker runs it on its thread pool. Build and upload the file here.
    return f"exports/user-{user_id}.{fmt}"

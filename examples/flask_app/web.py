"""The web app: ``flask --app flask_app.web run`` (from examples/)."""

from __future__ import annotations

from typing import Any

from flask import Flask, abort, request

from .tasks import export_report, jobs

app = Flask(__name__)


@app.post("/exports")
def start_export() -> tuple[dict[str, Any], int]:
    body = request.get_json(silent=True) or {}
    if not isinstance(body.get("user_id"), int) or body.get("format", "csv") not in ("csv", "xlsx"):
        abort(400, "send {'user_id': <int>, 'format': 'csv' | 'xlsx'}")
    # A WSGI view is synchronous: enqueue_sync sends the job and returns its handle.
    job = export_report.enqueue_sync(body["user_id"], fmt=body.get("format", "csv"))
    return {"job_id": job.id}, 202


@app.get("/exports/<job_id>")
def export_status(job_id: str) -> dict[str, Any]:
    # Any coroutine of the App runs from sync code through run_sync.
    info = jobs.run_sync(jobs.get_job(job_id))
    if info is None:
        abort(404)
    return {"state": info.state, "result": info.result}

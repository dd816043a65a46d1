"""JSON for the dashboard's API: jobs, workers, history, each value safe to show.

Job arguments, results and meta are whatever the enqueuing code passed; they come back
as JSON-native values where they are ones (str, int, finite float, bool, None, lists,
objects with str keys) and as ``repr`` text otherwise (bytes, NaN, sets, custom objects,
nesting deeper than :data:`MAX_DEPTH`). Nothing is ever evaluated; the page escapes text.

Example:
    >>> safe_json({"a": (1, b"x", float("nan"))})
    {'a': [1, "b'x'", 'nan']}
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from ..backends import WorkerInfo
from ..history import HistoryBucket
from ..job import AttemptError, JobInfo

MAX_DEPTH = 32
"""Deeper nesting is shown as ``repr`` text."""


def safe_json(value: Any, depth: int = 0) -> Any:
    """``value`` as JSON-native data; anything else as its ``repr`` (text, never code)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if depth >= MAX_DEPTH:
        return _repr(value)
    if isinstance(value, (list, tuple)):
        return [safe_json(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {(k if isinstance(k, str) else _repr(k)): safe_json(v, depth + 1) for k, v in value.items()}
    return _repr(value)


def _repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception as exc:  # a custom __repr__ that fails
        return f"<unprintable {type(value).__name__}: {type(exc).__name__}>"


def error_summary(error: AttemptError | None) -> dict[str, str] | None:
    """The ``{type, message}`` of a job's last error, or None."""
    return None if error is None else {"type": error.type, "message": error.message}


def job_summary(info: JobInfo) -> dict[str, Any]:
    """A row of the jobs list (``JobSummary`` in the OpenAPI document)."""
    return {
        "id": info.id, "task": info.task, "queue": info.queue, "state": info.state, "attempt": info.attempt,
        "max_attempts": info.max_attempts, "priority": info.priority, "tags": list(info.tags),
        "enqueued_at": info.enqueued_at, "started_at": info.started_at, "finished_at": info.finished_at,
        "error": error_summary(info.error),
    }


def attempt_error(error: AttemptError) -> dict[str, Any]:
    return {
        "attempt": error.attempt, "type": error.type, "message": error.message, "traceback": error.traceback,
        "at": error.at, "worker": error.worker, "started_at": error.started_at,
    }


def job_detail(info: JobInfo) -> dict[str, Any]:
    """Everything in a :class:`~fastjobs.JobInfo` (``JobDetail`` in the OpenAPI document)."""
    data = job_summary(info)
    progress = info.progress
    data.update({
        "args": safe_json(list(info.args)),
        "kwargs": safe_json(dict(info.kwargs)),
        "meta": safe_json(dict(info.meta)),
        "result": safe_json(info.result),
        "errors": [attempt_error(e) for e in info.errors],
        "progress": None if progress is None else {
            "fraction": safe_json(progress.fraction), "message": progress.message, "at": progress.at,
        },
        "run_at": info.run_at, "unique_key": info.unique_key, "depends_on": list(info.depends_on),
        "pending_parents": info.pending_parents, "failed_parents": info.failed_parents,
        "batch_id": info.batch_id, "limit_key": info.limit_key,
    })
    return data


def worker(info: WorkerInfo) -> dict[str, Any]:
    """A row of the workers list."""
    return {
        "id": info.id, "hostname": info.hostname, "pid": info.pid, "queues": list(info.queues),
        "concurrency": info.concurrency, "version": info.version, "started_at": info.started_at,
        "last_seen": info.last_seen, "running": list(info.running), "alive": info.alive,
    }


def history(buckets: Iterable[HistoryBucket]) -> list[dict[str, Any]]:
    """History buckets without their raw histograms."""
    return [
        {"at": b.at, "queue": b.queue, "task": b.task, "succeeded": b.succeeded, "retried": b.retried,
         "dead": b.dead, "runs": b.runs, "mean": b.mean, "p50": b.p50, "p95": b.p95}
        for b in buckets
    ]

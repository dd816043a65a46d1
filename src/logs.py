"""fastjobs' log lines: the job fields they carry, JSON lines for log pipelines, one line per job.

Every line about one job (a failed attempt, a dead letter, and with ``--log-jobs`` each
outcome) carries the fields :data:`JOB_FIELDS` as ``LogRecord`` attributes (``extra=``):
the text format shows them in the message, :class:`JsonFormatter` as keys of their own.
Failures are always logged (WARNING for a retry, ERROR for a dead letter); one INFO line
per outcome is off by default (at 50,000 jobs/s it is the costliest thing a worker does)
and on with ``fastjobs worker --log-jobs`` (:func:`log_jobs`, an ``after_job`` hook).

Example:
    >>> import logging
    >>> record = logging.LogRecord("fastjobs.worker", logging.INFO, __file__, 1, "job %s done", ("j1",), None)
    >>> record.__dict__.update(job_fields("j1", "send", "emails", 1, "w-1"))
    >>> line = JsonFormatter().format(record)
    >>> import json; fields = json.loads(line)
    >>> fields["message"], fields["job_id"], fields["queue"], fields["level"]
    ('job j1 done', 'j1', 'emails', 'INFO')
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import App
    from .context import Context
    from .hooks import JobOutcome

JOB_FIELDS = ("job_id", "task", "queue", "attempt", "worker_id")
"""What a log line about one job carries besides its message."""

FORMATS = ("text", "json")

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"

job_log = logging.getLogger("fastjobs.jobs")


def job_fields(job_id: str, task: str | None, queue: str | None, attempt: int, worker_id: str | None) -> dict[str, Any]:
    """The ``extra=`` of a log line about one job."""
    return {"job_id": job_id, "task": task, "queue": queue, "attempt": attempt, "worker_id": worker_id}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, the job fields when
    the line is about a job, and the traceback (``exc_info``) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {
            "time": _dt.datetime.fromtimestamp(record.created, _dt.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        for name in JOB_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                fields[name] = value
        if record.exc_info:
            fields["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(fields, default=str)


def configure(level: str = "INFO", fmt: str = "text") -> None:
    """Send fastjobs' (and everyone's) log lines to stderr at ``level``, as ``fmt`` (text or json)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)


def log_jobs(app: App) -> None:
    """Log one INFO line per job outcome (``fastjobs worker --log-jobs``): an ``after_job`` hook.

    Failures are logged anyway (WARNING or ERROR); this adds successes and cancellations.
    """
    if _log_outcome not in app.hooks.after_job:
        app.hooks.after_job.append(_log_outcome)


def _log_outcome(ctx: Context, outcome: JobOutcome) -> None:
    job_log.info("job %s (%s) %s in %.6f s", ctx.job_id, ctx.task, outcome.status, outcome.seconds,
                 extra=job_fields(ctx.job_id, ctx.task, ctx.queue, ctx.attempt, ctx.worker_id))

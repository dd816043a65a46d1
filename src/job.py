"""What users get back about jobs: :class:`JobInfo`, :class:`AttemptError`, and ids.

Example:
    >>> import fastjobs
    >>> job_id = fastjobs.new_job_id()
    >>> len(job_id)
    32
"""

from __future__ import annotations

import time
import traceback as tb
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._core import (
    DEFAULT_MAX_PAYLOAD,
    STATE_NAMES,
    CorruptJobError,
    PayloadTooLargeError,
    UnencodableError,
    decode_job,
    decode_value,
    encode_value,
    new_job_ids as _new_job_ids,
)

from .constants import BATCH, RESERVED_META_PREFIXES

if TYPE_CHECKING:
    from .backends.base import StoredJob

LEASE_EXPIRED_MESSAGE = "the job's lease expired before it was acknowledged (its worker died or stalled)"
"""The message of the error a backend records when it takes back an expired lease.

The one source of this text: the PostgreSQL functions and the Redis scripts get it
as a parameter."""


def new_job_ids(n: int) -> list[str]:
    """``n`` new job ids: 32 hex digits each, time-ordered by their first 12 (milliseconds).

    The rest: 8 random digits drawn once per call, and 12 of a per-process counter that
    starts at a random point (see :mod:`fastjobs._core._enqueue_py`), so one ``urandom`` call
    serves a whole batch and threads enqueueing at once still get distinct ids.

    Example:
        >>> from fastjobs.job import new_job_ids
        >>> a, b = new_job_ids(2)
        >>> a != b and len(a) == 32
        True
    """
    return _new_job_ids(n)


def new_job_id() -> str:
    """A new job id: 32 hex digits, time-ordered (48-bit milliseconds first).

    Example:
        >>> from fastjobs import new_job_id
        >>> new_job_id() != new_job_id()
        True
    """
    return new_job_ids(1)[0]


@dataclass(frozen=True, slots=True)
class AttemptError:
    """Why one attempt failed, where and when.

    Example:
        >>> info = await app.get_job(job_id)  # doctest: +SKIP
        >>> e = info.errors[-1]  # doctest: +SKIP
        >>> e.attempt, e.type, e.worker, e.at - e.started_at  # doctest: +SKIP
        (3, 'ConnectionError', 'web-1:4242:a1b2c3', 0.52)
    """

    attempt: int
    type: str
    message: str
    traceback: str
    at: float
    """When it failed (epoch seconds)."""
    worker: str | None = None
    """The id of the worker that ran it (:class:`~fastjobs.WorkerInfo` ``id``), if recorded."""
    started_at: float | None = None
    """When the attempt started (epoch seconds, the worker's clock), if recorded."""

    def __str__(self) -> str:
        return f"attempt {self.attempt}: {self.type}: {self.message}"


def error_record(attempt: int, exc_type: str, message: str, traceback: str = "", at: float | None = None,
                 worker: str | None = None, started_at: float | None = None) -> bytes:
    """Encode one :class:`AttemptError` as the payload of a RETRY or DEAD ack.

    ``worker`` (the worker's id) and ``started_at`` are left out of the record when None;
    :func:`decode_error` reads records with or without them.

    Example:
        >>> decode_error(error_record(1, "ValueError", "bad", worker="w1", started_at=5.0, at=6.0)).worker
        'w1'
    """
    record: dict[str, Any] = {
        "attempt": attempt,
        "type": exc_type,
        "message": message,
        "traceback": traceback,
        "at": time.time() if at is None else at,
    }
    if worker is not None:
        record["worker"] = worker
    if started_at is not None:
        record["started_at"] = started_at
    return encode_value(record)


def exception_record(attempt: int, exc: BaseException, worker: str | None = None,
                     started_at: float | None = None) -> bytes:
    """Encode a caught exception (type, message and formatted traceback) as an error record.

    Example:
        >>> decode_error(exception_record(2, KeyError("x"), worker="w1")).type
        'KeyError'
    """
    # An exception raised in a process-pool child arrives with its own type name and traceback.
    text = getattr(exc, "remote_traceback", None) or "".join(tb.format_exception(type(exc), exc, exc.__traceback__))
    # A traceback of a deep recursion can be huge; the tail says the most.
    return error_record(attempt, getattr(exc, "remote_type", None) or type(exc).__qualname__, str(exc)[:4000],
                        text[-16000:], worker=worker, started_at=started_at)


def lease_expired_error(attempt: int, at: float) -> bytes:
    """The error record a backend stores when it takes back an expired lease."""
    return error_record(
        attempt,
        "LeaseExpiredError",
        LEASE_EXPIRED_MESSAGE,
        "",
        at,
    )


def decode_error(data: bytes) -> AttemptError:
    """Decode an error record; a damaged one is reported, not raised.

    Records written before ``worker`` and ``started_at`` existed read with None for both.
    """
    try:
        rec = decode_value(data)
        if not isinstance(rec, dict):
            raise TypeError(f"a {type(rec).__name__}, not a map")
        worker = rec.get("worker")
        started_at = rec.get("started_at")
        return AttemptError(
            int(rec["attempt"]), str(rec["type"]), str(rec["message"]),
            str(rec.get("traceback", "")), float(rec.get("at", 0.0)),
            worker if isinstance(worker, str) else None,
            float(started_at) if isinstance(started_at, (int, float)) and not isinstance(started_at, bool) else None,
        )
    except (CorruptJobError, PayloadTooLargeError, KeyError, TypeError, ValueError) as exc:
        return AttemptError(0, "CorruptJobError", f"unreadable error record: {exc}", "", 0.0)


@dataclass(frozen=True, slots=True)
class Progress:
    """How far a running job got, as its handler last reported with :meth:`Context.progress`."""

    fraction: float
    """From 0.0 to 1.0."""
    message: str
    at: float
    """When it was reported (the worker's clock, epoch seconds)."""


def decode_progress(data: bytes) -> Progress | None:
    """Decode a stored progress record; a damaged one reads as None."""
    try:
        rec = decode_value(data)
        return Progress(float(rec["fraction"]), str(rec["message"]), float(rec["at"]))
    except (CorruptJobError, PayloadTooLargeError, KeyError, TypeError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class JobInfo:
    """A snapshot of one job: state, attempts, result, errors and timestamps.

    Example:
        >>> info = await app.get_job(job.id)  # doctest: +SKIP
        >>> info.state, info.attempt, info.result  # doctest: +SKIP
        ('succeeded', 1, 'sent')
    """

    id: str
    task: str
    queue: str
    state: str
    """One of scheduled, queued, active, succeeded, retry_pending, dead, cancelled, waiting."""
    attempt: int
    max_attempts: int
    priority: int
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    result: Any
    errors: list[AttemptError] = field(default_factory=list)
    enqueued_at: float = 0.0
    run_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    unique_key: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    """The job's ``options(meta=)`` (fastjobs' own keys left out)."""
    progress: Progress | None = None
    """The last progress its handler reported (kept after it finishes)."""
    depends_on: tuple[str, ...] = ()
    """The jobs it waits for (``depends_on``, a chain's previous step, a batch's members)."""
    pending_parents: int = 0
    """How many of those have not finished yet."""
    failed_parents: int = 0
    """How many of those went dead or were cancelled (a ``waiting`` job cancelled for it says so here)."""
    limit_key: str | None = None
    tags: tuple[str, ...] = ()
    """The job's ``options(tags=)``."""
    batch_id: str | None = None
    """The :class:`~fastjobs.Batch` it is a member or callback of, if any."""

    @property
    def error(self) -> AttemptError | None:
        """The last attempt's error, if any."""
        return self.errors[-1] if self.errors else None

    @classmethod
    def from_stored(cls, stored: StoredJob, max_payload: int = DEFAULT_MAX_PAYLOAD) -> JobInfo:
        """The :class:`JobInfo` of a backend's :class:`~fastjobs.backends.StoredJob` (never raises
        for damaged data: an unreadable body or result says so in place of the value)."""
        try:
            record = decode_job(stored.body, max_payload)
            task, args, kwargs, meta = record.task, record.args, record.kwargs, record.meta
        except (CorruptJobError, PayloadTooLargeError) as exc:
            task, args, kwargs, meta = f"<unreadable: {exc}>", (), {}, {}
        batch_id: str | None = None
        if meta:
            batch = meta.get(BATCH)
            batch_id = batch if isinstance(batch, str) else None
            meta = {k: v for k, v in meta.items() if not k.startswith(RESERVED_META_PREFIXES)}
        result = None
        if stored.result is not None:
            try:
                result = decode_value(stored.result, max_payload)
            except (CorruptJobError, PayloadTooLargeError, UnencodableError) as exc:
                result = f"<unreadable result: {exc}>"
        return cls(
            id=stored.id, task=task, queue=stored.queue, state=STATE_NAMES[stored.state],
            attempt=stored.attempt, max_attempts=stored.max_attempts, priority=stored.priority,
            args=tuple(args), kwargs=dict(kwargs), result=result,
            errors=[decode_error(e) for e in stored.errors], enqueued_at=stored.enqueued_at,
            run_at=stored.run_at, started_at=stored.started_at, finished_at=stored.finished_at,
            unique_key=stored.unique_key, meta=dict(meta),
            progress=None if stored.progress is None else decode_progress(stored.progress),
            depends_on=stored.parents, pending_parents=stored.pending_parents,
            failed_parents=stored.failed_parents, limit_key=stored.limit_key,
            tags=tuple(stored.tags), batch_id=batch_id,
        )

"""Health checks for probes: does the backend answer, and is a queue keeping up?

Example:
    >>> from fastjobs.health import Health
    >>> Health(True, "the backend answers", None).ok
    True
"""

from __future__ import annotations

from dataclasses import dataclass

from ._core import QUEUED
from .backends.base import Backend
from .errors import FastjobsError, InvalidOptionError
from .options import check_seconds, validate_queue


@dataclass(frozen=True, slots=True)
class Health:
    """What :meth:`App.check <fastjobs.App.check>` found.

    Example:
        >>> health = await app.check(queue="emails", max_age=60)  # doctest: +SKIP
        >>> health.ok, health.reason  # doctest: +SKIP
        (False, "the oldest ready job of queue 'emails' has waited 75.2 s, not less than max_age 60 s")
    """

    ok: bool
    reason: str
    """Why it is healthy or not, in one line."""
    oldest_age: float | None = None
    """Seconds the oldest ready (queued) job of the queue checked has waited; None: none waiting, or no queue."""


async def check_health(backend: Backend, queue: str | None = None, max_age: float | None = None) -> Health:
    """Ask the backend its time (it answers and its store is set up), then, with ``queue``, how long
    the queue's oldest ready job has waited; with ``max_age``, unhealthy if longer.

    Backend failures (unreachable, refusing, no schema) make an unhealthy :class:`Health`, never an
    error; bad arguments raise :class:`~fastjobs.InvalidOptionError`.
    """
    if queue is not None:
        validate_queue(queue)
    limit = None if max_age is None else check_seconds("max_age", max_age, allow_zero=False)
    if limit is not None and queue is None:
        raise InvalidOptionError("max_age needs a queue: check(queue='emails', max_age=60)")
    try:
        await backend.ready()
        now = await backend.now()
        if queue is None:
            return Health(True, "the backend answers")
        oldest = await backend.list_jobs(QUEUED, queue, limit=1)
        paused = queue in await backend.paused()
    except FastjobsError as exc:
        return Health(False, f"the backend fails: {type(exc).__name__}: {exc}")
    if not oldest:
        return Health(True, f"the backend answers; no job of queue {queue!r} is waiting")
    job = oldest[0]
    age = max(0.0, now - (job.run_at or job.enqueued_at))
    state = " (the queue is paused)" if paused else ""
    if limit is not None and age >= limit:
        return Health(
            False, f"the oldest ready job of queue {queue!r} has waited {age:.1f} s, "
            f"not less than max_age {limit:g} s{state}", age,
        )
    return Health(True, f"the backend answers; the oldest ready job of queue {queue!r} has waited {age:.1f} s{state}", age)

"""The memory backend's job record, pure Python: the twin of ``_store_c``.

Same fields and constructor as the compiled record; the compiled one is built
in C and is not tracked by the cyclic GC (see ``_store_c`` for why). ``insert``, ``lease``
and ``succeed`` are the per-job steps of an enqueue, a claim and an ack of plain successes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._states_py import ACTIVE, QUEUED, SCHEDULED, SUCCEEDED

_new_tuple = tuple.__new__


class JobSlot:
    """One stored job of the memory backend; mutable, guarded by the backend's lock.

    Built from a ``NewJob`` tuple ``(id, queue, priority, delay, max_attempts,
    body, unique_key)`` and the backend's clock.

    Example:
        >>> slot = JobSlot(("j1", "default", 0, 0.0, 3, b"body", None), 100.0)
        >>> slot.state, slot.run_at, slot.attempt
        (1, 100.0, 0)
    """

    __slots__ = (
        "id", "queue", "state", "priority", "attempt", "max_attempts", "token", "body",
        "result", "errors", "enqueued_at", "run_at", "started_at", "finished_at",
        "lease_until", "unique_key",
    )

    def __init__(self, new: tuple[Any, ...], now: float) -> None:
        delay = float(new[3])
        self.id: str = new[0]
        self.queue: str = new[1]
        self.priority: int = new[2]
        self.max_attempts: int = new[4]
        self.body: bytes = new[5]
        self.unique_key: str | None = new[6]
        self.attempt = 0
        self.token = 0
        self.result: bytes | None = None
        # Most jobs never fail: no list until the first error.
        self.errors: list[bytes] | None = None
        self.enqueued_at = float(now)
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.lease_until: float | None = None
        if delay > 0:
            self.state = SCHEDULED
            self.run_at = now + delay
        else:
            self.state = QUEUED
            self.run_at = float(now)


def insert(jobs: list[Any], now: float, store: dict[str, Any], tasks: dict[str, str], live_of: Callable[[str], Any],
           index_of: Callable[[str], Any]) -> int:
    """Store the leading plain NewJobs of ``jobs`` (no unique key, parents, limit or tags): each
    as a JobSlot in ``store``, its task's name in ``tasks``, its id in the dict ``live_of(queue)``
    gives and pushed on the PriorityIndex ``index_of(queue)`` gives (each asked once per run of
    jobs of one queue). Stops at the first other job; returns its position (``len(jobs)`` if
    none): the caller stores the rest."""
    live_queue = index_queue = None
    live: Any = None
    index: Any = None
    for pos, new in enumerate(jobs):
        if len(new) < 13:
            raise IndexError(f"a NewJob has 13 fields, not {len(new)}")
        if new[6] is not None or new[8] or new[10] is not None or new[12]:  # unique_key, depends_on, limit, tags
            return pos
        job_id, queue, priority, delay = new[0], new[1], new[2], new[3]
        job = JobSlot(new, now)
        store[job_id] = job
        tasks[job_id] = new[11]
        if queue != live_queue:
            live_queue = queue
            live = live_of(queue)
        live[job_id] = None
        if queue != index_queue:
            index_queue = queue
            index = index_of(queue)
        index.push(job_id, priority, job.run_at if delay > 0 else 0.0)
    return len(jobs)


def lease(store: dict[str, Any], active: dict[str, Any], taken: list[str], now: float, until: float,
          claim: type, claims: list[Any]) -> None:
    """Lease the jobs ``taken`` (ids of slots in ``store``): each goes ACTIVE, one attempt and one
    token up, started ``now``, leased ``until``; it is put in ``active`` and its ``claim``
    (a Claim: id, token, attempt, body) appended to ``claims``."""
    for job_id in taken:
        job = store[job_id]
        job.state = ACTIVE
        job.attempt += 1
        job.token += 1
        job.started_at = now
        job.lease_until = until
        active[job_id] = job
        claims.append(_new_tuple(claim, (job_id, job.token, job.attempt, job.body)))


def succeed(active: dict[str, Any], acks: list[Any], now: float, succeed_kind: int, dependants: dict[str, Any],
            applied: list[bool], succeeded: list[Any]) -> int:
    """Apply the leading plain successes of ``acks`` (Ack tuples: id, token, kind, payload):
    an ack whose job is not in ``active`` under its token is stale (False appended to
    ``applied``); a success (kind ``succeed_kind``) of a job with no unique key and no
    ``dependants`` entry leaves ``active``, goes SUCCEEDED with its result and finish time and is
    appended to ``succeeded`` (True to ``applied``). Stops at the first other ack; returns its
    position (``len(acks)`` if none): the caller applies the rest."""
    for i, ack in enumerate(acks):
        job_id, token, kind, payload = ack[0], ack[1], ack[2], ack[3]
        job = active.get(job_id)
        if job is None or job.token != token:
            applied.append(False)
            continue
        if kind != succeed_kind or job.unique_key is not None or (dependants and job_id in dependants):
            return i
        del active[job_id]
        job.lease_until = None
        job.state = SUCCEEDED
        job.result = payload
        job.finished_at = now
        succeeded.append(job)
        applied.append(True)
    return len(acks)

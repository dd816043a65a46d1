"""The values the backend contract passes (see :mod:`fastjobs.backends.base` for the rules).

Jobs going in (:class:`NewJob`) and coming out (:class:`Claim`, :class:`StoredJob`), their
outcomes (:class:`Ack`), searches (:class:`JobFilter`), history rows, events and the worker
registry's records, with the checks every backend shares.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

BROKEN = "broken"
"""The key of a damaged queue's entry in :meth:`Backend.stats`: ``{"broken": "<what is wrong>"}``."""

QueueStats = Mapping[str, int | str]
"""One queue in :meth:`Backend.stats`: job counts by state name, or ``{BROKEN: reason}``."""


class DependencyMode(enum.IntEnum):
    """When a job with ``depends_on`` runs (``NewJob.after``)."""

    SUCCEEDED = 0
    """Once every parent succeeded; a parent ending dead or cancelled cancels it (chains, ``depends_on``, ``then``)."""
    FINISHED = 1
    """Once every parent finished, whatever the outcome (a batch's ``finally``)."""
    FAILED = 2
    """Once every parent finished with at least one dead or cancelled; else cancelled (a batch's ``catch``)."""


class Limit(NamedTuple):
    """A rate limit and/or concurrency cap shared by the jobs of one (queue, key), across every worker.

    Example:
        >>> import fastjobs
        >>> fastjobs.Limit(rate=100, per=60)        # at most 100 started per minute
        Limit(key='', concurrency=0, rate=100, per=60)
        >>> fastjobs.Limit(concurrency=5)           # at most 5 running at once
        Limit(key='', concurrency=5, rate=0, per=0.0)
    """

    key: str = ""
    """1-200 characters: a key the caller picks (``tenant:42``); the App fills in the task's
    name (or the call's ``limit_key``) when empty. Backends always get it set."""
    concurrency: int = 0
    """At most this many ``active`` at once (0: no cap)."""
    rate: int = 0
    """At most this many leased per ``per`` seconds, sliding window (0: no rate limit)."""
    per: float = 0.0
    """The rate window, in seconds (> 0 when ``rate`` is set)."""


class NewJob(NamedTuple):
    """A job to enqueue: the columns the backend schedules by, and the encoded body."""

    id: str
    queue: str
    priority: int
    delay: float
    """Seconds from the backend's now until the job may run (0 = ready now)."""
    max_attempts: int
    body: bytes
    unique_key: str | None = None
    unique_ttl: float = 0.0
    """Seconds the ``unique_key`` stays held after the job succeeded (0 = released at once).

    """
    depends_on: tuple[str, ...] = ()
    """Parent job ids: the job waits until they are done (see "Dependencies" above)."""
    after: int = 0
    """A :class:`DependencyMode`: what "done" means for ``depends_on`` (ignored without parents)."""
    limit: Limit | None = None
    """The rate limit / concurrency cap this job counts against, if any."""
    task: str = ""
    """The task's name (also inside ``body``): stored beside the job so that :meth:`Backend.search`
    can filter on it and events can name it without decoding bodies."""
    tags: tuple[str, ...] = ()
    """Up to :data:`MAX_TAGS` short strings (validated by the App), searchable with ``JobFilter.tag``.

    Build NewJob with all 13 fields when using ``tuple.__new__`` (it does not fill defaults)."""


class Claim(NamedTuple):
    """A job handed to a worker: run it, then ack it with ``token``."""

    id: str
    token: int
    attempt: int
    """1 on the first claim; counted at claim time."""
    body: bytes


class AckKind(enum.IntEnum):
    """What an :class:`Ack` does to an active job."""

    SUCCEED = 0
    """Finished: store ``payload`` as the result."""
    RETRY = 1
    """Failed, try again in ``delay`` seconds; ``payload`` is the error record."""
    DEAD = 2
    """Failed for good: dead-letter it; ``payload`` is the error record."""
    RELEASE = 3
    """Never started (prefetched, then the worker stopped): back to its queue, attempt not used."""


class Ack(NamedTuple):
    """The outcome of one claimed job, applied only if ``token`` still matches."""

    id: str
    token: int
    kind: int
    """An :class:`AckKind` value."""
    payload: bytes | None = None
    """SUCCEED: the encoded result; RETRY/DEAD: the encoded error record."""
    delay: float = 0.0
    """RETRY: seconds from the backend's now until the next attempt may run."""


@dataclass(slots=True)
class StoredJob:
    """Everything a backend keeps about one job (what :meth:`Backend.get` returns)."""

    id: str
    queue: str
    state: int
    """A ``fastjobs._core`` state constant (QUEUED, ACTIVE, ...)."""
    priority: int
    attempt: int
    max_attempts: int
    token: int
    body: bytes
    result: bytes | None
    errors: list[bytes]
    """One encoded error record per failed attempt, oldest first."""
    enqueued_at: float
    run_at: float
    """When the job becomes (or became) ready; for retry-pending jobs, the retry time."""
    started_at: float | None
    finished_at: float | None
    lease_until: float | None
    unique_key: str | None = None
    progress: bytes | None = None
    """The latest :meth:`Backend.set_progress` bytes (kept after finish and across retries), or None."""
    parents: tuple[str, ...] = ()
    """``NewJob.depends_on`` as enqueued."""
    pending_parents: int = 0
    """Parents not yet finished (while ``waiting``; the last value afterwards)."""
    failed_parents: int = 0
    """Parents that ended dead or cancelled (counted while ``waiting``)."""
    limit_key: str | None = None
    """``NewJob.limit.key``, if the job has a limit."""
    task: str = ""
    """``NewJob.task`` as enqueued."""
    tags: tuple[str, ...] = ()
    """``NewJob.tags`` as enqueued."""


@dataclass(slots=True, frozen=True)
class BackendOptions:
    """Settings every backend honours; the App builds them from its own arguments."""

    result_ttl: float = 3600.0
    """Seconds to keep succeeded and cancelled jobs (and their results)."""
    dead_ttl: float = 7 * 86400.0
    """Seconds to keep dead jobs in the dead-letter queue."""
    prefix: str = "fastjobs"
    """Namespace for keys (Redis) or the schema (PostgreSQL), so several apps share a server."""
    connect_timeout: float = 5.0
    """Seconds an operation keeps trying to reach an unreachable server (connecting again, with
    backoff) before it raises :class:`~fastjobs.BackendUnavailableError`."""
    history_minutes: float = 86400.0
    """Seconds to keep per-minute history points (default 24 h)."""
    history_hours: float = 30 * 86400.0
    """Seconds to keep per-hour history points (default 30 days)."""
    events: bool = True
    """Publish job lifecycle events (see "Events" above); False spares the publishes."""


MAX_IDS = 1000
"""Most job ids one ``retry_jobs`` / ``cancel_jobs`` / ``delete_jobs`` call takes."""

SEARCH_SCAN = 1000
"""Most candidates one :meth:`Backend.search` call examines for filters it cannot seek on."""

MAX_TAGS = 10
"""Most tags on one job."""

TAG_MAX = 100
"""Most characters in one tag."""

Position = tuple[int, str]
"""Where a :meth:`Backend.search` page ended: ``(at in integer microseconds since the epoch, job id)``."""


@dataclass(frozen=True, slots=True)
class JobFilter:
    """What :meth:`Backend.search` looks for; every field set must match (None / empty: any)."""

    states: tuple[int, ...] = ()
    """``fastjobs._core`` state constants; empty: every state."""
    queue: str | None = None
    task: str | None = None
    tag: str | None = None
    """One tag the job must carry."""
    since: float | None = None
    """Seconds since the epoch: ``at >= since``."""
    until: float | None = None
    """Seconds since the epoch: ``at < until``."""


class JobEdit(NamedTuple):
    """What :meth:`Backend.retry_jobs` replaces before it retries a job (the App fills every field)."""

    body: bytes
    """The re-encoded job record (new args, kwargs, queue, priority, max_attempts)."""
    queue: str
    priority: int
    max_attempts: int


class Outcome(enum.IntEnum):
    """What a :class:`HistoryRow` counts."""

    SUCCEEDED = 0
    RETRIED = 1
    """An attempt failed and another is scheduled."""
    DEAD = 2
    """An attempt failed and the job is dead-lettered."""


HISTOGRAM_BOUNDS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0,
)
"""Upper bounds (seconds, inclusive) of the run-time histogram's buckets; one more bucket holds the rest."""


class HistoryRow(NamedTuple):
    """Run-time totals of one (queue, task, outcome) in one ack flush or one history point."""

    queue: str
    task: str
    outcome: int
    """An :class:`Outcome` value."""
    runs: int
    """How many job runs it counts."""
    runtime_sum: float
    """Seconds, summed over the ``runs``."""
    buckets: tuple[int, ...]
    """``len(HISTOGRAM_BOUNDS) + 1`` counts; they sum to ``runs``."""


class HistoryPoint(NamedTuple):
    """One stored point of :meth:`Backend.history`."""

    at: float
    """Start of the minute or hour (seconds since the epoch, backend clock)."""
    row: HistoryRow


class Event(NamedTuple):
    """One job lifecycle event (see "Events" above)."""

    kind: str
    """enqueued, started, progress, succeeded, failed, dead, released, cancelled or deleted."""
    job_id: str
    task: str
    queue: str
    at: float
    """Backend clock, seconds since the epoch."""


EVENT_KINDS = ("enqueued", "started", "progress", "succeeded", "failed", "dead", "released", "cancelled", "deleted")


GONE_KEPT = 3600.0
"""Seconds a worker's record is kept (listed as gone) after its last beat's ``ttl`` ran out."""

WORKER_ID_MAX = 200
"""Most characters in a worker id."""


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """One worker process, as :meth:`~fastjobs.App.workers` lists it.

    Times are the backend's clock, in seconds since the epoch.

    Example:
        >>> import fastjobs
        >>> info = fastjobs.WorkerInfo("web-1:4242:a1b2c3", "web-1", 4242, ("emails",), 100, "0.1.0",
        ...                            started_at=1.7e9, last_seen=1.7e9, running=("j1",))
        >>> info.alive, info.running
        (True, ('j1',))
    """

    id: str
    """``hostname:pid:random``: unique per worker process and start."""
    hostname: str
    pid: int
    queues: tuple[str, ...]
    """The queues it serves, in the order it serves them."""
    concurrency: int
    version: str
    """The fastjobs version it runs."""
    started_at: float
    """When it registered."""
    last_seen: float
    """Its last beat (or its registration)."""
    running: tuple[str, ...] = ()
    """Ids of the jobs it was running at its last beat."""
    alive: bool = True
    """False once no beat came within its ``ttl``: it crashed, stalled or lost the backend."""


class Beat(NamedTuple):
    """A worker's heartbeat, carried by :meth:`Backend.renew` alongside the leases it renews."""

    worker_id: str
    running: tuple[str, ...]
    """Ids of the jobs the worker is running now."""
    ttl: float
    """Seconds after which the worker counts as gone if no beat follows (a few beat periods)."""


def by_start(workers: Iterable[WorkerInfo]) -> list[WorkerInfo]:
    """``workers`` in the order :meth:`Backend.workers` lists them: oldest start first, then by id."""
    return sorted(workers, key=lambda w: (w.started_at, w.id))


def check_worker(info: object, ttl: object) -> WorkerInfo:
    """``info`` if it is a registrable :class:`WorkerInfo` and ``ttl`` usable, else ValueError (every backend's check)."""
    if not isinstance(info, WorkerInfo):
        raise TypeError(f"register_worker takes a WorkerInfo, not {type(info).__name__}")
    check_worker_id(info.id)
    _check_ttl(ttl)
    if isinstance(info.pid, bool) or not isinstance(info.pid, int) or info.pid < 0:
        raise ValueError(f"WorkerInfo.pid must be an int >= 0, not {info.pid!r}")
    if isinstance(info.concurrency, bool) or not isinstance(info.concurrency, int) or info.concurrency < 1:
        raise ValueError(f"WorkerInfo.concurrency must be an int >= 1, not {info.concurrency!r}")
    if not all(isinstance(q, str) for q in info.queues) or not isinstance(info.hostname, str):
        raise ValueError("WorkerInfo.queues must be a tuple of str and hostname a str")
    return info


def check_beat(beat: object) -> Beat:
    """``beat`` if it is a usable :class:`Beat`, else ValueError/TypeError (every backend's check)."""
    if not isinstance(beat, Beat):
        raise TypeError(f"renew(beat=) takes a Beat, not {type(beat).__name__}")
    check_worker_id(beat.worker_id)
    _check_ttl(beat.ttl)
    if not isinstance(beat.running, tuple) or not all(isinstance(j, str) for j in beat.running):
        raise ValueError(f"Beat.running must be a tuple of job ids, not {beat.running!r}")
    return beat


def check_worker_id(worker_id: object) -> str:
    """``worker_id`` if it is a usable worker id, else ValueError."""
    if not isinstance(worker_id, str) or not 0 < len(worker_id) <= WORKER_ID_MAX:
        raise ValueError(f"a worker id is a str of 1-{WORKER_ID_MAX} characters, not {worker_id!r}")
    return worker_id


def _check_ttl(ttl: object) -> None:
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not 0 < ttl <= GONE_KEPT:
        raise ValueError(f"a worker's ttl is seconds in (0, {GONE_KEPT:.0f}], not {ttl!r}")

"""The backend contract: the single source of truth for what every backend does.

A backend stores jobs and moves them between states atomically. It knows nothing
of tasks, handlers or Python callables: a job is an opaque ``body`` (the msgpack
:class:`~fastjobs._core.JobRecord`, decoded only by the worker) plus the few
columns a backend needs to schedule it. The worker, the App and the CLI talk to
every backend through this class only, and ONE contract test suite
(``tests/contract/``) runs against every implementation.

States and moves follow ``fastjobs._core.TRANSITIONS``::

    scheduled --due--> queued --claim--> active --ack SUCCEED--> succeeded
    retry_pending --due--> queued            active --ack RETRY--> retry_pending
                                             active --ack DEAD / attempts used--> dead
                                             active --ack RELEASE / lease expired--> queued
    queued|scheduled|retry_pending|active|waiting --cancel--> cancelled
    dead --retry_dead--> queued
    waiting --parents done--> queued (or scheduled)     waiting --a parent failed--> cancelled

Rules every backend keeps:

* **Time is the backend's.** Delays and leases are relative seconds that the
  backend turns into absolute times with its own clock (Redis ``TIME``,
  PostgreSQL ``now()``, the process clock for memory), so skewed worker clocks
  cannot run a job early or rescue a lease early. :meth:`Backend.now` exposes it.
* **Batches.** ``enqueue_many``, ``claim``, ``ack_many`` and ``renew`` each take
  or return many jobs and cost one round trip (one Lua call, one SQL statement).
* **Order.** ``claim`` serves queues in the order listed; inside a queue, higher
  priority first, then FIFO by enqueue order. Delayed jobs keep their enqueue
  position once due.
* **Attempts are counted at claim.** Each claim increments ``attempt`` and the
  job's **lease token** (a fencing token that only grows). A job whose worker
  keeps crashing therefore ends dead, not in a loop.
* **Fencing.** An ack or a renewal applies only if the job is ``active`` with
  the same token; otherwise it changes nothing and is reported as stale
  (``False``). A stale ack is never applied twice.
* **Leases.** A claimed job is reserved until ``now + lease``. ``claim`` first
  recovers expired leases (back to ``queued``, or ``dead`` when the attempts are
  used up) and promotes due delayed jobs, so one worker alone never needs a
  separate maintenance call; :meth:`Backend.recover` and :meth:`Backend.promote_due`
  exist for tools and tests.
* **Retention.** Succeeded and cancelled jobs are kept ``result_ttl`` seconds
  after they finish, dead jobs ``dead_ttl`` seconds; ``cleanup`` deletes older
  ones (backends may also expire them on their own). ``result_ttl=0`` deletes a
  succeeded job at its ack.
* **Uniqueness.** A job with a ``unique_key`` is not enqueued while another job
  of the same queue with that key is scheduled, queued, retry-pending or active;
  ``enqueue_many`` returns the existing job's id in its place. Keys are scoped
  per queue because on Redis Cluster a queue is one hash slot, and an atomic
  check across slots does not exist. With ``NewJob.unique_ttl > 0`` the key
  stays held ``unique_ttl`` seconds (backend clock) after the job *succeeded*,
  and ``enqueue_many`` returns the finished job's id in its place; a dead or
  cancelled job releases its key at once (so a failed job can be re-enqueued).
  After the window a new job may take the key. Atomic under concurrent
  enqueues, like the rest of uniqueness.
* **Paused queues.** :meth:`Backend.pause` stops ``claim`` from leasing jobs of
  a queue; enqueues into it continue and its jobs stay queued, in order, until
  :meth:`Backend.resume`. The paused set lives in the backend (shared by every
  worker on it; per process for ``memory://``, whose store is per process
  anyway). Pausing twice or resuming an unknown queue is a no-op. ``wait`` may
  return spuriously for a paused queue (the worker's poll interval bounds any
  loop); ``stats`` is unchanged. Queue names are data: parameters / ARGV,
  never SQL text. On Redis, a queue's paused flag shares its hash tag.
* **Progress.** :meth:`Backend.set_progress` stores opaque bytes (msgpack,
  encoded by the App) on a job that is ``active`` with the given token, in one
  round trip; otherwise it changes nothing and returns ``False``. ``get``
  returns the latest progress in ``StoredJob.progress``; it stays after the job
  finishes (succeeded, dead, cancelled) and is kept when the job is retried
  (the next attempt may overwrite it).
* **Dependencies** (``NewJob.depends_on``, ``NewJob.after``): the one mechanism
  under chains, batches with callbacks and ``depends_on``.

  - *At enqueue* every parent id must name a job stored earlier or in the same
    batch (any position); an unknown id raises
    :class:`~fastjobs.DependencyError` and nothing of the batch is stored (in
    Redis Cluster: nothing of that queue's part). The App guarantees: parent
    ids are distinct, never the job's own, acyclic within a batch, and a
    parent in the same batch has no ``unique_key``. On Redis every parent must
    be in the child's queue (one Cluster slot), else DependencyError too.
  - A parent that *succeeded* counts as done; one that is *dead or cancelled*
    counts as done and failed; any other is pending, and the child is
    registered on it. The child starts ``waiting`` unless it is resolved at
    once (below). ``StoredJob.parents``, ``pending_parents`` and
    ``failed_parents`` report this; the counts keep their last values after
    the job leaves ``waiting``. A waiting job holds its ``unique_key``.
  - *When a job finishes* (succeeded at ack; dead at ack or at lease recovery
    with its attempts used; cancelled, by hand or by this rule), each of its
    ``waiting`` dependants is updated **in the same atomic operation**:
    ``pending_parents -= 1``, and ``failed_parents += 1`` unless it
    succeeded. Then, by the dependant's ``after`` (a :class:`DependencyMode`):
    SUCCEEDED with a failed parent -> cancelled at once (it never runs);
    FAILED with no failed parent once pending is 0 -> cancelled; otherwise
    pending 0 -> released: ``queued``, or ``scheduled`` for its own ``delay``
    counted from the release. Where a released job enters its queue (its
    enqueue position or the back) is up to the backend; priority is kept. A
    dependant cancelled this way finishes in turn and updates its own
    dependants (recursively, same operation); it is kept ``result_ttl`` like
    any cancelled job (at least until the next cleanup).
  - ``waiting`` jobs are never claimed, never make ``wait`` return, show as
    ``"waiting"`` in ``stats`` and are listed by ``list_jobs(WAITING)``;
    ``cancel`` works on them. ``retry_dead`` on a dead parent does not revive
    dependants already cancelled. A finished parent's dependant list goes
    with it. ``after`` is ignored for a job without parents.
* **Limits** (``NewJob.limit``, a :class:`Limit`): enforced inside ``claim``,
  across every worker, counted per (queue, ``Limit.key``). ``claim`` leases a
  limited job only if ``concurrency == 0`` or fewer than ``concurrency`` jobs
  of that (queue, key) are ``active``, and ``rate == 0`` or fewer than
  ``rate`` jobs of that (queue, key) were leased in the last ``per`` seconds
  (backend clock, a sliding window; every lease counts, retries too; leases
  made earlier in the same claim call count). A job stops counting as active
  when it leaves ``active`` (ack, cancel, lease recovery). A job over its
  limit is **not leased**: it stays ``queued`` in place, and ``claim`` goes on
  to later jobs (other keys, unlimited jobs), so a limited key never blocks
  its queue. Within one key: priority, then FIFO. When jobs of one key carry
  different values, which values apply is up to the backend (the latest
  enqueued, on every backend today). ``wait`` does not return just because
  limited jobs are held (an idle worker would spin); it may return early.
* **Workers.** A worker process registers itself (:meth:`Backend.register_worker`,
  a :class:`WorkerInfo`), beats with its lease renewals (``renew(..., beat=)``,
  a :class:`Beat`: one call carries both, a beat alone when nothing runs) and
  deregisters when it stops. The backend stamps ``started_at`` and
  ``last_seen`` with its own clock. :meth:`Backend.workers` lists the workers
  seen within the last hour: ``alive`` while the last beat is at most the
  worker's ``ttl`` old, gone after (a crashed worker; a stopped one deregistered
  and is not listed). Records gone for an hour (:data:`GONE_KEPT`) are
  forgotten. A beat of a worker the backend does not know (never registered,
  deregistered or forgotten) changes nothing. The records are per App
  namespace (``prefix``); on Redis Cluster they share one hash tag of their own.
* **Errors.** Every error an operation lets out for a backend-side reason is
  a :class:`~fastjobs.FastjobsError`: :class:`~fastjobs.BackendUnavailableError`
  when the server cannot be reached, :class:`~fastjobs.BackendError` when it
  refuses; the client library's error is the ``__cause__``. A backend says
  which of its client's errors mean what in :meth:`Backend.translate_error`,
  and every operation of the contract goes through it (wrapped once, when the
  subclass is defined). Errors of the caller's own making (``ValueError`` for
  an argument the contract rules out) pass unchanged.
* **Connecting.** An operation that finds the server unreachable keeps trying
  to connect for ``BackendOptions.connect_timeout`` seconds, then raises
  :class:`~fastjobs.BackendUnavailableError`: a short outage (a restart, a
  failover) is ridden out, a long one fails in bounded time, the same on every
  backend.
* **Damaged queues.** A queue whose own storage is damaged (Redis: a key of
  the wrong type) must not stop the others: ``claim`` skips it and the backend
  logs one warning per retry interval naming the queue and what is wrong;
  ``stats`` reports it as ``{"broken": "<what is wrong>"}`` (:data:`BROKEN`)
  in place of its counts. A job whose own data is damaged is dead-lettered
  with a :class:`~fastjobs.CorruptJobError` saying what was found.
"""

from __future__ import annotations

import abc
import enum
import functools
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, Sequence, TypeVar

from ..errors import FastjobsError

T = TypeVar("T")

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

    Build NewJob with all 11 fields when using ``tuple.__new__`` (it does not fill defaults).
    """
    depends_on: tuple[str, ...] = ()
    """Parent job ids: the job waits until they are done (see "Dependencies" above)."""
    after: int = 0
    """A :class:`DependencyMode`: what "done" means for ``depends_on`` (ignored without parents)."""
    limit: Limit | None = None
    """The rate limit / concurrency cap this job counts against, if any."""


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


class Backend(abc.ABC):
    """Where jobs live. Subclasses implement every abstract method with the rules above."""

    loop_bound: ClassVar[bool] = True
    """True if an instance holds connections tied to the event loop that opened them."""

    def __init__(self, url: str, options: BackendOptions) -> None:
        self.url = url
        self.options = options

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Wrapped here rather than by hand in each method: no operation of any
        # backend can forget the translation, and the backend keeps one list
        # of what its client's errors mean (translate_error). A backend that
        # translates nothing (memory://) keeps its methods as they are: no
        # extra coroutine frame on its hot path.
        if cls.translate_error is Backend.translate_error:
            return
        for name in OPERATIONS:
            op = cls.__dict__.get(name)
            if op is not None and not getattr(op, _TRANSLATED, False):
                setattr(cls, name, _translated(op))

    def translate_error(self, exc: Exception) -> FastjobsError | None:
        """The error an operation raises in place of ``exc``, a client library's error; None lets it through.

        Return :class:`~fastjobs.BackendUnavailableError` for the client's
        connectivity errors and :class:`~fastjobs.BackendError` for the
        server's refusals; the operation raises it ``from exc``. Errors that
        are already a :class:`~fastjobs.FastjobsError`, and ``BaseException``
        such as cancellation, never get here.

        Example:
            >>> class MyBackend(MemoryBackend):  # doctest: +SKIP
            ...     def translate_error(self, exc):
            ...         if isinstance(exc, OSError):
            ...             return BackendUnavailableError(f"cannot reach the store ({exc})")
            ...         return None
        """
        return None

    async def connect(self) -> None:
        """Open connections and load scripts or migrations. Idempotent."""

    async def close(self) -> None:
        """Close connections. Idempotent."""

    async def ready(self) -> None:
        """Raise :class:`~fastjobs.ConfigurationError` unless the store is set up for this
        fastjobs; never changes it. Read-only tools call it after :meth:`connect`
        (PostgreSQL: the schema exists and is migrated; the others have nothing to set up)."""

    @abc.abstractmethod
    async def now(self) -> float:
        """The backend's clock, in seconds since the epoch."""

    @abc.abstractmethod
    async def enqueue_many(self, jobs: Sequence[NewJob], *, connection: Any = None) -> list[str]:
        """Store ``jobs`` atomically (all or none) and return their ids in order.

        A job whose ``unique_key`` is held by a live job of its queue is not
        stored; the live job's id is returned in its place.

        ``connection``: a connection of the application's own, inside its own
        transaction, to enqueue through (transactional enqueue: the jobs exist
        only if that transaction commits). Backends that cannot do this raise
        :class:`~fastjobs.ConfigurationError` when one is given.
        """

    @abc.abstractmethod
    async def claim(self, queues: Sequence[str], n: int, lease: float) -> list[Claim]:
        """Lease up to ``n`` ready jobs from ``queues`` (in that order) for ``lease`` seconds."""

    @abc.abstractmethod
    async def ack_many(self, acks: Sequence[Ack]) -> list[bool]:
        """Apply each ack whose token still matches; return, per ack, whether it applied."""

    @abc.abstractmethod
    async def renew(self, leases: Sequence[tuple[str, int, float]], beat: Beat | None = None) -> list[bool]:
        """Extend leases: ``(job id, token, seconds from now)``; per item, whether it applied.

        ``beat``: the renewing worker's heartbeat, applied in the same round trip
        (alone when ``leases`` is empty): its ``last_seen`` becomes now, its
        ``running`` and ``ttl`` the beat's. A beat for an unknown worker changes
        nothing; a malformed one raises ValueError/TypeError before anything applies.
        """

    @abc.abstractmethod
    async def recover(self) -> int:
        """Take back jobs whose lease expired; return how many."""

    @abc.abstractmethod
    async def promote_due(self) -> int:
        """Move due scheduled and retry-pending jobs to their queue; return how many."""

    @abc.abstractmethod
    async def get(self, job_id: str) -> StoredJob | None:
        """One job, or None if it does not exist (or was cleaned up)."""

    @abc.abstractmethod
    async def list_jobs(
        self, state: int, queue: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[StoredJob]:
        """Jobs in ``state`` (optionally of one queue), oldest first: how the dead-letter queue is read."""

    @abc.abstractmethod
    async def retry_dead(self, job_id: str) -> bool:
        """Put a dead job back in its queue with a fresh set of attempts; False if it is not dead."""

    @abc.abstractmethod
    async def purge(self, state: int, queue: str | None = None) -> int:
        """Delete every job in a finished ``state`` (dead, succeeded, cancelled); return how many."""

    @abc.abstractmethod
    async def cancel(self, job_id: str) -> bool:
        """Cancel a job that has not finished; False if it is unknown or already finished.

        An active job's lease is voided, so its worker's ack is reported stale.
        """

    @abc.abstractmethod
    async def stats(self) -> Mapping[str, QueueStats]:
        """Counts per queue and state name: ``{"emails": {"queued": 3, "active": 1, ...}}``.

        A damaged queue (see "Damaged queues" above) is ``{"broken": "<what is wrong>"}``.
        """

    @abc.abstractmethod
    async def cleanup(self) -> int:
        """Delete finished jobs past their retention; return how many."""

    @abc.abstractmethod
    async def wait(self, queues: Sequence[str], timeout: float) -> None:
        """Return when a job in ``queues`` may be ready, or after ``timeout`` seconds.

        Enqueues wake waiters at once (no busy polling); a delayed job wakes them
        when it falls due. Spurious wake-ups are allowed.
        """

    @abc.abstractmethod
    async def pause(self, queue: str) -> None:
        """Stop ``claim`` from leasing jobs of ``queue``; enqueues into it continue.

        Args:
            queue: the queue name (validated by the App; treat it as data).

        Returns None. Idempotent: pausing a paused queue keeps it paused. The
        paused state is stored in the backend and shared by every worker on it.
        """

    @abc.abstractmethod
    async def resume(self, queue: str) -> None:
        """Let ``claim`` lease jobs of ``queue`` again, in their original order.

        Args:
            queue: the queue name.

        Returns None. Resuming a queue that is not paused (or unknown) is a no-op.
        """

    @abc.abstractmethod
    async def paused(self) -> list[str]:
        """The names of the paused queues, sorted."""

    @abc.abstractmethod
    async def set_progress(self, job_id: str, token: int, progress: bytes) -> bool:
        """Store ``progress`` on a job that is active with lease ``token``, in one round trip.

        Args:
            job_id: the job.
            token: the lease token of the claim that reports progress.
            progress: opaque bytes (the App encodes them with msgpack).

        Returns True if stored; False, changing nothing, if the job is not
        active with that token (stale, finished, cancelled, unknown). The value
        is returned by :meth:`get` as ``StoredJob.progress``, stays after the
        job finishes and is kept when it is retried.
        """


    @abc.abstractmethod
    async def register_worker(self, info: WorkerInfo, ttl: float) -> None:
        """Record a starting worker (replacing any record of the same id), alive for ``ttl`` seconds.

        Args:
            info: who it is; its ``started_at``, ``last_seen``, ``running`` and
                ``alive`` are ignored (the backend stamps now, nothing running).
            ttl: seconds it counts as alive without a beat.

        Raises ValueError/TypeError for a malformed ``info`` or ``ttl`` (see
        :func:`check_worker`), storing nothing. Also forgets workers gone for
        :data:`GONE_KEPT` seconds, so the records stay bounded without a sweeper.
        """

    @abc.abstractmethod
    async def deregister_worker(self, worker_id: str) -> bool:
        """Remove a worker's record at once (it stopped cleanly); False if it was unknown."""

    @abc.abstractmethod
    async def workers(self) -> list[WorkerInfo]:
        """Workers alive or gone within :data:`GONE_KEPT` seconds, by ``started_at`` then ``id``.

        ``alive`` is decided now, on the backend's clock: last beat at most ``ttl`` ago.
        Read-only.
        """


_TRANSLATED = "_fastjobs_translated"

OPERATIONS = frozenset(
    name for name, value in vars(Backend).items()
    if not name.startswith("_") and name not in ("close", "translate_error") and callable(value)
)
"""The operations of the contract, each wrapped by :func:`_translated` in every backend that defines it."""


def _translated(op: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """``op`` raising ``self.translate_error(exc) from exc`` in place of a client library's error."""

    @functools.wraps(op)
    async def operation(self: Backend, *args: Any, **kwargs: Any) -> T:
        try:
            return await op(self, *args, **kwargs)
        except FastjobsError:
            raise
        except Exception as exc:
            error = self.translate_error(exc)
            if error is None:
                raise
            raise error from exc

    setattr(operation, _TRANSLATED, True)
    return operation

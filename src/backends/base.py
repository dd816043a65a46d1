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
    dead|cancelled --retry--> queued          any state but active --delete--> (gone)
    waiting --parents done--> queued (or scheduled)     waiting --a parent failed--> cancelled

Rules every backend keeps:

* **Time is the backend's.** Delays and leases are relative seconds that the
  backend turns into absolute times with its own clock (Redis ``TIME``,
  PostgreSQL ``now()``, the process clock for memory), so skewed worker clocks
  cannot run a job early or rescue a lease early. :meth:`Backend.now` exposes it.
  Tests move the jobs instead of the clock: :meth:`Backend.shift_due`.
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
* **Search** (:meth:`Backend.search`, a :class:`JobFilter`). Every job has a
  *search time* ``at``: ``finished_at`` for succeeded, dead and cancelled
  jobs, ``enqueued_at`` for the others. Results come newest first by
  ``(at, id)`` descending, as a keyset page: ``after`` is the position the
  previous page returned, and a page costs the same at the 10th job and at the
  10,000,000th (an index or an ordered structure seeks to ``after``; never
  OFFSET, never a scan from the top). Positions are :data:`Position`
  ``(at in integer microseconds, id)``: exact on every backend. ``since`` /
  ``until`` bound ``at`` (``since <= at < until``, seconds). A backend may
  examine at most :data:`SEARCH_SCAN` candidates per call for filters it
  cannot seek on (say which in its module docstring): it then returns fewer
  than ``limit`` jobs with a position to go on from. The position is None
  only when nothing further can match. Read-only.
* **Acting on jobs by id**, each call at most :data:`MAX_IDS` ids (ValueError
  above; callers page), each one atomic per job, one round trip per call
  (per queue on Redis Cluster), result per id in order (False: unknown, or in
  a state that does not allow it; nothing changed for that id):

  - :meth:`Backend.retry_jobs`: a dead or cancelled job goes back to
    ``queued`` (ready now, its enqueue position is new) with ``attempt`` 0 and
    a fresh set of ``max_attempts``; its error list is kept (the history of
    what went wrong); it takes its ``unique_key`` again, and if a live job
    of its queue holds that key it stays where it is (False). Dependants
    already cancelled are not revived. With ``edit`` (one id only): the job's
    ``body``, ``queue``, ``priority`` and ``max_attempts`` are replaced first
    (a :class:`JobEdit`; the App re-encodes and validates them as at enqueue).
  - :meth:`Backend.cancel_jobs`: see ``cancel`` below.
  - :meth:`Backend.delete_jobs`: any job that is not ``active`` (queued,
    scheduled, retry-pending, waiting, succeeded, dead, cancelled) is removed
    with everything the backend keeps about it (body, result, errors,
    progress, its dependency and limit bookkeeping); its ``unique_key`` is
    freed, a uniqueness window included; its ``waiting`` dependants are updated
    as if it had been cancelled (so they cancel, or run for a ``FINISHED`` /
    ``FAILED`` mode). An active job is not deleted (False): cancel it first.
* **History** (``ack_many(..., history=)``, :meth:`Backend.history`). The
  worker sums up each ack flush as :class:`HistoryRow` values (per queue,
  task and :class:`Outcome`: runs, run-time sum and a fixed-bucket histogram
  over :data:`HISTOGRAM_BOUNDS`); the backend adds them, **in the same round
  trip as the acks** (pipelined or in the same statement), to the current
  minute and the current hour of its own clock. Minute points are kept
  ``BackendOptions.history_minutes`` seconds, hour points
  ``history_hours`` seconds; older ones are dropped a bounded amount per
  write (so the store stays bounded without a sweeper). History is written
  whatever the ack results were (a stale ack still ran its handler).
* **Events** (:meth:`Backend.events`). When ``BackendOptions.events`` is true
  (the default) every operation that moves jobs publishes one :class:`Event`
  per job moved, **batched**: one publish per call and queue (Redis PUBLISH
  on ``<prefix>:events:<queue>`` inside or pipelined with the call,
  PostgreSQL ``pg_notify`` once per statement, chunked under its 8,000-byte
  limit; in-process for memory), never a round trip of its own. Kinds:
  ``enqueued`` (enqueue_many, and retry_jobs), ``started`` (claim),
  ``progress`` (set_progress), ``succeeded``, ``failed`` (an attempt failed,
  another follows), ``dead``, ``released`` (ack RELEASE, lease recovery back
  to queued), ``cancelled`` (cancel, and dependants cancelled by a parent),
  ``deleted``. ``events()`` yields them live to any number of listeners,
  from when it subscribed; delivery is **best effort** (a listener that
  falls behind or reconnects misses events; never use them for correctness).
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
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, ClassVar, Sequence, TypeVar

from .._core import CANCELLED as _CANCELLED
from .._core import DEAD as _DEAD
from .._core import SUCCEEDED as _SUCCEEDED
from ..errors import FastjobsError

from .values import (  # re-exported: the contract's values
    BROKEN as BROKEN,
    QueueStats as QueueStats,
    DependencyMode as DependencyMode,
    Limit as Limit,
    NewJob as NewJob,
    Claim as Claim,
    AckKind as AckKind,
    Ack as Ack,
    StoredJob as StoredJob,
    BackendOptions as BackendOptions,
    MAX_IDS as MAX_IDS,
    SEARCH_SCAN as SEARCH_SCAN,
    MAX_TAGS as MAX_TAGS,
    TAG_MAX as TAG_MAX,
    Position as Position,
    JobFilter as JobFilter,
    JobEdit as JobEdit,
    Outcome as Outcome,
    HISTOGRAM_BOUNDS as HISTOGRAM_BOUNDS,
    HistoryRow as HistoryRow,
    HistoryPoint as HistoryPoint,
    Event as Event,
    EVENT_KINDS as EVENT_KINDS,
    GONE_KEPT as GONE_KEPT,
    WORKER_ID_MAX as WORKER_ID_MAX,
    WorkerInfo as WorkerInfo,
    Beat as Beat,
    by_start as by_start,
    check_worker as check_worker,
    check_beat as check_beat,
    check_worker_id as check_worker_id,
)

T = TypeVar("T")

ESTIMATE_ABOVE = 10_000
"""The largest count :meth:`Backend.stats_estimated` always reports exactly; above it,
a count may be an estimate."""

MAX_SEARCH_PAGE = 1000
"""Most jobs one :meth:`Backend.search` call returns."""


def check_search_limit(limit: object) -> int:
    """``limit`` if it is a :meth:`Backend.search` page size (an int from 1 to :data:`MAX_SEARCH_PAGE`), else
    ValueError (the backends' shared check)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_SEARCH_PAGE:
        raise ValueError(f"limit must be an int in 1..{MAX_SEARCH_PAGE}, not {limit!r}")
    return limit


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
    async def ack_many(self, acks: Sequence[Ack], history: Sequence[HistoryRow] = ()) -> list[bool]:
        """Apply each ack whose token still matches; return, per ack, whether it applied.

        ``history``: the flush's run-time totals, added to the current minute and hour in the
        same round trip (see "History" above)."""

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
    async def shift_due(self, seconds: float) -> int:
        """Bring the due time of every scheduled and retry-pending job ``seconds`` (>= 0) earlier;
        return how many jobs moved.

        For tests (:func:`fastjobs.testing.advance_time`): the backend's clock cannot be
        moved on, so the jobs are moved back. Their order by due time is kept, and a job
        that falls due keeps its enqueue position, as after a real wait; it is promoted by
        the next ``claim`` or ``promote_due``. Idle workers are woken. Waiting jobs (their
        delay counts from their release), leases, retention and uniqueness windows are
        left alone. One call moves every such job, however many: not for production stores.
        """

    @abc.abstractmethod
    async def get(self, job_id: str) -> StoredJob | None:
        """One job, or None if it does not exist (or was cleaned up)."""

    @abc.abstractmethod
    async def list_jobs(
        self, state: int, queue: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[StoredJob]:
        """Jobs in ``state`` (optionally of one queue), oldest first: how the dead-letter queue is read."""

    @abc.abstractmethod
    async def search(self, where: JobFilter, limit: int, after: Position | None = None) -> tuple[list[StoredJob], Position | None]:
        """A page of at most ``limit`` (1-1000) jobs matching ``where``, newest first, and where to go on from.

        See "Search" above. ``after``: the position a previous call returned (None: from the newest).
        Returns ``(jobs, position)``; ``position`` is None when no further job can match.
        """

    @abc.abstractmethod
    async def retry_jobs(self, job_ids: Sequence[str], edit: JobEdit | None = None) -> list[bool]:
        """Put dead or cancelled jobs back in their queue with fresh attempts; per id, whether it applied.

        ``edit`` (only with exactly one id, else ValueError): replace the job's body, queue,
        priority and max_attempts first. See "Acting on jobs by id" above.
        """

    @abc.abstractmethod
    async def cancel_jobs(self, job_ids: Sequence[str]) -> list[bool]:
        """Cancel jobs that have not finished; per id, False if unknown or already finished.

        An active job's lease is voided, so its worker's ack is reported stale. Its
        dependants are updated as for any cancel (see "Dependencies").
        """

    @abc.abstractmethod
    async def delete_jobs(self, job_ids: Sequence[str]) -> list[bool]:
        """Remove jobs that are not active; per id, whether it was removed. See "Acting on jobs by id"."""

    async def retry_dead(self, job_id: str) -> bool:
        """Put a dead job back in its queue with a fresh set of attempts; False if it is not dead."""
        stored = await self.get(job_id)
        if stored is None or stored.state != _DEAD:
            return False
        return (await self.retry_jobs([job_id]))[0]

    async def cancel(self, job_id: str) -> bool:
        """Cancel one job: :meth:`cancel_jobs` of one id."""
        return (await self.cancel_jobs([job_id]))[0]

    async def purge(self, state: int, queue: str | None = None) -> int:
        """Delete every job in a finished ``state`` (dead, succeeded, cancelled); return how many.

        Pages through :meth:`search` and deletes :data:`MAX_IDS` at a time: a million
        jobs never make one long operation."""
        if state not in (_SUCCEEDED, _DEAD, _CANCELLED):
            raise ValueError("only finished jobs (succeeded, dead, cancelled) can be purged")
        where = JobFilter(states=(state,), queue=queue)
        deleted = 0
        position: Position | None = None
        while True:
            jobs, position = await self.search(where, MAX_IDS, position)
            if jobs:
                deleted += sum(await self.delete_jobs([job.id for job in jobs]))
            if position is None:
                return deleted

    @abc.abstractmethod
    async def history(self, since: float, until: float, step: int = 60, queue: str | None = None,
                      task: str | None = None) -> list[HistoryPoint]:
        """Stored history points with ``since <= at < until``, ``step`` 60 (minutes) or 3600 (hours),
        optionally of one queue and/or task; ordered by ``at``, then queue, task, outcome. Read-only."""

    @abc.abstractmethod
    def events(self, queues: Sequence[str] | None = None) -> AsyncIterator[Event]:
        """Live :class:`Event` values of ``queues`` (None: every queue) from now on, best effort.

        An async generator: ``async for event in backend.events(): ...``; closing it (``aclose``,
        or leaving the loop) unsubscribes. It raises :class:`~fastjobs.BackendUnavailableError`
        if the server goes away and cannot be reached again within ``connect_timeout``.
        """

    @abc.abstractmethod
    async def stats(self) -> Mapping[str, QueueStats]:
        """Counts per queue and state name: ``{"emails": {"queued": 3, "active": 1, ...}}``.

        A damaged queue (see "Damaged queues" above) is ``{"broken": "<what is wrong>"}``.
        Exact, at whatever cost (PostgreSQL counts every stored job): a dashboard
        refreshing often calls :meth:`stats_estimated`.
        """

    async def stats_estimated(self) -> tuple[Mapping[str, QueueStats], dict[str, frozenset[str]]]:
        """:meth:`stats`, fast however many jobs are stored: large counts may be estimates.

        Returns ``(counts, estimated)``: ``counts`` as :meth:`stats` returns them
        (the same queues, the same state names); ``estimated`` maps a queue to the
        state names whose counts are estimates (a queue without any is left out,
        so ``{}`` means every count is exact). The rule: a count under
        :data:`ESTIMATE_ABOVE` is always exact; a larger one may be an estimate,
        itself larger than ``ESTIMATE_ABOVE`` and within a few percent of the
        truth on a freshly analyzed table (PostgreSQL's sample reads the table
        as it is, analyzed or not: see ``SAMPLE_PAGES`` there). Read-only.

        The default is :meth:`stats` with no estimates: memory and Redis count
        exactly and fast at any size. PostgreSQL caps its exact counts and
        samples the tables for the rest (see its ``stats_estimated`` query).
        """
        return await self.stats(), {}

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
    if not name.startswith("_") and name not in ("close", "translate_error", "events") and callable(value)
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

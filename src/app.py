"""The public API: :class:`App`, :class:`Task`, :class:`Call` and :class:`JobHandle`.

Example:
    >>> import fastjobs
    >>> app = fastjobs.App("memory://")
    >>> @app.task(queue="emails", max_attempts=3)
    ... async def send_email(to: str) -> str:
    ...     return f"sent to {to}"
    >>> job = send_email.enqueue_sync("a@b.c")
    >>> len(job.id)
    32
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import functools
import inspect
import math
import os
import re
import threading
import time
import weakref
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, ParamSpec, TypeVar, overload

from ._core import (
    DEAD,
    DEFAULT_MAX_PAYLOAD,
    Backoff,
    JobRecord,
    encode_job,
)
from .backends import Backend, BackendOptions, DependencyMode, Limit, NewJob, backend_class, redact_url
from .errors import ConfigurationError, InvalidOptionError, JobFailedError
from .job import JobInfo, new_job_id, new_job_ids
from .periodic import DEFAULT_MISFIRE_GRACE, Schedule

if TYPE_CHECKING:
    from .worker import Worker

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

QUEUE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,99}\Z")
"""Queue names: 1-100 characters, letters, digits and ``_ . : -``, not starting with punctuation."""
TASK_NAME = re.compile(r"^[^\x00-\x1f\s]{1,200}\Z")
PRIORITY_RANGE = (-1_000_000, 1_000_000)
MAX_ATTEMPTS_LIMIT = 10_000
DEFAULT_QUEUE = "default"
DEFAULT_URL_ENV = "FASTJOBS_URL"

_UNSET: Any = object()
_new_tuple = tuple.__new__


def validate_queue(queue: object) -> str:
    """Return ``queue`` if it is a valid queue name, else raise :class:`InvalidOptionError`."""
    if not isinstance(queue, str) or not QUEUE_NAME.match(queue):
        raise InvalidOptionError(
            f"invalid queue name {queue!r}: use 1-100 letters, digits, '_', '.', ':' or '-', "
            "starting with a letter or digit"
        )
    return queue


def _seconds(name: str, value: object, *, allow_zero: bool = True) -> float:
    if isinstance(value, _dt.timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidOptionError(f"{name} must be a finite number of seconds, not {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = "zero or more" if allow_zero else "more than zero"
        raise InvalidOptionError(f"{name} must be {bound} seconds, not {value!r}")
    return float(value)


LIMIT_KEY = re.compile(r"^[^\x00-\x1f]{1,200}\Z")
PIPE = "fastjobs.pipe"
"""``JobRecord.meta`` key of a chain step: the id of the previous step, whose result the worker passes first."""
BATCH = "fastjobs.batch"
"""``JobRecord.meta`` key of a batch callback: the batch id (``Context.batch_id``)."""
BATCH_TASK = "fastjobs.batch"
"""The built-in task of a batch's tracking job: it runs (a no-op) once every member finished."""


async def _batch_done() -> None:
    """The tracking job of a batch: its dependency counts are the batch's progress."""


def check_limit(limit: object, key: str) -> Limit:
    """Return ``limit`` with its key set (``key`` unless it names its own), or raise InvalidOptionError."""
    if not isinstance(limit, Limit):
        raise InvalidOptionError(f"limit must be a fastjobs.Limit(concurrency=..., rate=..., per=...), not {limit!r}")
    key = limit.key or key
    if not isinstance(key, str) or not LIMIT_KEY.match(key):
        raise InvalidOptionError(f"limit key must be 1-200 printable characters, not {key!r}")
    for name in ("concurrency", "rate"):
        value = getattr(limit, name)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1_000_000:
            raise InvalidOptionError(f"Limit.{name} must be an int from 0 (no limit) to 1000000, not {value!r}")
    if not limit.concurrency and not limit.rate:
        raise InvalidOptionError("a Limit needs concurrency= (at most N running at once) and/or rate= with per=")
    per = _seconds("Limit.per", limit.per)
    if limit.rate and not 0 < per <= 86400 * 7:
        raise InvalidOptionError(f"Limit.per must be more than 0 and at most a week of seconds with rate=, not {limit.per!r}")
    if not limit.rate and per:
        raise InvalidOptionError("Limit.per is the window of rate=: give rate= too, or leave per out")
    return Limit(key, limit.concurrency, limit.rate, per)


class TaskOptions:
    """Per-task defaults, overridable per call with :meth:`Task.options`."""

    __slots__ = ("queue", "priority", "max_attempts", "backoff", "backoff_spec", "timeout", "lease", "limit")

    def __init__(
        self,
        queue: str,
        priority: int,
        max_attempts: int,
        backoff: Backoff | None,
        timeout: float | None,
        lease: float | None,
        limit: Limit | None = None,
    ) -> None:
        self.queue = validate_queue(queue)
        if isinstance(priority, bool) or not isinstance(priority, int) or not (
            PRIORITY_RANGE[0] <= priority <= PRIORITY_RANGE[1]
        ):
            raise InvalidOptionError(
                f"priority must be an int from {PRIORITY_RANGE[0]} to {PRIORITY_RANGE[1]}, not {priority!r}"
            )
        self.priority = priority
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or not (
            1 <= max_attempts <= MAX_ATTEMPTS_LIMIT
        ):
            raise InvalidOptionError(f"max_attempts must be an int from 1 to {MAX_ATTEMPTS_LIMIT}, not {max_attempts!r}")
        self.max_attempts = max_attempts
        if backoff is not None and not isinstance(backoff, Backoff):
            raise InvalidOptionError(
                f"backoff must be a fastjobs.Backoff (Fixed, Linear, Exponential) or None, not {backoff!r}"
            )
        self.backoff = backoff
        self.backoff_spec = None if backoff is None else backoff.to_spec()
        self.timeout = None if timeout is None else _seconds("timeout", timeout, allow_zero=False)
        self.lease = None if lease is None else _seconds("lease", lease, allow_zero=False)
        self.limit = limit
        """A checked Limit with its key set, or None."""


class Call(Generic[R]):
    """One pending enqueue of a task with its arguments: build with :meth:`Task.call`.

    Example:
        >>> await app.enqueue_many([send_email.call("a@b.c"), resize.call("x.png")])  # doctest: +SKIP
    """

    __slots__ = ("task", "args", "kwargs", "options", "delay", "job_id", "unique_key", "unique_ttl",
                 "depends_on", "after", "meta")

    def __init__(
        self,
        task: Task[..., R],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        options: TaskOptions,
        delay: float = 0.0,
        job_id: str | None = None,
        unique_key: str | None = None,
        unique_ttl: float = 0.0,
        depends_on: tuple[str, ...] = (),
    ) -> None:
        self.task = task
        self.args = args
        self.kwargs = kwargs
        self.options = options
        self.delay = delay
        self.job_id = job_id
        self.unique_key = unique_key
        self.unique_ttl = unique_ttl
        self.depends_on = depends_on
        self.after = 0
        self.meta: dict[str, Any] | None = None

    def _linked(self, depends_on: tuple[str, ...], job_id: str, after: int = 0, meta: dict[str, Any] | None = None,
                options: TaskOptions | None = None) -> Call[R]:
        """A copy of this call with its job id fixed that waits on ``depends_on`` (chains, batches)."""
        call = Call(self.task, self.args, self.kwargs, options or self.options, self.delay, self.job_id or job_id,
                    self.unique_key, self.unique_ttl, tuple(dict.fromkeys((*self.depends_on, *depends_on))))
        call.after = after
        call.meta = meta
        return call

    def to_new_job(self, max_payload: int, job_id: str, now: float) -> NewJob:
        """Encode this call (raises UnencodableError / PayloadTooLargeError on bad arguments).

        ``job_id`` is used unless the call was given its own with ``options(job_id=)``.
        """
        opts = self.options
        job_id = self.job_id or job_id
        body = encode_job(
            JobRecord(
                job_id,
                self.task.name,
                opts.queue,
                self.args,
                self.kwargs,
                opts.priority,
                0,
                opts.max_attempts,
                now + self.delay if self.delay else 0.0,
                now,
                opts.timeout,
                opts.backoff_spec,
                self.unique_key,
                # A batch callback waits on every member: their ids stay in the backend
                # (StoredJob.parents), not in each callback's body, so a batch is not capped by max_payload.
                () if self.meta and BATCH in self.meta else self.depends_on,
                self.meta,
            ),
            max_payload,
        )
        # tuple.__new__ skips NamedTuple's Python-level __new__ (a third of this call's cost).
        return _new_tuple(NewJob, (
            job_id, opts.queue, opts.priority, self.delay, opts.max_attempts, body, self.unique_key, self.unique_ttl,
            self.depends_on, self.after, opts.limit,
        ))


class JobHandle(Generic[R]):
    """A reference to an enqueued job.

    Example:
        >>> job = await send_email.enqueue("a@b.c")  # doctest: +SKIP
        >>> (await job.info()).state  # doctest: +SKIP
        'queued'
    """

    __slots__ = ("id", "app")

    def __init__(self, app: App, job_id: str) -> None:
        self.app = app
        self.id = job_id

    def __repr__(self) -> str:
        return f"JobHandle({self.id!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JobHandle) and other.id == self.id and other.app is self.app

    def __hash__(self) -> int:
        return hash(self.id)

    async def info(self) -> JobInfo | None:
        """The job's current :class:`JobInfo` (None once it was cleaned up)."""
        return await self.app.get_job(self.id)

    async def result(self, timeout: float | None = None, poll: float = 0.05) -> R:
        """Wait for the job to finish and return its result.

        Raises :class:`JobFailedError` if it went dead or was cancelled, and
        :class:`TimeoutError` after ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.005
        while True:
            info = await self.app.get_job(self.id)
            if info is None:
                raise JobFailedError(f"job {self.id} does not exist (or its result expired)")
            if info.state == "succeeded":
                result: R = info.result
                return result
            if info.state in ("dead", "cancelled"):
                raise JobFailedError(f"job {self.id} is {info.state}: {info.error or 'cancelled'}")
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {self.id} did not finish within {timeout} s (state: {info.state})")
            await asyncio.sleep(delay)
            delay = min(delay * 2, poll)

    async def cancel(self) -> bool:
        """Cancel the job if it has not finished; see :meth:`App.cancel`."""
        return await self.app.cancel(self.id)


class JobHandles(Sequence[JobHandle[Any]]):
    """The handles of a bulk enqueue, made on access: a bulk enqueue whose
    handles are never looked at costs no object per job.

    Example:
        >>> handles = await app.enqueue_many([send_email.call("a@b.c")])  # doctest: +SKIP
        >>> handles[0].id, handles.ids  # doctest: +SKIP
    """

    __slots__ = ("app", "ids")

    def __init__(self, app: App, ids: list[str]) -> None:
        self.app = app
        self.ids = ids

    def __len__(self) -> int:
        return len(self.ids)

    @overload
    def __getitem__(self, index: int) -> JobHandle[Any]: ...

    @overload
    def __getitem__(self, index: slice) -> list[JobHandle[Any]]: ...

    def __getitem__(self, index: int | slice) -> JobHandle[Any] | list[JobHandle[Any]]:
        if isinstance(index, slice):
            return [JobHandle(self.app, job_id) for job_id in self.ids[index]]
        return JobHandle(self.app, self.ids[index])

    def __repr__(self) -> str:
        return f"JobHandles({len(self.ids)} jobs)"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, JobHandles):
            return other.app is self.app and other.ids == self.ids
        if isinstance(other, list):
            return list(self) == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


def _parent_ids(parents: Iterable[str | JobHandle[Any]]) -> tuple[str, ...]:
    if isinstance(parents, (str, JobHandle)):
        parents = (parents,)
    ids: list[str] = []
    for parent in parents:
        parent_id = parent.id if isinstance(parent, JobHandle) else parent
        if not isinstance(parent_id, str) or not TASK_NAME.match(parent_id):
            raise InvalidOptionError(f"depends_on takes job ids or JobHandles, not {parent!r}")
        ids.append(parent_id)
    return tuple(dict.fromkeys(ids))


class _Configured(Generic[P, R]):
    """A task with per-call options applied: ``task.options(delay=30, priority=10)``."""

    __slots__ = ("_task", "_options", "_delay", "_eta", "_job_id", "_unique_key", "_unique_ttl", "_connection",
                 "_depends_on")

    def __init__(
        self, task: Task[P, R], options: TaskOptions, delay: float, eta: _dt.datetime | None,
        job_id: str | None, unique_key: str | None, unique_ttl: float, connection: Any,
        depends_on: tuple[str, ...] = (),
    ) -> None:
        self._task = task
        self._options = options
        self._delay = delay
        self._eta = eta
        self._job_id = job_id
        self._unique_key = unique_key
        self._unique_ttl = unique_ttl
        self._connection = connection
        self._depends_on = depends_on

    def call(self, *args: P.args, **kwargs: P.kwargs) -> Call[R]:
        delay = self._delay
        if self._eta is not None:  # turned into a delay per call, so a kept configuration stays on time
            delay = max(0.0, (self._eta - _dt.datetime.now(_dt.timezone.utc)).total_seconds())
        return Call(self._task, args, kwargs, self._options, delay, self._job_id, self._unique_key, self._unique_ttl,
                    self._depends_on)

    async def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> JobHandle[R]:
        calls = [self.call(*args, **kwargs)]
        return (await self._task.app.enqueue_many(calls, connection=self._connection))[0]

    def enqueue_sync(self, *args: P.args, **kwargs: P.kwargs) -> JobHandle[R]:
        if self._connection is not None:
            raise ConfigurationError("enqueue_sync cannot use connection=: await enqueue() inside your transaction")
        return self._task.app.enqueue_many_sync([self.call(*args, **kwargs)])[0]


class Task(Generic[P, R]):
    """A registered function that workers run; create with :meth:`App.task`.

    Calling the task runs the function directly, in this process; ``enqueue``
    makes a job that a worker runs.

    Example:
        >>> app = fastjobs.App()  # doctest: +SKIP
        >>> @app.task(priority=5)  # doctest: +SKIP
        ... def resize(path: str) -> None: ...
        >>> resize.enqueue_sync("x.png")  # doctest: +SKIP
    """

    def __init__(self, app: App, fn: Callable[P, Any], name: str, options: TaskOptions, context: bool = False) -> None:
        self.app = app
        self.fn = fn
        self.name = name
        self.default_options = options
        self.context = context
        """Whether the handler takes a :class:`~fastjobs.Context` as its first argument."""
        self.is_async = inspect.iscoroutinefunction(fn)
        functools.update_wrapper(self, fn)

    def __repr__(self) -> str:
        return f"<Task {self.name} queue={self.default_options.queue!r}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Any:
        return self.fn(*args, **kwargs)

    def options(
        self,
        *,
        queue: str = _UNSET,
        priority: int = _UNSET,
        delay: float | _dt.timedelta = 0.0,
        eta: _dt.datetime | None = None,
        max_attempts: int = _UNSET,
        backoff: Backoff | None = _UNSET,
        timeout: float | None = _UNSET,
        job_id: str | None = None,
        unique_key: str | None = None,
        unique_ttl: float | _dt.timedelta = 0.0,
        depends_on: Iterable[str | JobHandle[Any]] = (),
        limit: Limit | None = _UNSET,
        limit_key: str | None = None,
        connection: Any = None,
    ) -> _Configured[P, R]:
        """Override options for one enqueue; ``delay`` (seconds) or ``eta`` (aware datetime) defers it.

        ``connection``: enqueue through your own asyncpg connection, inside your
        transaction (postgresql:// only): rolled back, the job never existed.

        ``unique_key``: while a job of the same queue with this key is waiting
        or running, enqueue returns that job instead of adding another, atomically;
        with ``unique_ttl`` the key stays taken that many seconds after the job
        succeeded (a dead or cancelled job frees it at once).

        ``depends_on``: job ids (or handles) this job waits for: it runs once
        all of them succeeded, and is cancelled if one goes dead or is cancelled.

        ``limit`` / ``limit_key``: the :class:`~fastjobs.Limit` this job counts
        against (default: the task's ``limit=``), and the key it is counted under
        (default: the limit's own key, else the task's name): a task limited to
        ``Limit(concurrency=5)`` and enqueued with ``limit_key=f"tenant:{t}"``
        runs at most 5 jobs at once per tenant.

        Example:
            >>> await send_email.options(delay=30, priority=10, queue="bulk").enqueue("a@b.c")  # doctest: +SKIP
            >>> await sync_account.options(unique_key="acct:42", unique_ttl=60).enqueue(42)  # doctest: +SKIP
            >>> await report.options(depends_on=[export_job]).enqueue()  # doctest: +SKIP
            >>> await sync_tenant.options(limit_key="tenant:42").enqueue(42)  # doctest: +SKIP
            >>> async with conn.transaction():  # doctest: +SKIP
            ...     await conn.execute("insert into orders ...")
            ...     await send_email.options(connection=conn).enqueue("a@b.c")
        """
        d = self.default_options
        effective = d.limit if limit is _UNSET else (None if limit is None else check_limit(limit, self.name))
        if limit_key is not None:
            if effective is None:
                raise InvalidOptionError(
                    "limit_key needs a limit: give the task limit=fastjobs.Limit(...) or pass limit= here"
                )
            if not isinstance(limit_key, str) or not LIMIT_KEY.match(limit_key):
                raise InvalidOptionError(f"limit key must be 1-200 printable characters, not {limit_key!r}")
            effective = check_limit(effective._replace(key=limit_key), self.name)
        opts = TaskOptions(
            d.queue if queue is _UNSET else queue,
            d.priority if priority is _UNSET else priority,
            d.max_attempts if max_attempts is _UNSET else max_attempts,
            d.backoff if backoff is _UNSET else backoff,
            d.timeout if timeout is _UNSET else timeout,
            d.lease,
            effective,
        )
        parents = _parent_ids(depends_on)
        seconds = _seconds("delay", delay)
        if eta is not None:
            if not isinstance(eta, _dt.datetime) or eta.tzinfo is None:
                raise InvalidOptionError(f"eta must be a timezone-aware datetime, not {eta!r}")
            if seconds:
                raise InvalidOptionError("give delay or eta, not both")
        if job_id is not None and (not isinstance(job_id, str) or not TASK_NAME.match(job_id)):
            raise InvalidOptionError(f"job_id must be a non-empty string without spaces, not {job_id!r}")
        if unique_key is not None and (not isinstance(unique_key, str) or not unique_key or len(unique_key) > 500):
            raise InvalidOptionError(f"unique_key must be a non-empty string of at most 500 characters, not {unique_key!r}")
        ttl = _seconds("unique_ttl", unique_ttl)
        if ttl and unique_key is None:
            raise InvalidOptionError("unique_ttl needs a unique_key: it says how long the key stays taken after the job succeeded")
        if ttl > self.app.options.result_ttl:
            # The succeeded job holds the key; it must still exist while it does.
            raise InvalidOptionError(
                f"unique_ttl ({ttl} s) is longer than the App's result_ttl ({self.app.options.result_ttl} s): "
                "raise result_ttl, or shorten unique_ttl"
            )
        return _Configured(self, opts, seconds, eta, job_id, unique_key, ttl, connection, parents)

    def call(self, *args: P.args, **kwargs: P.kwargs) -> Call[R]:
        """A pending enqueue for :meth:`App.enqueue_many` (one round trip for many jobs)."""
        return Call(self, args, kwargs, self.default_options)

    async def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> JobHandle[R]:
        """Enqueue one job; returns its handle.

        Example:
            >>> job = await send_email.enqueue("a@b.c")  # doctest: +SKIP
        """
        return (await self.app.enqueue_many([self.call(*args, **kwargs)]))[0]

    def enqueue_sync(self, *args: P.args, **kwargs: P.kwargs) -> JobHandle[R]:
        """Enqueue from synchronous code (a Flask or Django view, a script).

        Example:
            >>> job = send_email.enqueue_sync("a@b.c")  # doctest: +SKIP
        """
        return self.app.enqueue_many_sync([self.call(*args, **kwargs)])[0]


def _check_dependencies(jobs: Sequence[NewJob]) -> None:
    """Refuse what the backends may assume away: self-dependencies, cycles within
    the batch, and in-batch parents that a unique key could replace."""
    in_batch = {job.id: job for job in jobs}
    for job in jobs:
        for parent in job.depends_on:
            if parent == job.id:
                raise InvalidOptionError(f"job {job.id!r} depends on itself")
            found = in_batch.get(parent)
            if found is not None and found.unique_key is not None:
                raise InvalidOptionError(
                    f"job {job.id!r} depends on {parent!r}, enqueued in the same call with unique_key="
                    f"{found.unique_key!r}: a duplicate would not be stored; enqueue the parent first"
                )
    # Depth-first search over in-batch edges (jobs stored earlier cannot depend on these).
    done: set[str] = set()
    for start in in_batch:
        if start in done:
            continue
        path: set[str] = {start}
        stack = [(start, iter(in_batch[start].depends_on))]
        while stack:
            node, parents = stack[-1]
            parent = next(parents, None)
            if parent is None:
                stack.pop()
                path.discard(node)
                done.add(node)
            elif parent in path:
                raise InvalidOptionError(f"the jobs of this enqueue depend on each other in a cycle (through {parent!r})")
            elif parent in in_batch and parent not in done:
                path.add(parent)
                stack.append((parent, iter(in_batch[parent].depends_on)))


class BatchProgress(NamedTuple):
    """How far a batch got: counts of its members."""

    total: int
    succeeded: int
    failed: int
    """Dead or cancelled."""
    pending: int
    """Not finished yet (queued, scheduled, running, waiting to retry)."""
    done: bool
    """Every member finished (the callbacks were released)."""


class Batch:
    """A batch of jobs enqueued with :meth:`App.batch`.

    Example:
        >>> batch = await app.batch([resize.call(p) for p in paths], then=notify.call())  # doctest: +SKIP
        >>> (await batch.wait(timeout=60)).failed  # doctest: +SKIP
        0
    """

    __slots__ = ("app", "id", "job_ids", "callback_ids")

    def __init__(self, app: App, batch_id: str, job_ids: list[str], callback_ids: list[str]) -> None:
        self.app = app
        self.id = batch_id
        """The batch's own tracking job: it finishes when every member did."""
        self.job_ids = job_ids
        self.callback_ids = callback_ids

    def __repr__(self) -> str:
        return f"Batch({self.id!r}, {len(self.job_ids)} jobs)"

    @property
    def jobs(self) -> JobHandles:
        return JobHandles(self.app, self.job_ids)

    async def progress(self) -> BatchProgress:
        """Live counts, from one backend read (raises JobFailedError once the batch was cleaned up)."""
        stored = await (await self.app.backend()).get(self.id)
        if stored is None:
            raise JobFailedError(f"batch {self.id} does not exist (or it finished more than result_ttl ago)")
        total = len(stored.parents)
        pending, failed = stored.pending_parents, stored.failed_parents
        return BatchProgress(total, total - pending - failed, failed, pending, pending == 0)

    async def wait(self, timeout: float | None = None) -> BatchProgress:
        """Wait until every member finished (a worker ran the batch's tracking job); return the counts."""
        await JobHandle(self.app, self.id).result(timeout)
        return await self.progress()


class _SyncBridge:
    """An event loop in a daemon thread that runs the App's coroutines for sync callers."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fastjobs-sync", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        if not self.thread.is_alive():
            self.loop.close()  # else its self-pipe sockets leak (ResourceWarning)


class App:
    """A fastjobs application: the backend URL, the task registry and defaults.

    Args:
        url: ``memory://`` (default; also read from ``FASTJOBS_URL``), ``redis://``,
            ``rediss://``, ``unix://``, ``postgresql://`` or ``postgres://``.
        lease: seconds a claimed job stays reserved before another worker may
            take it back; renewed while the job runs. Per task with ``lease=``.
        result_ttl: seconds to keep succeeded and cancelled jobs and their results.
        dead_ttl: seconds to keep dead jobs in the dead-letter queue.
        max_payload: largest encoded job or result, in bytes.
        prefix: key prefix (Redis) or schema (PostgreSQL) so apps can share a server.

    Example:
        >>> import fastjobs
        >>> app = fastjobs.App("memory://", lease=60)
        >>> app.url
        'memory://'
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        lease: float = 30.0,
        result_ttl: float = 3600.0,
        dead_ttl: float = 7 * 86400.0,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        prefix: str = "fastjobs",
        **backend_options: Any,
    ) -> None:
        self.url = url or os.environ.get(DEFAULT_URL_ENV) or "memory://"
        self._backend_cls = backend_class(self.url)
        self.lease = _seconds("lease", lease, allow_zero=False)
        if isinstance(max_payload, bool) or not isinstance(max_payload, int) or max_payload < 1024:
            raise InvalidOptionError(f"max_payload must be an int of at least 1024 bytes, not {max_payload!r}")
        self.max_payload = max_payload
        self.options = BackendOptions(
            result_ttl=_seconds("result_ttl", result_ttl),
            dead_ttl=_seconds("dead_ttl", dead_ttl),
            prefix=prefix,
        )
        self._backend_extra = backend_options
        self.tasks: dict[str, Task[..., Any]] = {}
        self.schedules: dict[str, Schedule] = {}
        """Periodic tasks by name: what :meth:`periodic` registered."""
        self._shared: Backend | None = None
        self._shared_lock = threading.Lock()
        self._per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Backend] = weakref.WeakKeyDictionary()
        self._bridge: _SyncBridge | None = None
        self._bridge_lock = threading.Lock()
        self.builtin_tasks: dict[str, Task[..., Any]] = {
            BATCH_TASK: Task(self, _batch_done, BATCH_TASK, TaskOptions(DEFAULT_QUEUE, 0, 3, Backoff(), None, None)),
        }
        """Tasks every worker of this App runs besides the registered ones (a batch's tracking job)."""

    def __repr__(self) -> str:
        return f"<fastjobs.App {redact_url(self.url)} tasks={len(self.tasks)}>"

    # -- tasks --------------------------------------------------------------

    @overload
    def task(self, fn: Callable[P, R], /) -> Task[P, R]: ...

    @overload
    def task(
        self,
        fn: None = None,
        /,
        *,
        name: str | None = None,
        queue: str = DEFAULT_QUEUE,
        priority: int = 0,
        max_attempts: int = 3,
        backoff: Backoff | None = ...,
        timeout: float | None = None,
        lease: float | None = None,
        context: bool = False,
        limit: Limit | None = None,
    ) -> Callable[[Callable[..., R]], Task[..., R]]: ...

    def task(
        self,
        fn: Callable[P, R] | None = None,
        /,
        *,
        name: str | None = None,
        queue: str = DEFAULT_QUEUE,
        priority: int = 0,
        max_attempts: int = 3,
        backoff: Backoff | None = _UNSET,
        timeout: float | None = None,
        lease: float | None = None,
        context: bool = False,
        limit: Limit | None = None,
    ) -> Task[P, R] | Callable[[Callable[P, R]], Task[P, R]]:
        """Register a function (``async def`` or plain ``def``) as a task.

        Plain ``def`` handlers run on the worker's thread pool. The name is
        ``module.qualname`` unless ``name=`` is given; workers only run
        registered tasks and never import code a job names. With
        ``context=True`` the handler gets a :class:`~fastjobs.Context` first
        (job id, attempt, progress reports, the cancelled flag); callers
        enqueue it without that argument. ``limit=fastjobs.Limit(...)`` caps how
        many of its jobs run at once and/or start per time window, across every
        worker (counted per queue and key; the key is the task's name unless the
        Limit or the call's ``options(limit_key=)`` names one).

        Example:
            >>> app = fastjobs.App()
            >>> @app.task(queue="emails", max_attempts=5, backoff=fastjobs.Exponential(base=2, cap=600))
            ... async def send_email(to: str) -> None: ...
            >>> send_email.name.endswith("send_email")
            True
        """
        options = TaskOptions(
            queue, priority, max_attempts,
            Backoff() if backoff is _UNSET else backoff,
            timeout, lease,
        )

        def register(func: Callable[P, R]) -> Task[P, R]:
            task_name = name or f"{func.__module__}.{func.__qualname__}"
            if not TASK_NAME.match(task_name):
                raise ConfigurationError(f"invalid task name {task_name!r}: 1-200 characters, no spaces")
            if task_name in self.builtin_tasks:
                raise ConfigurationError(f"the task name {task_name!r} is fastjobs' own; pass another name=")
            if task_name in self.tasks:
                raise ConfigurationError(
                    f"a task named {task_name!r} is already registered; pass name= to tell them apart"
                )
            task_options = options
            if limit is not None:
                task_options = TaskOptions(queue, priority, max_attempts, options.backoff, timeout, lease,
                                           check_limit(limit, task_name))
            task: Task[P, R] = Task(self, func, task_name, task_options, context)
            self.tasks[task_name] = task
            return task

        return register if fn is None else register(fn)

    def periodic(
        self,
        schedule: str | float | _dt.timedelta,
        *,
        tz: str | None = None,
        misfire_grace: float = DEFAULT_MISFIRE_GRACE,
        name: str | None = None,
        queue: str = DEFAULT_QUEUE,
        priority: int = 0,
        max_attempts: int = 3,
        backoff: Backoff | None = _UNSET,
        timeout: float | None = None,
        lease: float | None = None,
        context: bool = False,
    ) -> Callable[[Callable[..., R]], Task[[], R]]:
        """Register a task that runs on a schedule: a cron expression or an interval in seconds.

        Every running worker of this App enqueues each due tick with the same
        job id, so each tick runs once however many workers there are. Ticks
        missed while no worker ran are skipped, except the latest one if it is
        at most ``misfire_grace`` seconds old (see :mod:`fastjobs.periodic`).
        The other arguments are those of :meth:`task`.

        Example:
            >>> app = fastjobs.App()
            >>> @app.periodic("0 8 * * mon-fri", tz="Europe/Paris")  # doctest: +SKIP
            ... async def morning_report() -> None: ...
            >>> @app.periodic(30.0)
            ... def heartbeat() -> None: ...
        """
        plan = Schedule(schedule, tz, misfire_grace)
        # A finished tick's job id must outlive the grace window, or a late worker
        # could enqueue the same tick again once cleanup removed the first one.
        if plan.misfire_grace >= min(self.options.result_ttl, self.options.dead_ttl):
            raise ConfigurationError(
                f"misfire_grace ({plan.misfire_grace} s) must be shorter than the App's result_ttl "
                f"({self.options.result_ttl} s) and dead_ttl, so a finished tick is remembered while it could recur"
            )

        def register(func: Callable[..., R]) -> Task[[], R]:
            task = self.task(
                name=name, queue=queue, priority=priority, max_attempts=max_attempts, backoff=backoff,
                timeout=timeout, lease=lease, context=context,
            )(func)
            self.schedules[task.name] = plan
            return task

        return register

    # -- backend access ------------------------------------------------------

    async def backend(self) -> Backend:
        """The connected backend for the running event loop (connected on first use)."""
        if not self._backend_cls.loop_bound:
            if self._shared is None:
                # The sync bridge's thread and the caller's loop may both get here first.
                with self._shared_lock:
                    if self._shared is None:
                        self._shared = self._backend_cls(self.url, self.options, **self._backend_extra)
            await self._shared.connect()  # idempotent
            return self._shared
        loop = asyncio.get_running_loop()
        backend = self._per_loop.get(loop)
        if backend is None:
            backend = self._backend_cls(self.url, self.options, **self._backend_extra)
            self._per_loop[loop] = backend
            try:
                await backend.connect()
            except BaseException:
                del self._per_loop[loop]
                raise
        return backend

    async def close(self) -> None:
        """Close this event loop's backend connections (and the sync bridge's)."""
        try:
            loop = asyncio.get_running_loop()
            backend = self._per_loop.pop(loop, None)
            if backend is not None:
                await backend.close()
        finally:
            with self._bridge_lock:
                bridge, self._bridge = self._bridge, None
            if bridge is not None:
                backend = self._per_loop.pop(bridge.loop, None)
                if backend is not None:
                    bridge.run(backend.close())
                bridge.stop()

    async def __aenter__(self) -> App:
        await self.backend()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def run_sync(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run one of this App's coroutines from synchronous code.

        The memory backend never waits, so its coroutines run right here; an I/O
        backend's run on a private event loop thread (its own connections).
        """
        if not self._backend_cls.loop_bound:
            try:
                coro.send(None)
            except StopIteration as stop:
                value: T = stop.value
                return value
            coro.close()
            raise RuntimeError("a memory:// operation unexpectedly waited; use the async API")
        with self._bridge_lock:
            if self._bridge is None:
                self._bridge = _SyncBridge()
            bridge = self._bridge
        return bridge.run(coro)

    # -- enqueue -------------------------------------------------------------

    async def enqueue_many(self, calls: Iterable[Call[Any]], *, connection: Any = None) -> JobHandles:
        """Enqueue many jobs atomically, in one round trip.

        ``connection``: see :meth:`Task.options` (transactional enqueue, PostgreSQL).

        Example:
            >>> await app.enqueue_many([send_email.call("a@b.c"), resize.call("x.png")])  # doctest: +SKIP
        """
        calls = list(calls)
        if not calls:
            return JobHandles(self, [])
        max_payload = self.max_payload
        now = time.time()
        new_jobs = [call.to_new_job(max_payload, job_id, now) for call, job_id in zip(calls, new_job_ids(len(calls)))]
        if any(call.depends_on for call in calls):
            _check_dependencies(new_jobs)
        backend = await self.backend()
        ids = await backend.enqueue_many(new_jobs, connection=connection)
        return JobHandles(self, ids)

    def enqueue_many_sync(self, calls: Iterable[Call[Any]]) -> JobHandles:
        """:meth:`enqueue_many` for synchronous code."""
        new_calls = list(calls)
        return self.run_sync(self.enqueue_many(new_calls))

    async def chain(self, *calls: Call[Any], pass_results: bool = True, connection: Any = None) -> JobHandles:
        """Enqueue calls that run one after another, atomically: each starts once the one before succeeded.

        With ``pass_results`` (the default) each step gets the previous step's
        result as its first argument, as in Celery. If a step goes dead or is
        cancelled, every later step is cancelled (its state says so); the
        handles' last one gives the chain's result. On Redis all steps must
        share a queue.

        Example:
            >>> steps = await app.chain(fetch.call("https://x.org"), parse.call(), store.call(table="pages"))  # doctest: +SKIP
            >>> await steps[-1].result(timeout=30)  # doctest: +SKIP
        """
        if not calls:
            raise InvalidOptionError("chain() needs at least one call")
        if pass_results and self.options.result_ttl == 0:
            raise ConfigurationError(
                "chain(pass_results=True) reads each step's stored result, but this App keeps none "
                "(result_ttl=0): raise result_ttl, or pass pass_results=False"
            )
        ids = new_job_ids(len(calls))
        steps = [calls[0]._linked((), ids[0])]
        for call, job_id in zip(calls[1:], ids[1:]):
            previous: str = steps[-1].job_id  # type: ignore[assignment]
            steps.append(call._linked((previous,), job_id, meta={PIPE: previous} if pass_results else None))
        return await self.enqueue_many(steps, connection=connection)

    async def batch(
        self,
        calls: Iterable[Call[Any]],
        *,
        then: Call[Any] | None = None,
        catch: Call[Any] | None = None,
        finally_: Call[Any] | None = None,
        connection: Any = None,
    ) -> Batch:
        """Enqueue many jobs as one batch, with callbacks that run once when it is done, atomically.

        Args:
            calls: the members.
            then: runs once every member succeeded (cancelled if one did not).
            catch: runs once every member finished and at least one went dead
                or was cancelled (cancelled otherwise).
            finally_: runs once every member finished, whatever the outcome.

        Each callback runs once however many workers there are: the backend
        releases it in the same atomic step that records the last member's
        outcome. A callback registered with ``context=True`` finds the batch id
        in ``ctx.batch_id``. On Redis the members and callbacks must share a queue.

        Example:
            >>> batch = await app.batch([resize.call(p) for p in paths], then=notify.call("done"))  # doctest: +SKIP
            >>> await batch.progress()  # doctest: +SKIP
            BatchProgress(total=120, succeeded=37, failed=0, pending=83, done=False)
        """
        members = list(calls)
        if not members:
            raise InvalidOptionError("batch() needs at least one call")
        if self.options.result_ttl == 0:
            raise ConfigurationError(
                "batch() keeps its progress on a tracking job that must outlive its members, but this App "
                "deletes finished jobs at once (result_ttl=0): raise result_ttl"
            )
        ids = new_job_ids(len(members) + 4)
        members = [call._linked((), job_id) for call, job_id in zip(members, ids)]
        member_ids = tuple(call.job_id for call in members)  # type: ignore[misc]
        batch_id = ids[len(members)]
        meta = {BATCH: batch_id}
        tracker_task = self.builtin_tasks[BATCH_TASK]
        d = tracker_task.default_options
        # The tracker lives in the first member's queue (on Redis, parents and dependants share one).
        tracker_options = TaskOptions(members[0].options.queue, d.priority, d.max_attempts, d.backoff, None, None)
        linked = [Call(tracker_task, (), {}, tracker_options)._linked(
            member_ids, batch_id, DependencyMode.FINISHED, meta
        )]
        for call, after, job_id in (
            (then, DependencyMode.SUCCEEDED, ids[-3]), (catch, DependencyMode.FAILED, ids[-2]),
            (finally_, DependencyMode.FINISHED, ids[-1]),
        ):
            if call is not None:
                if not isinstance(call, Call):
                    raise InvalidOptionError(f"batch callbacks are task.call(...) values, not {call!r}")
                linked.append(call._linked(member_ids, job_id, after, meta))
        handles = await self.enqueue_many([*members, *linked], connection=connection)
        return Batch(self, batch_id, handles.ids[: len(members)], handles.ids[len(members) + 1 :])

    async def get_batch(self, batch_id: str) -> Batch | None:
        """The :class:`Batch` with this id (``Batch.id``, ``ctx.batch_id``); None once it was cleaned up."""
        stored = await (await self.backend()).get(batch_id)
        if stored is None:
            return None
        return Batch(self, batch_id, list(stored.parents), [])

    # -- inspection and control ----------------------------------------------

    async def get_job(self, job_id: str) -> JobInfo | None:
        """State, attempt, result, per-attempt errors and timestamps of a job (None if unknown).

        Example:
            >>> info = await app.get_job(job.id)  # doctest: +SKIP
            >>> info.state  # doctest: +SKIP
            'succeeded'
        """
        stored = await (await self.backend()).get(job_id)
        return None if stored is None else JobInfo.from_stored(stored, self.max_payload)

    async def cancel(self, job_id: str) -> bool:
        """Cancel a job that has not finished. Returns False if it already finished or is unknown.

        A running job's worker finds its lease voided; its outcome is discarded.
        """
        return await (await self.backend()).cancel(job_id)

    async def pause(self, queue: str) -> None:
        """Stop every worker from claiming jobs of ``queue``; enqueues still go in.

        Example:
            >>> await app.pause("emails")  # doctest: +SKIP
            >>> await app.resume("emails")  # doctest: +SKIP
        """
        await (await self.backend()).pause(validate_queue(queue))

    async def resume(self, queue: str) -> None:
        """Let workers claim jobs of a paused ``queue`` again (a no-op if it is not paused)."""
        await (await self.backend()).resume(validate_queue(queue))

    async def paused(self) -> list[str]:
        """The paused queues, sorted."""
        return await (await self.backend()).paused()

    async def retry_dead(self, job_id: str) -> bool:
        """Put a dead-lettered job back in its queue with fresh attempts."""
        return await (await self.backend()).retry_dead(job_id)

    async def dead_letters(self, queue: str | None = None, limit: int = 100, offset: int = 0) -> list[JobInfo]:
        """Dead jobs, oldest first, with the error of each attempt."""
        if queue is not None:
            validate_queue(queue)
        stored = await (await self.backend()).list_jobs(DEAD, queue, limit, offset)
        return [JobInfo.from_stored(s, self.max_payload) for s in stored]

    async def purge_dead(self, queue: str | None = None) -> int:
        """Delete dead jobs (of one queue, or all); returns how many."""
        if queue is not None:
            validate_queue(queue)
        return await (await self.backend()).purge(DEAD, queue)

    async def stats(self) -> dict[str, dict[str, int]]:
        """Job counts per queue and state.

        Example:
            >>> await app.stats()  # doctest: +SKIP
            {'emails': {'scheduled': 0, 'queued': 12, 'active': 3, ...}}
        """
        return await (await self.backend()).stats()

    # -- workers -------------------------------------------------------------

    def worker(self, queues: Sequence[str] | None = None, **options: Any) -> Worker:
        """A :class:`~fastjobs.worker.Worker` for this app (see its arguments)."""
        from .worker import Worker

        return Worker(self, queues, **options)

    async def run_worker(self, queues: Sequence[str] | None = None, **options: Any) -> None:
        """Run a worker in this event loop until SIGTERM/SIGINT (or, with ``burst=True``, until idle).

        Example:
            >>> await app.run_worker(queues=["emails", "default"], concurrency=100)  # doctest: +SKIP
        """
        await self.worker(queues, **options).run()


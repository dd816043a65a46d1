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
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from ._core import (
    DEAD,
    DEFAULT_MAX_PAYLOAD,
    Backoff,
    JobRecord,
    encode_job,
)
from .backends import Backend, BackendOptions, NewJob, backend_class, redact_url
from .errors import ConfigurationError, InvalidOptionError, JobFailedError
from .job import JobInfo, new_job_ids
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


class TaskOptions:
    """Per-task defaults, overridable per call with :meth:`Task.options`."""

    __slots__ = ("queue", "priority", "max_attempts", "backoff", "backoff_spec", "timeout", "lease")

    def __init__(
        self,
        queue: str,
        priority: int,
        max_attempts: int,
        backoff: Backoff | None,
        timeout: float | None,
        lease: float | None,
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


class Call(Generic[R]):
    """One pending enqueue of a task with its arguments: build with :meth:`Task.call`.

    Example:
        >>> await app.enqueue_many([send_email.call("a@b.c"), resize.call("x.png")])  # doctest: +SKIP
    """

    __slots__ = ("task", "args", "kwargs", "options", "delay", "job_id", "unique_key", "unique_ttl")

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
    ) -> None:
        self.task = task
        self.args = args
        self.kwargs = kwargs
        self.options = options
        self.delay = delay
        self.job_id = job_id
        self.unique_key = unique_key
        self.unique_ttl = unique_ttl

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
            ),
            max_payload,
        )
        # tuple.__new__ skips NamedTuple's Python-level __new__ (a third of this call's cost).
        return _new_tuple(
            NewJob, (job_id, opts.queue, opts.priority, self.delay, opts.max_attempts, body, self.unique_key, self.unique_ttl)
        )


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


class _Configured(Generic[P, R]):
    """A task with per-call options applied: ``task.options(delay=30, priority=10)``."""

    __slots__ = ("_task", "_options", "_delay", "_eta", "_job_id", "_unique_key", "_unique_ttl", "_connection")

    def __init__(
        self, task: Task[P, R], options: TaskOptions, delay: float, eta: _dt.datetime | None,
        job_id: str | None, unique_key: str | None, unique_ttl: float, connection: Any,
    ) -> None:
        self._task = task
        self._options = options
        self._delay = delay
        self._eta = eta
        self._job_id = job_id
        self._unique_key = unique_key
        self._unique_ttl = unique_ttl
        self._connection = connection

    def call(self, *args: P.args, **kwargs: P.kwargs) -> Call[R]:
        delay = self._delay
        if self._eta is not None:  # turned into a delay per call, so a kept configuration stays on time
            delay = max(0.0, (self._eta - _dt.datetime.now(_dt.timezone.utc)).total_seconds())
        return Call(self._task, args, kwargs, self._options, delay, self._job_id, self._unique_key, self._unique_ttl)

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
        connection: Any = None,
    ) -> _Configured[P, R]:
        """Override options for one enqueue; ``delay`` (seconds) or ``eta`` (aware datetime) defers it.

        ``connection``: enqueue through your own asyncpg connection, inside your
        transaction (postgresql:// only): rolled back, the job never existed.

        ``unique_key``: while a job of the same queue with this key is waiting
        or running, enqueue returns that job instead of adding another, atomically;
        with ``unique_ttl`` the key stays taken that many seconds after the job
        succeeded (a dead or cancelled job frees it at once).

        Example:
            >>> await send_email.options(delay=30, priority=10, queue="bulk").enqueue("a@b.c")  # doctest: +SKIP
            >>> await sync_account.options(unique_key="acct:42", unique_ttl=60).enqueue(42)  # doctest: +SKIP
            >>> async with conn.transaction():  # doctest: +SKIP
            ...     await conn.execute("insert into orders ...")
            ...     await send_email.options(connection=conn).enqueue("a@b.c")
        """
        d = self.default_options
        opts = TaskOptions(
            d.queue if queue is _UNSET else queue,
            d.priority if priority is _UNSET else priority,
            d.max_attempts if max_attempts is _UNSET else max_attempts,
            d.backoff if backoff is _UNSET else backoff,
            d.timeout if timeout is _UNSET else timeout,
            d.lease,
        )
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
        return _Configured(self, opts, seconds, eta, job_id, unique_key, ttl, connection)

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
    ) -> Task[P, R] | Callable[[Callable[P, R]], Task[P, R]]:
        """Register a function (``async def`` or plain ``def``) as a task.

        Plain ``def`` handlers run on the worker's thread pool. The name is
        ``module.qualname`` unless ``name=`` is given; workers only run
        registered tasks and never import code a job names. With
        ``context=True`` the handler gets a :class:`~fastjobs.Context` first
        (job id, attempt, progress reports, the cancelled flag); callers
        enqueue it without that argument.

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
            if task_name in self.tasks:
                raise ConfigurationError(
                    f"a task named {task_name!r} is already registered; pass name= to tell them apart"
                )
            task: Task[P, R] = Task(self, func, task_name, options, context)
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
        backend = await self.backend()
        ids = await backend.enqueue_many(new_jobs, connection=connection)
        return JobHandles(self, ids)

    def enqueue_many_sync(self, calls: Iterable[Call[Any]]) -> JobHandles:
        """:meth:`enqueue_many` for synchronous code."""
        new_calls = list(calls)
        return self.run_sync(self.enqueue_many(new_calls))

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


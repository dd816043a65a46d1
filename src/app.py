"""The application object: :class:`App` (the backend URL, the task registry, defaults) and its sync bridge.

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
import operator
import os
import sys
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast, overload

from ._core import DEFAULT_MAX_PAYLOAD, Backoff, new_jobs as _encode_calls
from .backends import Backend, BackendOptions, DependencyMode, Limit, QueueStats, WorkerInfo, backend_class, redact_url
from .constants import BATCH, BATCH_TASK, DEFAULT_QUEUE, DEFAULT_URL_ENV, PIPE
from .errors import ConfigurationError, InvalidOptionError
from .handles import Batch, JobHandle, JobHandles
from .job import JobInfo, new_job_ids
from .options import TASK_NAME, UNSET, BackoffFunction, TaskOptions, TaskSettings, check_dependencies, check_limit, check_seconds
from .options import split_backoff, validate_queue
from .periodic import DEFAULT_MISFIRE_GRACE, Schedule
from .backends.base import Event, NewJob
from .events import listen, parse_queues
from .history import HistoryBucket, read_history
from .hooks import HookRegistration, Hooks, check_hook, enqueue_hooks
from . import gctune, metrics
from .search import Instant
from .operations import JobOperations
from .task import Call, Task, configure_by_name
from .worker import Worker

_DEPENDS_ON = operator.itemgetter(NewJob._fields.index("depends_on"))
"""NewJob.depends_on by position (a NamedTuple field read through its descriptor costs more)."""

if TYPE_CHECKING:
    from typing_extensions import Unpack

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


def _module_name(func: Callable[..., Any]) -> str:
    """The module a handler's default name starts with: for a script run as ``__main__``,
    the name a worker imports it under (``tasks`` for ``python tasks.py``, ``pkg.tasks`` for
    ``python -m pkg.tasks``), as Celery names its main module, so a job enqueued by the
    script finds its task in a worker started with ``fastjobs worker tasks:app``."""
    module = str(func.__module__)
    if module != "__main__":
        return module
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name and spec.name != "__main__":
        return str(spec.name)
    path = getattr(main, "__file__", None)
    if path:
        return os.path.splitext(os.path.basename(str(path)))[0]
    return module  # an interactive session: no name a worker could import


async def _batch_done() -> None:
    """The tracking job of a batch: its dependency counts are the batch's progress."""


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


class App(JobOperations, HookRegistration):
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
        connect_timeout: seconds an operation keeps trying to reach an unreachable
            Redis or PostgreSQL (connecting again, with backoff) before it raises
            :class:`~fastjobs.BackendUnavailableError`; a shorter outage is ridden out.
        history: whether workers record per-minute throughput and run times
            (:meth:`history`), in the same round trip as their acks. False spares those writes.
        history_minutes: seconds to keep per-minute history (default 24 h).
        history_hours: seconds to keep per-hour history (default 30 days).
        events: whether job lifecycle events are published for :meth:`events` and the
            dashboard's live view (only while someone listens, where the backend can tell).

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
        connect_timeout: float = 5.0,
        history: bool = True,
        history_minutes: float = 86400.0,
        history_hours: float = 30 * 86400.0,
        events: bool = True,
        **backend_options: Any,
    ) -> None:
        self.url = url or os.environ.get(DEFAULT_URL_ENV) or "memory://"
        self._backend_cls = backend_class(self.url)
        self.lease = check_seconds("lease", lease, allow_zero=False)
        if isinstance(max_payload, bool) or not isinstance(max_payload, int) or max_payload < 1024:
            raise InvalidOptionError(f"max_payload must be an int of at least 1024 bytes, not {max_payload!r}")
        self.max_payload = max_payload
        self.options = BackendOptions(
            result_ttl=check_seconds("result_ttl", result_ttl),
            dead_ttl=check_seconds("dead_ttl", dead_ttl),
            prefix=prefix,
            connect_timeout=check_seconds("connect_timeout", connect_timeout, allow_zero=False),
            history_minutes=check_seconds("history_minutes", history_minutes, allow_zero=False),
            history_hours=check_seconds("history_hours", history_hours, allow_zero=False),
            events=bool(events),
        )
        self.history_enabled = bool(history)
        """Whether workers of this App write throughput history (see :meth:`history`)."""
        self._backend_extra = backend_options
        self.tasks: dict[str, Task[..., Any]] = {}
        self.hooks = Hooks()
        """The hooks registered with :meth:`before_job`, :meth:`on_worker_start` and the like (:mod:`fastjobs.hooks`)."""
        self.schedules: dict[str, Schedule] = {}
        """Periodic tasks by name: what :meth:`periodic` registered."""
        self._shared: Backend | None = None
        self._shared_lock = threading.Lock()
        self._per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Backend] = weakref.WeakKeyDictionary()
        self._connecting: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()
        self._closers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncIterator[None]] = weakref.WeakKeyDictionary()
        """Per loop, the suspended generator that closes its backend at the loop's shutdown (held here:
        a collected one would be finalized, closing the backend early)."""
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
        backoff: Backoff | BackoffFunction | None = ...,
        timeout: float | None = None,
        lease: float | None = None,
        context: bool = False,
        limit: Limit | None = None,
        on_dead: Callable[..., Any] | None = None,
        executor: str | None = None,
        soft_timeout: float | None = None,
        typed: bool = True,
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
        backoff: Backoff | BackoffFunction | None = UNSET,
        timeout: float | None = None,
        lease: float | None = None,
        context: bool = False,
        limit: Limit | None = None,
        on_dead: Callable[..., Any] | None = None,
        executor: str | None = None,
        soft_timeout: float | None = None,
        typed: bool = True,
    ) -> Task[P, R] | Callable[[Callable[P, R]], Task[P, R]]:
        """Register a function (``async def`` or plain ``def``) as a task.

        Plain ``def`` handlers run on the worker's thread pool. The name is
        ``module.qualname`` unless ``name=`` is given (for a script run as
        ``python tasks.py``, the module is ``tasks``, the name a worker imports
        it under); workers only run
        registered tasks and never import code a job names. With
        ``context=True`` the handler gets a :class:`~fastjobs.Context` first
        (job id, attempt, progress reports, the cancelled flag); callers
        enqueue it without that argument. ``limit=fastjobs.Limit(...)`` caps how
        many of its jobs run at once and/or start per time window, across every
        worker (counted per queue and key; the key is the task's name unless the
        Limit or the call's ``options(limit_key=)`` names one). ``executor="process"`` runs a plain
        ``def`` handler in the worker's pool of child processes instead of a thread: its
        ``timeout`` is then hard (the child is killed), a crash fails only its attempt, and
        cancelling it stops it (see :class:`~fastjobs.Worker`'s ``executor`` for the default);
        ``soft_timeout`` then raises :class:`~fastjobs.SoftTimeLimitExceeded` inside the handler
        first, so that it can clean up before the kill. ``backoff`` is a :class:`~fastjobs.Backoff`,
        None (retry at once), or a function ``(attempt, error) -> seconds | None`` that the worker
        asks after each failed attempt while attempts remain (None: dead-letter now); should it
        raise or return something else, the worker logs it and uses the default exponential backoff.
        Parameters annotated with dataclasses, TypedDicts, enums or pydantic models (or containers
        of them) are typed (:mod:`fastjobs.typed`): sent as plain maps and values, rebuilt and
        validated on the worker before the handler runs; a job whose payload does not fit is
        dead-lettered at once with :class:`~fastjobs.ArgumentValidationError`. A return annotation
        naming such a type stores the result as plain data. ``typed=False`` turns this off (the
        handler gets the decoded maps, as before).

        Example:
            >>> app = fastjobs.App()
            >>> @app.task(queue="emails", max_attempts=5, backoff=fastjobs.Exponential(base=2, cap=600))
            ... async def send_email(to: str) -> None: ...
            >>> send_email.name.endswith("send_email")
            True
            >>> @app.task(backoff=lambda attempt, error: 5.0 if isinstance(error, TimeoutError) else None)
            ... def call_partner() -> None: ...
        """
        if on_dead is not None:
            check_hook("on_dead", on_dead)
        carried, backoff_fn = split_backoff(Backoff() if backoff is UNSET else backoff, name or "")
        options = TaskOptions(queue, priority, max_attempts, carried, timeout, lease)

        def register(func: Callable[P, R]) -> Task[P, R]:
            task_name = name or f"{_module_name(func)}.{func.__qualname__}"
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
            task: Task[P, R] = Task(self, func, task_name, task_options, context, executor, soft_timeout, typed)
            task.on_dead = on_dead
            task.backoff_fn = backoff_fn
            self.tasks[task_name] = task
            return task

        return register if fn is None else register(fn)

    def periodic(
        self,
        schedule: str | float | _dt.timedelta,
        *,
        tz: str | None = None,
        misfire_grace: float = DEFAULT_MISFIRE_GRACE,
        **settings: Unpack[TaskSettings],
    ) -> Callable[[Callable[..., R]], Task[[], R]]:
        """Register a task that runs on a schedule: a cron expression or an interval in seconds.

        Every running worker of this App enqueues each due tick with the same
        job id, so each tick runs once however many workers there are. Ticks
        missed while no worker ran are skipped, except the latest one if it is
        at most ``misfire_grace`` seconds old (see :mod:`fastjobs.periodic`).
        The other arguments (:class:`~fastjobs.options.TaskSettings`: ``name``, ``queue``,
        ``priority``, ``max_attempts``, ``backoff``, ``timeout``, ``lease``, ``context``)
        are those of :meth:`task`, passed on to it.

        Example:
            >>> app = fastjobs.App()
            >>> @app.periodic("0 8 * * mon-fri", tz="Europe/Paris")  # doctest: +SKIP
            ... async def morning_report() -> None: ...
            >>> @app.periodic(30.0)
            ... def heartbeat() -> None: ...
        """
        unknown = settings.keys() - TaskSettings.__optional_keys__
        if unknown:  # task() takes more (limit, on_dead) that a periodic task does not
            raise TypeError(f"periodic() got an unexpected keyword argument {min(unknown)!r}")
        plan = Schedule(schedule, tz, misfire_grace)
        # A finished tick's job id must outlive the grace window, or a late worker
        # could enqueue the same tick again once cleanup removed the first one.
        if plan.misfire_grace >= min(self.options.result_ttl, self.options.dead_ttl):
            raise ConfigurationError(
                f"misfire_grace ({plan.misfire_grace} s) must be shorter than the App's result_ttl "
                f"({self.options.result_ttl} s) and dead_ttl, so a finished tick is remembered while it could recur"
            )

        def register(func: Callable[..., R]) -> Task[[], R]:
            task = self.task(**settings)(func)
            problem = task.arity.problem(0, {})
            if problem is not None:  # else every tick would fail to enqueue, once a second
                del self.tasks[task.name]
                raise ConfigurationError(
                    f"periodic task {task.name!r} is enqueued without arguments, but it takes {task.arity.text}: "
                    f"{problem}; give those parameters defaults"
                )
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
        if backend is not None:
            return backend
        # Published only once connected (and migrated): a second task of this loop asking
        # meanwhile waits for the first's connection instead of using it half-made.
        lock = self._connecting.get(loop)
        if lock is None:
            lock = self._connecting[loop] = asyncio.Lock()
        async with lock:
            backend = self._per_loop.get(loop)
            if backend is None:
                backend = self._backend_cls(self.url, self.options, **self._backend_extra)
                await backend.connect()
                self._per_loop[loop] = backend
                closer = self._close_when_loop_ends(loop, backend)
                await closer.__anext__()
                self._closers[loop] = closer
        return backend

    async def _close_when_loop_ends(self, loop: asyncio.AbstractEventLoop, backend: Backend) -> AsyncIterator[None]:
        """Close ``backend`` when its loop shuts down, though nobody called :meth:`close`.

        An async generator left suspended is finalized by ``loop.shutdown_asyncgens()``, which
        ``asyncio.run`` and asgiref (Django's async views under WSGI) call while the loop still
        runs: an App used from many short-lived loops would otherwise keep every ended loop's
        connections open (the map's values hold their loop alive)."""
        try:
            yield
        finally:
            if self._per_loop.get(loop) is backend:
                del self._per_loop[loop]
                await backend.close()

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
        if not self.hooks.around_enqueues:
            return await self._enqueue(calls, connection)
        with enqueue_hooks(self.hooks, calls) as hooked:
            return await self._enqueue(hooked, connection)

    def enqueue_many_sync(self, calls: Iterable[Call[Any]]) -> JobHandles:
        """:meth:`enqueue_many` for synchronous code."""
        new_calls = list(calls)
        if not self.hooks.around_enqueues:
            return self.run_sync(self._enqueue(new_calls, None))
        # The hooks run here, in the caller's thread and context (its current trace span).
        with enqueue_hooks(self.hooks, new_calls) as hooked:
            return self.run_sync(self._enqueue(hooked, None))

    async def enqueue_by_name(self, name: str, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None,
                              **options: Any) -> JobHandle[Any]:
        """Enqueue a job of the task called ``name`` without importing its handler (a producer
        that only knows the worker's task names).

        ``options`` are those of :meth:`Task.options` (``queue``, ``priority``, ``delay``,
        ``eta``, ``max_attempts``, ``backoff``, ``timeout``, ``job_id``, ``unique_key``, ``tags``,
        ``meta``, ``connection``...), checked alike. If this App registers ``name``, the job is
        what ``task.options(**options).enqueue(*args, **kwargs)`` stores (the task's defaults,
        arguments checked against its handler). If not, nothing can check the arguments, and
        the defaults are those of :meth:`task` (queue ``"default"``, 3 attempts, exponential
        backoff, no timeout, no limit): pass the ones the worker's registration differs in.

        Example:
            >>> await app.enqueue_by_name("billing.charge", args=[42], kwargs={"cents": 500}, queue="billing")  # doctest: +SKIP
        """
        configured, call_args, call_kwargs = configure_by_name(self, name, args, kwargs, options)
        return await configured.enqueue(*call_args, **call_kwargs)

    def enqueue_by_name_sync(self, name: str, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None,
                             **options: Any) -> JobHandle[Any]:
        """:meth:`enqueue_by_name` for synchronous code (no ``connection=``).

        Example:
            >>> app.enqueue_by_name_sync("billing.charge", args=[42], kwargs={"cents": 500})  # doctest: +SKIP
        """
        configured, call_args, call_kwargs = configure_by_name(self, name, args, kwargs, options)
        return configured.enqueue_sync(*call_args, **call_kwargs)

    async def _enqueue(self, calls: list[Call[Any]], connection: Any) -> JobHandles:
        if not calls:
            return JobHandles(self, [])
        if len(calls) >= gctune.ENQUEUE_BATCH:
            with gctune.tuned():
                return await self._enqueue_calls(calls, connection)
        return await self._enqueue_calls(calls, connection)

    async def _enqueue_calls(self, calls: list[Call[Any]], connection: Any) -> JobHandles:
        max_payload = self.max_payload
        now = time.time()
        # Call.to_new_job of each call, the common ones in one compiled loop (fastjobs._core.new_jobs).
        new_jobs: list[NewJob] = _encode_calls(calls, new_job_ids(len(calls)), now, max_payload, NewJob)
        # map() over the NewJobs' depends_on: no Python frame per job (a generator was ~5 % of enqueue).
        if any(map(_DEPENDS_ON, new_jobs)):
            check_dependencies(new_jobs)
        backend = await self.backend()
        counter = metrics.PROCESS
        if counter is None:
            ids = await backend.enqueue_many(new_jobs, connection=connection)
        else:
            sent = time.perf_counter()
            ids = await backend.enqueue_many(new_jobs, connection=connection)
            counter.add_round_trip("enqueue", time.perf_counter() - sent)
        return JobHandles(self, ids)

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
        outcome. A member or callback registered with ``context=True`` finds the
        batch id in ``ctx.batch_id`` (and :meth:`get_job` in ``JobInfo.batch_id``).
        On Redis the members and callbacks must share a queue.

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
        batch_id = ids[len(members)]
        meta = {BATCH: batch_id}
        members = [call._linked((), job_id, meta=meta) for call, job_id in zip(members, ids)]
        member_ids = cast("tuple[str, ...]", tuple(call.job_id for call in members))  # _linked set every id
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

    async def stats(self) -> Mapping[str, QueueStats]:
        """Job counts per queue and state; a queue whose storage is damaged is ``{"broken": "<what is wrong>"}``.

        Example:
            >>> await app.stats()  # doctest: +SKIP
            {'emails': {'scheduled': 0, 'queued': 12, 'active': 3, ...}, 'pdf': {'broken': '...'}}
        """
        return await (await self.backend()).stats()

    # -- workers -------------------------------------------------------------

    async def workers(self) -> list[WorkerInfo]:
        """The worker processes on this App's backend: alive ones, with the ids of the jobs they
        run, and ones gone within the last hour (no beat within their ttl: killed or stalled).

        A worker that stopped cleanly (SIGTERM) is not listed. Oldest start first.

        Example:
            >>> for w in await app.workers():  # doctest: +SKIP
            ...     print(w.id, "alive" if w.alive else "gone", len(w.running))
            web-1:4242:a1b2c3 alive 3
        """
        return await (await self.backend()).workers()

    def worker(self, queues: Sequence[str] | None = None, **options: Any) -> Worker:
        """A :class:`~fastjobs.worker.Worker` for this app (see its arguments)."""
        return Worker(self, queues, **options)

    async def run_worker(self, queues: Sequence[str] | None = None, **options: Any) -> None:
        """Run a worker in this event loop until SIGTERM/SIGINT (or, with ``burst=True``, until idle).

        Example:
            >>> await app.run_worker(queues=["emails", "default"], concurrency=100)  # doctest: +SKIP
        """
        await self.worker(queues, **options).run()

    # -- history and events ------------------------------------------------------

    async def history(self, queue: str | None = None, task: str | None = None, since: Instant = None,
                      until: Instant = None, step: str = "1m") -> list[HistoryBucket]:
        """Throughput and run times per minute (``step="1m"``) or hour (``"1h"``), per queue and task.

        ``since`` / ``until``: aware datetimes or epoch seconds (default: the last hour of
        minutes, or the last 24 hours of hours, up to now). Minutes are kept 24 h and hours
        30 days by default. Only minutes (hours) in which something ran are listed.

        Example:
            >>> for b in await app.history(queue="emails", step="1h"):  # doctest: +SKIP
            ...     print(b.at, b.task, b.succeeded, b.retried, b.dead, b.p50, b.p95)
        """
        return await read_history(await self.backend(), queue, task, since, until, step)

    def events(self, queues: str | Sequence[str] | None = None) -> AsyncIterator[Event]:
        """Job lifecycle events of ``queues`` (None: every queue) from now on, best effort.

        Kinds: enqueued, started, progress, succeeded, failed, dead, released, cancelled,
        deleted. A listener that falls behind or reconnects misses events: use them for live
        views, never for correctness. Leaving the loop unsubscribes.

        Example:
            >>> async for event in app.events(queues=["emails"]):  # doctest: +SKIP
            ...     print(event.kind, event.job_id, event.task, event.at)
        """
        return listen(self, parse_queues(queues))

"""Your code around fastjobs': worker lifecycle hooks, job hooks and enqueue hooks.

- ``@app.on_worker_start`` / ``@app.on_worker_stop`` (``def`` or ``async def``, taking a
  :class:`WorkerState`) run once per worker: open a database pool, close it. What they put
  on the state is ``ctx.state`` in ``context=True`` handlers and :func:`worker_state` in
  any handler. A start hook that raises stops the worker before it claims anything
  (:class:`~fastjobs.HookError`; ``fastjobs worker`` exits with status 3); a stop hook
  that raises is logged.
- ``@app.on_child_start`` / ``@app.on_child_stop`` (plain ``def``, taking the child's own
  :class:`WorkerState`) run once in each child process of a worker's process pool
  (``executor="process"``): open what the handlers in that child use. A child's handlers
  see its state as ``ctx.state`` and :func:`worker_state` (its ``child`` attribute says
  which child); the worker's own state stays in the worker. A child whose start hook
  raises is not used (the worker fails to start, or keeps retrying a replacement).
- ``@app.before_job`` (taking a :class:`~fastjobs.Context`) and ``@app.after_job`` /
  ``@app.on_dead`` (taking the Context and a :class:`JobOutcome`), ``def`` or
  ``async def``; ``@app.task(on_dead=...)`` per task. ``on_dead`` runs once a job is
  dead-lettered (its last attempt failed, or it cannot run). They run on the worker's
  event loop thread, for ``async def`` and plain ``def`` handlers alike (a ``def`` hook
  there must not block: use ``async def`` for I/O). A hook that raises is logged; it
  changes no outcome and loses no job.
- ``@app.before_enqueue`` (a plain ``def`` taking an :class:`Enqueuing`) runs once per job
  enqueued by this process, in the caller's thread, before the job is encoded: it may add
  to ``job.meta`` (a trace context, a tenant id). ``@app.around_enqueue`` (a context manager
  factory taking the list of :class:`Enqueuing` of one enqueue call) wraps the whole call,
  round trip included: it may add meta on entry and sees the call's error on exit. A
  ``before_enqueue`` or ``around_enqueue`` hook that raises fails the enqueue: nothing is stored.

One job's hooks and handler share one :mod:`contextvars` context, a copy of the worker's
made for that job: a context variable set in ``before_job`` (a database session, an
OpenTelemetry span) is set in the handler (its Task or its thread) and in ``after_job``.

Why hooks and not a middleware that wraps the handler call (Dramatiq, Sidekiq): wrapping
an ``async def`` handler costs a coroutine per job, and fastjobs starts a handler by
sending into its coroutine at once, so that one that finishes without waiting costs no
Task at all; a hook is a plain call before and after it, and the shared context gives
what wrapping gives (state around the call). An ``async def`` ``before_job`` costs a
Task per job; keep hooks on hot tasks plain ``def``.

Example:
    >>> import fastjobs
    >>> app = fastjobs.App("memory://")
    >>> @app.on_worker_start
    ... async def open_pool(state: fastjobs.WorkerState) -> None:
    ...     state.pool = "a pool"
    >>> @app.after_job
    ... def report(ctx: fastjobs.Context, outcome: fastjobs.JobOutcome) -> None:
    ...     if outcome.error is not None:
    ...         print(f"{ctx.task} {outcome.status}: {outcome.error!r}")
    >>> @app.before_enqueue
    ... def tenant(job: fastjobs.Enqueuing) -> None:
    ...     job.meta["tenant"] = "acme"
    >>> len(app.hooks.after_job)
    1
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from ._core import JobOutcome as _JobOutcome
from .constants import RESERVED_META_PREFIXES
from .errors import ConfigurationError, InvalidOptionError
from .job import new_job_ids

if TYPE_CHECKING:
    from .context import Context
    from .task import Call

log = logging.getLogger("fastjobs.hooks")

F = TypeVar("F", bound=Callable[..., Any])

SUCCEEDED, FAILED, TIMED_OUT, DEAD, CANCELLED = "succeeded", "failed", "timed_out", "dead", "cancelled"


class WorkerState:
    """A worker's own namespace for what its start hooks open (pools, clients): set any attribute.

    Attributes:
        worker_id: the worker's id (as :meth:`~fastjobs.App.workers` lists it).

    Example:
        >>> state = WorkerState("w-1")
        >>> state.pool = "a pool"
        >>> state.pool, state.worker_id
        ('a pool', 'w-1')
    """

    def __init__(self, worker_id: str) -> None:
        self.worker_id = worker_id

    def __repr__(self) -> str:
        return f"WorkerState({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"

    def __getattr__(self, name: str) -> Any:  # only called for a missing attribute
        raise AttributeError(
            f"this WorkerState has no {name!r}: set it in an @app.on_worker_start hook (state.{name} = ...)"
        )


STATE: contextvars.ContextVar[WorkerState] = contextvars.ContextVar("fastjobs_worker_state")


def worker_state() -> WorkerState:
    """The :class:`WorkerState` of the worker running the current job (any handler, async or not).

    Raises:
        RuntimeError: outside a job run by a worker.

    Example:
        >>> @app.task  # doctest: +SKIP
        ... def save(row: dict) -> None:
        ...     fastjobs.worker_state().pool.insert(row)
    """
    try:
        return STATE.get()
    except LookupError:
        raise RuntimeError(
            "worker_state() is only set while a worker runs a job; in context=True handlers use ctx.state"
        ) from None


JobOutcome = _JobOutcome
"""How one attempt ended, as ``after_job`` and ``on_dead`` hooks get it: ``status``, ``error``,
``result``, ``seconds``, ``will_retry``, ``timed_out`` (see :class:`fastjobs._core._hooks_py.JobOutcome`).
Built in the compiled core: one is made for every attempt of a job with job hooks."""


@dataclass(slots=True, eq=False, repr=False)
class Enqueuing:
    """A job about to be enqueued, as ``before_enqueue`` hooks get it: add to :attr:`meta`.

    Attributes:
        job_id, task, queue: the job's id, task name and queue.
        args, kwargs: its arguments (read them; they are encoded as they are).
        meta: the job's meta, saved with it: add keys of your own (``fastjobs.``-prefixed
            keys are fastjobs' and refused).
    """

    job_id: str
    task: str
    queue: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    meta: dict[str, Any]

    def __repr__(self) -> str:
        return f"Enqueuing(job_id={self.job_id!r}, task={self.task!r}, queue={self.queue!r})"


# What each kind of hook is called with, as the error for a wrong signature shows it.
SIGNATURES = {
    "on_worker_start": ("state", "def on_worker_start(state: fastjobs.WorkerState) -> None (or async def)"),
    "on_worker_stop": ("state", "def on_worker_stop(state: fastjobs.WorkerState) -> None (or async def)"),
    "on_child_start": ("state", "def on_child_start(state: fastjobs.WorkerState) -> None (a plain def)"),
    "on_child_stop": ("state", "def on_child_stop(state: fastjobs.WorkerState) -> None (a plain def)"),
    "before_job": ("ctx", "def before_job(ctx: fastjobs.Context) -> None (or async def)"),
    "after_job": ("ctx, outcome",
                  "def after_job(ctx: fastjobs.Context, outcome: fastjobs.JobOutcome) -> None (or async def)"),
    "on_dead": ("ctx, outcome",
                "def on_dead(ctx: fastjobs.Context, outcome: fastjobs.JobOutcome) -> None (or async def)"),
    "before_enqueue": ("job", "def before_enqueue(job: fastjobs.Enqueuing) -> None (a plain def)"),
    "around_enqueue": ("jobs", "@contextlib.contextmanager def around_enqueue(jobs: list[fastjobs.Enqueuing]) "
                               "-> Iterator[None] (a plain def)"),
}


def check_hook(kind: str, fn: object) -> None:
    """Refuse a hook that cannot be called the way fastjobs calls a ``kind`` hook.

    Example:
        >>> check_hook("after_job", lambda ctx: None)
        Traceback (most recent call last):
        ...
        fastjobs.errors.ConfigurationError: an after_job hook is called with 2 arguments (ctx, outcome), but <lambda> takes 1: write it as def after_job(ctx: fastjobs.Context, outcome: fastjobs.JobOutcome) -> None (or async def)
    """
    names, expected = SIGNATURES[kind]
    count = names.count(",") + 1
    name = getattr(fn, "__qualname__", repr(fn))
    if not callable(fn):
        raise ConfigurationError(f"a {kind} hook must be a function, not {fn!r}: write it as {expected}")
    if kind.endswith("_enqueue") and (inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)):
        raise ConfigurationError(
            f"a {kind} hook runs in the caller's thread, also under enqueue_sync, so it cannot be "
            f"async: write {name} as {expected}"
        )
    if kind.startswith("on_child_") and inspect.iscoroutinefunction(fn):
        raise ConfigurationError(
            f"an {kind} hook runs in a process-pool child, which has no event loop: write {name} as {expected}"
        )
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # a builtin or C function: cannot tell, trust it
    try:
        signature.bind(*range(count))
    except TypeError:
        takes = len([p for p in signature.parameters.values()
                     if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)])
        article = "an" if kind[0] in "aeiou" else "a"
        raise ConfigurationError(
            f"{article} {kind} hook is called with {count} argument{'s' if count > 1 else ''} ({names}), but "
            f"{name} takes {takes}: write it as {expected}"
        ) from None


class Hooks:
    """The hooks registered on an App (``app.hooks``), by kind, in registration order."""

    __slots__ = ("on_worker_start", "on_worker_stop", "on_child_start", "on_child_stop", "before_job", "after_job", "on_dead", "before_enqueue",
                 "around_enqueue")

    def __init__(self) -> None:
        self.on_worker_start: list[Callable[[WorkerState], Any]] = []
        self.on_worker_stop: list[Callable[[WorkerState], Any]] = []
        self.on_child_start: list[Callable[[WorkerState], Any]] = []
        self.on_child_stop: list[Callable[[WorkerState], Any]] = []
        self.before_job: list[Callable[[Context], Any]] = []
        self.after_job: list[Callable[[Context, JobOutcome], Any]] = []
        self.on_dead: list[Callable[[Context, JobOutcome], Any]] = []
        self.before_enqueue: list[Callable[[Enqueuing], None]] = []
        self.around_enqueue: list[Callable[[list[Enqueuing]], AbstractContextManager[Any]]] = []

    def add(self, kind: str, fn: F) -> F:
        """Register ``fn`` as a ``kind`` hook (checked first); hooks of a kind run in registration order."""
        check_hook(kind, fn)
        getattr(self, kind).append(fn)
        return fn

    def remove(self, kind: str, fn: Callable[..., Any]) -> bool:
        """Unregister a ``kind`` hook; False if it was not registered. A running worker keeps
        the job hooks it started with.

        Example:
            >>> hooks = Hooks()
            >>> def f(ctx): ...
            >>> hooks.add("before_job", f) is f, hooks.remove("before_job", f), hooks.remove("before_job", f)
            (True, True, False)
        """
        registered: list[Callable[..., Any]] = getattr(self, kind)
        if fn in registered:
            registered.remove(fn)
            return True
        return False

    @property
    def around_enqueues(self) -> bool:
        """Whether any enqueue hook (before, around) is registered."""
        return bool(self.before_enqueue or self.around_enqueue)

    @property
    def around_jobs(self) -> bool:
        """Whether any job hook (before, after, on_dead) is registered."""
        return bool(self.before_job or self.after_job or self.on_dead)


class HookRegistration:
    """The decorators that register hooks on an :class:`~fastjobs.App` (a base class of it)."""

    hooks: Hooks

    def on_worker_start(self, fn: F) -> F:
        """Run ``fn(state)`` (``def`` or ``async def``) once when a worker starts, before it claims.

        Put what handlers share on ``state`` (a :class:`WorkerState`). If it raises, the
        worker stops with :class:`~fastjobs.HookError` (``fastjobs worker``: exit status 3).

        Example:
            >>> @app.on_worker_start  # doctest: +SKIP
            ... async def open_pool(state: fastjobs.WorkerState) -> None:
            ...     state.db = await asyncpg.create_pool(DSN)
        """
        return self.hooks.add("on_worker_start", fn)

    def on_worker_stop(self, fn: F) -> F:
        """Run ``fn(state)`` once when a worker stops, after its last job finished or was given back;
        an exception is logged.

        Example:
            >>> @app.on_worker_stop  # doctest: +SKIP
            ... async def close_pool(state: fastjobs.WorkerState) -> None:
            ...     await state.db.close()
        """
        return self.hooks.add("on_worker_stop", fn)

    def on_child_start(self, fn: F) -> F:
        """Run ``fn(state)`` (a plain ``def``) once in each process-pool child (``executor="process"``)
        as it starts, after it imported the App: open what its handlers use.

        Example:
            >>> @app.on_child_start  # doctest: +SKIP
            ... def connect(state: fastjobs.WorkerState) -> None:
            ...     state.db = psycopg.connect(DSN)
        """
        return self.hooks.add("on_child_start", fn)

    def on_child_stop(self, fn: F) -> F:
        """Run ``fn(state)`` once in each process-pool child as it exits between jobs (retired or
        the worker stopping; not when it is killed); an exception is printed.

        Example:
            >>> @app.on_child_stop  # doctest: +SKIP
            ... def disconnect(state: fastjobs.WorkerState) -> None:
            ...     state.db.close()
        """
        return self.hooks.add("on_child_stop", fn)

    def before_job(self, fn: F) -> F:
        """Run ``fn(ctx)`` before each job's handler, in the job's own contextvars context.

        Example:
            >>> @app.before_job  # doctest: +SKIP
            ... def bind(ctx: fastjobs.Context) -> None:
            ...     structlog.contextvars.bind_contextvars(job_id=ctx.job_id)
        """
        return self.hooks.add("before_job", fn)

    def after_job(self, fn: F) -> F:
        """Run ``fn(ctx, outcome)`` after each attempt, whatever its :class:`JobOutcome`.

        Example:
            >>> @app.after_job  # doctest: +SKIP
            ... def report(ctx: fastjobs.Context, outcome: fastjobs.JobOutcome) -> None:
            ...     if outcome.error is not None:
            ...         sentry_sdk.capture_exception(outcome.error)
        """
        return self.hooks.add("after_job", fn)

    def on_dead(self, fn: F) -> F:
        """Run ``fn(ctx, outcome)`` when a job of any task is dead-lettered (after ``after_job``).

        Example:
            >>> @app.on_dead  # doctest: +SKIP
            ... async def page(ctx: fastjobs.Context, outcome: fastjobs.JobOutcome) -> None:
            ...     await pager.alert(f"{ctx.task} {ctx.job_id} is dead: {outcome.error!r}")
        """
        return self.hooks.add("on_dead", fn)

    def before_enqueue(self, fn: F) -> F:
        """Run ``fn(job)`` (a plain ``def``) for each job this process enqueues, before it is encoded.

        Example:
            >>> @app.before_enqueue  # doctest: +SKIP
            ... def tenant(job: fastjobs.Enqueuing) -> None:
            ...     job.meta["tenant"] = current_tenant()
        """
        return self.hooks.add("before_enqueue", fn)

    def around_enqueue(self, fn: F) -> F:
        """Wrap each enqueue call of this process in ``fn(jobs)``, a context manager (a plain
        ``def`` under :func:`contextlib.contextmanager`) given the call's :class:`Enqueuing`
        list: on entry it may add to their meta; its exit follows the round trip and sees its
        error. Where a hook needs one thing per call rather than per job (a trace span, a
        timer, an audit record).

        Example:
            >>> @app.around_enqueue  # doctest: +SKIP
            ... @contextlib.contextmanager
            ... def audit(jobs: list[fastjobs.Enqueuing]) -> Iterator[None]:
            ...     started = time.monotonic()
            ...     yield
            ...     audit_log.info("enqueued %d jobs in %.3f s", len(jobs), time.monotonic() - started)
        """
        return self.hooks.add("around_enqueue", fn)


@contextlib.contextmanager
def enqueue_hooks(hooks: Hooks, calls: list[Call[Any]]) -> Iterator[list[Call[Any]]]:
    """Run the enqueue hooks around one enqueue call: yields the calls to enqueue, their ids
    fixed and their meta as the hooks left it; the around hooks exit when the block does.

    A hook that raises fails the enqueue (nothing is stored): a job missing what a hook adds
    (a tenant, a trace) should not run as if it had it.
    """
    jobs = []
    for call, job_id in zip(calls, new_job_ids(len(calls))):
        job = Enqueuing(call.job_id or job_id, call.task.name, call.options.queue, call.args, call.kwargs,
                        dict(call.meta or ()))
        for hook in hooks.before_enqueue:
            hook(job)
        jobs.append(job)
    with contextlib.ExitStack() as stack:
        for around in hooks.around_enqueue:
            manager = around(jobs)
            if not isinstance(manager, AbstractContextManager):
                raise ConfigurationError(
                    f"the around_enqueue hook {getattr(around, '__qualname__', around)} returned {manager!r}, not a "
                    f"context manager: write it as {SIGNATURES['around_enqueue'][1]}"
                )
            stack.enter_context(manager)
        hooked = [call._hooked(job.job_id, _checked_meta(call.meta or {}, job.meta) or None)
                  for call, job in zip(calls, jobs)]
        try:
            yield hooked
        except BaseException as error:
            # The hooks see the error on exit, and may not swallow it: a failed enqueue must raise.
            stack.__exit__(type(error), error, error.__traceback__)
            raise


def _checked_meta(before: dict[str, Any], meta: object) -> dict[str, Any]:
    if not isinstance(meta, dict):
        raise InvalidOptionError(f"an enqueue hook replaced job.meta with {meta!r}: add keys to it instead")
    for key in meta:
        if key not in before and (not isinstance(key, str) or key.startswith(RESERVED_META_PREFIXES)):
            raise InvalidOptionError(
                f"an enqueue hook added the meta key {key!r}: keys are str, and those starting "
                f"with {' or '.join(map(repr, RESERVED_META_PREFIXES))} are fastjobs' own; rename it"
            )
    return meta


def run_hooks(kind: str, hooks: list[Callable[..., Any]], job_id: str, *args: Any) -> list[tuple[Any, Any]] | None:
    """Call each hook with ``args``, in order, logging what one raises; return the awaitables
    ``async def`` hooks gave back, with their hook (None if none). One call for all of a job's
    hooks of a kind: run in the job's context, it enters that context once."""
    pending = None
    for hook in hooks:
        try:
            result = hook(*args)
        except Exception:
            log_raised(kind, hook, job_id)
            continue
        if result is not None and inspect.isawaitable(result):
            if pending is None:
                pending = []
            pending.append((hook, result))
    return pending


def log_raised(kind: str, hook: Callable[..., Any], job_id: str) -> None:
    """Log the exception a job's ``kind`` hook raised (in an ``except`` block)."""
    log.exception("%s hook %s raised for job %s; ignored", kind, getattr(hook, "__qualname__", hook), job_id)


def call_logged(kind: str, fn: Callable[..., Any], job_id: str | None, *args: Any) -> Any:
    """Call a hook; log what it raises (with the job) and return None instead."""
    try:
        return fn(*args)
    except Exception:
        log.exception("%s hook %s raised%s; ignored", kind, getattr(fn, "__qualname__", fn),
                      f" for job {job_id}" if job_id else "")
        return None


async def await_logged(kind: str, awaitable: Any, fn: Callable[..., Any], job_id: str | None) -> None:
    """Await what an ``async def`` hook returned; log what it raises."""
    try:
        await awaitable
    except Exception:
        log.exception("%s hook %s raised%s; ignored", kind, getattr(fn, "__qualname__", fn),
                      f" for job {job_id}" if job_id else "")

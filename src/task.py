"""Tasks and what they enqueue: :class:`Task`, its per-call options, and :class:`Call`.

Example:
    >>> import fastjobs
    >>> app = fastjobs.App("memory://")
    >>> @app.task(queue="emails")
    ... async def send_email(to: str) -> None: ...
    >>> call = send_email.options(priority=5).call("a@b.c")
    >>> call.options.priority, call.args
    (5, ('a@b.c',))
"""

from __future__ import annotations

import datetime as _dt
import functools
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

from ._core import Backoff, JobTemplate
from .backends.base import Limit, NewJob
from .constants import BATCH, PIPE
from .errors import ConfigurationError, InvalidOptionError, TaskArgumentsError
from .handles import JobHandle
from .options import LIMIT_KEY, TASK_NAME, UNSET, BackoffFunction, TaskOptions, check_limit, check_meta, check_seconds, check_tags
from .signatures import Arity
from .typed import TypedArguments

if TYPE_CHECKING:
    from .app import App

P = ParamSpec("P")
R = TypeVar("R")

_new_tuple = tuple.__new__


# eq=False and repr=False: a call is compared by identity, and its arguments (maybe large
# or private) stay out of reprs and logs.
@dataclass(slots=True, eq=False, repr=False)
class Call(Generic[R]):
    """One pending enqueue of a task with its arguments: build with :meth:`Task.call`.

    Example:
        >>> await app.enqueue_many([send_email.call("a@b.c"), resize.call("x.png")])  # doctest: +SKIP
    """

    task: Task[..., R]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    options: TaskOptions
    delay: float = 0.0
    job_id: str | None = None
    unique_key: str | None = None
    unique_ttl: float = 0.0
    depends_on: tuple[str, ...] = ()
    after: int = 0
    """A :class:`~fastjobs.backends.DependencyMode` (chains and batch callbacks set it)."""
    meta: dict[str, Any] | None = None
    """``JobRecord.meta``: the caller's ``options(meta=)`` plus fastjobs' own keys (chains, batches)."""
    tags: tuple[str, ...] = ()

    def _linked(self, depends_on: tuple[str, ...], job_id: str, after: int = 0, meta: dict[str, Any] | None = None,
                options: TaskOptions | None = None) -> Call[R]:
        """A copy of this call with its job id fixed that waits on ``depends_on`` (chains, batches);
        ``meta`` (fastjobs' own keys) is added to the call's own."""
        if self.meta and meta:
            meta = {**self.meta, **meta}
        return Call(self.task, self.args, self.kwargs, options or self.options, self.delay, self.job_id or job_id,
                    self.unique_key, self.unique_ttl, tuple(dict.fromkeys((*self.depends_on, *depends_on))), after,
                    meta or self.meta, self.tags)

    def _hooked(self, job_id: str, meta: dict[str, Any] | None) -> Call[R]:
        """A copy of this call with its job id fixed and ``meta`` as the enqueue hooks left it
        (dataclasses.replace reads the fields on every call: 1.83 us against 0.28, timeit)."""
        return Call(self.task, self.args, self.kwargs, self.options, self.delay, job_id, self.unique_key,
                    self.unique_ttl, self.depends_on, self.after, meta, self.tags)

    def to_new_job(self, max_payload: int, job_id: str, now: float) -> NewJob:
        """Encode this call (raises UnencodableError / PayloadTooLargeError on bad arguments).

        ``job_id`` is used unless the call was given its own with ``options(job_id=)``.
        """
        task = self.task
        args, kwargs = self.args, self.kwargs
        # Positional arguments only, within the handler's range: the common case, a few
        # comparisons (meta, such as a trace context, changes nothing there). Keywords, a chain
        # step (its first argument comes later) or a miss: the full check.
        meta = self.meta
        piped = 1 if meta and PIPE in meta else 0
        if kwargs or piped or not task.min_args <= len(args) <= task.max_args:
            task.check_arguments(len(args) + piped, kwargs)
        if task.typed is not None:
            args, kwargs = task.typed.encode(args, kwargs, piped)
        opts = self.options
        template = task.template
        if template is None or template[0] is not opts:
            template = task.template_of(opts)
        job_id = self.job_id or job_id
        body = template[1].encode(
            job_id, args, kwargs, now + self.delay if self.delay else 0.0, now, self.unique_key,
            # A batch callback waits on every member: their ids stay in the backend
            # (StoredJob.parents), not in each callback's body, so a batch is not capped by
            # max_payload. Nothing reads the body's parents (JobInfo shows StoredJob.parents).
            () if meta and BATCH in meta else self.depends_on,
            meta, max_payload,
        )
        # tuple.__new__ skips NamedTuple's Python-level __new__ (a third of this call's cost).
        return _new_tuple(NewJob, (
            job_id, opts.queue, opts.priority, self.delay, opts.max_attempts, body, self.unique_key, self.unique_ttl,
            self.depends_on, self.after, opts.limit, task.name, self.tags,
        ))


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


@dataclass(slots=True, eq=False, repr=False)
class _Configured(Generic[P, R]):
    """A task with per-call options applied: ``task.options(delay=30, priority=10)``."""

    _task: Task[P, R]
    _options: TaskOptions
    _delay: float
    _eta: _dt.datetime | None
    _job_id: str | None
    _unique_key: str | None
    _unique_ttl: float
    _connection: Any
    _depends_on: tuple[str, ...] = ()
    _meta: dict[str, Any] | None = None
    _tags: tuple[str, ...] = ()

    def call(self, *args: P.args, **kwargs: P.kwargs) -> Call[R]:
        delay = self._delay
        if self._eta is not None:  # turned into a delay per call, so a kept configuration stays on time
            delay = max(0.0, (self._eta - _dt.datetime.now(_dt.timezone.utc)).total_seconds())
        return Call(self._task, args, kwargs, self._options, delay, self._job_id, self._unique_key, self._unique_ttl,
                    self._depends_on, 0, self._meta, self._tags)

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

    def __init__(self, app: App, fn: Callable[P, Any], name: str, options: TaskOptions, context: bool = False,
                 executor: str | None = None, soft_timeout: float | None = None, typed: bool = True) -> None:
        self.app = app
        self.fn = fn
        self.name = name
        self.default_options = options
        self.context = context
        """Whether the handler takes a :class:`~fastjobs.Context` as its first argument."""
        self.is_async = inspect.iscoroutinefunction(fn)
        self.arity = Arity.of(fn, context)
        """What the handler accepts, checked at enqueue (:meth:`check_arguments`)."""
        self.min_args = self.arity.fast_min
        self.max_args = self.arity.fast_max
        self.typed = TypedArguments.of(fn, self.arity, name, context) if typed else None
        """How its dataclass, TypedDict, enum and pydantic arguments travel (:mod:`fastjobs.typed`);
        None when its annotations name no such type, or with ``typed=False``."""
        self.invoke: Callable[..., Any] = fn if self.typed is None else self.typed.invoke
        """What the worker calls with a job's decoded arguments: the handler itself, or for a typed
        task the handler behind the rebuilding of its arguments (and the encoding of its result)."""
        if executor not in (None, "thread", "process"):
            raise ConfigurationError(f"executor must be 'thread' or 'process', not {executor!r}")
        if executor == "process" and self.is_async:
            raise ConfigurationError(
                f"task {name!r} is an async def: async handlers run on the worker's loop; executor='process' "
                "is for plain def handlers (make it a def, or drop executor=)"
            )
        self.executor = executor
        """Where its plain ``def`` handler runs: ``"thread"``, ``"process"``, or None (the worker's ``executor``)."""
        if soft_timeout is not None:
            soft_timeout = check_seconds("soft_timeout", soft_timeout, allow_zero=False)
            if executor == "thread" or self.is_async:
                raise ConfigurationError(
                    f"task {name!r}: soft_timeout raises inside a handler running in a process-pool child; "
                    "give the task executor='process' (a thread or a coroutine cannot be interrupted that way)"
                )
            if options.timeout is not None and soft_timeout >= options.timeout:
                raise ConfigurationError(
                    f"task {name!r}: soft_timeout ({soft_timeout} s) must be shorter than timeout ({options.timeout} s): "
                    "it is the warning before the kill"
                )
        self.soft_timeout = soft_timeout
        """Process-executor handlers: seconds after which :class:`~fastjobs.SoftTimeLimitExceeded` is raised inside it."""
        self.backoff_fn: BackoffFunction | None = None
        """``@app.task(backoff=fn)``: asked by the worker after each failed attempt (see :mod:`fastjobs.retries`)."""
        self.on_dead: Callable[..., Any] | None = None
        """Run as ``on_dead(ctx, outcome)`` when one of its jobs is dead-lettered (``@app.task(on_dead=...)``)."""
        self.template: tuple[TaskOptions, JobTemplate] | None = None
        """The encoder of this task's jobs with its default options (:meth:`template_of`)."""
        self._other_template: tuple[TaskOptions, JobTemplate] | None = None
        functools.update_wrapper(self, fn)

    def template_of(self, opts: TaskOptions) -> tuple[TaskOptions, JobTemplate]:
        """``opts`` and the :class:`JobTemplate` that encodes this task's jobs with them: the fixed
        fields are checked and written once per options, not per job. Kept for the default options
        and for the last other ones (a ``task.options(...)`` reused for many calls)."""
        other = self._other_template
        if other is not None and other[0] is opts:
            return other
        made = (opts, JobTemplate(self.name, opts.queue, opts.priority, opts.max_attempts, opts.timeout,
                                  opts.backoff_spec))
        if opts is self.default_options:
            self.template = made
        else:
            self._other_template = made
        return made

    def __repr__(self) -> str:
        return f"<Task {self.name} queue={self.default_options.queue!r}>"

    def check_arguments(self, given: int, kwargs: Mapping[str, Any]) -> None:
        """Raise :class:`~fastjobs.TaskArgumentsError` unless ``given`` positional arguments
        and ``kwargs`` bind to the handler (its Context not counted with ``context=True``)."""
        problem = self.arity.problem(given, kwargs)
        if problem is not None:
            ctx = " after its Context (which the worker passes)" if self.context else ""
            raise TaskArgumentsError(
                f"task {self.name!r} takes {self.arity.text}{ctx}: {problem}; "
                "enqueue it with arguments that fit that signature"
            )

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Any:
        return self.fn(*args, **kwargs)

    def options(
        self,
        *,
        queue: str = UNSET,
        priority: int = UNSET,
        delay: float | _dt.timedelta = 0.0,
        eta: _dt.datetime | None = None,
        max_attempts: int = UNSET,
        backoff: Backoff | None = UNSET,
        timeout: float | None = UNSET,
        job_id: str | None = None,
        unique_key: str | None = None,
        unique_ttl: float | _dt.timedelta = 0.0,
        depends_on: Iterable[str | JobHandle[Any]] = (),
        limit: Limit | None = UNSET,
        limit_key: str | None = None,
        tags: Iterable[str] = (),
        meta: Mapping[str, Any] | None = None,
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

        ``tags``: up to 10 short strings (1-100 printable characters) to find the job
        by (``app.jobs(tag="tenant:42")``); ``meta``: a small dict of your own
        (str keys, values as task arguments; counted in ``max_payload``; keys
        starting with ``fastjobs.`` or ``_fastjobs`` are reserved). Both are shown
        by :meth:`App.get_job` and kept after the job ends.

        Example:
            >>> await send_email.options(delay=30, priority=10, queue="bulk").enqueue("a@b.c")  # doctest: +SKIP
            >>> await sync_account.options(unique_key="acct:42", unique_ttl=60).enqueue(42)  # doctest: +SKIP
            >>> await report.options(depends_on=[export_job]).enqueue()  # doctest: +SKIP
            >>> await sync_tenant.options(limit_key="tenant:42").enqueue(42)  # doctest: +SKIP
            >>> await import_rows.options(tags=["tenant:42", "import"], meta={"source": "api"}).enqueue()  # doctest: +SKIP
            >>> async with conn.transaction():  # doctest: +SKIP
            ...     await conn.execute("insert into orders ...")
            ...     await send_email.options(connection=conn).enqueue("a@b.c")
        """
        d = self.default_options
        effective = d.limit if limit is UNSET else (None if limit is None else check_limit(limit, self.name))
        if limit_key is not None:
            if effective is None:
                raise InvalidOptionError(
                    "limit_key needs a limit: give the task limit=fastjobs.Limit(...) or pass limit= here"
                )
            if not isinstance(limit_key, str) or not LIMIT_KEY.match(limit_key):
                raise InvalidOptionError(f"limit key must be 1-200 printable characters, not {limit_key!r}")
            effective = check_limit(effective._replace(key=limit_key), self.name)
        opts = TaskOptions(
            d.queue if queue is UNSET else queue,
            d.priority if priority is UNSET else priority,
            d.max_attempts if max_attempts is UNSET else max_attempts,
            d.backoff if backoff is UNSET else backoff,
            d.timeout if timeout is UNSET else timeout,
            d.lease,
            effective,
        )
        parents = _parent_ids(depends_on)
        seconds = check_seconds("delay", delay)
        if eta is not None:
            if not isinstance(eta, _dt.datetime) or eta.tzinfo is None:
                raise InvalidOptionError(f"eta must be a timezone-aware datetime, not {eta!r}")
            if seconds:
                raise InvalidOptionError("give delay or eta, not both")
        if job_id is not None and (not isinstance(job_id, str) or not TASK_NAME.match(job_id)):
            raise InvalidOptionError(f"job_id must be a non-empty string without spaces, not {job_id!r}")
        if unique_key is not None and (not isinstance(unique_key, str) or not unique_key or len(unique_key) > 500):
            raise InvalidOptionError(f"unique_key must be a non-empty string of at most 500 characters, not {unique_key!r}")
        ttl = check_seconds("unique_ttl", unique_ttl)
        if ttl and unique_key is None:
            raise InvalidOptionError("unique_ttl needs a unique_key: it says how long the key stays taken after the job succeeded")
        if ttl > self.app.options.result_ttl:
            # The succeeded job holds the key; it must still exist while it does.
            raise InvalidOptionError(
                f"unique_ttl ({ttl} s) is longer than the App's result_ttl ({self.app.options.result_ttl} s): "
                "raise result_ttl, or shorten unique_ttl"
            )
        checked_tags = () if tags == () else check_tags(tags)
        checked_meta = None if meta is None else (check_meta(meta) or None)
        return _Configured(self, opts, seconds, eta, job_id, unique_key, ttl, connection, parents, checked_meta,
                           checked_tags)

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


def _unregistered(*args: Any, **kwargs: Any) -> None:
    """Stands for a handler registered in another process: any arguments pass, the worker checks."""


_BY_NAME_DEFAULTS = TaskOptions("default", 0, 3, Backoff(), None, None)
"""A task enqueued by a name this App does not register: the defaults of :meth:`App.task`."""


_OPTION_NAMES = frozenset(inspect.signature(Task.options).parameters) - {"self"}


def configure_by_name(app: App, name: object, args: object, kwargs: object,
                      options: Mapping[str, Any]) -> tuple[_Configured[..., Any], tuple[Any, ...], dict[str, Any]]:
    """``task.options(**options)`` for the task called ``name``, and the checked ``args`` / ``kwargs``
    (see :meth:`App.enqueue_by_name`): the registered task if this App has one, else a stand-in."""
    if not isinstance(name, str) or not TASK_NAME.match(name):
        raise InvalidOptionError(f"task name must be 1-200 characters without spaces or control characters, not {name!r}")
    if isinstance(args, (str, bytes)) or not isinstance(args, (list, tuple)):
        raise InvalidOptionError(f"args takes a list or tuple of positional arguments (args=[42]), not {args!r}")
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, Mapping) or not all(isinstance(key, str) for key in kwargs):
        raise InvalidOptionError(f"kwargs takes a dict with str keys (kwargs={{'cents': 500}}), not {kwargs!r}")
    unknown = options.keys() - _OPTION_NAMES
    if unknown:
        raise InvalidOptionError(
            f"enqueue_by_name() got an unknown option {min(unknown)!r}: it takes args=, kwargs= and the options "
            f"of task.options(): {', '.join(sorted(_OPTION_NAMES))}"
        )
    task = app.tasks.get(name)
    if task is None:
        if name in app.builtin_tasks:
            raise InvalidOptionError(f"{name!r} is fastjobs' own task: enqueue one of your tasks by name")
        task = Task(app, _unregistered, name, _BY_NAME_DEFAULTS, typed=False)  # nothing to type: no annotations read
    return task.options(**options), tuple(args), dict(kwargs)


"""What a job's hooks and ``context=True`` handler get: the fields of a :class:`~fastjobs.Context`
and the :class:`~fastjobs.JobOutcome` of an attempt (pure-Python twin of ``_hooks_c``).

Why compiled: with job hooks every job gets a Context and an outcome whether or not a hook
reads them. As Python objects (a dataclass, a slotted subclass with an ``__init__``) they
cost ~3,600 and ~2,200 instructions a job (cachegrind), most of it the ``__init__`` call
that CPython 3.11 makes through ``type.__call__``; the compiled ones are built in C.

:class:`ContextFields` is the storage of :class:`fastjobs.Context` (a Python subclass, which
adds ``progress``). A Context a user builds holds its fields; one that :func:`job_context`
builds for a worker's job reads them from the job's claim, its record and the worker when
asked (hooks read two or three of sixteen): those are read-only, except ``job_id``,
``meta``, ``cancelled`` and ``lease_until``, which the worker sets or a hook may.

:class:`SlotMaker` builds a slotted Python class's instances without its ``__init__`` (the
worker's ``Running`` of a plain ``def`` job, or of an async one that suspends).

Example:
    >>> from fastjobs._core._hooks_py import ContextFields, JobOutcome
    >>> ctx = ContextFields("j1", "t", "q", 1, 3, 0, None, None, 0.0)
    >>> ctx.task, ctx.attempt, ctx.meta, ctx.cancelled
    ('t', 1, {}, False)
    >>> JobOutcome("succeeded", result=42)
    JobOutcome(status='succeeded', error=None, seconds=0.000000)
"""

from __future__ import annotations

import contextvars
import time
import types
from typing import Any

BATCH = "fastjobs.batch"
"""``fastjobs.constants.BATCH``, the meta key of a batch's id (a test checks they agree)."""


class ContextFields:
    """The fields of a :class:`fastjobs.Context`; see the module's docstring."""

    __slots__ = ("job_id", "cancelled", "_meta", "_claim", "_record", "_worker", "_lease_until", "_confirmed",
                 "_lease", "_f_task", "_f_queue", "_f_attempt", "_f_max_attempts", "_f_token", "_f_backend",
                 "_f_loop", "_f_batch_id", "_f_args", "_f_kwargs", "_f_state", "_f_worker_id")

    job_id: str
    cancelled: bool
    _meta: dict[str, Any] | None
    _claim: Any
    _record: Any
    _worker: Any
    _lease_until: float | None
    _confirmed: float
    _lease: float
    _f_task: str
    _f_queue: str
    _f_attempt: int
    _f_max_attempts: int
    _f_token: int
    _f_backend: Any
    _f_loop: Any
    _f_batch_id: str | None
    _f_args: tuple[Any, ...]
    _f_kwargs: dict[str, Any]
    _f_state: Any
    _f_worker_id: str

    def __init__(self, job_id: str, task: str, queue: str, attempt: int, max_attempts: int, _token: int,
                 _backend: Any, _loop: Any, lease_until: float, cancelled: bool = False, batch_id: str | None = None,
                 args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None, meta: dict[str, Any] | None = None,
                 state: Any = None, worker_id: str = "") -> None:
        self.job_id = job_id
        self.cancelled = cancelled
        self._meta = {} if meta is None else meta
        self._claim = self._record = self._worker = None
        self._lease_until = lease_until
        self._confirmed = self._lease = 0.0
        self._f_task = task
        self._f_queue = queue
        self._f_attempt = attempt
        self._f_max_attempts = max_attempts
        self._f_token = _token
        self._f_backend = _backend
        self._f_loop = _loop
        self._f_batch_id = batch_id
        self._f_args = args
        self._f_kwargs = {} if kwargs is None else kwargs
        self._f_state = state
        self._f_worker_id = worker_id

    def _read_only(self, name: str) -> None:
        if self._record is not None:
            raise AttributeError(f"a worker's Context is read-only, except job_id, meta, cancelled and "
                                 f"lease_until: cannot set {name}")

    @property
    def task(self) -> str:
        record = self._record
        return self._f_task if record is None else record.task

    @task.setter
    def task(self, value: str) -> None:
        self._read_only("task")
        self._f_task = value

    @property
    def queue(self) -> str:
        record = self._record
        return self._f_queue if record is None else record.queue

    @queue.setter
    def queue(self, value: str) -> None:
        self._read_only("queue")
        self._f_queue = value

    @property
    def attempt(self) -> int:
        claim = self._claim
        return self._f_attempt if claim is None else claim.attempt

    @attempt.setter
    def attempt(self, value: int) -> None:
        self._read_only("attempt")
        self._f_attempt = value

    @property
    def max_attempts(self) -> int:
        record = self._record
        return self._f_max_attempts if record is None else record.max_attempts

    @max_attempts.setter
    def max_attempts(self, value: int) -> None:
        self._read_only("max_attempts")
        self._f_max_attempts = value

    @property
    def _token(self) -> int:
        claim = self._claim
        return self._f_token if claim is None else claim.token

    @_token.setter
    def _token(self, value: int) -> None:
        self._read_only("_token")
        self._f_token = value

    @property
    def _backend(self) -> Any:
        worker = self._worker
        return self._f_backend if worker is None else worker._backend

    @_backend.setter
    def _backend(self, value: Any) -> None:
        self._read_only("_backend")
        self._f_backend = value

    @property
    def _loop(self) -> Any:
        worker = self._worker
        return self._f_loop if worker is None else worker._loop

    @_loop.setter
    def _loop(self, value: Any) -> None:
        self._read_only("_loop")
        self._f_loop = value

    @property
    def batch_id(self) -> str | None:
        """For a batch callback (``then``/``catch``/``finally_``): the batch's id, for ``app.get_batch``."""
        record = self._record
        if record is None:
            return self._f_batch_id
        meta = record.meta
        return meta.get(BATCH) if meta else None

    @batch_id.setter
    def batch_id(self, value: str | None) -> None:
        self._read_only("batch_id")
        self._f_batch_id = value

    @property
    def args(self) -> tuple[Any, ...]:
        record = self._record
        return self._f_args if record is None else record.args

    @args.setter
    def args(self, value: tuple[Any, ...]) -> None:
        self._read_only("args")
        self._f_args = value

    @property
    def kwargs(self) -> dict[str, Any]:
        record = self._record
        return self._f_kwargs if record is None else record.kwargs

    @kwargs.setter
    def kwargs(self, value: dict[str, Any]) -> None:
        self._read_only("kwargs")
        self._f_kwargs = value

    @property
    def state(self) -> Any:
        """The worker's :class:`~fastjobs.WorkerState`."""
        worker = self._worker
        return self._f_state if worker is None else worker.state

    @state.setter
    def state(self, value: Any) -> None:
        self._read_only("state")
        self._f_state = value

    @property
    def worker_id(self) -> str:
        worker = self._worker
        return self._f_worker_id if worker is None else worker.id

    @worker_id.setter
    def worker_id(self, value: str) -> None:
        self._read_only("worker_id")
        self._f_worker_id = value

    @property
    def meta(self) -> dict[str, Any]:
        meta = self._meta
        if meta is None:  # a worker's Context: its record's, read once
            meta = self._meta = self._record.meta or {}
        return meta

    @meta.setter
    def meta(self, value: dict[str, Any]) -> None:
        self._meta = value

    @property
    def lease_until(self) -> float:
        """When the lease runs out unless renewed (the worker's clock, epoch seconds); renewed while the job runs."""
        until = self._lease_until
        if until is None:  # a worker's Context, not renewed yet: its lease as last confirmed, on the wall clock
            confirmed = self._confirmed
            now = time.time()
            until = self._lease_until = now + self._lease - (time.monotonic() - confirmed if confirmed > 0.0 else 0.0)
        return until

    @lease_until.setter
    def lease_until(self, value: float) -> None:
        self._lease_until = value


def job_context(cls: type[ContextFields], claim: Any, record: Any, worker: Any, confirmed: float,
                lease: float) -> Any:
    """A worker's Context (of class ``cls``, a subclass of :class:`ContextFields`) for the job of
    ``claim`` and ``record``: its fields read from them and ``worker`` when asked. Its lease
    was confirmed at ``confirmed`` (``time.monotonic()``; 0: unknown, now) for ``lease`` seconds."""
    ctx = object.__new__(cls)
    ctx.job_id = claim.id
    ctx.cancelled = False
    ctx._meta = None
    ctx._claim = claim
    ctx._record = record
    ctx._worker = worker
    ctx._lease_until = None
    ctx._confirmed = confirmed
    ctx._lease = lease
    return ctx


class JobOutcome:
    """How one attempt ended, as ``after_job`` and ``on_dead`` hooks get it.

    Attributes:
        status: ``"succeeded"``; ``"failed"`` (raised; will be retried); ``"timed_out"``
            (ran past its timeout; will be retried); ``"dead"`` (dead-lettered: its last
            attempt failed or timed out, or its result could not be stored); ``"cancelled"``
            (stopped, its outcome discarded: the job was cancelled, its lease was lost, or
            shutdown gave it back to run again).
        error: the exception (failed, timed_out, dead; for cancelled, what stopped it), else None.
        result: what the handler returned (succeeded), else None.
        seconds: how long the handler ran.
        will_retry: whether another attempt is scheduled.
        timed_out: whether the attempt ran past its timeout (status timed_out, or dead).
    """

    # Compared by identity; its repr leaves the job's result out.
    __slots__ = ("status", "error", "result", "seconds", "will_retry", "timed_out")

    def __init__(self, status: str, error: BaseException | None = None, result: Any = None, seconds: float = 0.0,
                 will_retry: bool = False, timed_out: bool = False) -> None:
        self.status = status
        self.error = error
        self.result = result
        self.seconds = seconds
        self.will_retry = will_retry
        self.timed_out = timed_out

    def __repr__(self) -> str:
        return f"JobOutcome(status={self.status!r}, error={self.error!r}, seconds={self.seconds:.6f})"


def after_success(hook: Any, context: contextvars.Context, ctx: Any, value: Any, seconds: float) -> Any:
    """``context.run(hook, ctx, JobOutcome("succeeded", None, value, seconds))``: returns what the
    hook returned, raises what it raised. The compiled twin builds the outcome in C and enters the
    context without a ``Context.run`` call."""
    return context.run(hook, ctx, JobOutcome("succeeded", None, value, seconds))


class SlotMaker:
    """Builds instances of a Python class with ``__slots__`` (and no ``__dict__``) without calling
    its ``__init__``: each slot stored through its member descriptor.

    ``SlotMaker(cls, names, defaults)`` then ``maker(*values)``: the slots ``names`` get
    ``values``, the others ``defaults`` (a dict; every other slot of ``cls`` must be in it). The
    class's attribute reads stay what the 3.11 interpreter specializes (slots); what the compiled
    twin saves is ``type.__call__`` and the ``__init__`` frame (``fastjobs.executors.Running``:
    ~3,700 instructions a job built by ``__init__``).

    Example:
        >>> class Pair:
        ...     __slots__ = ("a", "b")
        >>> make = SlotMaker(Pair, ("a",), {"b": 0})
        >>> pair = make(1)
        >>> pair.a, pair.b
        (1, 0)
    """

    def __init__(self, cls: type[Any], names: tuple[str, ...], defaults: dict[str, Any]) -> None:
        slots = [name for klass in cls.__mro__ for name in klass.__dict__.get("__slots__", ())]
        if ("__dict__" in slots or cls.__dictoffset__ or set(slots) != set(names) | set(defaults)
                or len(slots) != len(names) + len(defaults)):
            raise ValueError(f"{cls.__qualname__}'s slots are {slots}, not {names} and {sorted(defaults)}")
        for name in (*names, *defaults):
            if type(getattr(cls, name)) is not types.MemberDescriptorType:
                raise ValueError(f"{cls.__qualname__}.{name} is not a slot")
        self.cls = cls
        self.names = names
        self.defaults = list(defaults.items())

    def __call__(self, *values: Any) -> Any:
        if len(values) != len(self.names):
            raise TypeError(f"{self.cls.__qualname__} takes {len(self.names)} values, not {len(values)}")
        obj = object.__new__(self.cls)
        for name, value in zip(self.names, values):
            setattr(obj, name, value)
        for name, value in self.defaults:
            setattr(obj, name, value)
        return obj

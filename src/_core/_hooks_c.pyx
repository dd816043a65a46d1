"""What a job's hooks and ``context=True`` handler get: the fields of a Context and the
JobOutcome of an attempt, built in C (Cython twin of ``_hooks_py``; see there).

A worker's Context comes from :func:`job_context`: ``ContextFields.__new__`` on the Python
subclass (``fastjobs.Context``) allocates it without calling ``__init__``, and its fields are
C slots stored directly (cachegrind, per job: ~3,600 instructions for the Python
``JobContext(...)``, ~400 here).
"""

cimport cython
from cpython.object cimport PyObject, PyTypeObject
from cpython.type cimport PyType_IsSubtype
from time import monotonic as _monotonic, time as _time

BATCH = "fastjobs.batch"

cdef tuple _NO_ARGS = ()


cdef class ContextFields:
    """The fields of a :class:`fastjobs.Context`; see ``_hooks_py``."""

    cdef public object job_id
    cdef public object cancelled
    cdef object _meta, _claim, _record, _worker, _lease_until
    cdef double _confirmed, _lease
    cdef object _f_task, _f_queue, _f_attempt, _f_max_attempts, _f_token, _f_backend, _f_loop
    cdef object _f_batch_id, _f_args, _f_kwargs, _f_state, _f_worker_id

    def __init__(self, job_id, task, queue, attempt, max_attempts, _token, _backend, _loop, lease_until,
                 cancelled=False, batch_id=None, args=(), kwargs=None, meta=None, state=None, worker_id=""):
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

    def _read_only(self, name):
        if self._record is not None:
            raise AttributeError(f"a worker's Context is read-only, except job_id, meta, cancelled and "
                                 f"lease_until: cannot set {name}")

    @property
    def task(self):
        if self._record is None:
            return self._f_task
        return self._record.task

    @task.setter
    def task(self, value):
        self._read_only("task")
        self._f_task = value

    @property
    def queue(self):
        if self._record is None:
            return self._f_queue
        return self._record.queue

    @queue.setter
    def queue(self, value):
        self._read_only("queue")
        self._f_queue = value

    @property
    def attempt(self):
        if self._claim is None:
            return self._f_attempt
        return self._claim.attempt

    @attempt.setter
    def attempt(self, value):
        self._read_only("attempt")
        self._f_attempt = value

    @property
    def max_attempts(self):
        if self._record is None:
            return self._f_max_attempts
        return self._record.max_attempts

    @max_attempts.setter
    def max_attempts(self, value):
        self._read_only("max_attempts")
        self._f_max_attempts = value

    @property
    def _token(self):
        if self._claim is None:
            return self._f_token
        return self._claim.token

    @_token.setter
    def _token(self, value):
        self._read_only("_token")
        self._f_token = value

    @property
    def _backend(self):
        if self._worker is None:
            return self._f_backend
        return self._worker._backend

    @_backend.setter
    def _backend(self, value):
        self._read_only("_backend")
        self._f_backend = value

    @property
    def _loop(self):
        if self._worker is None:
            return self._f_loop
        return self._worker._loop

    @_loop.setter
    def _loop(self, value):
        self._read_only("_loop")
        self._f_loop = value

    @property
    def args(self):
        if self._record is None:
            return self._f_args
        return self._record.args

    @args.setter
    def args(self, value):
        self._read_only("args")
        self._f_args = value

    @property
    def kwargs(self):
        if self._record is None:
            return self._f_kwargs
        return self._record.kwargs

    @kwargs.setter
    def kwargs(self, value):
        self._read_only("kwargs")
        self._f_kwargs = value

    @property
    def state(self):
        if self._worker is None:
            return self._f_state
        return self._worker.state

    @state.setter
    def state(self, value):
        self._read_only("state")
        self._f_state = value

    @property
    def worker_id(self):
        if self._worker is None:
            return self._f_worker_id
        return self._worker.id

    @worker_id.setter
    def worker_id(self, value):
        self._read_only("worker_id")
        self._f_worker_id = value

    @property
    def batch_id(self):
        """For a batch callback (``then``/``catch``/``finally_``): the batch's id, for ``app.get_batch``."""
        if self._record is None:
            return self._f_batch_id
        meta = self._record.meta
        return meta.get(BATCH) if meta else None

    @batch_id.setter
    def batch_id(self, value):
        self._read_only("batch_id")
        self._f_batch_id = value

    @property
    def meta(self):
        meta = self._meta
        if meta is None:  # a worker's Context: its record's, read once
            meta = self._meta = self._record.meta or {}
        return meta

    @meta.setter
    def meta(self, value):
        self._meta = value

    @property
    def lease_until(self):
        """When the lease runs out unless renewed (the worker's clock, epoch seconds); renewed while the job runs."""
        until = self._lease_until
        if until is None:  # a worker's Context, not renewed yet: its lease as last confirmed, on the wall clock
            confirmed = self._confirmed
            now = _time()
            until = self._lease_until = now + self._lease - (_monotonic() - confirmed if confirmed > 0.0 else 0.0)
        return until

    @lease_until.setter
    def lease_until(self, value):
        self._lease_until = value


def job_context(type cls, claim, record, worker, double confirmed, double lease):
    """A worker's Context (of class ``cls``, a subclass of :class:`ContextFields`) for the job of
    ``claim`` and ``record``: its fields read from them and ``worker`` when asked. Its lease
    was confirmed at ``confirmed`` (``time.monotonic()``; 0: unknown, now) for ``lease`` seconds."""
    if not PyType_IsSubtype(cls, ContextFields):
        raise TypeError(f"job_context() needs a subclass of ContextFields, not {cls!r}")
    # The class's own tp_new (ContextFields', inherited), called directly: ContextFields.__new__(cls)
    # would look __new__ up and call it through its Python wrapper (~300 instructions more).
    cdef ContextFields ctx = <ContextFields>((<PyTypeObject*>cls).tp_new(cls, <PyObject*>_NO_ARGS, NULL))
    ctx.job_id = claim.id
    ctx.cancelled = False
    ctx._claim = claim
    ctx._record = record
    ctx._worker = worker
    ctx._confirmed = confirmed
    ctx._lease = lease
    return ctx


@cython.final
cdef class JobOutcome:
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

    cdef public object status, error, result, seconds, will_retry, timed_out

    def __init__(self, status, error=None, result=None, seconds=0.0, will_retry=False, timed_out=False):
        self.status = status
        self.error = error
        self.result = result
        self.seconds = seconds
        self.will_retry = will_retry
        self.timed_out = timed_out

    def __repr__(self):
        return f"JobOutcome(status={self.status!r}, error={self.error!r}, seconds={self.seconds:.6f})"


cdef extern from "Python.h":
    int PyContext_Enter(object ctx) except -1
    int PyContext_Exit(object ctx) except -1


def after_success(hook, context, ctx, value, seconds):
    """``context.run(hook, ctx, JobOutcome("succeeded", None, value, seconds))``: the outcome
    built in C and the context entered without a ``Context.run`` call; returns what the hook
    returned, raises what it raised."""
    cdef JobOutcome outcome = JobOutcome.__new__(JobOutcome)
    outcome.status = "succeeded"
    outcome.error = None
    outcome.result = value
    outcome.seconds = seconds
    outcome.will_retry = False
    outcome.timed_out = False
    PyContext_Enter(context)
    try:
        return hook(ctx, outcome)
    finally:
        PyContext_Exit(context)


cdef extern from "Python.h":
    ctypedef struct PyMemberDef:
        const char* name
        int type
        Py_ssize_t offset
    ctypedef struct PyMemberDescrObject:
        PyMemberDef* d_member
    object PyType_GenericAlloc(type cls, Py_ssize_t nitems)
    int PyMember_SetOne(char* addr, PyMemberDef* member, PyObject* value) except -1

from types import MemberDescriptorType as _MemberDescriptor


@cython.final
cdef class SlotMaker:
    """Builds instances of a Python class with ``__slots__`` (and no ``__dict__``) without calling
    its ``__init__``: each slot stored through its member descriptor's C definition.

    ``SlotMaker(cls, names, defaults)`` then ``maker(*values)``: the slots ``names`` get
    ``values``, the others ``defaults`` (a dict; every other slot of ``cls`` must be in it). The
    class's attribute reads stay what the 3.11 interpreter specializes (slots); what is saved is
    ``type.__call__`` and the ``__init__`` frame (``fastjobs.executors.Running``: ~3,700
    instructions a job built by ``__init__``)."""

    cdef type cls
    cdef list members  # the member descriptors, kept alive: names first, then defaults
    cdef list fixed  # the default values, in order
    cdef Py_ssize_t count

    def __init__(self, type cls, tuple names, dict defaults):
        slots = [name for klass in cls.__mro__ for name in klass.__dict__.get("__slots__", ())]
        if "__dict__" in slots or cls.__dictoffset__ or set(slots) != set(names) | set(defaults) or len(slots) != len(names) + len(defaults):
            raise ValueError(f"{cls.__qualname__}'s slots are {slots}, not {names} and {sorted(defaults)}")
        self.cls = cls
        self.members = []
        for name in (*names, *defaults):
            descriptor = getattr(cls, name)
            if type(descriptor) is not _MemberDescriptor:
                raise ValueError(f"{cls.__qualname__}.{name} is not a slot")
            self.members.append(descriptor)
        self.fixed = list(defaults.values())
        self.count = len(names)

    def __call__(self, *values):
        if len(values) != self.count:
            raise TypeError(f"{self.cls.__qualname__} takes {self.count} values, not {len(values)}")
        obj = PyType_GenericAlloc(self.cls, 0)
        cdef char* addr = <char*><PyObject*>obj
        cdef Py_ssize_t i = 0
        cdef object value
        for value in values:
            PyMember_SetOne(addr, (<PyMemberDescrObject*><PyObject*>self.members[i]).d_member, <PyObject*>value)
            i += 1
        for value in self.fixed:
            PyMember_SetOne(addr, (<PyMemberDescrObject*><PyObject*>self.members[i]).d_member, <PyObject*>value)
            i += 1
        return obj

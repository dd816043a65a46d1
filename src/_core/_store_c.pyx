"""The memory backend's job record, compiled: built in C and invisible to the cyclic GC.

``_store_py`` is the pure-Python twin with the same fields and constructor, and the same
``insert``, ``lease`` and ``succeed`` (an enqueue's, a claim's and a plain success's per-job
steps, one C loop each).

Why it exists: ``memory://`` keeps every job (queued, running, and finished
ones until their retention ends) as one record. As an ordinary Python object
each record is tracked by the cyclic garbage collector, and with a few hundred
thousand of them the full collections that a growing heap triggers were ~18 %
of a worker's CPU time. A record holds only str, bytes, numbers, None and a
list of bytes, so it can never be part of a reference cycle: ``no_gc`` is safe,
and the collector never walks these records at all.
"""

cimport cython
from cpython.float cimport PyFloat_CheckExact, PyFloat_FromDouble
from cpython.tuple cimport PyTuple_Check, PyTuple_GET_SIZE
from cpython.dict cimport PyDict_GetItem, PyDict_SetItem, PyDict_DelItem
from cpython.object cimport PyObject

# The state numbers of fastjobs._core._states_* (a test checks they agree).
cdef int _SCHEDULED = 0
cdef int _QUEUED = 1
cdef object _ACTIVE = 2
cdef object _SUCCEEDED = 3


@cython.no_gc
@cython.final
cdef class JobSlot:
    """One stored job of the memory backend; mutable, guarded by the backend's lock.

    Built from a ``NewJob`` tuple ``(id, queue, priority, delay, max_attempts,
    body, unique_key)`` and the backend's clock.

    Example:
        >>> slot = JobSlot(("j1", "default", 0, 0.0, 3, b"body", None), 100.0)
        >>> slot.state, slot.run_at, slot.attempt
        (1, 100.0, 0)
    """

    cdef public object id
    cdef public object queue
    cdef public object state
    cdef public object priority
    cdef public object attempt
    cdef public object max_attempts
    cdef public object token
    cdef public object body
    cdef public object result
    cdef public object errors
    cdef public object enqueued_at
    cdef public object run_at
    cdef public object started_at
    cdef public object finished_at
    cdef public object lease_until
    cdef public object unique_key

    def __init__(self, new, now):
        cdef double at = now
        cdef double delay
        cdef tuple fields
        # The jobs of one enqueue share one float object for their enqueue time (two floats
        # fewer per stored job); another number is turned into a float, as the twin does.
        if not PyFloat_CheckExact(now):
            now = PyFloat_FromDouble(at)
        # A NewJob, or any sequence of at least its first seven fields (read without bounds
        # checks once their count is known).
        fields = <tuple>new if PyTuple_Check(new) else tuple(new)
        if PyTuple_GET_SIZE(fields) < 7:
            raise IndexError(f"a job slot is built from at least 7 fields, not {PyTuple_GET_SIZE(fields)}")
        delay = fields[3]
        self.id = fields[0]
        self.queue = fields[1]
        self.priority = fields[2]
        self.max_attempts = fields[4]
        self.body = fields[5]
        self.unique_key = fields[6]
        self.attempt = 0
        self.token = 0
        self.result = None
        self.errors = None
        self.enqueued_at = now
        self.started_at = None
        self.finished_at = None
        self.lease_until = None
        if delay > 0:
            self.state = _SCHEDULED
            self.run_at = at + delay
        else:
            self.state = _QUEUED
            self.run_at = now


def insert(list jobs, now, dict store, dict tasks, live_of, index_of):
    """Store the leading plain NewJobs of ``jobs``: see ``_store_py.insert``."""
    cdef Py_ssize_t pos, n = len(jobs)
    cdef tuple new
    cdef JobSlot job
    cdef dict live = None
    live_queue = index_queue = index = None
    for pos in range(n):
        new = <tuple>jobs[pos]
        if PyTuple_GET_SIZE(new) < 13:
            raise IndexError(f"a NewJob has 13 fields, not {PyTuple_GET_SIZE(new)}")
        if new[6] is not None or new[8] or new[10] is not None or new[12]:  # unique_key, depends_on, limit, tags
            return pos
        job_id = new[0]
        queue = new[1]
        job = JobSlot(new, now)
        store[job_id] = job
        tasks[job_id] = new[11]
        if queue != live_queue:
            live_queue = queue
            live = <dict>live_of(queue)
        live[job_id] = None
        if queue != index_queue:
            index_queue = queue
            index = index_of(queue)
        index.push(job_id, new[2], job.run_at if new[3] > 0 else 0.0)
    return n


def lease(dict store, dict active, list taken, now, until, claim, list claims):
    """Lease the jobs ``taken`` (ids of slots in ``store``): see ``_store_py.lease``."""
    cdef JobSlot job
    for job_id in taken:
        job = <JobSlot>store[job_id]
        job.state = _ACTIVE
        job.attempt = job.attempt + 1
        job.token = job.token + 1
        job.started_at = now
        job.lease_until = until
        active[job_id] = job
        claims.append(tuple.__new__(claim, (job_id, job.token, job.attempt, job.body)))


def succeed(dict active, list acks, now, succeed_kind, dict dependants, list applied, list succeeded):
    """Apply the leading plain successes of ``acks``: see ``_store_py.succeed``."""
    cdef Py_ssize_t i, n = len(acks)
    cdef JobSlot job
    cdef PyObject* found
    cdef tuple ack
    for i in range(n):
        ack = <tuple>acks[i]
        job_id = ack[0]
        found = PyDict_GetItem(active, job_id)
        if found == NULL or (<JobSlot>found).token != ack[1]:
            applied.append(False)
            continue
        job = <JobSlot>found
        if ack[2] != succeed_kind or job.unique_key is not None or (dependants and job_id in dependants):
            return i
        PyDict_DelItem(active, job_id)  # `job` holds its own reference to the slot
        job.lease_until = None
        job.state = _SUCCEEDED
        job.result = ack[3]
        job.finished_at = now
        succeeded.append(job)
        applied.append(True)
    return n

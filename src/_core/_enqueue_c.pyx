# cython: language_level=3, boundscheck=False, wraparound=False
"""Enqueue's per-job work, compiled: new job ids, and calls made NewJobs.

The behaviour is ``_enqueue_py``'s (read its docstring). Ids are written into a new str
byte by byte (about 16 ns each, against 160 for the twin's %-formatting and 290 for the
f-string it replaced); ``new_jobs`` builds the common call's NewJob in one C loop: its fields
read once, its body from the task's JobTemplate, the tuple made here. Any other call goes
through ``call.to_new_job``.
"""

import os
import time
from types import MemberDescriptorType

from fastjobs.constants import BATCH as _BATCH, PIPE as _PIPE

from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF
from cpython.tuple cimport PyTuple_GET_SIZE
from libc.string cimport memcpy

cdef extern from "Python.h":
    ctypedef struct PyMemberDef:
        int type
        Py_ssize_t offset
    ctypedef struct PyMemberDescrObject:
        PyMemberDef* d_member
    int T_OBJECT_EX
    object PyUnicode_New(Py_ssize_t size, Py_UCS4 maxchar)
    void* PyUnicode_DATA(object o)
    bint PyTuple_CheckExact(object o)
    bint PyDict_CheckExact(object o)

cdef unsigned long long _MASK48 = (1ULL << 48) - 1
cdef unsigned long long _next = int.from_bytes(os.urandom(6), "big")
cdef const char* _HEX = b"0123456789abcdef"


cdef inline void _hex(char* out, unsigned long long value, int digits) noexcept:
    cdef int k
    for k in range(digits - 1, -1, -1):
        out[k] = _HEX[value & 15]
        value >>= 4


def new_job_ids(Py_ssize_t n):
    """``n`` new job ids, time-ordered by their first 12 hex digits (milliseconds)."""
    global _next
    cdef char head[20]
    cdef bytes rnd = os.urandom(4)
    cdef const unsigned char* r = rnd
    cdef unsigned long long start, ms = <unsigned long long>(int(time.time() * 1000)) & _MASK48
    cdef Py_ssize_t i
    cdef int k
    cdef char* data
    _hex(head, ms, 12)
    for k in range(4):
        head[12 + 2 * k] = _HEX[r[k] >> 4]
        head[13 + 2 * k] = _HEX[r[k] & 15]
    # The GIL is held from here to the return: the run of counter values is this call's alone.
    start = _next
    _next = (start + <unsigned long long>n) & _MASK48
    out = PyList_New(n)
    for i in range(n):
        s = PyUnicode_New(32, 127)
        data = <char*>PyUnicode_DATA(s)
        memcpy(data, head, 20)
        _hex(data + 20, (start + <unsigned long long>i) & _MASK48, 12)
        Py_INCREF(s)
        PyList_SET_ITEM(out, i, s)
    return out


# The fields of a Call that new_jobs reads, by position in _CALL_FIELDS.
cdef enum:
    _TASK, _ARGS, _KWARGS, _OPTIONS, _DELAY, _JOB_ID, _UNIQUE_KEY, _UNIQUE_TTL, _DEPENDS_ON, _AFTER, _META, _TAGS, _N

_CALL_FIELDS = ("task", "args", "kwargs", "options", "delay", "job_id", "unique_key", "unique_ttl",
                "depends_on", "after", "meta", "tags")


cdef class _Slots:
    """Where a __slots__ class keeps the Call fields: read at these offsets, not through
    getattr (a generic attribute lookup was ~25 ns a field, most of the loop's cost)."""

    cdef object cls
    cdef bint usable
    cdef Py_ssize_t offsets[_N]

    def __init__(self, cls):
        self.cls = cls
        self.usable = True
        for i, name in enumerate(_CALL_FIELDS):
            desc = getattr(cls, name, None)
            if type(desc) is not MemberDescriptorType or (<PyMemberDescrObject*>desc).d_member.type != T_OBJECT_EX:
                self.usable = False  # not a plain slot: every call of this class goes through to_new_job
                return
            self.offsets[i] = (<PyMemberDescrObject*>desc).d_member.offset

    cdef inline bint read(self, object obj, PyObject** fields) noexcept:
        """Fill ``fields`` with the slots' values (borrowed); False if one is unset."""
        cdef char* base = <char*><PyObject*>obj
        cdef int i
        for i in range(_N):
            fields[i] = (<PyObject**>(base + self.offsets[i]))[0]
            if fields[i] == NULL:
                return False
        return True


cdef _Slots _layout = _Slots(object)


def new_jobs(list calls, list ids, double now, max_size, new_job):
    """``[call.to_new_job(max_size, job_id, now) for call, job_id in zip(calls, ids)]``.

    ``new_job`` is the NewJob class: the common call's tuple is built here. A task's
    templates and arity, and an options' fixed fields, are read once per run of calls that
    share them; a call that goes through ``to_new_job`` ends the run (it may make a template).
    """
    global _layout
    cdef Py_ssize_t i, nargs, n = min(len(calls), len(ids))
    cdef list out = PyList_New(n)
    cdef PyObject* f[_N]
    cdef Py_ssize_t min_args = 0, max_args = -1
    cdef object task, opts, template, value
    last_task = last_opts = templates = name = queue = priority = max_attempts = limit = None
    for i in range(n):
        call = calls[i]
        job_id = ids[i]
        value = None
        if type(call) is not _layout.cls:
            _layout = _Slots(type(call))
        # Meta of the caller's or a hook's (a trace context) is only encoded; fastjobs' own keys
        # of a chain step (its argument comes later) or a batch callback (no parents in its
        # body) change what to_new_job does.
        if _layout.usable and _layout.read(call, f) and not <object>f[_KWARGS] \
                and (<object>f[_META] is None or (PyDict_CheckExact(<object>f[_META])
                     and _PIPE not in <dict>f[_META] and _BATCH not in <dict>f[_META])) \
                and PyTuple_CheckExact(<object>f[_ARGS]):
            task = <object>f[_TASK]
            opts = <object>f[_OPTIONS]
            if task is not last_task:
                last_task = task
                templates = (task.template, task._other_template) if task.typed is None else (None, None)
                min_args, max_args, name = task.min_args, task.max_args, task.name
            template = templates[0]
            if template is None or (<tuple>template)[0] is not opts:
                template = templates[1]
            nargs = PyTuple_GET_SIZE(<object>f[_ARGS])
            if template is not None and (<tuple>template)[0] is opts and min_args <= nargs <= max_args:
                if opts is not last_opts:
                    last_opts = opts
                    queue, priority, max_attempts, limit = opts.queue, opts.priority, opts.max_attempts, opts.limit
                own = <object>f[_JOB_ID]
                if own:
                    job_id = own
                delay = <object>f[_DELAY]
                unique_key = <object>f[_UNIQUE_KEY]
                depends_on = <object>f[_DEPENDS_ON]
                body = (<tuple>template)[1].encode(job_id, <object>f[_ARGS], None, now + delay if delay else 0.0,
                                                  now, unique_key, depends_on, <object>f[_META], max_size)
                value = tuple.__new__(new_job, (job_id, queue, priority, delay, max_attempts, body, unique_key,
                                                <object>f[_UNIQUE_TTL], depends_on, <object>f[_AFTER], limit, name,
                                                <object>f[_TAGS]))
        if value is None:
            value = call.to_new_job(max_size, job_id, now)
            last_task = None
        Py_INCREF(value)
        PyList_SET_ITEM(out, i, value)
    return out

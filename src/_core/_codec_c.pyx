# cython: language_level=3, annotation_typing=False
"""The msgpack job codec: :class:`JobRecord` and the bytes it travels as (compiled).

``_codec_py.py`` is the pure-Python twin and the reference: both produce the
very same bytes and raise the very same errors with the very same messages.
No pickle is involved anywhere: a job is data, never code, so a worker can
decode bytes from any producer without trusting it.

A job travels as one msgpack array of 16 elements::

    [SCHEMA_VERSION, id, task, queue, args, kwargs, priority, attempt,
     max_attempts, run_at, enqueued_at, timeout, backoff, unique_key, parents, meta]

(``use_bin_type`` on; every float as float 64; ``args``, ``parents`` and
``backoff`` as arrays; ``run_at``, ``enqueued_at``, ``timeout`` and the numbers
of ``backoff`` always as floats.)

How user values travel (``args``, ``kwargs``, ``meta``, and whatever goes
through :func:`encode_value`: results, errors)::

    you pass                         on the wire                you get back
    None, bool                       nil, bool                  the same
    int in -2**63 .. 2**64-1         int                        int
    float                            float 64                   float (NaN, inf, -0.0 kept)
    str                              str (UTF-8)                str
    bytes, bytearray, memoryview     bin                        bytes
    list, tuple                      array                      list
    dict (keys str, int or bytes)    map                        dict
    timezone-aware datetime          timestamp (ext -1)         aware datetime in UTC
    uuid.UUID                        ext 1: its 16 bytes        uuid.UUID
    decimal.Decimal                  ext 2: str() in ASCII      decimal.Decimal

Subclasses travel as their base type (an ``IntEnum`` arrives as an int, a
namedtuple as a list, an ``OrderedDict`` as a dict). A datetime keeps its
instant to the microsecond but not its time zone. Everything else is refused
with :class:`UnencodableError` naming the value's place and type: a naive
datetime (attach a tzinfo), ``date``, ``time``, ``timedelta``, sets, custom
objects, ints out of range, strs holding lone surrogates, other dict key types,
and containers nested deeper than 100 levels.

Decoding never raises anything but :class:`CorruptJobError` (with what is
wrong) or :class:`PayloadTooLargeError`, whatever the bytes. It refuses what
encoding refuses to write: containers nested deeper than 100 levels, an
``attempt`` below 0, a ``max_attempts`` below 1, and a ``backoff`` that
``Backoff.from_spec`` rejects (so the retry code never meets one).

Why it is faster than the twin: jobs are written straight into a C buffer by
a hand-written msgpack writer (exact-type checks first, no ``default`` hook,
no intermediate list), and read back by a hand-written reader that builds the
record's fields in place. Anything unusual on the way in (an extension type,
a field of the wrong type, corrupt bytes) is handed to msgpack's own unpacker
and the twin's checks, so what is accepted, and every error message, is
decided by the same code as in the twin.

Example:
    >>> job = JobRecord(id="1f0c", task="app.tasks.send_email", args=("a@b.c", 42))
    >>> data = encode_job(job)
    >>> decode_job(data) == job
    True
    >>> decode_value(encode_value({"sent": True}))
    {'sent': True}
"""

from __future__ import annotations

cimport cython
from cpython.bool cimport PyBool_Check
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_Check, PyByteArray_GET_SIZE
from cpython.bytes cimport (
    PyBytes_AS_STRING,
    PyBytes_Check,
    PyBytes_CheckExact,
    PyBytes_FromStringAndSize,
    PyBytes_GET_SIZE,
)
from cpython.datetime cimport (
    PyDateTime_Check,
    PyDelta_Check,
    import_datetime,
    timedelta_days,
    timedelta_microseconds,
    timedelta_seconds,
)
from cpython.dict cimport PyDict_Check, PyDict_CheckExact, PyDict_Next, PyDict_Size
from cpython.float cimport PyFloat_AS_DOUBLE, PyFloat_Check, PyFloat_CheckExact
from cpython.list cimport (
    PyList_AsTuple,
    PyList_Check,
    PyList_CheckExact,
    PyList_GET_ITEM,
    PyList_GET_SIZE,
    PyList_New,
    PyList_SET_ITEM,
)
from cpython.long cimport (
    PyLong_AsDouble,
    PyLong_AsLongLongAndOverflow,
    PyLong_AsUnsignedLongLong,
    PyLong_Check,
    PyLong_CheckExact,
)
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.memoryview cimport PyMemoryView_Check
from cpython.object cimport PyObject
from cpython.pyport cimport PY_SSIZE_T_MAX
from libc.limits cimport LLONG_MIN
from cpython.ref cimport Py_INCREF
from cpython.tuple cimport PyTuple_Check, PyTuple_GET_ITEM, PyTuple_GET_SIZE, PyTuple_New, PyTuple_SET_ITEM
from cpython.unicode cimport (
    PyUnicode_Check,
    PyUnicode_CheckExact,
    PyUnicode_DecodeUTF8,
    PyUnicode_GET_LENGTH,
)
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy

import datetime as _dt
import decimal
import operator
import uuid

import msgpack

# The cold half of the codec (every error's wording, the extension types, the
# slow decode path) is plain Python shared with the twin: see _codec_rules.
from fastjobs._core._codec_rules import DEFAULT_MAX_PAYLOAD, FIELDS, SCHEMA_VERSION, _EPOCH, _BadExtension
from fastjobs._core._codec_rules import _Changed, _Refused, _backoff_checker, _corrupt_bytes, _corrupt_field
from fastjobs._core._codec_rules import _decimal_text, _decode_ext as _decode_other_ext, _explain_value
from fastjobs._core._codec_rules import _field_error, _newer_schema, _not_bytes, _problem_in_str, _sent_key
from fastjobs._core._codec_rules import _too_deep_error, _too_large, _type_name, _wire_name
from fastjobs._core._errors import CorruptJobError, UnencodableError
from fastjobs._core._states_c import Backoff as _Backoff

cdef extern from "Python.h":
    # Declared here without an exception clause (extern functions are
    # noexcept): on failure the caller clears the error and raises the
    # explained UnencodableError itself.
    const char* _utf8 "PyUnicode_AsUTF8AndSize"(object text, Py_ssize_t* size)
    void PyErr_Clear()

import_datetime()

cdef enum:
    _C_SCHEMA_VERSION = 1
    _C_EXT_UUID = 1
    _C_EXT_DECIMAL = 2
    _C_MAX_DEPTH = 100  # far below msgpack's own pack (1024) and unpack limits
    # Most jobs fit in the stack buffer, so encoding one costs no malloc at
    # all; bigger ones move to the heap on the first overflow.
    _STACK_BUF = 1024

cdef uint64_t _C_ITEM_LIMIT = 0xFFFFFFFF  # msgpack lengths are 32-bit
cdef int64_t _C_UTC_MIN_SECONDS = -62135596800
cdef int64_t _C_UTC_MAX_SECONDS = 253402300799
cdef object _unpackb = msgpack.unpackb
cdef object _index = operator.index
cdef object _datetime_sub = _dt.datetime.__sub__
cdef object _UUID = uuid.UUID
cdef object _Decimal = decimal.Decimal


@cython.freelist(32)
cdef class JobRecord:
    """One job as it travels: identity, routing, arguments and retry policy.

    A plain mutable record: nothing is checked here; :func:`encode_job` checks
    every field. ``run_at`` and ``enqueued_at`` are epoch seconds (0 = now);
    ``backoff`` is ``Backoff.to_spec()``: ``(kind, base, factor, cap, jitter)``.

    Example:
        >>> job = JobRecord(id="1f0c", task="app.tasks.send_email", args=("a@b.c",))
        >>> job.queue, job.kwargs, job.max_attempts
        ('default', {}, 1)
        >>> job.replace(attempt=1).attempt
        1
    """

    # Untyped on purpose: the twin's slots accept anything, so these must too;
    # encode_job is where types are checked.
    cdef public object id
    cdef public object task
    cdef public object queue
    cdef public object args
    cdef public object kwargs
    cdef public object priority
    cdef public object attempt
    cdef public object max_attempts
    cdef public object run_at
    cdef public object enqueued_at
    cdef public object timeout
    cdef public object backoff
    cdef public object unique_key
    cdef public object parents
    cdef public object meta

    # Lets the twin's __eq__ recognise this class without importing this module.
    _FASTJOBS_JOB_RECORD = True

    def __init__(self, id, task, queue="default", args=(), kwargs=None, priority=0,
                 attempt=0, max_attempts=1, run_at=0.0, enqueued_at=0.0, timeout=None,
                 backoff=None, unique_key=None, parents=(), meta=None):
        self.id = id
        self.task = task
        self.queue = queue
        self.args = args
        self.kwargs = {} if kwargs is None else kwargs
        self.priority = priority
        self.attempt = attempt
        self.max_attempts = max_attempts
        self.run_at = run_at
        self.enqueued_at = enqueued_at
        self.timeout = timeout
        self.backoff = backoff
        self.unique_key = unique_key
        self.parents = parents
        self.meta = {} if meta is None else meta

    cdef tuple _values(self):
        return (
            self.id, self.task, self.queue, self.args, self.kwargs, self.priority,
            self.attempt, self.max_attempts, self.run_at, self.enqueued_at,
            self.timeout, self.backoff, self.unique_key, self.parents, self.meta,
        )

    def _field_values(self):
        return self._values()

    def __eq__(self, other):
        if isinstance(other, JobRecord):
            return self._values() == (<JobRecord>other)._values()
        if _is_job_record(other):
            return self._values() == other._field_values()
        return NotImplemented

    def __ne__(self, other):
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = None  # mutable, so never a dict key

    def __repr__(self):
        return (
            f"JobRecord(id={self.id!r}, task={self.task!r}, queue={self.queue!r}, "
            f"attempt={self.attempt!r})"
        )

    def __reduce__(self):
        # Explicit so that copy.copy() behaves the same on both twins (and so
        # Cython does not generate its own pickling support).
        return (type(self), self._values())

    def replace(self, **changes):
        """Return a copy with some fields changed; unchanged fields are shared, not copied.

        Example:
            >>> JobRecord(id="1f0c", task="t").replace(attempt=2, queue="slow").queue
            'slow'
        """
        values = dict(zip(FIELDS, self._values()))
        for name, value in changes.items():
            if name not in values:
                raise TypeError(f"JobRecord.replace() got an unexpected field {name!r}")
            values[name] = value
        return type(self)(**values)


def _is_job_record(obj):
    return isinstance(obj, JobRecord) or getattr(type(obj), "_FASTJOBS_JOB_RECORD", False) is True


_valid_backoffs, _backoff_problem = _backoff_checker(_Backoff)
cdef dict _known_valid_backoffs = _valid_backoffs


# The twin takes these two from _codec_rules; here they are compiled, with C
# type checks, because they are not cold: every job or value that holds a
# timestamp, UUID or Decimal is decoded by msgpack's unpacker (the reader
# bails on extension types) and then walked. Measured on a job with a
# timestamp, three UUIDs and a Decimal: 4.4 us per decode against 6.1 us with
# the plain-Python ones.


cdef bint _too_deep(object value, int depth) except -1:
    """Whether decoded ``value``, a list or dict at ``depth``, holds one nested past the limit."""
    cdef object item
    if depth > _C_MAX_DEPTH:
        return True
    if PyList_CheckExact(value):
        for item in <list>value:
            if (PyList_CheckExact(item) or PyDict_CheckExact(item)) and _too_deep(item, depth + 1):
                return True
    else:
        for item in (<dict>value).values():
            if (PyList_CheckExact(item) or PyDict_CheckExact(item)) and _too_deep(item, depth + 1):
                return True
    return False


def _decode_ext(code, data):
    # Refusals and Decimals go to the shared one, which words every error.
    if code == _C_EXT_UUID and PyBytes_CheckExact(data) and PyBytes_GET_SIZE(data) == 16:
        return _UUID(bytes=data)
    return _decode_other_ext(code, data)


cdef inline object _checked_backoff(tuple spec):
    # The shared _backoff_problem, with its cache hit kept in C.
    if spec in _known_valid_backoffs:
        return None
    return _backoff_problem(spec)


# --------------------------------------------------------------------------
# The writer: msgpack written by hand into a growable buffer that starts on
# the C stack. Every header choice (smallest int form, signed only below zero,
# str8 for 32..255 bytes, fixext sizes, the three timestamp forms) is the one
# msgpack-python's packer makes, so the bytes equal the twin's; the tests hold
# both to that, byte for byte.

cdef struct _Writer:
    uint8_t* buf
    Py_ssize_t len
    Py_ssize_t cap
    bint heap


cdef int _grow(_Writer* w, Py_ssize_t extra) except -1:
    cdef Py_ssize_t need
    cdef Py_ssize_t cap = w.cap
    cdef uint8_t* fresh
    if extra > PY_SSIZE_T_MAX - w.len:
        raise MemoryError()
    need = w.len + extra
    while cap < need:
        cap = cap * 2 if cap <= PY_SSIZE_T_MAX // 2 else need
    if w.heap:
        fresh = <uint8_t*>PyMem_Realloc(w.buf, <size_t>cap)
    else:
        fresh = <uint8_t*>PyMem_Malloc(<size_t>cap)
        if fresh != NULL:
            memcpy(fresh, w.buf, <size_t>w.len)
    if fresh == NULL:
        raise MemoryError()
    w.buf = fresh
    w.cap = cap
    w.heap = True
    return 0


cdef inline uint8_t* _room(_Writer* w, Py_ssize_t extra) except NULL:
    if w.len + extra > w.cap:
        _grow(w, extra)
    return w.buf + w.len


cdef inline void _be16(uint8_t* p, uint16_t v) noexcept:
    p[0] = <uint8_t>(v >> 8)
    p[1] = <uint8_t>v


cdef inline void _be32(uint8_t* p, uint32_t v) noexcept:
    p[0] = <uint8_t>(v >> 24)
    p[1] = <uint8_t>(v >> 16)
    p[2] = <uint8_t>(v >> 8)
    p[3] = <uint8_t>v


cdef inline void _be64(uint8_t* p, uint64_t v) noexcept:
    _be32(p, <uint32_t>(v >> 32))
    _be32(p + 4, <uint32_t>v)


cdef inline int _put_byte(_Writer* w, uint8_t b) except -1:
    cdef uint8_t* p = _room(w, 1)
    p[0] = b
    w.len += 1
    return 0


cdef int _put_u64(_Writer* w, uint64_t v) except -1:
    cdef uint8_t* p = _room(w, 9)
    if v < 0x80:
        p[0] = <uint8_t>v
        w.len += 1
    elif v < 0x100:
        p[0] = 0xcc
        p[1] = <uint8_t>v
        w.len += 2
    elif v < 0x10000:
        p[0] = 0xcd
        _be16(p + 1, <uint16_t>v)
        w.len += 3
    elif v < 0x100000000:
        p[0] = 0xce
        _be32(p + 1, <uint32_t>v)
        w.len += 5
    else:
        p[0] = 0xcf
        _be64(p + 1, v)
        w.len += 9
    return 0


cdef int _put_i64(_Writer* w, int64_t v) except -1:
    cdef uint8_t* p
    if v >= 0:
        return _put_u64(w, <uint64_t>v)
    p = _room(w, 9)
    if v >= -32:
        p[0] = <uint8_t>(v & 0xff)  # negative fixint
        w.len += 1
    elif v >= -128:
        p[0] = 0xd0
        p[1] = <uint8_t>(v & 0xff)
        w.len += 2
    elif v >= -32768:
        p[0] = 0xd1
        _be16(p + 1, <uint16_t>(v & 0xffff))
        w.len += 3
    elif v >= -(<int64_t>1 << 31):
        p[0] = 0xd2
        _be32(p + 1, <uint32_t>(v & 0xffffffff))
        w.len += 5
    else:
        p[0] = 0xd3
        _be64(p + 1, <uint64_t>v)
        w.len += 9
    return 0


cdef int _put_double(_Writer* w, double d) except -1:
    cdef uint64_t bits
    cdef uint8_t* p = _room(w, 9)
    memcpy(&bits, &d, 8)  # the IEEE 754 bits, NaN payloads and -0.0 included
    p[0] = 0xcb
    _be64(p + 1, bits)
    w.len += 9
    return 0


cdef int _put_raw(_Writer* w, const char* data, Py_ssize_t n, bint is_str) except -1:
    cdef uint8_t* p
    cdef Py_ssize_t head
    if <uint64_t>n > _C_ITEM_LIMIT:
        raise _Refused()
    p = _room(w, n + 5)
    if is_str:
        if n < 32:
            p[0] = <uint8_t>(0xa0 | n)
            head = 1
        elif n < 0x100:
            p[0] = 0xd9
            p[1] = <uint8_t>n
            head = 2
        elif n < 0x10000:
            p[0] = 0xda
            _be16(p + 1, <uint16_t>n)
            head = 3
        else:
            p[0] = 0xdb
            _be32(p + 1, <uint32_t>n)
            head = 5
    elif n < 0x100:
        p[0] = 0xc4
        p[1] = <uint8_t>n
        head = 2
    elif n < 0x10000:
        p[0] = 0xc5
        _be16(p + 1, <uint16_t>n)
        head = 3
    else:
        p[0] = 0xc6
        _be32(p + 1, <uint32_t>n)
        head = 5
    memcpy(p + head, data, <size_t>n)
    w.len += head + n
    return 0


cdef int _put_header(_Writer* w, Py_ssize_t n, uint8_t fix, uint8_t b16, uint8_t b32) except -1:
    # Arrays (0x90, 0xdc, 0xdd) and maps (0x80, 0xde, 0xdf).
    cdef uint8_t* p
    if <uint64_t>n > _C_ITEM_LIMIT:
        raise _Refused()
    p = _room(w, 5)
    if n < 16:
        p[0] = <uint8_t>(fix | n)
        w.len += 1
    elif n < 0x10000:
        p[0] = b16
        _be16(p + 1, <uint16_t>n)
        w.len += 3
    else:
        p[0] = b32
        _be32(p + 1, <uint32_t>n)
        w.len += 5
    return 0


cdef int _put_ext(_Writer* w, int8_t code, bytes data) except -1:
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    cdef uint8_t* p
    cdef Py_ssize_t head
    if <uint64_t>n > _C_ITEM_LIMIT:
        raise _Refused()
    p = _room(w, n + 6)
    if n == 1 or n == 2 or n == 4 or n == 8 or n == 16:
        p[0] = 0xd4 if n == 1 else 0xd5 if n == 2 else 0xd6 if n == 4 else 0xd7 if n == 8 else 0xd8
        p[1] = <uint8_t>code
        head = 2
    elif n < 0x100:
        p[0] = 0xc7
        p[1] = <uint8_t>n
        p[2] = <uint8_t>code
        head = 3
    elif n < 0x10000:
        p[0] = 0xc8
        _be16(p + 1, <uint16_t>n)
        p[3] = <uint8_t>code
        head = 4
    else:
        p[0] = 0xc9
        _be32(p + 1, <uint32_t>n)
        p[5] = <uint8_t>code
        head = 6
    memcpy(p + head, PyBytes_AS_STRING(data), <size_t>n)
    w.len += head + n
    return 0


cdef int _put_timestamp(_Writer* w, int64_t seconds, uint32_t nanoseconds) except -1:
    cdef uint64_t data64
    cdef uint8_t* p = _room(w, 15)
    if (<uint64_t>seconds >> 34) == 0:  # 0 <= seconds < 2**34
        data64 = (<uint64_t>nanoseconds << 34) | <uint64_t>seconds
        if (data64 & 0xffffffff00000000) == 0:  # timestamp 32
            p[0] = 0xd6
            p[1] = 0xff
            _be32(p + 2, <uint32_t>data64)
            w.len += 6
        else:  # timestamp 64
            p[0] = 0xd7
            p[1] = 0xff
            _be64(p + 2, data64)
            w.len += 10
    else:  # timestamp 96
        p[0] = 0xc7
        p[1] = 12
        p[2] = 0xff
        _be32(p + 3, nanoseconds)
        _be64(p + 7, <uint64_t>seconds)
        w.len += 15
    return 0


cdef int _put_str(_Writer* w, object text) except -1:
    cdef Py_ssize_t n
    cdef const char* data = _utf8(text, &n)
    if data == NULL:
        return -1  # UnicodeEncodeError (a lone surrogate) is set: _explain_value says where
    return _put_raw(w, data, n, True)


cdef int _put_pylong(_Writer* w, object value) except -1:
    cdef int overflow = 0
    cdef long long signed_value = PyLong_AsLongLongAndOverflow(value, &overflow)
    if overflow == 0:
        return _put_i64(w, signed_value)
    if overflow > 0:  # 2**63 .. 2**64-1 still fits as uint64; above raises OverflowError
        return _put_u64(w, PyLong_AsUnsignedLongLong(value))
    raise _Refused()


cdef int _put_key(_Writer* w, object key, bint names_only) except -1:
    if PyUnicode_CheckExact(key):
        return _put_str(w, key)
    if names_only:
        if PyUnicode_Check(key):
            return _put_str(w, key)
        raise _Refused()
    if PyUnicode_Check(key):
        return _put_str(w, key)
    if PyLong_Check(key):
        if PyBool_Check(key):
            return _put_byte(w, 0xc3 if key is True else 0xc2)
        return _put_pylong(w, key)
    if PyBytes_Check(key):
        return _put_raw(w, PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key), False)
    raise _Refused()


cdef int _put_list(_Writer* w, object items, int depth) except -1:
    cdef Py_ssize_t n = PyList_GET_SIZE(items)
    cdef Py_ssize_t i
    cdef object item
    if depth > _C_MAX_DEPTH:
        raise _Refused()
    _put_header(w, n, 0x90, 0xdc, 0xdd)
    for i in range(n):
        # A tzinfo or UUID subclass met on the way runs user code, which could
        # shrink the list under us: re-check the size before every read.
        if i >= PyList_GET_SIZE(items):
            raise _Changed()
        item = <object>PyList_GET_ITEM(items, i)
        _put_value(w, item, depth + 1)
    if PyList_GET_SIZE(items) != n:
        raise _Changed()
    return 0


cdef int _put_tuple(_Writer* w, object items, int depth) except -1:
    cdef Py_ssize_t n = PyTuple_GET_SIZE(items)
    cdef Py_ssize_t i
    if depth > _C_MAX_DEPTH:
        raise _Refused()
    _put_header(w, n, 0x90, 0xdc, 0xdd)
    for i in range(n):
        _put_value(w, <object>PyTuple_GET_ITEM(items, i), depth + 1)
    return 0


cdef inline bint _plain_key_type(PyObject* key) noexcept:
    cdef type cls = type(<object>key)
    return cls is str or cls is int or cls is bytes or cls is bool


cdef int _put_dict(_Writer* w, object mapping, int depth, bint names_only) except -1:
    cdef Py_ssize_t n = PyDict_Size(mapping)
    cdef Py_ssize_t pos = 0
    cdef Py_ssize_t count = 0
    cdef PyObject* key_ptr
    cdef PyObject* item_ptr
    cdef object key
    cdef object item
    cdef set sent = None
    if depth > _C_MAX_DEPTH:
        raise _Refused()
    # Keys of exact types are distinct on the wire because they are in the
    # dict; a subclass key (its own __hash__ or __eq__) may become equal to
    # another once converted, so only then is every converted key tracked.
    while PyDict_Next(mapping, &pos, &key_ptr, NULL):
        if not _plain_key_type(key_ptr):
            sent = set()
            break
    pos = 0
    _put_header(w, n, 0x80, 0xde, 0xdf)
    while PyDict_Next(mapping, &pos, &key_ptr, &item_ptr):
        key = <object>key_ptr  # owned references: user code may mutate the dict
        item = <object>item_ptr
        count += 1
        if count > n:
            raise _Changed()  # grew under us: the header would lie
        _put_key(w, key, names_only)
        if sent is not None:
            plain_key = _sent_key(key)
            if plain_key in sent:
                raise _Refused()  # two keys would travel as one
            sent.add(plain_key)
        _put_value(w, item, depth + 1)
    if count != n or PyDict_Size(mapping) != n:
        raise _Changed()
    return 0


cdef int _put_datetime(_Writer* w, object value) except -1:
    if value.utcoffset() is None:
        raise _Refused()  # naive
    # datetime.__sub__ itself, as the twin does, so an override cannot move it.
    delta = _datetime_sub(value, _EPOCH)
    cdef int64_t seconds
    if not PyDelta_Check(delta):
        raise _Refused()
    seconds = <int64_t>timedelta_days(delta) * 86400 + timedelta_seconds(delta)
    if seconds < _C_UTC_MIN_SECONDS or seconds > _C_UTC_MAX_SECONDS:
        raise _Refused()
    return _put_timestamp(w, seconds, <uint32_t>timedelta_microseconds(delta) * 1000)


cdef int _put_value(_Writer* w, object value, int depth) except -1:
    # Exact types first, in rough order of how often jobs carry them; the
    # subclasses and extension types pay for the slower checks in _put_other.
    cdef type cls = type(value)
    if cls is str:
        return _put_str(w, value)
    if cls is int:
        return _put_pylong(w, value)
    if cls is float:
        return _put_double(w, PyFloat_AS_DOUBLE(value))
    if value is None:
        return _put_byte(w, 0xc0)
    if cls is bool:
        return _put_byte(w, 0xc3 if value is True else 0xc2)
    if cls is list:
        return _put_list(w, value, depth)
    if cls is tuple:
        return _put_tuple(w, value, depth)
    if cls is dict:
        return _put_dict(w, value, depth, False)
    if cls is bytes:
        return _put_raw(w, PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value), False)
    return _put_other(w, value, depth)


cdef int _put_other(_Writer* w, object value, int depth) except -1:
    # Same order as the twin's _plain_other; a subclass is read from its C
    # storage, never through an override.
    cdef bytes data
    if PyUnicode_Check(value):
        return _put_str(w, value)
    if PyLong_Check(value):
        return _put_pylong(w, value)
    if PyFloat_Check(value):
        return _put_double(w, PyFloat_AS_DOUBLE(value))
    if PyBytes_Check(value):
        return _put_raw(w, PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value), False)
    if PyByteArray_Check(value):
        return _put_raw(w, PyByteArray_AS_STRING(value), PyByteArray_GET_SIZE(value), False)
    if PyMemoryView_Check(value):
        data = value.tobytes()
        return _put_raw(w, PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), False)
    if PyList_Check(value):
        return _put_list(w, value, depth)
    if PyTuple_Check(value):
        return _put_tuple(w, value, depth)
    if PyDict_Check(value):
        return _put_dict(w, value, depth, False)
    if PyDateTime_Check(value):
        return _put_datetime(w, value)
    if isinstance(value, _UUID):
        return _put_ext(w, _C_EXT_UUID, value.int.to_bytes(16, "big"))
    if isinstance(value, _Decimal):
        return _put_ext(w, _C_EXT_DECIMAL, _decimal_text(value))
    raise _Refused()


cdef int _put_user(_Writer* w, object value, int kind) except -1:
    # kind: 0 args, 1 kwargs, 2 meta, 3 a value for encode_value. Only the
    # failure path pays for naming things: the fast path raises a bare
    # _Refused (or whatever CPython raised) and _explain_value walks again.
    try:
        if kind == 1 or kind == 2:
            _put_dict(w, value, 1, True)
        else:
            _put_value(w, value, 1)
    except Exception as exc:
        if kind == 0:
            raise _explain_value("argument", "args", value, None, exc) from None
        if kind == 1:
            raise _explain_value(
                "keyword argument", "kwargs", value, "keyword names must be str", exc
            ) from None
        if kind == 2:
            raise _explain_value("metadata", "meta", value, "metadata keys must be str", exc) from None
        raise _explain_value("", "value", value, None, exc) from None
    return 0


cdef int _put_text_field(_Writer* w, object text, str name, Py_ssize_t index=-1) except -1:
    # Any str (the caller checked), which must be valid UTF-8. The field's
    # name ("parents[3]") is only built once something is wrong.
    cdef Py_ssize_t n
    cdef const char* data = _utf8(text, &n)
    if data == NULL or <uint64_t>n > _C_ITEM_LIMIT:
        PyErr_Clear()
        if index >= 0:
            name = f"{name}[{index}]"
        raise UnencodableError(_problem_in_str(f"job field {name!r}", str.__str__(text)))
    return _put_raw(w, data, n, True)


cdef int _put_name_field(_Writer* w, object value, str name) except -1:
    if PyUnicode_Check(value) and PyUnicode_GET_LENGTH(value) > 0:
        return _put_text_field(w, value, name)
    raise _field_error(name, "a non-empty str", value)


cdef int _put_int_field(_Writer* w, object value, str name,
                        long long minimum=LLONG_MIN, str expected=None) except -1:
    cdef int overflow = 0
    cdef long long number
    if PyLong_Check(value) and not PyBool_Check(value):
        number = PyLong_AsLongLongAndOverflow(value, &overflow)
        if overflow == 0:
            if number < minimum:  # the int's own value: an override of < is not asked
                raise _field_error(name, expected, value)
            return _put_i64(w, number)
    raise _field_error(name, "an int (not bool) in the signed 64-bit range", value)


cdef object _float_field(object value, str name, str expected):
    cdef double number
    if PyFloat_Check(value):
        return PyFloat_AS_DOUBLE(value)
    if PyLong_Check(value) and not PyBool_Check(value):
        try:
            number = PyLong_AsDouble(value)
        except OverflowError:
            raise _field_error(name, expected, value) from None
        return number
    raise _field_error(name, expected, value)


cdef int _put_float_field(_Writer* w, object value, str name, str expected) except -1:
    if PyFloat_Check(value):
        return _put_double(w, PyFloat_AS_DOUBLE(value))
    return _put_double(w, _float_field(value, name, expected))


cdef int _put_backoff(_Writer* w, object value) except -1:
    if value is None:
        return _put_byte(w, 0xc0)
    if not (PyTuple_Check(value) or PyList_Check(value)) or len(value) != 5:
        raise _field_error(
            "backoff",
            "None or a 5-tuple (kind: str, base: float, factor: float, cap: float, jitter: str)",
            value,
        )
    kind, base, factor, cap, jitter = value
    if not PyUnicode_Check(kind):
        raise _field_error("backoff[0]", "a str (the kind)", kind)
    _put_byte(w, 0x95)
    _put_text_field(w, kind, "backoff[0]")
    base = _float_field(base, "backoff[1]", "a number")
    factor = _float_field(factor, "backoff[2]", "a number")
    cap = _float_field(cap, "backoff[3]", "a number")
    _put_double(w, base)
    _put_double(w, factor)
    _put_double(w, cap)
    if not PyUnicode_Check(jitter):
        raise _field_error("backoff[4]", "a str (the jitter)", jitter)
    _put_text_field(w, jitter, "backoff[4]")
    problem = _checked_backoff((
        kind if PyUnicode_CheckExact(kind) else str.__str__(kind),
        base, factor, cap,
        jitter if PyUnicode_CheckExact(jitter) else str.__str__(jitter),
    ))
    if problem is not None:
        raise UnencodableError(f"job field 'backoff' is not a valid backoff: {problem}")
    return 0


cdef int _put_parents(_Writer* w, object value) except -1:
    cdef Py_ssize_t i
    cdef object parent
    if not (PyTuple_Check(value) or PyList_Check(value)):
        raise _field_error("parents", "a tuple or list of str job ids", value)
    # A copy, so that the count in the header is the count written.
    cdef tuple parents = tuple(value)
    _put_header(w, PyTuple_GET_SIZE(parents), 0x90, 0xdc, 0xdd)
    for i in range(PyTuple_GET_SIZE(parents)):
        parent = <object>PyTuple_GET_ITEM(parents, i)
        if not PyUnicode_Check(parent):
            raise _field_error(f"parents[{i}]", "a str job id", parent)
        _put_text_field(w, parent, "parents", i)
    return 0


cdef int _put_job(_Writer* w, JobRecord job) except -1:
    cdef uint8_t* p = _room(w, 4)
    p[0] = 0xdc  # array 16: one more than a fixarray holds
    p[1] = 0x00
    p[2] = 0x10
    p[3] = _C_SCHEMA_VERSION
    w.len += 4
    _put_name_field(w, job.id, "id")
    _put_name_field(w, job.task, "task")
    _put_name_field(w, job.queue, "queue")
    if not (PyTuple_Check(job.args) or PyList_Check(job.args)):
        raise _field_error("args", "a tuple or list", job.args)
    _put_user(w, job.args, 0)
    if not PyDict_Check(job.kwargs):
        raise _field_error("kwargs", "a dict with str keys", job.kwargs)
    _put_user(w, job.kwargs, 1)
    _put_int_field(w, job.priority, "priority")
    # The retry code refuses these: a job carrying them could never be retried.
    _put_int_field(w, job.attempt, "attempt", 0, "an int >= 0 (the attempts made so far)")
    _put_int_field(w, job.max_attempts, "max_attempts", 1, "an int >= 1")
    _put_float_field(w, job.run_at, "run_at", "an int or float (epoch seconds)")
    _put_float_field(w, job.enqueued_at, "enqueued_at", "an int or float (epoch seconds)")
    if job.timeout is None:
        _put_byte(w, 0xc0)
    else:
        _put_float_field(w, job.timeout, "timeout", "None or a number of seconds")
    _put_backoff(w, job.backoff)
    if job.unique_key is None:
        _put_byte(w, 0xc0)
    elif PyUnicode_Check(job.unique_key):
        _put_text_field(w, job.unique_key, "unique_key")
    else:
        raise _field_error("unique_key", "None or a str", job.unique_key)
    _put_parents(w, job.parents)
    if not PyDict_Check(job.meta):
        raise _field_error("meta", "a dict with str keys", job.meta)
    _put_user(w, job.meta, 2)
    return 0


cdef Py_ssize_t _clamp(object limit) except? -2:
    # Any int is a valid limit, as in the twin: none larger than a Py_ssize_t
    # can be exceeded, and any negative one is exceeded even by 0 bytes.
    if limit > PY_SSIZE_T_MAX:
        return PY_SSIZE_T_MAX
    if limit < 0:
        return -1
    return limit


cdef bytes _finish(_Writer* w, str what, object limit):
    if w.len > _clamp(limit):
        raise _too_large(what, w.len, limit, True)
    return PyBytes_FromStringAndSize(<char*>w.buf, w.len)


def encode_job(job, max_size=DEFAULT_MAX_PAYLOAD):
    """Encode a job as msgpack bytes, checking every field on the way.

    Raises:
        UnencodableError: a field has the wrong type, or a user value cannot
            travel as msgpack (the message names the field and the value).
        PayloadTooLargeError: the encoded job is over ``max_size`` bytes.

    Example:
        >>> encode_job(JobRecord(id="1f0c", task="t"))[:3]
        b'\\xdc\\x00\\x10'
    """
    cdef uint8_t stack[_STACK_BUF]
    cdef _Writer w
    limit = _index(max_size)
    if not isinstance(job, JobRecord):
        if not _is_job_record(job):
            raise UnencodableError(f"encode_job() needs a JobRecord, got {_type_name(job)}")
        job = JobRecord(*job._field_values())  # the twin's record: same fields
    w.buf = stack
    w.len = 0
    w.cap = _STACK_BUF
    w.heap = False
    try:
        _put_job(&w, <JobRecord>job)
        return _finish(&w, "job", limit)
    finally:
        if w.heap:
            PyMem_Free(w.buf)


def encode_value(value, max_size=DEFAULT_MAX_PAYLOAD):
    """Encode one user value (a result, an error's details...) as msgpack bytes.

    Raises:
        UnencodableError: the value, or something inside it, cannot travel.
        PayloadTooLargeError: the encoded value is over ``max_size`` bytes.

    Example:
        >>> encode_value([1, "two"])
        b'\\x92\\x01\\xa3two'
    """
    cdef uint8_t stack[_STACK_BUF]
    cdef _Writer w
    limit = _index(max_size)
    w.buf = stack
    w.len = 0
    w.cap = _STACK_BUF
    w.heap = False
    try:
        _put_user(&w, value, 3)
        return _finish(&w, "value", limit)
    finally:
        if w.heap:
            PyMem_Free(w.buf)


cdef dict _NO_ITEMS = {}  # kwargs / meta given as None: written as the empty map, never mutated


cdef int _put_encoded(_Writer* w, bytes encoded) except -1:
    cdef Py_ssize_t n = PyBytes_GET_SIZE(encoded)
    cdef uint8_t* p = _room(w, n)
    memcpy(p, PyBytes_AS_STRING(encoded), <size_t>n)
    w.len += n
    return 0


@cython.final
cdef class JobTemplate:
    """The fields of a new job that a task's options fix, checked and encoded once.

    ``encode(...)`` gives the very bytes ``encode_job`` gives for a
    :class:`JobRecord` of these fields (``attempt`` 0) and the per-job ones, and
    raises the same errors for the per-job fields; a bad fixed field raises here,
    at construction. Enqueue builds one per task options, so a job's backoff
    tuple, task name and queue are not checked and written again per job (that
    was about half of ``encode_job`` for a task with a backoff).

    Example:
        >>> template = JobTemplate("t", "default", 0, 3, None, None)
        >>> template.encode("1f0c", (), None, 0.0, 0.0, None, (), None) == encode_job(
        ...     JobRecord("1f0c", "t", "default", max_attempts=3))
        True
    """

    cdef readonly object task
    cdef readonly object queue
    cdef readonly object priority
    cdef readonly object max_attempts
    cdef readonly object timeout
    cdef readonly object backoff
    cdef bytes _routing  # task, queue
    cdef bytes _policy  # priority, attempt (0), max_attempts
    cdef bytes _retry  # timeout, backoff

    def __init__(self, task, queue, priority, max_attempts, timeout, backoff):
        cdef uint8_t stack[_STACK_BUF]
        cdef _Writer w
        w.buf = stack
        w.len = 0
        w.cap = _STACK_BUF
        w.heap = False
        try:
            _put_name_field(&w, task, "task")
            _put_name_field(&w, queue, "queue")
            self._routing = PyBytes_FromStringAndSize(<char*>w.buf, w.len)
            w.len = 0
            _put_int_field(&w, priority, "priority")
            _put_byte(&w, 0)  # attempt
            _put_int_field(&w, max_attempts, "max_attempts", 1, "an int >= 1")
            self._policy = PyBytes_FromStringAndSize(<char*>w.buf, w.len)
            w.len = 0
            if timeout is None:
                _put_byte(&w, 0xc0)
            else:
                _put_float_field(&w, timeout, "timeout", "None or a number of seconds")
            _put_backoff(&w, backoff)
            self._retry = PyBytes_FromStringAndSize(<char*>w.buf, w.len)
        finally:
            if w.heap:
                PyMem_Free(w.buf)
        self.task = task
        self.queue = queue
        self.priority = priority
        self.max_attempts = max_attempts
        self.timeout = timeout
        self.backoff = backoff

    def encode(self, id, args, kwargs, run_at, enqueued_at, unique_key, parents, meta,
               max_size=DEFAULT_MAX_PAYLOAD):
        """The job's bytes, as ``encode_job`` writes them (``kwargs`` / ``meta`` None: empty)."""
        cdef uint8_t stack[_STACK_BUF]
        cdef _Writer w
        cdef uint8_t* p
        limit = max_size if PyLong_CheckExact(max_size) else _index(max_size)
        if kwargs is None:
            kwargs = _NO_ITEMS
        if meta is None:
            meta = _NO_ITEMS
        w.buf = stack
        w.len = 0
        w.cap = _STACK_BUF
        w.heap = False
        try:
            p = _room(&w, 4)
            p[0] = 0xdc  # array 16, as _put_job
            p[1] = 0x00
            p[2] = 0x10
            p[3] = _C_SCHEMA_VERSION
            w.len += 4
            _put_name_field(&w, id, "id")
            _put_encoded(&w, self._routing)
            if not (PyTuple_Check(args) or PyList_Check(args)):
                raise _field_error("args", "a tuple or list", args)
            _put_user(&w, args, 0)
            if not PyDict_Check(kwargs):
                raise _field_error("kwargs", "a dict with str keys", kwargs)
            _put_user(&w, kwargs, 1)
            _put_encoded(&w, self._policy)
            _put_float_field(&w, run_at, "run_at", "an int or float (epoch seconds)")
            _put_float_field(&w, enqueued_at, "enqueued_at", "an int or float (epoch seconds)")
            _put_encoded(&w, self._retry)
            if unique_key is None:
                _put_byte(&w, 0xc0)
            elif PyUnicode_Check(unique_key):
                _put_text_field(&w, unique_key, "unique_key")
            else:
                raise _field_error("unique_key", "None or a str", unique_key)
            _put_parents(&w, parents)
            if not PyDict_Check(meta):
                raise _field_error("meta", "a dict with str keys", meta)
            _put_user(&w, meta, 2)
            return _finish(&w, "job", limit)
        finally:
            if w.heap:
                PyMem_Free(w.buf)

    def __repr__(self):
        return f"JobTemplate(task={self.task!r}, queue={self.queue!r})"


# --------------------------------------------------------------------------
# Decoding has two paths. The fast one reads the bytes with a hand-written
# reader built for what encode_job writes, and gives up (_Bail, or any error
# on the way) at the first thing it does not expect: an extension type, a
# wrong field type, trailing bytes, bad UTF-8... The slow one is exactly the
# twin's: msgpack's C unpacker, then the field checks. So the slow path alone
# defines what is accepted and every error message, and the fast path only
# has to build the same objects msgpack would for the inputs it accepts.


class _Bail(Exception):
    """The fast reader met something only the slow path may judge."""


cdef struct _Reader:
    const uint8_t* buf
    Py_ssize_t pos
    Py_ssize_t end


cdef enum:
    # What the writer allows. Deeper input is refused, never built: the reader
    # stops here and the slow path (msgpack's unpacker, which does not recurse
    # in C, then the twin's _too_deep walk) words the error exactly as the twin
    # does, which it could not if the reader raised at the first deep level of
    # bytes that are also, say, truncated further on.
    _C_MAX_READ_DEPTH = _C_MAX_DEPTH


cdef inline const uint8_t* _take(_Reader* r, Py_ssize_t n) except NULL:
    cdef const uint8_t* p
    # n < 0: a 32-bit length read into a 32-bit Py_ssize_t can wrap.
    if n < 0 or n > r.end - r.pos:
        raise _Bail()  # truncated: the slow path words the error
    p = r.buf + r.pos
    r.pos += n
    return p


cdef inline uint16_t _ld16(const uint8_t* p) noexcept:
    return <uint16_t>((<uint16_t>p[0] << 8) | p[1])


cdef inline uint32_t _ld32(const uint8_t* p) noexcept:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]


cdef inline uint64_t _ld64(const uint8_t* p) noexcept:
    return (<uint64_t>_ld32(p) << 32) | _ld32(p + 4)


cdef inline double _ld_double(const uint8_t* p) noexcept:
    cdef uint64_t bits = _ld64(p)
    cdef double d
    memcpy(&d, &bits, 8)
    return d


cdef inline float _ld_float(const uint8_t* p) noexcept:
    cdef uint32_t bits = _ld32(p)
    cdef float f
    memcpy(&f, &bits, 4)
    return f


cdef object _read_str_body(_Reader* r, Py_ssize_t n):
    cdef const uint8_t* p = _take(r, n)
    # Strict UTF-8, as msgpack decodes with raw=False.
    return PyUnicode_DecodeUTF8(<char*>p, n, NULL)


cdef object _read_str(_Reader* r):
    # A str header, or a bail: used where the job layout demands a str.
    cdef uint8_t b = _take(r, 1)[0]
    if 0xa0 <= b <= 0xbf:
        return _read_str_body(r, b & 0x1f)
    if b == 0xd9:
        return _read_str_body(r, _take(r, 1)[0])
    if b == 0xda:
        return _read_str_body(r, _ld16(_take(r, 2)))
    if b == 0xdb:
        return _read_str_body(r, _ld32(_take(r, 4)))
    raise _Bail()


cdef Py_ssize_t _read_array_len(_Reader* r) except -1:
    cdef uint8_t b = _take(r, 1)[0]
    cdef Py_ssize_t n
    if 0x90 <= b <= 0x9f:
        n = b & 0x0f
    elif b == 0xdc:
        n = _ld16(_take(r, 2))
    elif b == 0xdd:
        n = _ld32(_take(r, 4))
    else:
        raise _Bail()
    if n < 0 or n > r.end - r.pos:  # every element takes a byte at least
        raise _Bail()
    return n


cdef Py_ssize_t _read_map_len(_Reader* r) except -1:
    cdef uint8_t b = _take(r, 1)[0]
    cdef Py_ssize_t n
    if 0x80 <= b <= 0x8f:
        n = b & 0x0f
    elif b == 0xde:
        n = _ld16(_take(r, 2))
    elif b == 0xdf:
        n = _ld32(_take(r, 4))
    else:
        raise _Bail()
    if n < 0 or n > (r.end - r.pos) // 2:  # a key and a value take two bytes at least
        raise _Bail()
    return n


cdef list _read_list(_Reader* r, Py_ssize_t n, int depth):
    cdef list out = PyList_New(n)
    cdef Py_ssize_t i
    cdef object item
    if depth > _C_MAX_READ_DEPTH:
        raise _Bail()
    for i in range(n):
        item = _read_value(r, depth + 1)
        Py_INCREF(item)  # PyList_SET_ITEM steals it
        PyList_SET_ITEM(out, i, item)
    return out


cdef dict _read_dict(_Reader* r, Py_ssize_t n, int depth):
    cdef dict out = {}
    cdef Py_ssize_t i
    if depth > _C_MAX_READ_DEPTH:
        raise _Bail()
    for i in range(n):
        key = _read_value(r, depth + 1)
        out[key] = _read_value(r, depth + 1)  # unhashable key: TypeError, the slow path says so
    return out


cdef object _read_value(_Reader* r, int depth):
    cdef uint8_t b = _take(r, 1)[0]
    if b <= 0x7f:
        return <long>b
    if b >= 0xe0:
        return <long>(<int8_t>b)
    if b < 0x90:  # 0x80..0x8f
        return _read_dict(r, b & 0x0f, depth)
    if b < 0xa0:  # 0x90..0x9f
        return _read_list(r, b & 0x0f, depth)
    if b < 0xc0:  # 0xa0..0xbf
        return _read_str_body(r, b & 0x1f)
    if b == 0xc0:
        return None
    if b == 0xc2:
        return False
    if b == 0xc3:
        return True
    if b == 0xcb:
        return _ld_double(_take(r, 8))
    if b == 0xca:
        return <double>_ld_float(_take(r, 4))
    if b == 0xcc:
        return <long>_take(r, 1)[0]
    if b == 0xcd:
        return <long>_ld16(_take(r, 2))
    if b == 0xce:
        return <unsigned long long>_ld32(_take(r, 4))
    if b == 0xcf:
        return <unsigned long long>_ld64(_take(r, 8))
    if b == 0xd0:
        return <long>(<int8_t>_take(r, 1)[0])
    if b == 0xd1:
        return <long>(<int16_t>_ld16(_take(r, 2)))
    if b == 0xd2:
        return <long long>(<int32_t>_ld32(_take(r, 4)))
    if b == 0xd3:
        return <long long>(<int64_t>_ld64(_take(r, 8)))
    if b == 0xd9:
        return _read_str_body(r, _take(r, 1)[0])
    if b == 0xda:
        return _read_str_body(r, _ld16(_take(r, 2)))
    if b == 0xdb:
        return _read_str_body(r, _ld32(_take(r, 4)))
    if b == 0xc4:
        return _read_bin_body(r, _take(r, 1)[0])
    if b == 0xc5:
        return _read_bin_body(r, _ld16(_take(r, 2)))
    if b == 0xc6:
        return _read_bin_body(r, _ld32(_take(r, 4)))
    if b == 0xdc or b == 0xdd or b == 0xde or b == 0xdf:
        r.pos -= 1
        if b <= 0xdd:
            return _read_list(r, _read_array_len(r), depth)
        return _read_dict(r, _read_map_len(r), depth)
    raise _Bail()  # 0xc1 and the extension types (timestamps, UUIDs, Decimals)


cdef object _read_bin_body(_Reader* r, Py_ssize_t n):
    cdef const uint8_t* p = _take(r, n)
    return PyBytes_FromStringAndSize(<char*>p, n)


cdef object _read_float_field(_Reader* r):
    # encode_job always writes float 64; anything else goes the slow way.
    cdef const uint8_t* p = _take(r, 9)
    if p[0] != 0xcb:
        raise _Bail()
    return _ld_double(p + 1)


cdef object _read_int_field(_Reader* r):
    cdef object value = _read_value(r, 0)
    cdef int overflow = 0
    if not PyLong_CheckExact(value):
        raise _Bail()
    PyLong_AsLongLongAndOverflow(value, &overflow)
    if overflow != 0:
        raise _Bail()
    return value


cdef dict _read_names_map(_Reader* r):
    cdef Py_ssize_t n = _read_map_len(r)
    cdef Py_ssize_t i
    cdef dict out = {}
    for i in range(n):
        key = _read_str(r)
        out[key] = _read_value(r, 2)
    return out


cdef JobRecord _fast_job(bytes raw):
    cdef _Reader r
    cdef JobRecord job
    cdef const uint8_t* p
    cdef Py_ssize_t n
    cdef Py_ssize_t i
    cdef tuple items
    r.buf = <const uint8_t*>PyBytes_AS_STRING(raw)
    r.pos = 0
    r.end = PyBytes_GET_SIZE(raw)
    p = _take(&r, 4)
    if p[0] != 0xdc or p[1] != 0x00 or p[2] != 0x10 or p[3] != _C_SCHEMA_VERSION:
        raise _Bail()
    job = JobRecord.__new__(JobRecord)
    job.id = _read_str(&r)
    job.task = _read_str(&r)
    job.queue = _read_str(&r)
    if PyUnicode_GET_LENGTH(job.id) == 0 or PyUnicode_GET_LENGTH(job.task) == 0 \
            or PyUnicode_GET_LENGTH(job.queue) == 0:
        raise _Bail()
    n = _read_array_len(&r)
    items = PyTuple_New(n)  # args arrive as a tuple: build it directly
    for i in range(n):
        item = _read_value(&r, 2)
        Py_INCREF(item)  # PyTuple_SET_ITEM steals it
        PyTuple_SET_ITEM(items, i, item)
    job.args = items
    job.kwargs = _read_names_map(&r)
    job.priority = _read_int_field(&r)
    job.attempt = _read_int_field(&r)
    job.max_attempts = _read_int_field(&r)
    if job.attempt < 0 or job.max_attempts < 1:
        raise _Bail()
    job.run_at = _read_float_field(&r)
    job.enqueued_at = _read_float_field(&r)
    if r.pos < r.end and r.buf[r.pos] == 0xc0:
        r.pos += 1
        job.timeout = None
    else:
        job.timeout = _read_float_field(&r)
    if r.pos < r.end and r.buf[r.pos] == 0xc0:
        r.pos += 1
        job.backoff = None
    else:
        if _take(&r, 1)[0] != 0x95:
            raise _Bail()
        kind = _read_str(&r)
        base = _read_float_field(&r)
        factor = _read_float_field(&r)
        cap = _read_float_field(&r)
        job.backoff = (kind, base, factor, cap, _read_str(&r))
        if _checked_backoff(job.backoff) is not None:
            raise _Bail()
    if r.pos < r.end and r.buf[r.pos] == 0xc0:
        r.pos += 1
        job.unique_key = None
    else:
        job.unique_key = _read_str(&r)
    n = _read_array_len(&r)
    items = PyTuple_New(n)
    for i in range(n):
        item = _read_str(&r)
        Py_INCREF(item)
        PyTuple_SET_ITEM(items, i, item)
    job.parents = items
    job.meta = _read_names_map(&r)
    if r.pos != r.end:
        raise _Bail()  # trailing bytes
    return job


cdef bytes _as_bytes(str func, str what, object data, object max_size):
    cdef Py_ssize_t n
    limit = _index(max_size)
    if PyBytes_CheckExact(data):
        n = PyBytes_GET_SIZE(data)
        if n > _clamp(limit):
            raise _too_large(what, n, limit, False)
    else:
        try:
            view = memoryview(data)
        except TypeError:
            raise _not_bytes(func, data) from None
        if view.nbytes > limit:
            raise _too_large(what, view.nbytes, limit, False)
        data = view.tobytes()
        n = PyBytes_GET_SIZE(data)
    if n == 0:
        raise CorruptJobError(f"{what} bytes are empty")
    return <bytes>data


cdef object _unpack(str what, bytes data, int depth):
    try:
        # max_*_len default to len(data) in unpackb, so a hostile length header
        # cannot make msgpack allocate more than the input could ever fill.
        obj = _unpackb(
            data,
            use_list=True,
            raw=False,
            strict_map_key=False,
            timestamp=3,
            ext_hook=_decode_ext,
        )
    except MemoryError:
        raise
    except Exception as exc:  # whatever msgpack or the ext hook raised
        raise _corrupt_bytes(what, exc) from exc
    # msgpack itself reads up to 1024 levels; this codec writes at most 100.
    if (PyList_CheckExact(obj) or PyDict_CheckExact(obj)) and _too_deep(obj, depth):
        raise _too_deep_error(what)
    return obj


cdef inline object _item(list fields, Py_ssize_t i):
    return <object>PyList_GET_ITEM(fields, i)


cdef object _decode_name(object value, str name):
    if PyUnicode_CheckExact(value) and PyUnicode_GET_LENGTH(value) > 0:
        return value
    raise _corrupt_field(name, "a non-empty str", value)


cdef object _decode_int(object value, str name):
    cdef int overflow = 0
    if PyLong_CheckExact(value):
        PyLong_AsLongLongAndOverflow(value, &overflow)
        if overflow == 0:
            return value
    raise _corrupt_field(name, "an int in the signed 64-bit range", value)


cdef object _decode_float(object value, str name):
    if PyFloat_CheckExact(value):
        return value
    if PyLong_CheckExact(value):  # another producer may write a whole number as an int
        return float(value)
    raise _corrupt_field(name, "a float", value)


cdef object _decode_names_map(object value, str name, str rule):
    cdef Py_ssize_t pos = 0
    cdef PyObject* key
    cdef PyObject* item
    if not PyDict_CheckExact(value):
        raise _corrupt_field(name, "a map with str keys", value)
    while PyDict_Next(value, &pos, &key, &item):
        if not PyUnicode_CheckExact(<object>key):
            raise CorruptJobError(
                f"job field {name!r} has a key of type {_wire_name(<object>key)}: {rule}"
            )
    return value


cdef object _decode_backoff(object value):
    if value is None:
        return None
    if not PyList_CheckExact(value) or PyList_GET_SIZE(value) != 5:
        raise _corrupt_field("backoff", "nil or an array [str, float, float, float, str]", value)
    cdef list parts = <list>value
    kind = _item(parts, 0)
    if not PyUnicode_CheckExact(kind):
        raise _corrupt_field("backoff[0]", "a str", kind)
    base = _decode_float(_item(parts, 1), "backoff[1]")
    factor = _decode_float(_item(parts, 2), "backoff[2]")
    cap = _decode_float(_item(parts, 3), "backoff[3]")
    jitter = _item(parts, 4)
    if not PyUnicode_CheckExact(jitter):
        raise _corrupt_field("backoff[4]", "a str", jitter)
    spec = (kind, base, factor, cap, jitter)
    problem = _checked_backoff(spec)
    if problem is not None:
        raise CorruptJobError(f"job field 'backoff' is not a valid backoff: {problem}")
    return spec


cdef object _decode_parents(object value):
    cdef Py_ssize_t i
    if not PyList_CheckExact(value):
        raise _corrupt_field("parents", "an array of str", value)
    for i in range(PyList_GET_SIZE(value)):
        if not PyUnicode_CheckExact(<object>PyList_GET_ITEM(value, i)):
            raise _corrupt_field(f"parents[{i}]", "a str", <object>PyList_GET_ITEM(value, i))
    return PyList_AsTuple(value)


cdef JobRecord _slow_job(bytes raw):
    # The twin's decode_job, line for line, with C type checks.
    cdef object obj = _unpack("job", raw, 0)  # the job array is level 0, args level 1
    cdef list fields
    cdef JobRecord job
    cdef int overflow = 0
    cdef long long version
    if not PyList_CheckExact(obj):
        raise CorruptJobError(f"job must be a msgpack array of 16 elements, got {_wire_name(obj)}")
    fields = <list>obj
    if PyList_GET_SIZE(fields) != 16:
        raise CorruptJobError(
            f"job must be a msgpack array of 16 elements, got {PyList_GET_SIZE(fields)}"
        )
    first = _item(fields, 0)
    if not PyLong_CheckExact(first):
        raise CorruptJobError(
            f"job must start with its schema version (an int), got {_wire_name(first)}"
        )
    version = PyLong_AsLongLongAndOverflow(first, &overflow)
    if overflow > 0 or version > _C_SCHEMA_VERSION:
        raise _newer_schema(first)
    if overflow < 0 or version < 1:
        raise CorruptJobError(f"job field 'schema_version' must be 1 or more, got {first}")
    job = JobRecord.__new__(JobRecord)
    job.id = _decode_name(_item(fields, 1), "id")
    job.task = _decode_name(_item(fields, 2), "task")
    job.queue = _decode_name(_item(fields, 3), "queue")
    args = _item(fields, 4)
    if not PyList_CheckExact(args):
        raise _corrupt_field("args", "an array", args)
    job.kwargs = _decode_names_map(_item(fields, 5), "kwargs", "keyword names must be str")
    job.args = PyList_AsTuple(args)
    job.priority = _decode_int(_item(fields, 6), "priority")
    job.attempt = _decode_int(_item(fields, 7), "attempt")
    if job.attempt < 0:
        raise _corrupt_field("attempt", "an int >= 0", job.attempt)
    job.max_attempts = _decode_int(_item(fields, 8), "max_attempts")
    if job.max_attempts < 1:
        raise _corrupt_field("max_attempts", "an int >= 1", job.max_attempts)
    job.run_at = _decode_float(_item(fields, 9), "run_at")
    job.enqueued_at = _decode_float(_item(fields, 10), "enqueued_at")
    timeout = _item(fields, 11)
    job.timeout = None if timeout is None else _decode_float(timeout, "timeout")
    job.backoff = _decode_backoff(_item(fields, 12))
    unique_key = _item(fields, 13)
    if unique_key is not None and not PyUnicode_CheckExact(unique_key):
        raise _corrupt_field("unique_key", "nil or a str", unique_key)
    job.unique_key = unique_key
    job.parents = _decode_parents(_item(fields, 14))
    job.meta = _decode_names_map(_item(fields, 15), "meta", "metadata keys must be str")
    return job


def decode_job(data, max_size=DEFAULT_MAX_PAYLOAD):
    """Decode bytes written by :func:`encode_job` (by either twin) into a JobRecord.

    Raises:
        CorruptJobError: the bytes are not a job this release understands; the
            message says what is wrong (truncated, wrong shape, a field of the
            wrong type, a newer schema version...).
        PayloadTooLargeError: ``data`` is over ``max_size`` bytes.
        TypeError: ``data`` is not bytes-like.

    Example:
        >>> decode_job(encode_job(JobRecord(id="1f0c", task="t", args=[1]))).args
        (1,)
    """
    cdef bytes raw = _as_bytes("decode_job", "job", data, max_size)
    try:
        return _fast_job(raw)
    except Exception:
        pass  # the slow path decides, and words any error
    return _slow_job(raw)


def decode_value(data, max_size=DEFAULT_MAX_PAYLOAD):
    """Decode bytes written by :func:`encode_value` back into the value.

    Raises:
        CorruptJobError: the bytes are not msgpack this codec wrote.
        PayloadTooLargeError: ``data`` is over ``max_size`` bytes.
        TypeError: ``data`` is not bytes-like.

    Example:
        >>> import uuid
        >>> decode_value(encode_value(uuid.UUID(int=1)))
        UUID('00000000-0000-0000-0000-000000000001')
    """
    cdef bytes raw = _as_bytes("decode_value", "value", data, max_size)
    cdef _Reader r
    r.buf = <const uint8_t*>PyBytes_AS_STRING(raw)
    r.pos = 0
    r.end = PyBytes_GET_SIZE(raw)
    try:
        value = _read_value(&r, 1)
        if r.pos == r.end:
            return value
    except Exception:
        pass  # the slow path decides, and words any error
    return _unpack("value", raw, 1)


def tally_starts(records, double now, tuple bounds):
    """What a batch of started jobs adds to the wait histograms: one entry per run of
    consecutive records of one (queue, task), ``(queue, task, started, cell)``, where ``cell``
    is ``[sum of waits, count per bucket...]`` over the run's first attempts (a retry's due
    time is not in its record). A wait is from the later of ``run_at`` and ``enqueued_at`` to
    ``now`` (0 if ``now`` is earlier); its bucket is ``bisect_left(bounds, wait)``.

    The worker's metrics call this once per start batch: compiled, the per-job part is a few
    field reads and a binary search (the Python loop was most of what counting cost a job).

    Example:
        >>> r = JobRecord(id="j", task="t", attempt=1, enqueued_at=10.0)
        >>> tally_starts([r, r], 10.5, (0.1, 1.0))
        [('default', 't', 2, [1.0, 0, 2, 0])]
    """
    cdef list out = []
    cdef list cell = None
    cdef JobRecord record
    cdef object queue = None, task = None
    cdef Py_ssize_t n = 0, nb = len(bounds), lo, hi, mid
    cdef double due, wait, enqueued
    for item in records:
        record = <JobRecord?>item
        if cell is None or record.task != task or record.queue != queue:
            if cell is not None:
                out.append((queue, task, n, cell))
            queue, task, n = record.queue, record.task, 0
            cell = [0.0] + [0] * (nb + 1)
        n += 1
        if record.attempt == 1:
            due = record.run_at
            enqueued = record.enqueued_at
            if enqueued > due:
                due = enqueued
            wait = now - due if now > due else 0.0
            cell[0] = <double>cell[0] + wait
            lo, hi = 0, nb
            while lo < hi:
                mid = (lo + hi) >> 1
                if <double>bounds[mid] < wait:
                    lo = mid + 1
                else:
                    hi = mid
            cell[lo + 1] = cell[lo + 1] + 1
    if cell is not None:
        out.append((queue, task, n, cell))
    return out


__all__ = [
    "DEFAULT_MAX_PAYLOAD", "FIELDS", "JobRecord", "JobTemplate", "SCHEMA_VERSION",
    "decode_job", "decode_value", "encode_job", "encode_value", "tally_starts",
]

"""The msgpack job codec: :class:`JobRecord` and the bytes it travels as (pure-Python twin).

``_codec_c.pyx`` is the compiled twin; both produce the very same bytes and
raise the very same errors with the very same messages. No pickle is involved
anywhere: a job is data, never code, so a worker can decode bytes from any
producer without trusting it.

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

Example:
    >>> job = JobRecord(id="1f0c", task="app.tasks.send_email", args=("a@b.c", 42))
    >>> data = encode_job(job)
    >>> decode_job(data) == job
    True
    >>> decode_value(encode_value({"sent": True}))
    {'sent': True}
"""

from __future__ import annotations

import bisect
import datetime as _dt
import decimal
import operator
import threading
import uuid
from collections.abc import Iterable
from typing import Any, ClassVar

import msgpack  # type: ignore[import-untyped, unused-ignore]

from ._codec_rules import _DICT_CHANGED, _EPOCH, _EXT_DECIMAL, _EXT_UUID, _I64_MAX, _I64_MIN, _MAX_DEPTH
from ._codec_rules import _U64_MAX, _UTC_MAX_SECONDS, _UTC_MIN_SECONDS, DEFAULT_MAX_PAYLOAD, FIELDS
from ._codec_rules import SCHEMA_VERSION, _backoff_checker, _Changed, _corrupt_bytes, _corrupt_field
from ._codec_rules import _decimal_text, _decode_ext, _explain_value, _field_error, _newer_schema, _not_bytes
from ._codec_rules import _problem_in_str, _Refused, _too_deep, _too_deep_error, _too_large, _type_name
from ._codec_rules import _wire_name
from ._errors import CorruptJobError, UnencodableError
from ._states_py import Backoff as _Backoff


class JobRecord:
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

    __slots__ = FIELDS
    __hash__ = None  # type: ignore[assignment]  # mutable, so never a dict key
    # Lets the twin's __eq__ recognise this class without importing this module.
    _FASTJOBS_JOB_RECORD: ClassVar[bool] = True

    id: str
    task: str
    queue: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    priority: int
    attempt: int
    max_attempts: int
    run_at: float
    enqueued_at: float
    timeout: float | None
    backoff: tuple[str, float, float, float, str] | None
    unique_key: str | None
    parents: tuple[str, ...]
    meta: dict[str, Any]

    def __init__(
        self,
        id: str,
        task: str,
        queue: str = "default",
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        priority: int = 0,
        attempt: int = 0,
        max_attempts: int = 1,
        run_at: float = 0.0,
        enqueued_at: float = 0.0,
        timeout: float | None = None,
        backoff: tuple[str, float, float, float, str] | None = None,
        unique_key: str | None = None,
        parents: tuple[str, ...] = (),
        meta: dict[str, Any] | None = None,
    ) -> None:
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

    def _field_values(self) -> tuple[Any, ...]:
        return (
            self.id, self.task, self.queue, self.args, self.kwargs, self.priority,
            self.attempt, self.max_attempts, self.run_at, self.enqueued_at,
            self.timeout, self.backoff, self.unique_key, self.parents, self.meta,
        )  # fmt: skip

    def __eq__(self, other: object) -> bool:
        if not _is_job_record(other):
            return NotImplemented
        values: tuple[Any, ...] = other._field_values()  # type: ignore[attr-defined]
        return self._field_values() == values

    def __repr__(self) -> str:
        return (
            f"JobRecord(id={self.id!r}, task={self.task!r}, queue={self.queue!r}, "
            f"attempt={self.attempt!r})"
        )

    def __reduce__(self) -> tuple[type[JobRecord], tuple[Any, ...]]:
        # Explicit so that copy.copy() behaves the same on both twins (Cython
        # classes get no free reduce); positional order is FIELDS order.
        return (type(self), self._field_values())

    def replace(self, **changes: Any) -> JobRecord:
        """Return a copy with some fields changed; unchanged fields are shared, not copied.

        Example:
            >>> JobRecord(id="1f0c", task="t").replace(attempt=2, queue="slow").queue
            'slow'
        """
        values = dict(zip(FIELDS, self._field_values()))
        for name, value in changes.items():
            if name not in values:
                raise TypeError(f"JobRecord.replace() got an unexpected field {name!r}")
            values[name] = value
        return JobRecord(**values)


def _is_job_record(obj: object) -> bool:
    return isinstance(obj, JobRecord) or getattr(type(obj), "_FASTJOBS_JOB_RECORD", False) is True


_, _backoff_problem = _backoff_checker(_Backoff)


def _timestamp(value: _dt.datetime) -> Any:
    # Whole days and seconds from the epoch, as msgpack's own packer and the
    # compiled twin compute them; Timestamp.from_datetime() goes through a
    # float and loses precision far from 1970. datetime.__sub__ itself, so a
    # subclass's override cannot change the instant.
    delta = _dt.datetime.__sub__(value, _EPOCH)
    seconds = delta.days * 86400 + delta.seconds
    if not _UTC_MIN_SECONDS <= seconds <= _UTC_MAX_SECONDS:
        raise _Refused
    return msgpack.Timestamp(seconds, delta.microseconds * 1000)


# --------------------------------------------------------------------------
# Encoding: user values are copied into exactly the types msgpack packs
# natively, so msgpack never needs a default hook and writes the same bytes
# as the compiled twin's hand-written packer.


def _plain(value: Any, depth: int) -> Any:
    """``value`` made of msgpack-native types only; raises _Refused otherwise."""
    cls = type(value)
    if cls is str:
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise _Refused from None
        return value
    if cls is int:
        if _I64_MIN <= value <= _U64_MAX:
            return value
        raise _Refused
    if value is None or cls is float or cls is bool or cls is bytes:
        return value
    if cls is list:
        return _plain_list(value, value, depth)
    if cls is tuple:
        if depth > _MAX_DEPTH:
            raise _Refused
        return [_plain(item, depth + 1) for item in value]
    if cls is dict:
        return _plain_dict(value, depth)
    return _plain_other(value, depth)


def _plain_list(value: Any, items: Any, depth: int) -> list[Any]:
    if depth > _MAX_DEPTH:
        raise _Refused
    size = len(value)
    # User code run for an item (a tzinfo) may resize the list: the compiled
    # twin re-checks the size as it goes, so neither may write what it read half of.
    out = [_plain(item, depth + 1) for item in items]
    if len(out) != size or len(value) != size:
        raise _Changed
    return out


def _plain_dict(value: Any, depth: int) -> dict[Any, Any]:
    if depth > _MAX_DEPTH:
        raise _Refused
    size = len(value)
    try:
        out = {_plain_key(key): _plain(item, depth + 1) for key, item in dict.items(value)}
    except RuntimeError as exc:
        if str(exc) in _DICT_CHANGED:
            raise _Changed from None
        raise
    if len(value) != size:
        raise _Changed
    if len(out) != size:
        raise _Refused  # two keys became one once converted
    return out


def _plain_key(key: Any) -> Any:
    if isinstance(key, str):
        return _plain(key if type(key) is str else str.__str__(key), 0)
    if isinstance(key, int):  # bool included: it travels as a msgpack bool
        return key if type(key) is bool else _plain(int.__index__(key), 0)
    if isinstance(key, bytes):
        return key if type(key) is bytes else bytes(memoryview(key))
    raise _Refused


def _plain_other(value: Any, depth: int) -> Any:
    # Subclasses and the extension types: rarer, so they pay for isinstance.
    # A subclass is read through its base type's own method, never through an
    # override, because that is what the compiled twin reads: the C storage.
    if isinstance(value, str):
        return _plain(str.__str__(value), depth)
    if isinstance(value, int):
        return _plain(int.__index__(value), depth)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, (bytes, bytearray)):
        return value  # msgpack reads the buffer itself
    if isinstance(value, memoryview):
        return value.tobytes()
    if isinstance(value, list):
        return _plain_list(value, list.__iter__(value), depth)
    if isinstance(value, dict):
        return _plain_dict(value, depth)
    if isinstance(value, tuple):
        if depth > _MAX_DEPTH:
            raise _Refused
        return [_plain(item, depth + 1) for item in tuple.__iter__(value)]
    if isinstance(value, _dt.datetime):
        if value.utcoffset() is None:
            raise _Refused
        return _timestamp(value)
    if isinstance(value, uuid.UUID):
        return msgpack.ExtType(_EXT_UUID, value.int.to_bytes(16, "big"))
    if isinstance(value, decimal.Decimal):
        return msgpack.ExtType(_EXT_DECIMAL, _decimal_text(value))
    raise _Refused


def _user_value(noun: str, root: str, value: Any, top_rule: str | None) -> Any:
    try:
        if top_rule is None:
            return _plain(value, 1)
        # kwargs and meta: a dict (checked by the caller) whose keys are names.
        size = len(value)
        out = {}
        try:
            for key, item in dict.items(value):
                if not isinstance(key, str):
                    raise _Refused
                out[_plain_key(key)] = _plain(item, 2)
        except RuntimeError as exc:
            if str(exc) in _DICT_CHANGED:
                raise _Changed from None
            raise
        if len(value) != size:
            raise _Changed
        if len(out) != size:
            raise _Refused  # two keys became one once converted
        return out
    except Exception as exc:
        raise _explain_value(noun, root, value, top_rule, exc) from None


def _name_text(name: str, value: str) -> str:
    """A str field's text (any str, even empty), which must be valid UTF-8."""
    text = value if type(value) is str else str.__str__(value)
    if not text.isascii():
        problem = _problem_in_str(f"job field {name!r}", text)
        if problem is not None:
            raise UnencodableError(problem)
    return text


def _name_field(name: str, value: Any) -> str:
    if isinstance(value, str) and value:
        return _name_text(name, value)
    raise _field_error(name, "a non-empty str", value)


def _int_field(name: str, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        number = int.__index__(value)
        if _I64_MIN <= number <= _I64_MAX:
            return number
    raise _field_error(name, "an int (not bool) in the signed 64-bit range", value)


def _float_field(name: str, value: Any, expected: str) -> float:
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return float(int.__index__(value))
        except OverflowError:
            pass
    raise _field_error(name, expected, value)


def _backoff_field(value: Any) -> list[Any] | None:
    if value is None:
        return None
    if not isinstance(value, (tuple, list)) or len(value) != 5:
        raise _field_error(
            "backoff",
            "None or a 5-tuple (kind: str, base: float, factor: float, cap: float, jitter: str)",
            value,
        )
    kind, base, factor, cap, jitter = value
    if not isinstance(kind, str):
        raise _field_error("backoff[0]", "a str (the kind)", kind)
    out: list[Any] = [_name_text("backoff[0]", kind)]
    out.append(_float_field("backoff[1]", base, "a number"))
    out.append(_float_field("backoff[2]", factor, "a number"))
    out.append(_float_field("backoff[3]", cap, "a number"))
    if not isinstance(jitter, str):
        raise _field_error("backoff[4]", "a str (the jitter)", jitter)
    out.append(_name_text("backoff[4]", jitter))
    problem = _backoff_problem(out)
    if problem is not None:
        raise UnencodableError(f"job field 'backoff' is not a valid backoff: {problem}")
    return out


def _parents_field(value: Any) -> list[str]:
    if not isinstance(value, (tuple, list)):
        raise _field_error("parents", "a tuple or list of str job ids", value)
    out = []
    for index, parent in enumerate(value):
        if not isinstance(parent, str):
            raise _field_error(f"parents[{index}]", "a str job id", parent)
        out.append(_name_text(f"parents[{index}]", parent))
    return out


def _job_body(job: Any) -> list[Any]:
    if not _is_job_record(job):
        raise UnencodableError(f"encode_job() needs a JobRecord, got {_type_name(job)}")
    (id_, task, queue, args, kwargs, priority, attempt, max_attempts, run_at,
     enqueued_at, timeout, backoff, unique_key, parents, meta) = job._field_values()  # fmt: skip
    body: list[Any] = [
        SCHEMA_VERSION,
        _name_field("id", id_),
        _name_field("task", task),
        _name_field("queue", queue),
    ]
    if not isinstance(args, (tuple, list)):
        raise _field_error("args", "a tuple or list", args)
    body.append(_user_value("argument", "args", args, None))
    if not isinstance(kwargs, dict):
        raise _field_error("kwargs", "a dict with str keys", kwargs)
    body.append(_user_value("keyword argument", "kwargs", kwargs, "keyword names must be str"))
    body.append(_int_field("priority", priority))
    # The retry code refuses these: a job carrying them could never be retried.
    number = _int_field("attempt", attempt)
    if number < 0:
        raise _field_error("attempt", "an int >= 0 (the attempts made so far)", attempt)
    body.append(number)
    number = _int_field("max_attempts", max_attempts)
    if number < 1:
        raise _field_error("max_attempts", "an int >= 1", max_attempts)
    body.append(number)
    body.append(_float_field("run_at", run_at, "an int or float (epoch seconds)"))
    body.append(_float_field("enqueued_at", enqueued_at, "an int or float (epoch seconds)"))
    body.append(
        None if timeout is None else _float_field("timeout", timeout, "None or a number of seconds")
    )
    body.append(_backoff_field(backoff))
    if unique_key is not None and not isinstance(unique_key, str):
        raise _field_error("unique_key", "None or a str", unique_key)
    body.append(None if unique_key is None else _name_text("unique_key", unique_key))
    body.append(_parents_field(parents))
    if not isinstance(meta, dict):
        raise _field_error("meta", "a dict with str keys", meta)
    body.append(_user_value("metadata", "meta", meta, "metadata keys must be str"))
    return body


# msgpack.packb() builds a Packer, and with it a 256 KiB buffer, on every
# call: for a typical job that costs more than the packing (measured: about
# 1.2 us per job against 0.7 us for a kept Packer). A Packer is not safe to
# share between threads (worker pools encode concurrently), so one per thread.
_local = threading.local()


def _pack(body: Any) -> bytes:
    try:
        pack = _local.pack
    except AttributeError:
        pack = _local.pack = msgpack.Packer(use_bin_type=True).pack
    data: bytes = pack(body)
    return data


def encode_job(job: JobRecord, max_size: int = DEFAULT_MAX_PAYLOAD) -> bytes:
    """Encode a job as msgpack bytes, checking every field on the way.

    Raises:
        UnencodableError: a field has the wrong type, or a user value cannot
            travel as msgpack (the message names the field and the value).
        PayloadTooLargeError: the encoded job is over ``max_size`` bytes.

    Example:
        >>> encode_job(JobRecord(id="1f0c", task="t"))[:3]
        b'\\xdc\\x00\\x10'
    """
    limit = operator.index(max_size)
    data = _pack(_job_body(job))
    if len(data) > limit:
        raise _too_large("job", len(data), limit, True)
    return data


class JobTemplate:
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

    __slots__ = ("task", "queue", "priority", "max_attempts", "timeout", "backoff")

    def __init__(self, task: Any, queue: Any, priority: Any, max_attempts: Any, timeout: Any, backoff: Any) -> None:
        # The fixed fields are checked in encode_job's order, with its messages.
        _name_field("task", task)
        _name_field("queue", queue)
        _int_field("priority", priority)
        if _int_field("max_attempts", max_attempts) < 1:
            raise _field_error("max_attempts", "an int >= 1", max_attempts)
        if timeout is not None:
            _float_field("timeout", timeout, "None or a number of seconds")
        _backoff_field(backoff)
        self.task = task
        self.queue = queue
        self.priority = priority
        self.max_attempts = max_attempts
        self.timeout = timeout
        self.backoff = backoff

    def encode(self, id: Any, args: Any, kwargs: Any, run_at: Any, enqueued_at: Any, unique_key: Any,
               parents: Any, meta: Any, max_size: int = DEFAULT_MAX_PAYLOAD) -> bytes:
        """The job's bytes, as ``encode_job`` writes them (``kwargs`` / ``meta`` None: empty)."""
        return encode_job(JobRecord(
            id, self.task, self.queue, args, kwargs, self.priority, 0, self.max_attempts, run_at,
            enqueued_at, self.timeout, self.backoff, unique_key, parents, meta,
        ), max_size)

    def __repr__(self) -> str:
        return f"JobTemplate(task={self.task!r}, queue={self.queue!r})"


def encode_value(value: Any, max_size: int = DEFAULT_MAX_PAYLOAD) -> bytes:
    """Encode one user value (a result, an error's details...) as msgpack bytes.

    Raises:
        UnencodableError: the value, or something inside it, cannot travel.
        PayloadTooLargeError: the encoded value is over ``max_size`` bytes.

    Example:
        >>> encode_value([1, "two"])
        b'\\x92\\x01\\xa3two'
    """
    limit = operator.index(max_size)
    data = _pack(_user_value("", "value", value, None))
    if len(data) > limit:
        raise _too_large("value", len(data), limit, True)
    return data


# --------------------------------------------------------------------------
# Decoding.


def _unpack(func: str, what: str, data: Any, max_size: int, depth: int) -> Any:
    limit = operator.index(max_size)
    if type(data) is not bytes:
        try:
            view = memoryview(data)
        except TypeError:
            raise _not_bytes(func, data) from None
        if view.nbytes > limit:
            raise _too_large(what, view.nbytes, limit, False)
        data = view.tobytes()
    elif len(data) > limit:
        raise _too_large(what, len(data), limit, False)
    if not data:
        raise CorruptJobError(f"{what} bytes are empty")
    try:
        # max_*_len default to len(data) in unpackb, so a hostile length header
        # cannot make msgpack allocate more than the input could ever fill.
        obj = msgpack.unpackb(
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
    if (type(obj) is list or type(obj) is dict) and _too_deep(obj, depth):
        raise _too_deep_error(what)
    return obj


def _decode_name(name: str, value: Any) -> str:
    if type(value) is str and value:
        return value
    raise _corrupt_field(name, "a non-empty str", value)


def _decode_int(name: str, value: Any) -> int:
    if type(value) is int and _I64_MIN <= value <= _I64_MAX:
        return value
    raise _corrupt_field(name, "an int in the signed 64-bit range", value)


def _decode_float(name: str, value: Any) -> float:
    if type(value) is float:
        return value
    if type(value) is int:  # another producer may write a whole number as an int
        return float(value)
    raise _corrupt_field(name, "a float", value)


def _decode_names_map(name: str, value: Any, rule: str) -> dict[str, Any]:
    if type(value) is not dict:
        raise _corrupt_field(name, "a map with str keys", value)
    for key in value:
        if type(key) is not str:
            raise CorruptJobError(f"job field {name!r} has a key of type {_wire_name(key)}: {rule}")
    return value


def _decode_backoff(value: Any) -> tuple[str, float, float, float, str] | None:
    if value is None:
        return None
    if type(value) is not list or len(value) != 5:
        raise _corrupt_field("backoff", "nil or an array [str, float, float, float, str]", value)
    kind, base, factor, cap, jitter = value
    if type(kind) is not str:
        raise _corrupt_field("backoff[0]", "a str", kind)
    base_f = _decode_float("backoff[1]", base)
    factor_f = _decode_float("backoff[2]", factor)
    cap_f = _decode_float("backoff[3]", cap)
    if type(jitter) is not str:
        raise _corrupt_field("backoff[4]", "a str", jitter)
    spec = (kind, base_f, factor_f, cap_f, jitter)
    problem = _backoff_problem(spec)
    if problem is not None:
        raise CorruptJobError(f"job field 'backoff' is not a valid backoff: {problem}")
    return spec


def _decode_parents(value: Any) -> tuple[str, ...]:
    if type(value) is not list:
        raise _corrupt_field("parents", "an array of str", value)
    for index, parent in enumerate(value):
        if type(parent) is not str:
            raise _corrupt_field(f"parents[{index}]", "a str", parent)
    return tuple(value)


def decode_job(data: bytes, max_size: int = DEFAULT_MAX_PAYLOAD) -> JobRecord:
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
    # The job array is level 0: args, kwargs and meta are level 1, as when encoding.
    fields = _unpack("decode_job", "job", data, max_size, 0)
    if type(fields) is not list:
        raise CorruptJobError(f"job must be a msgpack array of 16 elements, got {_wire_name(fields)}")
    if len(fields) != 16:
        raise CorruptJobError(f"job must be a msgpack array of 16 elements, got {len(fields)}")
    version = fields[0]
    if type(version) is not int:
        raise CorruptJobError(
            f"job must start with its schema version (an int), got {_wire_name(version)}"
        )
    if version > SCHEMA_VERSION:
        raise _newer_schema(version)
    if version < 1:
        raise CorruptJobError(f"job field 'schema_version' must be 1 or more, got {version}")
    (_, id_, task, queue, args, kwargs, priority, attempt, max_attempts, run_at,
     enqueued_at, timeout, backoff, unique_key, parents, meta) = fields  # fmt: skip
    id_ = _decode_name("id", id_)
    task = _decode_name("task", task)
    queue = _decode_name("queue", queue)
    if type(args) is not list:
        raise _corrupt_field("args", "an array", args)
    kwargs = _decode_names_map("kwargs", kwargs, "keyword names must be str")
    priority = _decode_int("priority", priority)
    attempt = _decode_int("attempt", attempt)
    if attempt < 0:
        raise _corrupt_field("attempt", "an int >= 0", attempt)
    max_attempts = _decode_int("max_attempts", max_attempts)
    if max_attempts < 1:
        raise _corrupt_field("max_attempts", "an int >= 1", max_attempts)
    run_at = _decode_float("run_at", run_at)
    enqueued_at = _decode_float("enqueued_at", enqueued_at)
    if timeout is not None:
        timeout = _decode_float("timeout", timeout)
    backoff = _decode_backoff(backoff)
    if unique_key is not None and type(unique_key) is not str:
        raise _corrupt_field("unique_key", "nil or a str", unique_key)
    parents = _decode_parents(parents)
    meta = _decode_names_map("meta", meta, "metadata keys must be str")
    return JobRecord(
        id_, task, queue, tuple(args), kwargs, priority, attempt, max_attempts,
        run_at, enqueued_at, timeout, backoff, unique_key, parents, meta,
    )  # fmt: skip


def decode_value(data: bytes, max_size: int = DEFAULT_MAX_PAYLOAD) -> Any:
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
    return _unpack("decode_value", "value", data, max_size, 1)


def tally_starts(records: Iterable[JobRecord], now: float, bounds: tuple[float, ...]) -> list[tuple[Any, Any, int, list[Any]]]:
    """What a batch of started jobs adds to the wait histograms: one entry per run of
    consecutive records of one (queue, task), ``(queue, task, started, cell)``, where ``cell``
    is ``[sum of waits, count per bucket...]`` over the run's first attempts (a retry's due
    time is not in its record). A wait is from the later of ``run_at`` and ``enqueued_at`` to
    ``now`` (0 if ``now`` is earlier); its bucket is ``bisect_left(bounds, wait)``.

    Example:
        >>> r = JobRecord(id="j", task="t", attempt=1, enqueued_at=10.0)
        >>> tally_starts([r, r], 10.5, (0.1, 1.0))
        [('default', 't', 2, [1.0, 0, 2, 0])]
    """
    out: list[tuple[Any, Any, int, list[Any]]] = []
    cell: list[Any] | None = None
    queue: Any = None
    task: Any = None
    n = 0
    for record in records:
        if cell is None or record.task != task or record.queue != queue:
            if cell is not None:
                out.append((queue, task, n, cell))
            queue, task, n = record.queue, record.task, 0
            cell = [0.0] + [0] * (len(bounds) + 1)
        n += 1
        if record.attempt == 1:
            due = float(record.run_at)
            enqueued = float(record.enqueued_at)
            if enqueued > due:
                due = enqueued
            wait = now - due if now > due else 0.0
            cell[0] += wait
            cell[bisect.bisect_left(bounds, wait) + 1] += 1
    if cell is not None:
        out.append((queue, task, n, cell))
    return out


__all__ = [
    "DEFAULT_MAX_PAYLOAD", "FIELDS", "JobRecord", "JobTemplate", "SCHEMA_VERSION",
    "decode_job", "decode_value", "encode_job", "encode_value", "tally_starts",
]  # fmt: skip

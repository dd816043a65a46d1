"""What both job codec twins share: the wire constants, and the cold code that words every error.

``_codec_c.pyx`` and ``_codec_py.py`` import these names as their own. Nothing
here runs on a codec's fast path: it runs once something is wrong (a value
refused, bytes that are not a job), for the rare extension types, or on the
slow decode path that msgpack's own unpacker takes. Kept in one plain module
so that both twins build every message with the very same code, and the
messages cannot drift apart; the compiled twin loses nothing by calling it.

Example:
    >>> _explain_value("argument", "args", ({1, 2},), None, _Refused())
    UnencodableError('argument args[0] of type set cannot be encoded as msgpack: convert it to a list')
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import decimal
import enum
import uuid
from collections.abc import Callable
from typing import Any, Final

import msgpack  # type: ignore[import-untyped, unused-ignore]

from ._errors import CorruptJobError, InvalidOptionError, PayloadTooLargeError, UnencodableError

SCHEMA_VERSION: Final[int] = 1
"""Version of the job array layout; bumped when the layout changes."""

DEFAULT_MAX_PAYLOAD: Final[int] = 1 << 20
"""Largest encoded job or value accepted by default: 1 MiB."""

FIELDS: Final[tuple[str, ...]] = (
    "id", "task", "queue", "args", "kwargs", "priority", "attempt", "max_attempts",
    "run_at", "enqueued_at", "timeout", "backoff", "unique_key", "parents", "meta",
)  # fmt: skip
"""The fields of a :class:`JobRecord`, in wire order (after the schema version)."""

# The compiled twin keeps C copies of these for its writer and reader.
_EXT_UUID: Final = 1
_EXT_DECIMAL: Final = 2
_MAX_DEPTH: Final = 100  # far below msgpack's own pack (1024) and unpack limits
_I64_MIN: Final = -(1 << 63)
_I64_MAX: Final = (1 << 63) - 1
_U64_MAX: Final = (1 << 64) - 1
_ITEM_LIMIT: Final = 0xFFFFFFFF  # msgpack lengths are 32-bit
_EPOCH: Final = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
# The instants a decoded timestamp can become: an aware datetime near year 1
# or 9999 may fall outside them in UTC, and would then encode but never decode.
_UTC_MIN_SECONDS: Final = -62135596800  # 0001-01-01T00:00:00Z
_UTC_MAX_SECONDS: Final = 253402300799  # 9999-12-31T23:59:59Z
# Decimal() only raises on bad text when the context traps InvalidOperation;
# the caller's thread context might not, so the codec brings its own.
_STRICT_DECIMAL: Final = decimal.Context(traps=[decimal.InvalidOperation])


class _Refused(Exception):
    """A fast path met a value it will not encode; _explain_value says why."""


class _Changed(_Refused):
    """A list or dict changed size while a fast path was encoding it (user code did it)."""


# What a dict iteration raises once the dict changes under it.
_DICT_CHANGED = (
    "dictionary changed size during iteration",
    "dictionary keys changed during iteration",
)


def _sent_key(key: Any) -> Any:
    """A valid map key as it travels: its base type's value, never a subclass."""
    if isinstance(key, str):
        return key if type(key) is str else str.__str__(key)
    if isinstance(key, int):  # bool included: it travels as a msgpack bool
        return key if type(key) is bool or type(key) is int else int.__index__(key)
    return key if type(key) is bytes else bytes(memoryview(key))


def _type_name(value: object) -> str:
    cls = type(value)
    module = getattr(cls, "__module__", "builtins")
    qualname = getattr(cls, "__qualname__", cls.__name__)
    return qualname if module == "builtins" else f"{module}.{qualname}"


def _short_repr(value: object) -> str:
    try:
        text = repr(value)
    except Exception:  # a broken __repr__ must not hide the real problem
        return f"<{_type_name(value)} object>"
    return text if len(text) <= 60 else text[:57] + "..."


def _describe(value: object) -> str:
    return f"{_type_name(value)} {_short_repr(value)}"


def _field_error(name: str, expected: str, value: object) -> UnencodableError:
    return UnencodableError(f"job field {name!r} must be {expected}, got {_describe(value)}")


def _hint(value: object) -> str:
    if isinstance(value, (set, frozenset)):
        return "convert it to a list"
    if isinstance(value, _dt.date):  # a datetime never gets here
        return "pass an aware datetime, or the date as a str with .isoformat()"
    if isinstance(value, _dt.time):
        return "pass it as a str with .isoformat()"
    if isinstance(value, _dt.timedelta):
        return "pass a number of seconds with .total_seconds()"
    if isinstance(value, enum.Enum):
        return "pass its .value"
    if isinstance(value, complex):
        return "pass [value.real, value.imag]"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return "pass dataclasses.asdict(value)"
    if hasattr(type(value), "__index__"):
        return "convert it with int()"
    if hasattr(type(value), "__float__"):
        return "convert it with float(), or pass it as a str"
    return (
        "pass only None, bool, int, float, str, bytes, list, tuple, dict, "
        "aware datetime, UUID or Decimal"
    )


def _problem_in_str(subject: str, value: str) -> str | None:
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError as exc:
        return (
            f"{subject} is a str that cannot be encoded as UTF-8 ({exc.reason} at "
            f"position {exc.start}): remove the lone surrogate"
        )
    if size > _ITEM_LIMIT:
        return f"{subject} is a str of {size} bytes, too long for msgpack"
    return None


def _problem_in_key(subject: str, key: object, top_rule: str | None) -> str | None:
    if top_rule is not None:
        if not isinstance(key, str):
            return f"{subject} has a key of type {_type_name(key)} ({_short_repr(key)}): {top_rule}"
        return _problem_in_str(f"{subject} key {_short_repr(key)}", key)
    if isinstance(key, str):
        return _problem_in_str(f"{subject} key {_short_repr(key)}", key)
    if isinstance(key, int):  # bool included: it travels as a msgpack bool
        if _I64_MIN <= int.__index__(key) <= _U64_MAX:
            return None
        return (
            f"{subject} has an int key {_short_repr(key)} outside the msgpack integer "
            "range (-2**63 .. 2**64-1): use a str key"
        )
    if isinstance(key, bytes):
        return None
    return (
        f"{subject} has a key of type {_type_name(key)} ({_short_repr(key)}): "
        "map keys must be str, int or bytes"
    )


def _problem_in_value(subject: str, value: object, depth: int, top_rule: str | None) -> str | None:
    """The first reason ``value`` cannot travel, depth first, or None if it can."""
    if value is None or isinstance(value, (bool, float)):
        return None
    if isinstance(value, int):
        if _I64_MIN <= int.__index__(value) <= _U64_MAX:
            return None
        return (
            f"{subject} = {_short_repr(value)} is outside the msgpack integer range "
            "(-2**63 .. 2**64-1): pass it as a str"
        )
    if isinstance(value, str):
        return _problem_in_str(subject, value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        if isinstance(value, memoryview):
            try:
                size = len(value.tobytes())
            except (ValueError, TypeError) as exc:
                return f"{subject} is a memoryview that cannot be read ({exc})"
        else:
            size = len(value)
        if size > _ITEM_LIMIT:
            return f"{subject} holds {size} bytes, too many for msgpack"
        return None
    if isinstance(value, (list, tuple, dict)):
        if depth > _MAX_DEPTH:
            return (
                f"{subject} is nested deeper than {_MAX_DEPTH} levels and cannot be "
                "encoded as msgpack: flatten it"
            )
        if len(value) > _ITEM_LIMIT:
            return f"{subject} holds {len(value)} items, too many for msgpack"
        if isinstance(value, dict):
            sent: set[Any] = set()
            for key, item in dict.items(value):
                problem = _problem_in_key(subject, key, top_rule)
                if problem is None:
                    # Two keys a str or int subclass kept apart (its own __hash__
                    # or __eq__) would become one key on the wire.
                    plain_key = _sent_key(key)
                    if plain_key in sent:
                        problem = (
                            f"{subject} has two keys equal to {_short_repr(plain_key)} once "
                            "converted to their base type, which would travel as one: "
                            "make the keys distinct"
                        )
                    sent.add(plain_key)
                problem = problem or _problem_in_value(
                    f"{subject}[{_short_repr(key)}]", item, depth + 1, None
                )
                if problem is not None:
                    return problem
        else:
            for index, item in enumerate(value):
                problem = _problem_in_value(f"{subject}[{index}]", item, depth + 1, None)
                if problem is not None:
                    return problem
        return None
    if isinstance(value, _dt.datetime):
        try:
            if value.utcoffset() is None:
                return (
                    f"{subject} is a naive datetime ({value.isoformat()}) and cannot be "
                    "encoded as msgpack: attach a tzinfo, e.g. "
                    ".replace(tzinfo=datetime.timezone.utc), so that it names one instant "
                    "on every machine"
                )
            delta = _dt.datetime.__sub__(value, _EPOCH)
        except Exception as exc:
            return f"{subject} is a datetime whose tzinfo failed ({type(exc).__name__}: {exc})"
        if not _UTC_MIN_SECONDS <= delta.days * 86400 + delta.seconds <= _UTC_MAX_SECONDS:
            return (
                f"{subject} = {value.isoformat()} falls outside the years 1..9999 once "
                "converted to UTC, so it could not be decoded: move it into range"
            )
        return None
    if isinstance(value, (uuid.UUID, decimal.Decimal)):
        return None
    return f"{subject} of type {_type_name(value)} cannot be encoded as msgpack: {_hint(value)}"


def _explain_value(
    noun: str, root: str, value: object, top_rule: str | None, exc: BaseException
) -> UnencodableError:
    """The error for a user value a fast path refused, naming where and what."""
    subject = f"{noun} {root}" if noun else root
    message = _problem_in_value(subject, value, 1, top_rule)
    if message is None and isinstance(exc, _Changed):
        message = (
            f"{subject} changed while it was being encoded: user code that encoding runs "
            "(a tzinfo's utcoffset(), a subclass's method) added or removed items of a list "
            "or dict inside it; pass a value that nothing modifies meanwhile"
        )
    elif message is None:  # the fast path failed for a reason the walk cannot see
        message = f"{subject} cannot be encoded as msgpack ({type(exc).__name__}: {exc})"
    return UnencodableError(message)


def _too_large(what: str, size: int, limit: int, encoding: bool) -> PayloadTooLargeError:
    advice = (
        "pass a reference to large data instead of the data itself, or raise max_payload"
        if encoding
        else "raise max_payload on this side to match the producer's limit"
    )
    return PayloadTooLargeError(
        f"{what} payload is {size} bytes, over the limit of {limit} bytes; {advice}"
    )


def _wire_name(value: object) -> str:
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return f"bool {value!r}"
    if isinstance(value, (int, float)):
        return f"{type(value).__name__} {value!r}"
    if isinstance(value, str):
        return f"str {_short_repr(value)}"
    if isinstance(value, bytes):
        return "bin"
    if isinstance(value, list):
        return f"array of {len(value)} elements"
    if isinstance(value, dict):
        return "map"
    if isinstance(value, _dt.datetime):
        return "timestamp"
    if isinstance(value, uuid.UUID):
        return "UUID extension"
    if isinstance(value, decimal.Decimal):
        return "Decimal extension"
    return type(value).__name__


def _corrupt_field(name: str, expected: str, value: object) -> CorruptJobError:
    return CorruptJobError(f"job field {name!r} must be {expected}, got {_wire_name(value)}")


def _corrupt_bytes(what: str, exc: Exception) -> CorruptJobError:
    if isinstance(exc, _BadExtension):
        reason = f"hold {exc}"
    elif isinstance(exc, msgpack.ExtraData):
        extra = len(exc.extra)
        reason = f"hold {extra} byte{'' if extra == 1 else 's'} of trailing data after the msgpack value"
    elif isinstance(exc, msgpack.StackError):
        return _too_deep_error(what)
    elif isinstance(exc, msgpack.FormatError):
        reason = "are not msgpack (a reserved or unknown type byte)"
    elif isinstance(exc, UnicodeDecodeError):
        reason = f"hold a str that is not valid UTF-8 ({exc.reason})"
    elif isinstance(exc, ValueError) and (
        "incomplete input" in str(exc) or "exceeds max_" in str(exc)
    ):  # a length header longer than all the bytes there are is a truncation too
        reason = "are truncated: the msgpack value ends before the data does"
    elif isinstance(exc, TypeError) and "unhashable" in str(exc):
        reason = "hold a map whose key is an array or a map"
    elif isinstance(exc, OverflowError):
        reason = f"hold a timestamp outside the datetime range ({exc})"
    else:
        reason = f"are not valid msgpack ({type(exc).__name__}: {exc})"
    return CorruptJobError(f"{what} bytes {reason}")


def _too_deep_error(what: str) -> CorruptJobError:
    return CorruptJobError(
        f"{what} bytes are nested deeper than {_MAX_DEPTH} levels, which this codec never "
        "writes (nor reads back)"
    )


def _too_deep(value: Any, depth: int) -> bool:
    """Whether decoded ``value``, a list or dict at ``depth``, holds one nested past _MAX_DEPTH."""
    # The encoder refuses such values; reading them back would give objects
    # whose repr() and == overflow the stack.
    if depth > _MAX_DEPTH:
        return True
    for item in value if type(value) is list else value.values():
        cls = type(item)
        if (cls is list or cls is dict) and _too_deep(item, depth + 1):
            return True
    return False


def _backoff_checker(backoff: Any) -> tuple[dict[Any, None], Callable[[Any], str | None]]:
    """A twin's check of a backoff spec, against that twin's own ``Backoff``.

    Returns the cache of specs known to be valid (the compiled twin tests it
    in C first) and the check: why a spec is no valid backoff, in Backoff's own
    words, or None; one rule for both ends.
    """
    # Building a Backoff to check one costs more than encoding the whole job,
    # and a deployment uses a handful of specs; bounded, since decoded specs
    # come from outside. Never holds a NaN, so == is exact.
    valid: dict[Any, None] = {}

    def backoff_problem(spec: Any) -> str | None:
        key = tuple(spec)
        if key in valid:
            return None
        try:
            backoff.from_spec(key)
        except InvalidOptionError as exc:
            return str(exc)
        if len(valid) >= 64:
            valid.clear()
        valid[key] = None
        return None

    return valid, backoff_problem


def _newer_schema(version: int) -> CorruptJobError:
    return CorruptJobError(
        f"job was encoded with schema version {version}, newer than this fastjobs "
        f"understands ({SCHEMA_VERSION}): upgrade fastjobs on this worker"
    )


def _not_bytes(func: str, data: object) -> TypeError:
    return TypeError(f"{func}() needs a bytes-like object, got {_type_name(data)}")


class _BadExtension(Exception):
    """An ext value the decoder refuses; turned into CorruptJobError by _unpack."""


def _decode_ext(code: int, data: bytes) -> Any:
    # msgpack decodes the timestamp (-1) itself; everything else comes here.
    if code == _EXT_UUID:
        if len(data) != 16:
            raise _BadExtension(f"a UUID extension of {len(data)} bytes instead of 16")
        return uuid.UUID(bytes=data)
    if code == _EXT_DECIMAL:
        try:
            text = data.decode("ascii")
        except UnicodeDecodeError:
            raise _BadExtension("a Decimal extension whose text is not ASCII") from None
        # Decimal() forgives padding and digit separators; the encoder never
        # writes them, so their presence means the bytes are not ours.
        if not text or text.strip() != text or "_" in text:
            raise _BadExtension(f"a Decimal extension with bad text {_short_repr(text)}")
        try:
            return decimal.Decimal(text, _STRICT_DECIMAL)
        except (decimal.InvalidOperation, ValueError):
            raise _BadExtension(f"a Decimal extension with bad text {_short_repr(text)}") from None
    raise _BadExtension(
        f"an unknown msgpack extension type {code} (known: -1 timestamp, 1 UUID, 2 Decimal)"
    )


def _decimal_text(value: decimal.Decimal) -> bytes:
    # str() follows the thread's context.capitals; the wire form always uses "E".
    return decimal.Decimal.__str__(value).replace("e", "E").encode("ascii")

"""The msgpack job codec (``_codec_c`` and its twin ``_codec_py``).

Every test runs against both implementations through the session ``core``
fixture. Besides round trips and the exact wire format, the two twins are held
to each other: the same bytes for every job and value, and the same outcome
(decoded value, or error type and message) for every input, valid, truncated,
mutated or random.
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import datetime as dt
import decimal
import doctest
import enum
import fractions
import importlib
import importlib.machinery
import math
import struct
import threading
import types
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastjobs._core._errors import (
    CorruptJobError,
    FastjobsError,
    PayloadTooLargeError,
    UnencodableError,
)
from tests.conftest import import_compiled

I64_MIN = -(2**63)
I64_MAX = 2**63 - 1
U64_MAX = 2**64 - 1
UTC = dt.timezone.utc

# `core` is session-scoped, which hypothesis accepts; the suppression only
# keeps a future fixture-scope change from turning into a confusing failure.
HYPOTHESIS = settings(
    deadline=None,
    max_examples=150,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

TYPICAL = {
    "id": "0123456789abcdef0123456789abcdef",
    "task": "app.tasks.send_email",
    "queue": "default",
    "args": ("a@b.c", 42),
    "kwargs": {"subject": "hi"},
}
TYPICAL_HEX = (
    "dc0010"  # array of 16
    "01"  # schema version
    "d920" + "0123456789abcdef0123456789abcdef".encode().hex()  # id: str8 of 32
    + "b4" + b"app.tasks.send_email".hex()  # task: fixstr of 20
    + "a7" + b"default".hex()
    + "92" + "a5" + b"a@b.c".hex() + "2a"  # args: [str, 42]
    + "81" + "a7" + b"subject".hex() + "a2" + b"hi".hex()
    + "00" "00" "01"  # priority, attempt, max_attempts
    + "cb0000000000000000" * 2  # run_at, enqueued_at: always float 64
    + "c0" "c0" "c0"  # timeout, backoff, unique_key
    + "90"  # parents
    + "80"  # meta
)


def _job(core: types.SimpleNamespace, **fields: Any) -> Any:
    return core.codec.JobRecord(**{**TYPICAL, **fields})


def _errors(func: Callable[[], Any]) -> tuple[type[BaseException], str] | None:
    try:
        func()
    except Exception as exc:
        return type(exc), str(exc)
    return None


@pytest.fixture(scope="session")
def other_codec(core: types.SimpleNamespace) -> types.ModuleType:
    """The twin ``core.codec`` is compared against: the compiled one for pure, and back."""
    if core.kind == "compiled":
        return importlib.import_module("fastjobs._core._codec_py")
    return import_compiled("codec")


# -- values: what goes in, what must come out ---------------------------------


def expected(value: Any) -> Any:
    """What ``value`` must decode to, per the travel rules."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, (list, tuple)):
        return [expected(item) for item in value]
    if isinstance(value, dict):
        return {expected(key): expected(item) for key, item in value.items()}
    if isinstance(value, dt.datetime):
        return value.astimezone(UTC)
    if isinstance(value, enum.Enum):
        return value.value
    return value


def same(a: Any, b: Any) -> bool:
    """Equal, of exactly the same types all the way down; NaNs equal by their bits."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack(">d", a) == struct.pack(">d", b)
    if isinstance(a, decimal.Decimal):
        return a.as_tuple() == b.as_tuple()
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):  # keys pairwise too: a NaN key is only equal to itself
        return len(a) == len(b) and all(
            same(ka, kb) and same(va, vb) for (ka, va), (kb, vb) in zip(a.items(), b.items())
        )
    if isinstance(a, dt.datetime):
        return a == b and a.tzinfo is not None and a.utcoffset() == b.utcoffset()
    return bool(a == b)


def same_job(a: Any, b: Any) -> bool:
    return same(a._field_values(), b._field_values())


OFFSETS = st.sampled_from(
    [
        UTC,
        dt.timezone(dt.timedelta(hours=5, minutes=30)),
        dt.timezone(dt.timedelta(hours=-8)),
        dt.timezone(dt.timedelta(seconds=-1, microseconds=7)),
    ]
)
AWARE_DATETIMES = st.datetimes(
    min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30), timezones=OFFSETS
)
MSGPACK_INTS = st.integers(I64_MIN, U64_MAX)
KEYS = st.text(max_size=8) | st.integers(I64_MIN, U64_MAX) | st.binary(max_size=8)
PLAIN_SCALARS = (
    st.none()
    | st.booleans()
    | MSGPACK_INTS
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
    | st.binary(max_size=40)
)
SCALARS = (
    PLAIN_SCALARS
    | st.binary(max_size=8).map(bytearray)
    | st.binary(max_size=8).map(memoryview)
    | AWARE_DATETIMES
    | st.uuids()
    | st.decimals(allow_nan=True, allow_infinity=True)
)


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return (
        st.lists(children, max_size=5)
        | st.lists(children, max_size=3).map(tuple)
        | st.dictionaries(KEYS, children, max_size=5)
    )


VALUES = st.recursive(SCALARS, _containers, max_leaves=20)
PLAIN_VALUES = st.recursive(
    PLAIN_SCALARS | AWARE_DATETIMES.map(lambda d: d.astimezone(UTC)), _containers, max_leaves=20
)
NAMES = st.text(min_size=1, max_size=40)
NUMBERS = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(2**53), 2**53)


@st.composite
def backoff_specs(draw: st.DrawFn) -> tuple[str, Any, Any, Any, str]:
    """Specs Backoff.from_spec accepts (the codec refuses the others), some numbers as ints."""
    kind = draw(st.sampled_from(["fixed", "linear", "exponential"]))
    jitter = draw(st.sampled_from(["none", "full", "equal", "decorrelated"]))
    positive = kind == "exponential" or jitter == "decorrelated"
    base = draw(st.floats(0.0, 1e6, exclude_min=positive) | st.integers(int(positive), 10**6))
    factor = draw(st.floats(1.0 if kind == "exponential" else 0.0, 1e3) | st.integers(1, 10))
    cap = draw(st.floats(float(base), 1e9) | st.just(base))
    return (kind, base, factor, cap, jitter)


JOB_FIELDS = st.fixed_dictionaries(
    {
        "id": NAMES,
        "task": NAMES,
        "queue": NAMES,
        "args": st.lists(VALUES, max_size=4).map(tuple) | st.lists(VALUES, max_size=2),
        "kwargs": st.dictionaries(st.text(max_size=10), VALUES, max_size=4),
        "priority": st.integers(I64_MIN, I64_MAX),
        "attempt": st.integers(0, I64_MAX),
        "max_attempts": st.integers(1, I64_MAX),
        "run_at": NUMBERS,
        "enqueued_at": NUMBERS,
        "timeout": st.none() | NUMBERS,
        "backoff": st.none() | backoff_specs(),
        "unique_key": st.none() | st.text(max_size=20),
        "parents": st.lists(NAMES, max_size=3).map(tuple),
        "meta": st.dictionaries(st.text(max_size=10), VALUES, max_size=3),
    }
)


def expected_fields(fields: dict[str, Any]) -> dict[str, Any]:
    out = dict(fields)
    out["args"] = tuple(expected(a) for a in fields["args"])
    out["kwargs"] = expected(fields["kwargs"])
    out["meta"] = expected(fields["meta"])
    out["run_at"] = float(fields["run_at"])
    out["enqueued_at"] = float(fields["enqueued_at"])
    if fields["timeout"] is not None:
        out["timeout"] = float(fields["timeout"])
    if fields["backoff"] is not None:
        kind, base, factor, cap, jitter = fields["backoff"]
        out["backoff"] = (kind, float(base), float(factor), float(cap), jitter)
    out["parents"] = tuple(fields["parents"])
    return out


def assert_job_has(job: Any, fields: dict[str, Any]) -> None:
    for name, value in fields.items():
        assert same(getattr(job, name), value), (name, getattr(job, name), value)


# -- the module -----------------------------------------------------------------


def test_compiled_module_is_really_compiled(core: types.SimpleNamespace) -> None:
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    if core.kind == "compiled":
        assert core.codec.__file__.endswith(suffixes), core.codec.__file__
    else:
        assert core.codec.__file__.endswith(".py")


def test_constants(core: types.SimpleNamespace) -> None:
    codec = core.codec
    assert codec.SCHEMA_VERSION == 1
    assert codec.DEFAULT_MAX_PAYLOAD == 1 << 20
    assert codec.FIELDS == (
        "id", "task", "queue", "args", "kwargs", "priority", "attempt", "max_attempts",
        "run_at", "enqueued_at", "timeout", "backoff", "unique_key", "parents", "meta",
    )  # fmt: skip
    assert set(codec.__all__) == {
        "DEFAULT_MAX_PAYLOAD", "FIELDS", "JobRecord", "JobTemplate", "SCHEMA_VERSION",
        "decode_job", "decode_value", "encode_job", "encode_value", "tally_starts",
    }  # fmt: skip


def test_docstring_examples_run(core: types.SimpleNamespace) -> None:
    codec = core.codec
    documented = [codec, codec.JobRecord, codec.JobRecord.replace, codec.JobTemplate, codec.encode_job,
                  codec.decode_job, codec.encode_value, codec.decode_value]  # fmt: skip
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for obj in documented:
        test = doctest.DocTestParser().get_doctest(
            obj.__doc__, dict(vars(codec)), getattr(obj, "__name__", "?"), None, 0
        )
        assert test.examples, f"{obj!r} should carry an example"
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


def test_module_docstring_states_the_travel_rules(core: types.SimpleNamespace) -> None:
    doc = core.codec.__doc__
    for word in ("timestamp (ext -1)", "ext 1", "ext 2", "naive", "memoryview", "bin", "100 levels"):
        assert word in doc, word


def test_both_twins_word_errors_with_the_one_rules_module(core: types.SimpleNamespace) -> None:
    # A twin that defined its own copy of one of these could word an error
    # differently from the other; the tests that compare the twins' messages
    # only reach the inputs they try.
    rules = importlib.import_module("fastjobs._core._codec_rules")
    shared = ("_explain_value", "_field_error", "_corrupt_field", "_corrupt_bytes", "_too_large",
              "_too_deep_error", "_newer_schema", "_not_bytes", "_problem_in_str")  # fmt: skip
    for name in shared:
        assert getattr(core.codec, name) is getattr(rules, name), name


def test_error_classes(core: types.SimpleNamespace) -> None:
    assert issubclass(UnencodableError, (FastjobsError, TypeError))
    assert issubclass(CorruptJobError, (FastjobsError, ValueError))
    assert issubclass(PayloadTooLargeError, (FastjobsError, ValueError))


# -- JobRecord -------------------------------------------------------------------


def test_job_record_defaults(core: types.SimpleNamespace) -> None:
    job = core.codec.JobRecord(id="j1", task="t")
    assert job._field_values() == (
        "j1", "t", "default", (), {}, 0, 0, 1, 0.0, 0.0, None, None, None, (), {},
    )  # fmt: skip
    assert type(job.run_at) is float and type(job.enqueued_at) is float


def test_job_record_default_dicts_are_fresh_per_instance(core: types.SimpleNamespace) -> None:
    a = core.codec.JobRecord(id="a", task="t")
    b = core.codec.JobRecord(id="b", task="t")
    assert a.kwargs is not b.kwargs and a.meta is not b.meta
    a.kwargs["x"] = 1
    a.meta["y"] = 2
    assert b.kwargs == {} and b.meta == {}
    assert core.codec.JobRecord(id="c", task="t").kwargs == {}


def test_job_record_keeps_what_it_is_given(core: types.SimpleNamespace) -> None:
    kwargs = {"k": 1}
    job = core.codec.JobRecord("j", "t", "q", [1], kwargs, 5, 2, 3, 1.5, 2.5, 9.0,
                               ("exp", 1.0, 2.0, 3.0, "none"), "u", ("p",), None)  # fmt: skip
    assert job.kwargs is kwargs  # no copy
    assert job.args == [1]  # no conversion: encode_job checks and converts
    assert (job.queue, job.priority, job.attempt, job.max_attempts) == ("q", 5, 2, 3)
    assert (job.run_at, job.enqueued_at, job.timeout, job.unique_key) == (1.5, 2.5, 9.0, "u")
    assert job.backoff == ("exp", 1.0, 2.0, 3.0, "none") and job.parents == ("p",)
    assert job.meta == {}


def test_job_record_attributes_are_writable(core: types.SimpleNamespace) -> None:
    job = core.codec.JobRecord(id="j", task="t")
    for name in core.codec.FIELDS:
        setattr(job, name, f"new {name}")
        assert getattr(job, name) == f"new {name}"
    with pytest.raises(AttributeError):
        job.not_a_field = 1  # no __dict__: a typo must not pass silently


def test_job_record_needs_id_and_task(core: types.SimpleNamespace) -> None:
    with pytest.raises(TypeError):
        core.codec.JobRecord(id="j")
    with pytest.raises(TypeError):
        core.codec.JobRecord(task="t")


def test_job_record_equality(core: types.SimpleNamespace) -> None:
    codec = core.codec
    a = _job(core)
    assert a == _job(core)
    assert not (a != _job(core))
    for name, value in [("id", "other"), ("attempt", 1), ("meta", {"x": 1}), ("timeout", 1.0)]:
        b = _job(core, **{name: value})
        assert a != b and not (a == b), name
    assert a.__eq__(1) is NotImplemented
    assert a != 1 and a != "job" and a != a._field_values()
    assert codec.JobRecord(id="j", task="t", args=(1,)) != codec.JobRecord(id="j", task="t", args=[1])


def test_job_record_equals_the_other_twins_record(
    core: types.SimpleNamespace, other_codec: types.ModuleType
) -> None:
    mine = _job(core)
    theirs = other_codec.JobRecord(**TYPICAL)
    assert mine == theirs and theirs == mine
    assert not (mine != theirs) and not (theirs != mine)
    theirs.attempt = 3
    assert mine != theirs and theirs != mine


def test_job_record_is_unhashable(core: types.SimpleNamespace) -> None:
    assert core.codec.JobRecord.__hash__ is None
    with pytest.raises(TypeError):
        hash(_job(core))


def test_job_record_repr(core: types.SimpleNamespace) -> None:
    job = core.codec.JobRecord(id="j1", task="app.t", queue="q", attempt=2, args=(1,))
    assert repr(job) == "JobRecord(id='j1', task='app.t', queue='q', attempt=2)"


def test_replace(core: types.SimpleNamespace) -> None:
    job = _job(core)
    bumped = job.replace(attempt=1, queue="retry")
    assert type(bumped) is type(job)
    assert (bumped.attempt, bumped.queue) == (1, "retry")
    assert (job.attempt, job.queue) == (0, "default")  # the original is untouched
    assert bumped.replace(attempt=0, queue="default") == job
    assert bumped.kwargs is job.kwargs  # shallow, like dataclasses.replace
    assert job.replace() == job and job.replace() is not job
    with pytest.raises(TypeError, match="unexpected field 'atempt'"):
        job.replace(atempt=1)


def test_copy_and_deepcopy(core: types.SimpleNamespace) -> None:
    job = _job(core, meta={"trace": [1, 2]})
    shallow = copy.copy(job)
    deep = copy.deepcopy(job)
    assert shallow == job == deep
    assert type(shallow) is type(job) and type(deep) is type(job)
    assert shallow.meta is job.meta
    assert deep.meta is not job.meta and deep.meta == job.meta


# -- the wire format -------------------------------------------------------------


def test_typical_job_bytes(core: types.SimpleNamespace) -> None:
    data = core.codec.encode_job(_job(core))
    assert data.hex() == TYPICAL_HEX
    assert msgpack.unpackb(data) == [
        1, TYPICAL["id"], "app.tasks.send_email", "default", ["a@b.c", 42],
        {"subject": "hi"}, 0, 0, 1, 0.0, 0.0, None, None, None, [], {},
    ]  # fmt: skip


def test_job_layout_and_float_fields(core: types.SimpleNamespace) -> None:
    job = _job(
        core,
        args=[1],
        run_at=5,
        enqueued_at=7,
        timeout=30,
        backoff=["exponential", 1, 2, 60, "full"],
        unique_key="u",
        parents=["p1", "p2"],
        meta={"m": 1},
    )
    raw = msgpack.unpackb(core.codec.encode_job(job), use_list=True)
    assert len(raw) == 16 and raw[0] == core.codec.SCHEMA_VERSION
    assert raw[4] == [1]
    assert raw[9:12] == [5.0, 7.0, 30.0]
    assert all(type(x) is float for x in raw[9:12])
    assert raw[12] == ["exponential", 1.0, 2.0, 60.0, "full"]
    assert all(type(x) is float for x in raw[12][1:4])
    assert raw[13:] == ["u", ["p1", "p2"], {"m": 1}]


@pytest.mark.parametrize(
    ("value", "hex_bytes"),
    [
        (None, "c0"),
        (True, "c3"),
        (False, "c2"),
        (0, "00"),
        (127, "7f"),
        (128, "cc80"),
        (255, "ccff"),
        (256, "cd0100"),
        (65535, "cdffff"),
        (65536, "ce00010000"),
        (2**32 - 1, "ceffffffff"),
        (2**32, "cf0000000100000000"),
        (U64_MAX, "cfffffffffffffffff"),
        (-1, "ff"),
        (-32, "e0"),
        (-33, "d0df"),
        (-128, "d080"),
        (-129, "d1ff7f"),
        (-32768, "d18000"),
        (-32769, "d2ffff7fff"),
        (-(2**31), "d280000000"),
        (-(2**31) - 1, "d3ffffffff7fffffff"),
        (I64_MIN, "d38000000000000000"),
        (1.5, "cb3ff8000000000000"),
        (-0.0, "cb8000000000000000"),
        (math.inf, "cb7ff0000000000000"),
        ("", "a0"),
        (b"", "c400"),
        (bytearray(b"ab"), "c4026162"),
        (memoryview(b"abcdef")[::2], "c403616365"),  # not contiguous: still its bytes
        ([], "90"),
        ((), "90"),
        ({}, "80"),
        ({1: b"k", b"b": True, "s": None}, "8301c4016bc40162c3a173c0"),
        (uuid.UUID(int=1), "d801" + "00" * 15 + "01"),
        (decimal.Decimal("1"), "d40231"),
        (decimal.Decimal("-1.5"), "d602" + b"-1.5".hex()),  # 4 bytes: fixext 4
        (decimal.Decimal("-1.25"), "c70502" + b"-1.25".hex()),  # 5 bytes: ext 8
        (decimal.Decimal("1E+2"), "d60231452b32"),
        (dt.datetime(1970, 1, 1, tzinfo=UTC), "d6ff00000000"),
        (dt.datetime(2106, 2, 7, 6, 28, 15, tzinfo=UTC), "d6ffffffffff"),  # last timestamp 32
        (dt.datetime(1970, 1, 1, 0, 0, 1, 1, tzinfo=UTC), "d7ff00000fa000000001"),
        (dt.datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC), "c70cff00000000ffffffffffffffff"),
    ],
)
def test_value_bytes(core: types.SimpleNamespace, value: Any, hex_bytes: str) -> None:
    data = core.codec.encode_value(value)
    assert data.hex() == hex_bytes
    assert same(core.codec.decode_value(data), expected(value))


@pytest.mark.parametrize("size", [0, 1, 31, 32, 255, 256, 65535, 65536])
def test_length_boundaries_match_msgpack(core: types.SimpleNamespace, size: int) -> None:
    codec = core.codec
    for value in ["x" * size, b"x" * size, [None] * size, {i: None for i in range(size)}]:
        data = codec.encode_value(value)
        assert data == msgpack.packb(value, use_bin_type=True)
        assert codec.decode_value(data) == value
    text = "é" * size  # 2 bytes each: the header counts bytes, not characters
    assert codec.encode_value(text) == msgpack.packb(text, use_bin_type=True)


@pytest.mark.parametrize("digits", [1, 2, 3, 4, 5, 8, 16, 17, 255, 256, 300, 70000])
def test_decimal_ext_sizes_match_msgpack(core: types.SimpleNamespace, digits: int) -> None:
    value = decimal.Decimal("7" * digits)
    data = core.codec.encode_value(value)
    assert data == msgpack.packb(msgpack.ExtType(2, b"7" * digits))
    assert core.codec.decode_value(data) == value


def test_decimal_text_ignores_the_thread_context(core: types.SimpleNamespace) -> None:
    codec = core.codec
    value = decimal.Decimal("1.5E+7")
    reference = codec.encode_value(value)
    with decimal.localcontext() as ctx:
        ctx.capitals = 0  # str() would now write "1.5e+7"
        ctx.traps[decimal.InvalidOperation] = False  # Decimal("junk") would now be NaN
        assert codec.encode_value(value) == reference
        assert codec.decode_value(reference) == value
        with pytest.raises(CorruptJobError, match="bad text"):
            codec.decode_value(msgpack.packb(msgpack.ExtType(2, b"junk")))


@HYPOTHESIS
@given(value=PLAIN_VALUES)
def test_plain_values_are_exactly_what_msgpack_writes(
    core: types.SimpleNamespace, value: Any
) -> None:
    data = core.codec.encode_value(value)
    assert data == msgpack.packb(value, use_bin_type=True, datetime=True)


# -- round trips -----------------------------------------------------------------


@HYPOTHESIS
@given(value=VALUES)
def test_value_round_trip(core: types.SimpleNamespace, value: Any) -> None:
    decoded = core.codec.decode_value(core.codec.encode_value(value))
    assert same(decoded, expected(value))


@HYPOTHESIS
@given(fields=JOB_FIELDS)
def test_job_round_trip(core: types.SimpleNamespace, fields: dict[str, Any]) -> None:
    codec = core.codec
    data = codec.encode_job(codec.JobRecord(**fields))
    job = codec.decode_job(data)
    assert type(job) is codec.JobRecord
    assert_job_has(job, expected_fields(fields))
    assert codec.encode_job(job) == data  # decoding loses nothing the format carries


def test_what_arrives(core: types.SimpleNamespace) -> None:
    codec = core.codec
    when = dt.datetime(2024, 5, 1, 12, 30, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    job = _job(
        core,
        args=[[1, (2, 3)], b"raw", bytearray(b"ba"), when],
        kwargs={"id": uuid.UUID(int=7), "price": decimal.Decimal("9.99")},
        backoff=("exponential", 1, 2, 3, "full"),
        parents=["p"],
    )
    got = codec.decode_job(codec.encode_job(job))
    assert got.args == ([1, [2, 3]], b"raw", b"ba", when)
    assert type(got.args) is tuple and type(got.args[0][1]) is list
    assert type(got.args[2]) is bytes
    assert got.args[3].tzinfo == UTC and got.args[3].hour == 10
    assert got.kwargs == {"id": uuid.UUID(int=7), "price": decimal.Decimal("9.99")}
    assert got.backoff == ("exponential", 1.0, 2.0, 3.0, "full") and type(got.backoff) is tuple
    assert got.parents == ("p",) and type(got.parents) is tuple


@pytest.mark.parametrize(
    "when",
    [
        dt.datetime(1, 1, 1, tzinfo=UTC),
        dt.datetime(1, 1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1))),
        dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        dt.datetime(1900, 3, 1, 0, 0, 0, 1, tzinfo=dt.timezone(dt.timedelta(seconds=-1))),
        dt.datetime(2514, 5, 30, 1, 53, 4, tzinfo=UTC),  # 2**34 seconds: timestamp 96
    ],
)
def test_datetime_extremes_round_trip(core: types.SimpleNamespace, when: dt.datetime) -> None:
    got = core.codec.decode_value(core.codec.encode_value(when))
    assert got == when and got.tzinfo == UTC
    assert got.microsecond == when.astimezone(UTC).microsecond


def test_subclasses_travel_as_their_base_type(core: types.SimpleNamespace) -> None:
    class Colour(enum.IntEnum):
        RED = 3

    class Mode(str, enum.Enum):
        FAST = "fast"

    class MyFloat(float):
        pass

    class MyBytes(bytes):
        pass

    Point = collections.namedtuple("Point", "x y")
    value = [Colour.RED, Mode.FAST, MyFloat(1.5), MyBytes(b"b"), Point(1, 2),
             collections.OrderedDict(a=1), {Colour.RED: "k", Mode.FAST: "s"}]  # fmt: skip
    got = core.codec.decode_value(core.codec.encode_value(value))
    assert same(got, [3, "fast", 1.5, b"b", [1, 2], {"a": 1}, {3: "k", "fast": "s"}])


def test_job_fields_accept_subclasses(core: types.SimpleNamespace) -> None:
    class Level(enum.IntEnum):
        HIGH = 10

    class Name(str):
        pass

    job = _job(core, id=Name("j"), priority=Level.HIGH, kwargs={Name("k"): 1})
    got = core.codec.decode_job(core.codec.encode_job(job))
    assert same(got.id, "j") and same(got.priority, 10) and same(got.kwargs, {"k": 1})


def test_bytes_like_input_is_accepted(core: types.SimpleNamespace) -> None:
    codec = core.codec
    data = codec.encode_job(_job(core))
    for form in (bytearray(data), memoryview(data), memoryview(b"xx" + data)[2:]):
        assert codec.decode_job(form) == _job(core)
    assert codec.decode_value(bytearray(b"\x92\x01\x02")) == [1, 2]


@pytest.mark.parametrize("data", ["not bytes", 42, None, [1, 2]])
def test_non_bytes_input_is_a_type_error(core: types.SimpleNamespace, data: Any) -> None:
    with pytest.raises(TypeError, match="needs a bytes-like object") as info:
        core.codec.decode_job(data)
    assert not isinstance(info.value, FastjobsError)
    with pytest.raises(TypeError, match=r"decode_value\(\) needs a bytes-like object"):
        core.codec.decode_value(data)


# -- the twins agree ---------------------------------------------------------------


@HYPOTHESIS
@given(fields=JOB_FIELDS)
def test_twins_write_identical_job_bytes(
    core: types.SimpleNamespace, other_codec: types.ModuleType, fields: dict[str, Any]
) -> None:
    mine = core.codec.encode_job(core.codec.JobRecord(**fields))
    theirs = other_codec.encode_job(other_codec.JobRecord(**fields))
    assert mine == theirs
    assert same_job(core.codec.decode_job(theirs), other_codec.decode_job(mine))


@HYPOTHESIS
@given(value=VALUES)
def test_twins_write_identical_value_bytes(
    core: types.SimpleNamespace, other_codec: types.ModuleType, value: Any
) -> None:
    assert core.codec.encode_value(value) == other_codec.encode_value(value)


def test_encode_job_takes_the_other_twins_record(
    core: types.SimpleNamespace, other_codec: types.ModuleType
) -> None:
    theirs = other_codec.JobRecord(**TYPICAL)
    assert core.codec.encode_job(theirs).hex() == TYPICAL_HEX


def _mutations() -> st.SearchStrategy[list[tuple[str, int, int]]]:
    op = st.tuples(st.sampled_from(["flip", "insert", "delete", "set"]), st.integers(0, 10**6),
                   st.integers(0, 255))  # fmt: skip
    return st.lists(op, min_size=1, max_size=4)


def _mutate(data: bytes, ops: list[tuple[str, int, int]]) -> bytes:
    buf = bytearray(data)
    for kind, where, byte in ops:
        at = where % (len(buf) + 1)
        if kind == "insert":
            buf.insert(at, byte)
        elif buf and at < len(buf):
            if kind == "flip":
                buf[at] ^= 1 << (byte % 8)
            elif kind == "set":
                buf[at] = byte
            else:
                del buf[at]
    return bytes(buf)


def _outcome(func: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "ok", func()
    except (CorruptJobError, PayloadTooLargeError) as exc:
        return type(exc).__name__, str(exc)


@HYPOTHESIS
@given(fields=JOB_FIELDS, ops=_mutations())
def test_mutated_jobs_fail_cleanly_and_alike(
    core: types.SimpleNamespace,
    other_codec: types.ModuleType,
    fields: dict[str, Any],
    ops: list[tuple[str, int, int]],
) -> None:
    data = _mutate(core.codec.encode_job(core.codec.JobRecord(**fields)), ops)
    mine = _outcome(lambda: core.codec.decode_job(data))  # anything else fails the test
    theirs = _outcome(lambda: other_codec.decode_job(data))
    if mine[0] == "ok" and theirs[0] == "ok":
        assert same_job(mine[1], theirs[1])
    else:
        assert mine == theirs


@HYPOTHESIS
@given(value=VALUES, ops=_mutations())
def test_mutated_values_fail_cleanly_and_alike(
    core: types.SimpleNamespace,
    other_codec: types.ModuleType,
    value: Any,
    ops: list[tuple[str, int, int]],
) -> None:
    data = _mutate(core.codec.encode_value(value), ops)
    mine = _outcome(lambda: core.codec.decode_value(data))
    theirs = _outcome(lambda: other_codec.decode_value(data))
    if mine[0] == "ok" and theirs[0] == "ok":
        assert same(mine[1], theirs[1])
    else:
        assert mine == theirs


@HYPOTHESIS
@given(data=st.binary(max_size=200))
def test_random_bytes_fail_cleanly_and_alike(
    core: types.SimpleNamespace, other_codec: types.ModuleType, data: bytes
) -> None:
    for name in ("decode_job", "decode_value"):
        mine = _outcome(lambda: getattr(core.codec, name)(data))
        theirs = _outcome(lambda: getattr(other_codec, name)(data))
        if mine[0] == "ok" and theirs[0] == "ok":
            assert same_job(mine[1], theirs[1]) if name == "decode_job" else same(mine[1], theirs[1])
        else:
            assert mine == theirs


@HYPOTHESIS
@given(data=st.binary(min_size=3, max_size=200))
def test_random_job_bodies_fail_cleanly(core: types.SimpleNamespace, data: bytes) -> None:
    # Random bytes rarely get past the first byte; these start like a job.
    _outcome(lambda: core.codec.decode_job(b"\xdc\x00\x10\x01" + data))


def test_every_truncation_is_corrupt(
    core: types.SimpleNamespace, other_codec: types.ModuleType
) -> None:
    job = _job(
        core,
        args=(dt.datetime(2030, 1, 1, tzinfo=UTC), uuid.uuid4(), decimal.Decimal("-0.5"), b"b" * 300),
        kwargs={"nested": {"a": [1.5, None, True]}, "big": 2**64 - 1},
        timeout=5.0,
        backoff=("exponential", 1.0, 2.0, 60.0, "full"),
        unique_key="once",
        parents=("p1", "p2"),
        meta={"trace": "x" * 40},
    )
    data = core.codec.encode_job(job)
    for cut in range(len(data)):
        with pytest.raises(CorruptJobError) as info:
            core.codec.decode_job(data[:cut])
        message = str(info.value)
        assert message == ("job bytes are empty" if cut == 0 else
                           "job bytes are truncated: the msgpack value ends before the data does")  # fmt: skip
        with pytest.raises(CorruptJobError) as other_info:
            other_codec.decode_job(data[:cut])
        assert str(other_info.value) == message
    assert core.codec.decode_job(data) == job


def test_trailing_data_is_corrupt(core: types.SimpleNamespace) -> None:
    data = core.codec.encode_job(_job(core))
    with pytest.raises(CorruptJobError, match="hold 1 byte of trailing data"):
        core.codec.decode_job(data + b"\x00")
    with pytest.raises(CorruptJobError, match="hold 3 bytes of trailing data"):
        core.codec.decode_value(b"\x01abc")


# -- encode errors ---------------------------------------------------------------


def _refusal(core: types.SimpleNamespace, **fields: Any) -> str:
    with pytest.raises(UnencodableError) as info:
        core.codec.encode_job(_job(core, **fields))
    return str(info.value)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"id": 5}, "job field 'id' must be a non-empty str, got int 5"),
        ({"id": ""}, "job field 'id' must be a non-empty str, got str ''"),
        ({"task": None}, "job field 'task' must be a non-empty str, got NoneType None"),
        ({"queue": b"q"}, "job field 'queue' must be a non-empty str, got bytes b'q'"),
        ({"args": {"a": 1}}, "job field 'args' must be a tuple or list, got dict {'a': 1}"),
        ({"args": "ab"}, "job field 'args' must be a tuple or list, got str 'ab'"),
        ({"kwargs": [("a", 1)]},
         "job field 'kwargs' must be a dict with str keys, got list [('a', 1)]"),
        ({"kwargs": 5}, "job field 'kwargs' must be a dict with str keys, got int 5"),
        ({"priority": True},
         "job field 'priority' must be an int (not bool) in the signed 64-bit range, got bool True"),
        ({"priority": 1.0},
         "job field 'priority' must be an int (not bool) in the signed 64-bit range, got float 1.0"),
        ({"attempt": 2**63},
         "job field 'attempt' must be an int (not bool) in the signed 64-bit range, "
         "got int 9223372036854775808"),
        ({"max_attempts": I64_MIN - 1},
         "job field 'max_attempts' must be an int (not bool) in the signed 64-bit range, "
         "got int -9223372036854775809"),
        ({"run_at": "now"},
         "job field 'run_at' must be an int or float (epoch seconds), got str 'now'"),
        ({"run_at": False},
         "job field 'run_at' must be an int or float (epoch seconds), got bool False"),
        ({"enqueued_at": 10**400},
         "job field 'enqueued_at' must be an int or float (epoch seconds), got int "),
        ({"timeout": "5"}, "job field 'timeout' must be None or a number of seconds, got str '5'"),
        ({"backoff": ("exponential", 1.0)},
         "job field 'backoff' must be None or a 5-tuple (kind: str, base: float, factor: float, "
         "cap: float, jitter: str), got tuple ('exponential', 1.0)"),
        ({"backoff": "exponential"}, "job field 'backoff' must be None or a 5-tuple"),
        ({"backoff": (1, 1.0, 2.0, 3.0, "full")},
         "job field 'backoff[0]' must be a str (the kind), got int 1"),
        ({"backoff": ("exp", "1", 2.0, 3.0, "full")},
         "job field 'backoff[1]' must be a number, got str '1'"),
        ({"backoff": ("exp", 1.0, 2.0, None, "full")},
         "job field 'backoff[3]' must be a number, got NoneType None"),
        ({"backoff": ("exp", 1.0, 2.0, 3.0, None)},
         "job field 'backoff[4]' must be a str (the jitter), got NoneType None"),
        ({"attempt": -1},
         "job field 'attempt' must be an int >= 0 (the attempts made so far), got int -1"),
        ({"max_attempts": 0}, "job field 'max_attempts' must be an int >= 1, got int 0"),
        ({"max_attempts": I64_MIN}, "job field 'max_attempts' must be an int >= 1, got int -92"),
        ({"backoff": ("exponential", math.nan, 2.0, 3.0, "full")},
         "job field 'backoff' is not a valid backoff: Backoff base must be a finite number >= 0, "
         "got nan"),
        ({"backoff": ("exp", 1.0, 2.0, 3.0, "full")},
         "job field 'backoff' is not a valid backoff: Backoff kind must be one of 'fixed', "
         "'linear', 'exponential', got 'exp'"),
        ({"backoff": ("fixed", 1.0, 0.0, 3.0, "half")},
         "job field 'backoff' is not a valid backoff: Backoff jitter must be one of"),
        ({"backoff": ("exponential", 0, 2, 3, "full")},
         "job field 'backoff' is not a valid backoff: Backoff base must be a finite number > 0 "
         "for exponential backoff, got 0.0"),
        ({"backoff": ("linear", 5, 1, 3, "none")},
         "job field 'backoff' is not a valid backoff: Backoff cap must be a finite number >= base "
         "(5.0), got 3.0"),
        ({"unique_key": 5}, "job field 'unique_key' must be None or a str, got int 5"),
        ({"parents": "abc"},
         "job field 'parents' must be a tuple or list of str job ids, got str 'abc'"),
        ({"parents": ("a", 1)}, "job field 'parents[1]' must be a str job id, got int 1"),
        ({"meta": [1]}, "job field 'meta' must be a dict with str keys, got list [1]"),
        ({"meta": {2: "x"}},
         "metadata meta has a key of type int (2): metadata keys must be str"),
        ({"kwargs": {1: "x"}},
         "keyword argument kwargs has a key of type int (1): keyword names must be str"),
        ({"args": ("x", {1, 2})},
         "argument args[1] of type set cannot be encoded as msgpack: convert it to a list"),
        ({"kwargs": {"at": dt.datetime(2024, 1, 2, 3, 4)}},
         "keyword argument kwargs['at'] is a naive datetime (2024-01-02T03:04:00) and cannot be "
         "encoded as msgpack: attach a tzinfo, e.g. .replace(tzinfo=datetime.timezone.utc), so "
         "that it names one instant on every machine"),
        ({"meta": {"who": object()}},
         "metadata meta['who'] of type object cannot be encoded as msgpack: pass only None, bool, "
         "int, float, str, bytes, list, tuple, dict, aware datetime, UUID or Decimal"),
        ({"id": "\ud800"},
         "job field 'id' is a str that cannot be encoded as UTF-8 (surrogates not allowed at "
         "position 0): remove the lone surrogate"),
        ({"parents": ("ok", "a\udfff")},
         "job field 'parents[1]' is a str that cannot be encoded as UTF-8"),
        ({"unique_key": "\ud800"}, "job field 'unique_key' is a str that cannot be encoded"),
        ({"backoff": ("\ud800", 1.0, 2.0, 3.0, "x")}, "job field 'backoff[0]' is a str that"),
        ({"kwargs": {"\ud800": 1}},
         "keyword argument kwargs key '\\ud800' is a str that cannot be encoded as UTF-8"),
    ],
)
def test_encode_job_refusals(
    core: types.SimpleNamespace, fields: dict[str, Any], message: str
) -> None:
    assert _refusal(core, **fields).startswith(message)


def test_first_bad_field_in_wire_order_is_reported(core: types.SimpleNamespace) -> None:
    message = _refusal(core, meta=None, priority="x", args=({1},))
    assert message.startswith("argument args[0]")
    assert _refusal(core, meta=None, priority="x").startswith("job field 'priority'")


def test_encode_job_needs_a_job_record(core: types.SimpleNamespace) -> None:
    with pytest.raises(UnencodableError, match=r"encode_job\(\) needs a JobRecord, got dict"):
        core.codec.encode_job(dict(TYPICAL))


class _Numberish:
    def __index__(self) -> int:
        return 1


@dataclasses.dataclass
class _Point:
    x: int


class _Shade(enum.Enum):
    DARK = "dark"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({1, 2}, "value of type set cannot be encoded as msgpack: convert it to a list"),
        (frozenset(), "value of type frozenset cannot be encoded as msgpack: convert it to a list"),
        (dt.date(2024, 1, 2), "value of type datetime.date cannot be encoded as msgpack: pass an "
                              "aware datetime, or the date as a str with .isoformat()"),
        (dt.time(1, 2), "value of type datetime.time cannot be encoded as msgpack: pass it as a "
                        "str with .isoformat()"),
        (dt.timedelta(1), "value of type datetime.timedelta cannot be encoded as msgpack: pass a "
                          "number of seconds with .total_seconds()"),
        (dt.datetime(2024, 1, 2), "value is a naive datetime (2024-01-02T00:00:00)"),
        (_Shade.DARK, "value of type tests.core.test_codec._Shade cannot be encoded as msgpack: "
                      "pass its .value"),
        (1j, "value of type complex cannot be encoded as msgpack: pass [value.real, value.imag]"),
        (_Point(1), "value of type tests.core.test_codec._Point cannot be encoded as msgpack: "
                    "pass dataclasses.asdict(value)"),
        (_Numberish(), "value of type tests.core.test_codec._Numberish cannot be encoded as "
                       "msgpack: convert it with int()"),
        (fractions.Fraction(1, 3), "value of type fractions.Fraction cannot be encoded as "
                                   "msgpack: convert it with float(), or pass it as a str"),
        (msgpack.Timestamp(0), "value of type msgpack.ext.Timestamp cannot be encoded"),
        (2**64, "value = 18446744073709551616 is outside the msgpack integer range "
                "(-2**63 .. 2**64-1): pass it as a str"),
        (I64_MIN - 1, "value = -9223372036854775809 is outside the msgpack integer range"),
        ("a\ud800", "value is a str that cannot be encoded as UTF-8 (surrogates not allowed at "
                    "position 1): remove the lone surrogate"),
        ({(1, 2): "x"}, "value has a key of type tuple ((1, 2)): map keys must be str, int or bytes"),
        ({None: 1}, "value has a key of type NoneType (None): map keys must be str, int or bytes"),
        ({1.5: 1}, "value has a key of type float (1.5)"),
        ({2**64: 1}, "value has an int key 18446744073709551616 outside the msgpack integer range"),
        ({"a\ud800": 1}, "value key 'a\\ud800' is a str that cannot be encoded as UTF-8"),
        ([1, {"a": [0, 0, {3}]}], "value[1]['a'][2] of type set cannot be encoded"),
        ((dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1))),),
         "value[0] = 0001-01-01T00:00:00+01:00 falls outside the years 1..9999 once converted to "
         "UTC, so it could not be decoded: move it into range"),
    ],
)
def test_encode_value_refusals(core: types.SimpleNamespace, value: Any, message: str) -> None:
    with pytest.raises(UnencodableError) as info:
        core.codec.encode_value(value)
    assert str(info.value).startswith(message), str(info.value)
    assert info.value.__cause__ is None  # the message says it all


def test_released_memoryview_is_refused(core: types.SimpleNamespace) -> None:
    view = memoryview(b"abc")
    view.release()
    with pytest.raises(UnencodableError, match="value is a memoryview that cannot be read"):
        core.codec.encode_value(view)


def test_nesting_limit(core: types.SimpleNamespace) -> None:
    def nest(levels: int, make: Callable[[Any], Any]) -> Any:
        value: Any = 1
        for _ in range(levels):
            value = make(value)
        return value

    codec = core.codec
    for make in (lambda v: [v], lambda v: (v,), lambda v: {"k": v}):
        deepest = nest(100, make)
        assert codec.decode_value(codec.encode_value(deepest)) == expected(deepest)
        with pytest.raises(UnencodableError, match="is nested deeper than 100 levels"):
            codec.encode_value(nest(101, make))
    with pytest.raises(UnencodableError, match=r"^argument args\[0\]\[0\].*nested deeper"):
        codec.encode_job(_job(core, args=(nest(100, lambda v: [v]),)))
    with pytest.raises(UnencodableError, match=r"^keyword argument kwargs\['k'\].*nested deeper"):
        codec.encode_job(_job(core, kwargs={"k": nest(100, lambda v: [v])}))


def _nest(levels: int, make: Callable[[Any], Any]) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = make(value)
    return value


TOO_DEEP = "bytes are nested deeper than 100 levels, which this codec never writes (nor reads back)"


@pytest.mark.parametrize("opener", [b"\x91", b"\x81\xa1k", b"\xdc\x00\x01", b"\x81\x01"])
def test_decoding_refuses_what_encoding_refuses_to_nest(
    core: types.SimpleNamespace, other_codec: types.ModuleType, opener: bytes
) -> None:
    deepest = core.codec.decode_value(opener * 100 + b"\x01")
    assert repr(deepest) and deepest == copy.deepcopy(deepest)
    assert core.codec.encode_value(deepest) == opener.replace(b"\xdc\x00\x01", b"\x91") * 100 + b"\x01"
    for levels in (101, 128, 129, 1000, 1024, 1025):  # each side of the old limits too
        for codec in (core.codec, other_codec):
            with pytest.raises(CorruptJobError) as info:
                codec.decode_value(opener * levels + b"\x01")
            assert str(info.value) == f"value {TOO_DEEP}"
    # Deep and truncated: both twins word it alike (msgpack sees the truncation first).
    assert _errors(lambda: core.codec.decode_value(opener * 150)) == _errors(
        lambda: other_codec.decode_value(opener * 150)
    )


def test_decoding_a_job_refuses_what_encoding_refuses_to_nest(
    core: types.SimpleNamespace, other_codec: types.ModuleType
) -> None:
    # args, kwargs and meta are level 1, as when encoding (see test_nesting_limit).
    codec = core.codec
    for field, inside in (("f4", lambda v: [v]), ("f5", lambda v: {"k": v}), ("f15", lambda v: {"k": v})):
        ok = msgpack.packb(_packed_job(**{field: inside(_nest(99, lambda v: [v]))}))
        job = codec.decode_job(ok)
        assert codec.decode_job(codec.encode_job(job)) == job
        for levels in (100, 127, 128, 500, 1022):
            data = msgpack.packb(_packed_job(**{field: inside(_nest(levels, lambda v: [v]))}))
            for decode in (codec.decode_job, other_codec.decode_job):
                with pytest.raises(CorruptJobError) as info:
                    decode(data)
                assert str(info.value) == f"job {TOO_DEEP}"
    data = msgpack.packb(_packed_job(f1=_nest(200, lambda v: [v])))  # deep where a str belongs
    assert _corrupt(core, data) == f"job {TOO_DEEP}"


def _mutation_outcomes(
    core: types.SimpleNamespace, other_codec: types.ModuleType, build: Callable[[], Any]
) -> list[tuple[type[BaseException], str] | None]:
    return [_errors(lambda: codec.encode_value(build())) for codec in (core.codec, other_codec)]


CHANGED = (
    "value changed while it was being encoded: user code that encoding runs (a tzinfo's "
    "utcoffset(), a subclass's method) added or removed items of a list or dict inside it; "
    "pass a value that nothing modifies meanwhile"
)


def test_user_code_mutating_a_list_mid_encode_is_refused(
    core: types.SimpleNamespace, other_codec: types.ModuleType
) -> None:
    def meddling(change: Callable[[list[Any]], None]) -> Callable[[], list[Any]]:
        def build() -> list[Any]:
            victim: list[Any] = []
            done: list[bool] = []

            class Meddler(dt.tzinfo):
                def utcoffset(self, when: dt.datetime | None) -> dt.timedelta:
                    if not done:
                        done.append(True)
                        change(victim)
                    return dt.timedelta(0)

            victim.extend([dt.datetime(2024, 1, 1, tzinfo=Meddler()), "x" * 100, [1, 2, 3]])
            return victim

        return build

    for change in (list.clear, lambda v: v.append(4), lambda v: v.pop(), lambda v: v.extend(range(50))):
        outcomes = _mutation_outcomes(core, other_codec, meddling(change))
        assert outcomes == [(UnencodableError, CHANGED)] * 2


def test_user_code_mutating_a_dict_mid_encode_is_refused(
    core: types.SimpleNamespace, other_codec: types.ModuleType
) -> None:
    def meddling(change: Callable[[dict[str, Any]], None]) -> Callable[[], dict[str, Any]]:
        def build() -> dict[str, Any]:
            victim: dict[str, Any] = {}
            done: list[bool] = []

            class Meddler(dt.tzinfo):
                def utcoffset(self, when: dt.datetime | None) -> dt.timedelta:
                    if not done:
                        done.append(True)
                        change(victim)
                    return dt.timedelta(0)

            victim.update(when=dt.datetime(2024, 1, 1, tzinfo=Meddler()), other=1, last="x")
            return victim

        return build

    for change in (dict.clear, lambda d: d.pop("last"), lambda d: d.update(added=1)):
        outcomes = _mutation_outcomes(core, other_codec, meddling(change))
        assert outcomes == [(UnencodableError, CHANGED)] * 2


class _OwnHashStr(str):
    def __hash__(self) -> int:
        return id(self)


class _OwnHashInt(int):
    def __hash__(self) -> int:
        return id(self)


class _OwnHashBytes(bytes):
    def __hash__(self) -> int:
        return id(self)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({_OwnHashStr("a"): 1, "a": 2}, "value has two keys equal to 'a' once converted"),
        ({"a": 1, _OwnHashStr("a"): 2}, "value has two keys equal to 'a' once converted"),
        ({_OwnHashStr("a"): 1, _OwnHashStr("a"): 2}, "value has two keys equal to 'a'"),
        ({_OwnHashInt(1): "x", 1: "y"}, "value has two keys equal to 1 once converted"),
        ({_OwnHashInt(1): "x", True: "y"}, "value has two keys equal to True once converted"),
        ({_OwnHashBytes(b"k"): 1, b"k": 2}, "value has two keys equal to b'k' once converted"),
        ([0, {"b": {"a": 1, _OwnHashStr("a"): 2}}], "value[1]['b'] has two keys equal to 'a'"),
    ],
)
def test_keys_that_collide_once_converted_are_refused(
    core: types.SimpleNamespace, other_codec: types.ModuleType, value: Any, message: str
) -> None:
    outcomes = [_errors(lambda: codec.encode_value(value)) for codec in (core.codec, other_codec)]
    assert outcomes[0] == outcomes[1]
    assert outcomes[0] is not None and outcomes[0][0] is UnencodableError
    assert outcomes[0][1].startswith(message), outcomes[0][1]
    assert outcomes[0][1].endswith("which would travel as one: make the keys distinct")


def test_colliding_names_in_kwargs_and_meta_are_refused(
    core: types.SimpleNamespace, other_codec: types.ModuleType
) -> None:
    for field, noun in (("kwargs", "keyword argument"), ("meta", "metadata")):
        for codec in (core.codec, other_codec):
            job = codec.JobRecord(**{**TYPICAL, field: {_OwnHashStr("a"): 1, "a": 2}})
            with pytest.raises(UnencodableError, match=rf"^{noun} {field} has two keys equal to 'a'"):
                codec.encode_job(job)


def test_subclass_keys_that_do_not_collide_travel_alike(
    core: types.SimpleNamespace, other_codec: types.ModuleType
) -> None:
    value = {_OwnHashStr("a"): 1, "b": 2, _OwnHashInt(3): 3, 4: 4, _OwnHashBytes(b"c"): 5, True: 6}
    data = core.codec.encode_value(value)
    assert data == other_codec.encode_value(value)
    assert core.codec.decode_value(data) == {"a": 1, "b": 2, 3: 3, 4: 4, b"c": 5, True: 6}


# -- size limits -----------------------------------------------------------------


def test_encode_size_limit(core: types.SimpleNamespace) -> None:
    codec = core.codec
    size = len(codec.encode_job(_job(core)))
    assert len(codec.encode_job(_job(core), max_size=size)) == size
    with pytest.raises(PayloadTooLargeError) as info:
        codec.encode_job(_job(core), max_size=size - 1)
    assert str(info.value) == (
        f"job payload is {size} bytes, over the limit of {size - 1} bytes; pass a reference "
        "to large data instead of the data itself, or raise max_payload"
    )
    with pytest.raises(PayloadTooLargeError, match=r"^job payload is 1048\d\d\d bytes, over the limit of 1048576"):
        codec.encode_job(_job(core, args=(b"x" * (1 << 20),)))
    assert codec.decode_job(codec.encode_job(_job(core, args=(b"x" * 1000_000,)))).args[0] == b"x" * 1000_000
    with pytest.raises(PayloadTooLargeError, match=r"^value payload is 4 bytes, over the limit of 3 bytes"):
        codec.encode_value("abc", max_size=3)
    assert codec.encode_value("ab", max_size=3) == b"\xa2ab"


@pytest.mark.parametrize(
    "limit",
    [2**63 - 1, 2**63, 2**64, 10**30, 0, -1, -(2**63), -(2**63) - 1, -(10**30), True, "1", 1.5, None],
)
def test_any_max_size_has_the_same_outcome_in_both_twins(
    core: types.SimpleNamespace, other_codec: types.ModuleType, limit: Any
) -> None:
    outcomes = []
    for codec in (core.codec, other_codec):
        job = codec.JobRecord(**TYPICAL)
        data = codec.encode_job(job)
        outcomes.append([
            _errors(lambda: codec.encode_job(job, max_size=limit)),
            _errors(lambda: codec.encode_value([1, 2], max_size=limit)),
            _errors(lambda: codec.decode_job(data, max_size=limit)),
            _errors(lambda: codec.decode_value(bytearray(b"\x01"), max_size=limit)),
        ])  # fmt: skip
    assert outcomes[0] == outcomes[1]
    if isinstance(limit, int) and limit >= 2**63 - 1:  # larger than any payload: no limit
        assert outcomes[0] == [None] * 4
        job = core.codec.JobRecord(**TYPICAL)
        assert core.codec.decode_job(core.codec.encode_job(job, max_size=limit), max_size=limit) == job


def test_decode_size_limit(core: types.SimpleNamespace) -> None:
    codec = core.codec
    data = codec.encode_job(_job(core))
    assert codec.decode_job(data, max_size=len(data)) == _job(core)
    with pytest.raises(PayloadTooLargeError) as info:
        codec.decode_job(data, max_size=len(data) - 1)
    assert str(info.value) == (
        f"job payload is {len(data)} bytes, over the limit of {len(data) - 1} bytes; raise "
        "max_payload on this side to match the producer's limit"
    )
    with pytest.raises(PayloadTooLargeError, match="^value payload is 4 bytes"):
        codec.decode_value(bytearray(b"\xa3abc"), max_size=3)
    with pytest.raises(PayloadTooLargeError):
        codec.decode_job(b"\x00" * ((1 << 20) + 1))


# -- decode errors -----------------------------------------------------------------


def _packed_job(**changes: Any) -> list[Any]:
    fields = [1, "j", "t", "default", [], {}, 0, 0, 1, 0.0, 0.0, None, None, None, [], {}]
    for index, value in changes.items():
        fields[int(index[1:])] = value
    return fields


def _corrupt(core: types.SimpleNamespace, data: bytes) -> str:
    with pytest.raises(CorruptJobError) as info:
        core.codec.decode_job(data)
    return str(info.value)


def test_hand_built_valid_job_decodes(core: types.SimpleNamespace) -> None:
    job = core.codec.decode_job(msgpack.packb(_packed_job()))
    assert job == core.codec.JobRecord(id="j", task="t")


def test_schema_version(core: types.SimpleNamespace) -> None:
    newer = (
        "job was encoded with schema version {}, newer than this fastjobs understands (1): "
        "upgrade fastjobs on this worker"
    )
    assert _corrupt(core, msgpack.packb(_packed_job(f0=2))) == newer.format(2)
    assert _corrupt(core, msgpack.packb(_packed_job(f0=U64_MAX))) == newer.format(U64_MAX)
    assert _corrupt(core, msgpack.packb(_packed_job(f0=0))) == (
        "job field 'schema_version' must be 1 or more, got 0"
    )
    assert _corrupt(core, msgpack.packb(_packed_job(f0=I64_MIN))).endswith(f"got {I64_MIN}")
    assert _corrupt(core, msgpack.packb(_packed_job(f0="1"))) == (
        "job must start with its schema version (an int), got str '1'"
    )
    assert _corrupt(core, msgpack.packb(_packed_job(f0=1.0))).endswith("got float 1.0")
    assert _corrupt(core, msgpack.packb(_packed_job(f0=True))).endswith("got bool True")


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"id": "j"}, "job must be a msgpack array of 16 elements, got map"),
        (7, "job must be a msgpack array of 16 elements, got int 7"),
        ("job", "job must be a msgpack array of 16 elements, got str 'job'"),
        (None, "job must be a msgpack array of 16 elements, got nil"),
        (b"job", "job must be a msgpack array of 16 elements, got bin"),
        (_packed_job()[:15], "job must be a msgpack array of 16 elements, got 15"),
        ([*_packed_job(), None], "job must be a msgpack array of 16 elements, got 17"),
        ([], "job must be a msgpack array of 16 elements, got 0"),
    ],
)
def test_wrong_shape(core: types.SimpleNamespace, obj: Any, message: str) -> None:
    assert _corrupt(core, msgpack.packb(obj)) == message


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"f1": 5}, "job field 'id' must be a non-empty str, got int 5"),
        ({"f1": ""}, "job field 'id' must be a non-empty str, got str ''"),
        ({"f2": b"t"}, "job field 'task' must be a non-empty str, got bin"),
        ({"f3": None}, "job field 'queue' must be a non-empty str, got nil"),
        ({"f4": {}}, "job field 'args' must be an array, got map"),
        ({"f4": "ab"}, "job field 'args' must be an array, got str 'ab'"),
        ({"f5": []}, "job field 'kwargs' must be a map with str keys, got array of 0 elements"),
        ({"f5": {1: 2}}, "job field 'kwargs' has a key of type int 1: keyword names must be str"),
        ({"f5": {b"k": 2}}, "job field 'kwargs' has a key of type bin: keyword names must be str"),
        ({"f6": "0"}, "job field 'priority' must be an int in the signed 64-bit range, got str '0'"),
        ({"f6": True}, "job field 'priority' must be an int in the signed 64-bit range, got bool True"),
        ({"f7": 2**63}, "job field 'attempt' must be an int in the signed 64-bit range, "
                        "got int 9223372036854775808"),
        ({"f8": 1.0}, "job field 'max_attempts' must be an int in the signed 64-bit range, "
                      "got float 1.0"),
        ({"f9": "now"}, "job field 'run_at' must be a float, got str 'now'"),
        ({"f10": None}, "job field 'enqueued_at' must be a float, got nil"),
        ({"f11": "5"}, "job field 'timeout' must be a float, got str '5'"),
        ({"f12": ["exp", 1.0]}, "job field 'backoff' must be nil or an array "
                                "[str, float, float, float, str], got array of 2 elements"),
        ({"f12": "exp"}, "job field 'backoff' must be nil or an array"),
        ({"f12": [1, 1.0, 2.0, 3.0, "x"]}, "job field 'backoff[0]' must be a str, got int 1"),
        ({"f12": ["e", 1.0, "2", 3.0, "x"]}, "job field 'backoff[2]' must be a float, got str '2'"),
        ({"f12": ["e", 1.0, 2.0, 3.0, None]}, "job field 'backoff[4]' must be a str, got nil"),
        ({"f7": -1}, "job field 'attempt' must be an int >= 0, got int -1"),
        ({"f7": I64_MIN}, f"job field 'attempt' must be an int >= 0, got int {I64_MIN}"),
        ({"f8": 0}, "job field 'max_attempts' must be an int >= 1, got int 0"),
        ({"f8": -5}, "job field 'max_attempts' must be an int >= 1, got int -5"),
        ({"f12": ["exponential", math.nan, 2.0, 3.0, "full"]},
         "job field 'backoff' is not a valid backoff: Backoff base must be a finite number >= 0, "
         "got nan"),
        ({"f12": ["fixed", -1.0, 0.0, 3.0, "none"]},
         "job field 'backoff' is not a valid backoff: Backoff base must be a finite number >= 0, "
         "got -1.0"),
        ({"f12": ["cubic", 1.0, 2.0, 3.0, "none"]},
         "job field 'backoff' is not a valid backoff: Backoff kind must be one of 'fixed', "
         "'linear', 'exponential', got 'cubic'"),
        ({"f12": ["fixed", 1.0, 0.0, 3.0, "half"]},
         "job field 'backoff' is not a valid backoff: Backoff jitter must be one of"),
        ({"f12": ["exponential", 1.0, 0.5, 3.0, "none"]},
         "job field 'backoff' is not a valid backoff: Backoff factor must be a finite number >= 1 "
         "for exponential backoff, got 0.5"),
        ({"f12": ["linear", 1.0, math.inf, 3.0, "none"]},
         "job field 'backoff' is not a valid backoff: Backoff factor must be a finite number >= 0, "
         "got inf"),
        ({"f12": ["linear", 5.0, 1.0, 3.0, "none"]},
         "job field 'backoff' is not a valid backoff: Backoff cap must be a finite number >= base"),
        ({"f12": ["exponential", 0.0, 2.0, 3.0, "none"]},
         "job field 'backoff' is not a valid backoff: Backoff base must be a finite number > 0 "
         "for exponential backoff, got 0.0"),
        ({"f12": ["fixed", 0, 0, 0, "decorrelated"]},
         "job field 'backoff' is not a valid backoff: Backoff base must be a finite number > 0 "
         "for decorrelated jitter, got 0.0"),
        ({"f13": 5}, "job field 'unique_key' must be nil or a str, got int 5"),
        ({"f14": "p"}, "job field 'parents' must be an array of str, got str 'p'"),
        ({"f14": ["p", 2]}, "job field 'parents[1]' must be a str, got int 2"),
        ({"f15": None}, "job field 'meta' must be a map with str keys, got nil"),
        ({"f15": {None: 1}}, "job field 'meta' has a key of type nil: metadata keys must be str"),
    ],
)
def test_wrong_field_types(
    core: types.SimpleNamespace, other_codec: types.ModuleType, changes: dict[str, Any], message: str
) -> None:
    data = msgpack.packb(_packed_job(**changes))
    assert _corrupt(core, data).startswith(message)
    assert _errors(lambda: core.codec.decode_job(data)) == _errors(lambda: other_codec.decode_job(data))


def test_decoded_retry_fields_are_what_the_retry_code_takes(core: types.SimpleNamespace) -> None:
    # What decode_job lets through, decide_retry and Backoff.from_spec accept.
    data = msgpack.packb(_packed_job(f7=0, f8=1, f12=["exponential", 1e-300, 1.0, 1e-300, "decorrelated"]))
    job = core.codec.decode_job(data)
    backoff = core.states.Backoff.from_spec(job.backoff)
    assert core.states.decide_retry(job.attempt + 1, job.max_attempts, 0.0, backoff) == (core.states.DEAD, 0.0)


def test_lenient_number_forms_are_accepted(core: types.SimpleNamespace) -> None:
    # Another producer may write whole numbers as ints, or floats as float 32.
    data = msgpack.packb(_packed_job(f9=5, f10=2**64 - 1, f11=30, f12=["linear", 1, 2, 3, "none"]))
    job = core.codec.decode_job(data)
    assert same(job.run_at, 5.0) and same(job.enqueued_at, float(2**64 - 1))
    assert same(job.timeout, 30.0) and same(job.backoff, ("linear", 1.0, 2.0, 3.0, "none"))
    single = msgpack.packb(_packed_job(f9=0.5, f4=[0.25]), use_single_float=True)
    job = core.codec.decode_job(single)
    assert same(job.run_at, 0.5) and same(job.args, (0.25,))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "job bytes are empty"),
        (b"\xc1", "job bytes are not msgpack (a reserved or unknown type byte)"),
        (b"\xa2\xff\xfe", "job bytes hold a str that is not valid UTF-8 (invalid start byte)"),
        (b"\x91" * 5000 + b"\x01", "job bytes are nested deeper than 100 levels, which this codec never writes"),
        (b"\x81\x91\x01\x02", "job bytes hold a map whose key is an array or a map"),
        (b"\xdd\xff\xff\xff\xff", "job bytes are truncated: the msgpack value ends before the data does"),
        (b"\xc5\x01\x00ab", "job bytes are truncated: the msgpack value ends before the data does"),
        (msgpack.packb(msgpack.ExtType(5, b"x")),
         "job bytes hold an unknown msgpack extension type 5 (known: -1 timestamp, 1 UUID, 2 Decimal)"),
        (msgpack.packb(msgpack.ExtType(1, b"x" * 15)), "job bytes hold a UUID extension of 15 bytes instead of 16"),
        (msgpack.packb(msgpack.ExtType(2, b"abc")), "job bytes hold a Decimal extension with bad text 'abc'"),
        (msgpack.packb(msgpack.ExtType(2, b" 1")), "job bytes hold a Decimal extension with bad text ' 1'"),
        (msgpack.packb(msgpack.ExtType(2, b"1_0")), "job bytes hold a Decimal extension with bad text '1_0'"),
        (msgpack.packb(msgpack.ExtType(2, b"")), "job bytes hold a Decimal extension with bad text ''"),
        (msgpack.packb(msgpack.ExtType(2, b"\xff")), "job bytes hold a Decimal extension whose text is not ASCII"),
        (bytes.fromhex("d5ff0000"), "job bytes are not valid msgpack (ValueError: invalid timestamp data (length 2))"),
        (bytes.fromhex("c70cff000000007fffffffffffffff"), "job bytes hold a timestamp outside the datetime range"),
        (bytes.fromhex("d7ffffffffffffffffff"), "job bytes are not valid msgpack (ValueError: nanoseconds"),
    ],
)
def test_corrupt_bytes(core: types.SimpleNamespace, data: bytes, message: str) -> None:
    assert _corrupt(core, data).startswith(message)
    with pytest.raises(CorruptJobError) as info:
        core.codec.decode_value(data)
    assert str(info.value).startswith(message.replace("job bytes", "value bytes", 1))


def test_extension_values_inside_a_job_are_checked(core: types.SimpleNamespace) -> None:
    bad_uuid = msgpack.ExtType(1, b"\x00" * 3)
    data = msgpack.packb(_packed_job(f4=[bad_uuid]))
    assert _corrupt(core, data) == "job bytes hold a UUID extension of 3 bytes instead of 16"


def test_decode_value_accepts_any_map_key(core: types.SimpleNamespace) -> None:
    data = msgpack.packb({None: 1, 1.5: 2, b"b": 3, True: 4}, use_bin_type=True)
    assert core.codec.decode_value(data) == {None: 1, 1.5: 2, b"b": 3, True: 4}


def test_decode_value_of_a_job_and_decode_job_of_a_value(core: types.SimpleNamespace) -> None:
    codec = core.codec
    data = codec.encode_job(_job(core))
    assert codec.decode_value(data)[1] == TYPICAL["id"]
    assert _corrupt(core, codec.encode_value({"id": "j"})) == (
        "job must be a msgpack array of 16 elements, got map"
    )


# -- threads ---------------------------------------------------------------------


def test_encode_and_decode_from_many_threads(core: types.SimpleNamespace) -> None:
    codec = core.codec
    start = threading.Barrier(8)

    def work(worker: int) -> int:
        start.wait()
        checked = 0
        for i in range(300):
            job = _job(core, id=f"w{worker}-{i}", args=(worker, "x" * (i % 50), [i] * (i % 7)),
                       meta={"when": dt.datetime(2024, 1, 1, tzinfo=UTC), "n": i})  # fmt: skip
            data = codec.encode_job(job)
            assert codec.decode_job(data) == job
            assert codec.decode_value(codec.encode_value([worker, i])) == [worker, i]
            checked += 1
        return checked

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert sum(pool.map(work, range(8))) == 8 * 300

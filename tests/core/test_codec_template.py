"""``JobTemplate``: a task's fixed job fields encoded once, the rest per job.

Held to ``encode_job``: for every job, the same bytes as ``encode_job`` of the
JobRecord with the same fields (``attempt`` 0), on both twins; for a wrong
value in any one field, the same error type and message (a fixed field's
error raised when the template is built, a per-job field's from ``encode``);
and the two twins agree on every outcome, whatever is wrong.
"""

from __future__ import annotations

import importlib
import types
from typing import Any

import pytest
from hypothesis import given, strategies as st

from tests.conftest import import_compiled
from tests.core.test_codec import HYPOTHESIS, JOB_FIELDS, _errors

FIXED = ("task", "queue", "priority", "max_attempts", "timeout", "backoff")
PER_JOB = ("id", "args", "kwargs", "run_at", "enqueued_at", "unique_key", "parents", "meta")
WRONG = st.sampled_from([
    None, True, 0, -1, 2**64, 1.5, float("nan"), "", "x", "\ud800", b"x", (), ("x",), [1], {}, {1: 2},
    {"k": object()}, (object(),), ("fixed", 1.0, 1.0, 1.0), ("nope", 1.0, 1.0, 1.0, "none"),
    ("fixed", -1.0, 1.0, 1.0, "none"), object(),
])


@pytest.fixture(scope="session")
def other_codec(core: types.SimpleNamespace) -> types.ModuleType:
    """The twin ``core.codec`` is compared against: the compiled one for pure, and back."""
    if core.kind == "compiled":
        return importlib.import_module("fastjobs._core._codec_py")
    return import_compiled("codec")


def _via_template(codec: types.ModuleType, fields: dict[str, Any], max_size: int) -> bytes:
    template = codec.JobTemplate(*(fields[name] for name in FIXED))
    return template.encode(*(fields[name] for name in PER_JOB), max_size)  # type: ignore[no-any-return]


def _via_record(codec: types.ModuleType, fields: dict[str, Any], max_size: int) -> bytes:
    return codec.encode_job(codec.JobRecord(**{**fields, "attempt": 0}), max_size)  # type: ignore[no-any-return]


@HYPOTHESIS
@given(fields=JOB_FIELDS)
def test_same_bytes_as_encode_job(core: types.SimpleNamespace, other_codec: types.ModuleType,
                                  fields: dict[str, Any]) -> None:
    expected = _via_record(core.codec, fields, 1 << 30)
    assert _via_template(core.codec, fields, 1 << 30) == expected
    assert _via_template(other_codec, fields, 1 << 30) == expected


@HYPOTHESIS
@given(fields=JOB_FIELDS, field=st.sampled_from(FIXED + PER_JOB), wrong=WRONG, max_size=st.integers(-1, 400))
def test_one_wrong_field_fails_as_encode_job(core: types.SimpleNamespace, other_codec: types.ModuleType,
                                             fields: dict[str, Any], field: str, wrong: Any, max_size: int) -> None:
    if field in ("kwargs", "meta") and wrong is None:
        wrong = {}  # None is the empty map here (JobRecord turns None into {} too)
    fields = {**fields, field: wrong}
    mine = _errors(lambda: _via_template(core.codec, fields, max_size))
    assert mine == _errors(lambda: _via_record(core.codec, fields, max_size))
    assert mine == _errors(lambda: _via_template(other_codec, fields, max_size))


@HYPOTHESIS
@given(fields=JOB_FIELDS, wrong=st.dictionaries(st.sampled_from(FIXED + PER_JOB), WRONG, max_size=4))
def test_twins_agree_whatever_is_wrong(core: types.SimpleNamespace, other_codec: types.ModuleType,
                                       fields: dict[str, Any], wrong: dict[str, Any]) -> None:
    fields = {**fields, **wrong}
    outcomes = []
    for codec in (core.codec, other_codec):
        try:
            outcomes.append(("ok", _via_template(codec, fields, 1 << 20)))
        except Exception as exc:
            outcomes.append((type(exc).__name__, str(exc)))
    assert outcomes[0] == outcomes[1]


def test_none_kwargs_and_meta_are_empty(core: types.SimpleNamespace) -> None:
    template = core.codec.JobTemplate("t", "q", 0, 3, None, ("exponential", 1.0, 2.0, 300.0, "full"))
    data = template.encode("1f0c", ("a",), None, 0.0, 5.0, None, (), None)
    job = core.codec.decode_job(data)
    assert (job.kwargs, job.meta, job.attempt, job.backoff) == ({}, {}, 0, ("exponential", 1.0, 2.0, 300.0, "full"))
    assert data == core.codec.encode_job(core.codec.JobRecord(
        "1f0c", "t", "q", ("a",), {}, 0, 0, 3, 0.0, 5.0, None, ("exponential", 1.0, 2.0, 300.0, "full")))
    assert (template.task, template.queue, template.max_attempts) == ("t", "q", 3)

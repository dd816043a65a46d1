"""A job's Context fields and JobOutcome in the core (``_hooks_c`` and its twin ``_hooks_py``):
the two agree, a worker's Context reads its job's fields when asked and refuses to change
them, and the public names are the active implementation's."""

from __future__ import annotations

import contextvars
import time
import types
from typing import Any

import pytest

import fastjobs
import fastjobs._core as active_core
from fastjobs.constants import BATCH
from fastjobs.context import Context
from tests.conftest import import_compiled

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="outside")


@pytest.fixture(params=["compiled", "pure"], scope="module")
def hooks(request: pytest.FixtureRequest) -> types.ModuleType:
    if request.param == "compiled":
        return import_compiled("hooks")
    import fastjobs._core._hooks_py as pure

    return pure


class Claim:
    id, attempt, token = "j1", 2, 7


class Record:
    task, queue, max_attempts, args, kwargs = "t", "q", 5, (1, 2), {"k": 3}
    meta: dict[str, Any] | None = {BATCH: "b1", "tenant": "acme"}


class Worker:
    _backend, _loop, state, id = "backend", "loop", "state", "w1"


def sub(hooks: types.ModuleType) -> type[Any]:
    class Ctx(hooks.ContextFields):  # type: ignore[misc, name-defined]
        __slots__ = ()

    return Ctx


def test_the_public_names_are_the_active_implementation() -> None:
    assert fastjobs.JobOutcome is active_core.JobOutcome
    assert issubclass(Context, active_core.ContextFields)
    if active_core.IMPLEMENTATION == "compiled":
        assert active_core.MODULES["hooks"] == "fastjobs._core._hooks_c"
        assert type(fastjobs.JobOutcome("succeeded")).__module__ == "fastjobs._core._hooks_c"


def test_the_batch_key_is_fastjobs_own(hooks: types.ModuleType) -> None:
    assert hooks.BATCH == BATCH


def test_a_worker_context_reads_its_job(hooks: types.ModuleType) -> None:
    ctx = hooks.job_context(sub(hooks), Claim(), Record(), Worker(), time.monotonic() - 1.0, 30.0)
    assert (ctx.job_id, ctx.task, ctx.queue, ctx.attempt, ctx.max_attempts, ctx._token) == ("j1", "t", "q", 2, 5, 7)
    assert (ctx.args, ctx.kwargs, ctx.batch_id) == ((1, 2), {"k": 3}, "b1")
    assert (ctx._backend, ctx._loop, ctx.state, ctx.worker_id, ctx.cancelled) == ("backend", "loop", "state", "w1", False)
    assert ctx.meta is Record.meta and ctx.meta is ctx.meta
    # Confirmed a second ago for 30 s: it runs out 29 s from now, and stays put once read.
    assert 28.5 < ctx.lease_until - time.time() < 29.5
    assert ctx.lease_until == ctx.lease_until


def test_a_worker_context_without_meta_or_confirmation(hooks: types.ModuleType) -> None:
    record = Record()
    record.meta = None
    ctx = hooks.job_context(sub(hooks), Claim(), record, Worker(), 0.0, 30.0)
    assert ctx.meta == {} and ctx.meta is ctx.meta and ctx.batch_id is None
    ctx.meta["x"] = 1
    assert ctx.meta == {"x": 1}
    assert 29.0 < ctx.lease_until - time.time() <= 30.0


def test_a_worker_context_is_read_only_but_for_four_fields(hooks: types.ModuleType) -> None:
    ctx = hooks.job_context(sub(hooks), Claim(), Record(), Worker(), time.monotonic(), 30.0)
    for name in ("task", "queue", "attempt", "max_attempts", "_token", "_backend", "_loop", "batch_id", "args",
                 "kwargs", "state", "worker_id"):
        with pytest.raises(AttributeError, match=f"cannot set {name}"):
            setattr(ctx, name, "x")
    ctx.job_id, ctx.meta, ctx.cancelled, ctx.lease_until = "j2", {"a": 1}, True, 5.0
    assert (ctx.job_id, ctx.meta, ctx.cancelled, ctx.lease_until) == ("j2", {"a": 1}, True, 5.0)
    with pytest.raises(AttributeError):
        ctx.other = 1


def test_job_context_refuses_another_class(hooks: types.ModuleType) -> None:
    with pytest.raises(TypeError):
        hooks.job_context(dict, Claim(), Record(), Worker(), 0.0, 30.0)


def test_a_context_built_by_hand_holds_its_fields(hooks: types.ModuleType) -> None:
    ctx = sub(hooks)("j1", "t", "q", 1, 3, 0, None, None, 12.5)
    assert (ctx.task, ctx.attempt, ctx.lease_until, ctx.cancelled, ctx.batch_id, ctx.args) == ("t", 1, 12.5, False, None, ())
    assert ctx.meta == {} and ctx.kwargs == {} and ctx.meta is not sub(hooks)("j", "t", "q", 1, 1, 0, None, None, 0).meta
    ctx.task, ctx.state, ctx.worker_id = "u", "s", "w"
    assert (ctx.task, ctx.state, ctx.worker_id) == ("u", "s", "w")
    named = sub(hooks)(job_id="j", task="t", queue="q", attempt=1, max_attempts=1, _token=0, _backend=None,
                       _loop=None, lease_until=0.0, meta={"m": 1}, state="st", worker_id="w9")
    assert (named.meta, named.state, named.worker_id) == ({"m": 1}, "st", "w9")


def test_the_public_context_keeps_its_constructor_and_repr() -> None:
    ctx = fastjobs.Context("j1", "t", "q", 1, 1, 0, None, None, 0.0)
    assert repr(ctx) == "Context(job_id='j1', task='t', attempt=1)"
    assert ctx != fastjobs.Context("j1", "t", "q", 1, 1, 0, None, None, 0.0)  # by identity


def test_job_outcome(hooks: types.ModuleType) -> None:
    error = ValueError("x")
    outcome = hooks.JobOutcome("dead", error, None, 1.5, False, True)
    assert (outcome.status, outcome.error, outcome.result, outcome.seconds, outcome.will_retry, outcome.timed_out) == (
        "dead", error, None, 1.5, False, True)
    assert repr(outcome) == "JobOutcome(status='dead', error=ValueError('x'), seconds=1.500000)"
    default = hooks.JobOutcome(status="succeeded", result=42)
    assert (default.error, default.result, default.seconds, default.will_retry, default.timed_out) == (
        None, 42, 0.0, False, False)
    assert "42" not in repr(default)  # a job's result stays out of reprs
    default.status = "failed"
    assert default.status == "failed"
    with pytest.raises(AttributeError):
        default.other = 1


def test_after_success_runs_the_hook_in_the_context(hooks: types.ModuleType) -> None:
    context = contextvars.copy_context()
    context.run(VAR.set, "job")
    seen: list[Any] = []

    def hook(ctx: object, outcome: Any) -> str:
        seen.append((ctx, VAR.get(), outcome.status, outcome.error, outcome.result, outcome.seconds,
                     outcome.will_retry, outcome.timed_out))
        VAR.set("changed")
        return "returned"

    assert hooks.after_success(hook, context, "ctx", 42, 0.5) == "returned"
    assert seen == [("ctx", "job", "succeeded", None, 42, 0.5, False, False)]
    assert context[VAR] == "changed" and VAR.get() == "outside"

    def raises(ctx: object, outcome: object) -> None:
        raise KeyError("boom")

    with pytest.raises(KeyError):
        hooks.after_success(raises, context, "ctx", None, 0.0)
    assert VAR.get() == "outside"
    assert context.run(VAR.get) == "changed"  # exited: it can be entered again


class Pair:
    __slots__ = ("a", "b", "c")


def test_slot_maker_fills_every_slot(hooks: types.ModuleType) -> None:
    make = hooks.SlotMaker(Pair, ("a", "b"), {"c": None})
    pair = make(1, [2])
    assert type(pair) is Pair and (pair.a, pair.b, pair.c) == (1, [2], None)
    pair.a = 5
    assert pair.a == 5
    with pytest.raises(TypeError):
        make(1)
    for names, defaults in ((("a",), {"c": None}), (("a", "b"), {"c": None, "d": 1}), (("a", "b", "c"), {"c": 1})):
        with pytest.raises(ValueError):
            hooks.SlotMaker(Pair, names, defaults)

    class WithDict:
        a = None

    with pytest.raises(ValueError):
        hooks.SlotMaker(WithDict, ("a",), {})


def test_new_running_is_running_as_init_builds_it() -> None:
    from fastjobs.executors import Running, new_running

    built, made = Running("c", "r", "t", None, 30.0), new_running("c", "r", "t", None, 30.0)  # type: ignore[arg-type]
    assert type(made) is Running
    assert {name: getattr(made, name) for name in Running.__slots__} == {
        name: getattr(built, name) for name in Running.__slots__}

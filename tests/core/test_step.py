"""A coroutine's first step (``_step_c`` and its twin ``_step_py``): the two agree, on
returns, suspensions and exceptions, and the Task current before is current again after."""

from __future__ import annotations

import asyncio
import contextvars
import types
from typing import Any

import pytest
from hypothesis import given, strategies as st

from tests.conftest import import_compiled

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="outside")


@pytest.fixture(params=["compiled", "pure"], scope="module")
def step(request: pytest.FixtureRequest) -> types.ModuleType:
    if request.param == "compiled":
        return import_compiled("step")
    import fastjobs._core._step_py as pure

    return pure


def make_task(loop: asyncio.AbstractEventLoop) -> Any:
    return loop.create_future()  # what first_step makes current: any object stands for the Task


async def test_a_coroutine_that_returns(step: types.ModuleType) -> None:
    loop = asyncio.get_running_loop()
    me, job = asyncio.current_task(), make_task(loop)
    seen: list[Any] = []

    async def handler() -> str:
        seen.append(asyncio.current_task())
        return "value"

    assert step.first_step(job, loop, handler(), contextvars.copy_context()) == (True, "value")
    assert seen == [job]
    assert asyncio.current_task() is me


async def test_a_coroutine_that_suspends_gives_what_it_yielded(step: types.ModuleType) -> None:
    loop = asyncio.get_running_loop()
    waited = loop.create_future()

    async def handler() -> int:
        return await waited

    coro = handler()
    returned, yielded = step.first_step(make_task(loop), loop, coro, contextvars.copy_context())
    assert returned is False and yielded is waited and waited._asyncio_future_blocking
    waited.set_result(7)
    with pytest.raises(StopIteration) as stopped:
        coro.send(None)
    assert stopped.value.value == 7


async def test_an_exception_propagates_and_the_caller_is_current_again(step: types.ModuleType) -> None:
    loop = asyncio.get_running_loop()
    me = asyncio.current_task()

    async def handler() -> None:
        raise KeyError("missing")

    with pytest.raises(KeyError, match="missing"):
        step.first_step(make_task(loop), loop, handler(), contextvars.copy_context())
    assert asyncio.current_task() is me


async def test_it_runs_in_the_context_given(step: types.ModuleType) -> None:
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    context.run(VAR.set, "given")

    async def handler() -> str:
        before = VAR.get()
        VAR.set("changed")
        return before

    assert step.first_step(make_task(loop), loop, handler(), context) == (True, "given")
    assert context[VAR] == "changed" and VAR.get() == "outside"


def test_outside_any_task(step: types.ModuleType) -> None:
    """From a loop callback (no Task current), no Task is current after either."""
    loop = asyncio.new_event_loop()
    try:
        out: list[Any] = []

        async def handler() -> Any:
            return asyncio.current_task()

        def callback() -> None:
            job = make_task(loop)
            out.append((job, step.first_step(job, loop, handler(), contextvars.copy_context())))
            out.append(asyncio.current_task(loop))

        loop.call_soon(callback)
        loop.call_soon(loop.stop)
        loop.run_forever()
        (job, result), after = out
        assert result == (True, job) and after is None
    finally:
        loop.close()


OUTCOMES = st.one_of(
    st.tuples(st.just("return"), st.one_of(st.none(), st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=3))),
    st.tuples(st.just("raise"), st.sampled_from([ValueError, KeyError, RuntimeError, asyncio.CancelledError])),
    st.tuples(st.just("bare yield"), st.none()),
)


@types.coroutine
def _bare_yield() -> Any:
    yield


@given(outcomes=st.lists(OUTCOMES, min_size=1, max_size=8))
def test_the_twins_agree(outcomes: list[tuple[str, Any]]) -> None:
    import fastjobs._core._step_py as pure

    compiled = import_compiled("step")

    async def handler(kind: str, value: Any) -> Any:
        if kind == "raise":
            raise value("boom")
        if kind == "bare yield":
            await _bare_yield()
        return value

    def outcome(module: types.ModuleType, kind: str, value: Any, loop: asyncio.AbstractEventLoop) -> Any:
        coro = handler(kind, value)
        try:
            return ("ok", module.first_step(make_task(loop), loop, coro, contextvars.copy_context()))
        except BaseException as exc:  # noqa: BLE001 - the exception is the outcome under test
            return ("raised", type(exc), str(exc))
        finally:
            coro.close()

    loop = asyncio.new_event_loop()
    try:
        for kind, value in outcomes:
            assert outcome(pure, kind, value, loop) == outcome(compiled, kind, value, loop)
    finally:
        loop.close()

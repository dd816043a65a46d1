"""EagerTask (fastjobs.eager) behaves as an asyncio Task, but runs its first step at once.

Every behaviour is checked on EagerTask and on a plain ``loop.create_task`` Task side by
side, so a difference from asyncio's own Task shows as a failure of one parameter only.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import sys
import types
from typing import Any

import pytest

pytestmark = pytest.mark.skipif(sys.version_info >= (3, 12), reason="3.12+ starts Tasks eagerly itself (eager_start)")

if sys.version_info < (3, 12):
    from fastjobs.eager import EagerTask

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="outside")


def start(kind: str, coro: Any, context: contextvars.Context | None = None) -> Any:
    loop = asyncio.get_running_loop()
    if kind == "eager":
        return EagerTask(loop, coro, context)
    return loop.create_task(coro, context=context)


KINDS = pytest.mark.parametrize("kind", ["eager", "plain"])


@KINDS
async def test_a_handler_that_returns_gives_its_value(kind: str) -> None:
    async def handler() -> int:
        return 42

    task = start(kind, handler())
    assert task.done() is (kind == "eager")  # eager: finished before the constructor returned
    assert await task == 42
    assert task.result() == 42 and not task.cancelled() and task.exception() is None


@KINDS
async def test_the_job_is_the_current_task_during_its_first_step_and_after(kind: str) -> None:
    seen: list[Any] = []
    me = asyncio.current_task()

    async def handler() -> None:
        seen.append(asyncio.current_task())
        await asyncio.sleep(0)
        seen.append(asyncio.current_task())

    task = start(kind, handler())
    assert asyncio.current_task() is me  # the caller's Task is current again
    await task
    assert seen == [task, task]


@KINDS
async def test_a_suspended_task_is_in_all_tasks_and_a_finished_one_is_not_kept(kind: str) -> None:
    gate = asyncio.Event()

    async def waits() -> str:
        await gate.wait()
        return "woke"

    task = start(kind, waits())
    assert not task.done()
    assert task in asyncio.all_tasks()
    gate.set()
    assert await task == "woke"
    assert task not in asyncio.all_tasks()


@KINDS
async def test_an_exception_is_the_outcome(kind: str) -> None:
    async def fails() -> None:
        raise ValueError("bad input")

    task = start(kind, fails())
    with pytest.raises(ValueError, match="bad input"):
        await task
    assert isinstance(task.exception(), ValueError)


@KINDS
async def test_an_exception_never_retrieved_is_reported_when_the_task_is_collected(kind: str) -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        async def fails() -> None:
            raise ValueError("nobody looks")

        task = start(kind, fails())
        await asyncio.sleep(0)
        del task
        gc.collect()
    finally:
        loop.set_exception_handler(None)
    assert [str(c.get("exception")) for c in reported] == ["nobody looks"]


@KINDS
async def test_cancelling_itself_in_its_first_step(kind: str) -> None:
    async def cancels_itself() -> None:
        asyncio.current_task().cancel()  # type: ignore[union-attr]
        await asyncio.sleep(0)

    task = start(kind, cancels_itself())
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()


@KINDS
async def test_raising_cancelled_error_in_the_first_step_cancels_it(kind: str) -> None:
    async def raises() -> None:
        raise asyncio.CancelledError("stop")

    task = start(kind, raises())
    await asyncio.sleep(0)
    assert task.cancelled()


@KINDS
async def test_a_cancel_from_outside_reaches_a_suspended_handler(kind: str) -> None:
    unwound: list[str] = []

    async def sleeps() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            unwound.append("finally")

    task = start(kind, sleeps())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert unwound == ["finally"]


@KINDS
@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.timeout is new in 3.11")
async def test_asyncio_timeout_inside_the_handler_cancels_only_the_handler(kind: str) -> None:
    async def bounded() -> str:
        try:
            async with asyncio.timeout(0.01):
                await asyncio.sleep(60)
        except TimeoutError:
            return "timed out"
        return "not reached"

    task = start(kind, bounded())
    assert await task == "timed out"
    assert not asyncio.current_task().cancelling()  # type: ignore[union-attr]  # the caller was not touched


@KINDS
async def test_wait_for_on_the_task_cancels_it(kind: str) -> None:
    async def sleeps() -> None:
        await asyncio.sleep(60)

    task = start(kind, sleeps())
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(task, 0.01)
    assert task.cancelled()


@KINDS
async def test_it_runs_in_the_context_it_is_given(kind: str) -> None:
    async def sets() -> str:
        before = VAR.get()
        VAR.set("inside")
        await asyncio.sleep(0)
        return before + ">" + VAR.get()

    context = contextvars.copy_context()
    context.run(VAR.set, "given")
    task = start(kind, sets(), context)
    assert await task == "given>inside"
    assert VAR.get() == "outside"  # nothing leaked into the caller's context
    assert context[VAR] == "inside"


@KINDS
async def test_done_callbacks_added_in_the_first_step_are_called(kind: str) -> None:
    called: list[Any] = []

    async def handler() -> int:
        asyncio.current_task().add_done_callback(called.append)  # type: ignore[union-attr]
        return 1

    task = start(kind, handler())
    await task
    await asyncio.sleep(0)
    assert called == [task]


@KINDS
async def test_a_bare_yield_resumes_on_the_next_turn(kind: str) -> None:
    @types.coroutine
    def bare_yield() -> Any:
        yield

    async def handler() -> str:
        await bare_yield()
        return "resumed"

    task = start(kind, handler())
    assert await task == "resumed"


@KINDS
async def test_awaiting_a_future_of_another_loop_fails_the_task(kind: str) -> None:
    other = asyncio.new_event_loop()
    try:
        foreign = other.create_future()

        async def handler() -> None:
            await foreign

        task = start(kind, handler())
        with pytest.raises(RuntimeError, match="attached to a different loop"):
            await task
    finally:
        other.close()


@KINDS
async def test_the_task_awaits_another_task_and_is_awaited_by_gather(kind: str) -> None:
    async def inner() -> int:
        await asyncio.sleep(0)
        return 2

    async def outer() -> int:
        return await asyncio.ensure_future(inner()) * 10

    tasks = [start(kind, outer()) for _ in range(3)]
    assert await asyncio.gather(*tasks) == [20, 20, 20]


async def test_the_worker_starts_async_handlers_as_eager_tasks() -> None:
    """The worker's start_task is EagerTask on this Python: a no-op job is done when started."""
    from fastjobs.executors import start_task

    async def handler() -> str:
        return "done"

    task = start_task(asyncio.get_running_loop(), handler())
    assert isinstance(task, EagerTask) and task.done() and task.result() == "done"

"""fastjobs.waits: Flag and wait_any, what the worker's claim loop waits with."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from fastjobs.waits import Flag, wait_any


async def test_a_flag_is_an_event() -> None:
    flag = Flag()
    assert not flag.is_set()
    asyncio.get_running_loop().call_later(0.01, flag.set)
    assert await asyncio.wait_for(flag.wait(), 5) is True
    assert flag.is_set()
    assert await flag.wait() is True  # set: at once
    flag.clear()
    assert not flag.is_set()


async def test_wait_any_returns_on_the_first_of_several() -> None:
    slow, fast = Flag(), Flag()
    asyncio.get_running_loop().call_later(0.01, fast.set)
    started = time.monotonic()
    await wait_any(slow, fast, timeout=5)
    assert fast.is_set() and not slow.is_set()
    assert time.monotonic() - started < 4


async def test_wait_any_returns_when_a_future_is_done_and_cancels_nothing() -> None:
    loop = asyncio.get_running_loop()
    done_soon: asyncio.Future[int] = loop.create_future()
    pending: asyncio.Future[int] = loop.create_future()
    loop.call_later(0.01, done_soon.set_result, 1)
    await wait_any(pending, done_soon, Flag(), timeout=5)
    assert done_soon.result() == 1
    assert not pending.done()  # still waiting, as it was: nothing is cancelled
    pending.cancel()


async def test_wait_any_times_out() -> None:
    flag = Flag()
    started = time.monotonic()
    await wait_any(flag, timeout=0.05)
    assert time.monotonic() - started >= 0.04
    assert not flag.is_set()


async def test_something_already_set_or_done_returns_at_once() -> None:
    flag = Flag()
    flag.set()
    await asyncio.wait_for(wait_any(Flag(), flag), 1)
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    done.set_result(None)
    await asyncio.wait_for(wait_any(Flag(), done), 1)


async def test_no_callback_is_left_behind_after_many_waits() -> None:
    """The claim loop waits on the stop flag thousands of times: each wait takes its callback back."""
    stop, slot = Flag(), Flag()
    loop = asyncio.get_running_loop()
    for _ in range(200):
        slot.clear()
        loop.call_soon(slot.set)
        await wait_any(slot, stop, timeout=5)
    assert stop._callbacks == [] and slot._callbacks == []


async def test_a_cancelled_wait_takes_its_callbacks_back() -> None:
    flag = Flag()
    waiting = asyncio.ensure_future(wait_any(flag))
    await asyncio.sleep(0)
    assert len(flag._callbacks) == 1
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert flag._callbacks == []


async def test_a_future_that_failed_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    failed.set_exception(OSError("backend gone"))
    with caplog.at_level(logging.WARNING, logger="fastjobs.worker"):
        await wait_any(failed, timeout=1)
    assert "wait failed: backend gone" in caplog.text


async def test_an_idle_memory_worker_starts_a_job_within_a_few_loop_turns() -> None:
    """Enqueue to start on an idle worker: the waiter, the claim and the start, without a Task per wait.

    Counted in loop turns, not time (a loaded machine moves time): 10 before wait_any and the
    eager claim, 5 with them, 3 since memory:// wakes a wait's own future."""
    import fastjobs

    app = fastjobs.App("memory://")
    loop = asyncio.get_running_loop()
    turns = [0]
    run_once = loop._run_once  # type: ignore[attr-defined]

    def counting() -> None:
        turns[0] += 1
        run_once()

    loop._run_once = counting  # type: ignore[attr-defined]
    seen: list[int] = []

    @app.task(name="turns", queue="q")
    async def count(sent: int) -> None:
        seen.append(turns[0] - sent)

    worker = app.worker(["q"], handle_signals=False)
    runner = asyncio.ensure_future(worker.run())
    try:
        await asyncio.sleep(0.05)
        for _ in range(5):
            await asyncio.sleep(0.01)
            await count.enqueue(turns[0])
        while len(seen) < 5:
            await asyncio.sleep(0.01)
    finally:
        loop._run_once = run_once  # type: ignore[attr-defined]
        worker.request_stop()
        await runner
        await app.close()
    assert max(seen) <= 4, seen


async def test_memory_waits_leave_no_future_behind() -> None:
    """Waits that time out, are woken, or are cancelled (the claim loop's waiter at shutdown)
    all take their future back; a wake-up from another thread ends a wait."""
    import threading

    import fastjobs

    app = fastjobs.App("memory://")

    @app.task(name="noop", queue="q")
    async def noop() -> None:
        return None

    backend = await app.backend()
    loop = asyncio.get_running_loop()
    try:
        await backend.wait(["q"], 0.01)  # times out
        waiting = asyncio.ensure_future(backend.wait(["q"], 30))
        await asyncio.sleep(0.01)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        waiting = asyncio.ensure_future(backend.wait(["q"], 30))
        await asyncio.sleep(0.01)
        threading.Thread(target=noop.enqueue_sync).start()  # woken from another thread
        await asyncio.wait_for(waiting, 5)
        assert backend._waiters[loop][0] == []  # type: ignore[attr-defined]
    finally:
        await app.close()

"""Flow control on every backend, end to end: context and progress, cancelling running jobs, pausing queues."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

import fastjobs
from tests.contract.conftest import MakeApp


@pytest.fixture
def app(make_app: MakeApp) -> fastjobs.App:
    # A short lease: renewals (and so cancellation notices) every 0.2 s.
    return make_app(lease=0.6)


async def wait_until(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_handlers_with_context_report_progress(app: fastjobs.App) -> None:
    go_on = asyncio.Event()
    seen: list[tuple[str, int]] = []

    @app.task(context=True)
    async def resize(ctx: fastjobs.Context, path: str) -> str:
        seen.append((ctx.job_id, ctx.attempt))
        assert await ctx.progress(0.5, "resizing") is True
        await go_on.wait()
        return path.upper()

    @app.task(context=True)
    def crunch(ctx: fastjobs.Context, n: int) -> int:
        assert ctx.progress_sync(0.25, "a quarter") is True
        return n * 2

    job = await resize.enqueue("x.png")
    other = await crunch.enqueue(21)
    worker = app.worker(handle_signals=False)
    runner = asyncio.ensure_future(worker.run())

    async def halfway() -> bool:
        info = await job.info()
        return info is not None and info.progress is not None

    await wait_until(halfway)
    info = await job.info()
    assert info is not None and info.state == "active"
    assert info.progress is not None and (info.progress.fraction, info.progress.message) == (0.5, "resizing")
    go_on.set()
    assert await job.result(timeout=10) == "X.PNG"
    assert await other.result(timeout=10) == 42
    worker.request_stop()
    await runner
    assert seen == [(job.id, 1)]
    done = await job.info()
    assert done is not None and done.progress is not None and done.progress.fraction == 0.5  # kept after it finished
    crunched = await other.info()
    assert crunched is not None and crunched.progress is not None and crunched.progress.message == "a quarter"
    with pytest.raises(fastjobs.InvalidOptionError):
        await fastjobs.Context(job.id, "t", "q", 1, 1, 0, None, None, 0.0).progress(1.5)


async def test_cancelling_running_jobs_async_at_next_await_sync_by_flag(app: fastjobs.App) -> None:
    started = threading.Event()
    async_started = asyncio.Event()
    saw_flag = threading.Event()
    interrupted: list[bool] = []

    @app.task(context=True)
    def long_sync(ctx: fastjobs.Context) -> None:
        started.set()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if ctx.cancelled:
                saw_flag.set()
                return
            time.sleep(0.01)

    @app.task()
    async def long_async() -> None:
        async_started.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            interrupted.append(True)
            raise

    sync_job = await long_sync.enqueue()
    async_job = await long_async.enqueue()
    worker = app.worker(handle_signals=False)
    runner = asyncio.ensure_future(worker.run())
    await asyncio.get_running_loop().run_in_executor(None, started.wait, 10)
    await asyncio.wait_for(async_started.wait(), 10)
    assert await sync_job.cancel() is True
    assert await async_job.cancel() is True
    await asyncio.get_running_loop().run_in_executor(None, saw_flag.wait, 5)
    assert saw_flag.is_set()
    await wait_until(lambda: asyncio.sleep(0, bool(interrupted)))
    worker.request_stop()
    await runner
    for handle in (sync_job, async_job):
        info = await handle.info()
        assert info is not None and info.state == "cancelled"


async def test_a_paused_queue_keeps_its_jobs_until_resumed(app: fastjobs.App) -> None:
    ran: list[str] = []

    @app.task(queue="mail")
    async def mail(i: int) -> None:
        ran.append(f"mail{i}")

    @app.task(queue="bulk")
    async def bulk(i: int) -> None:
        ran.append(f"bulk{i}")

    await app.pause("mail")
    await app.pause("mail")  # idempotent
    await app.enqueue_many([mail.call(i) for i in range(3)] + [bulk.call(i) for i in range(2)])
    assert await app.paused() == ["mail"]
    worker = app.worker(["mail", "bulk"], handle_signals=False)
    runner = asyncio.ensure_future(worker.run())
    await wait_until(lambda: asyncio.sleep(0, len(ran) == 2))
    await asyncio.sleep(0.3)
    assert ran == ["bulk0", "bulk1"]  # nothing of the paused queue was claimed
    assert (await app.stats())["mail"]["queued"] == 3
    await app.resume("mail")
    await app.resume("unknown")  # a no-op
    assert await app.paused() == []
    await wait_until(lambda: asyncio.sleep(0, len(ran) == 5))
    worker.request_stop()
    await runner
    assert ran[2:] == ["mail0", "mail1", "mail2"]


async def test_unique_key_holds_for_its_window_after_success(app: fastjobs.App) -> None:
    @app.task()
    async def sync_account(n: int) -> int:
        return n

    once = sync_account.options(unique_key="acct:1", unique_ttl=1.0)
    first = await once.enqueue(1)
    assert (await once.enqueue(2)).id == first.id  # queued: the same job
    await app.run_worker(burst=True, handle_signals=False)
    assert await first.result(timeout=5) == 1
    assert (await once.enqueue(3)).id == first.id  # succeeded less than 1 s ago: still the same job
    await asyncio.sleep(1.3)
    later = await once.enqueue(4)
    assert later.id != first.id
    with pytest.raises(fastjobs.InvalidOptionError, match="unique_ttl needs a unique_key"):
        sync_account.options(unique_ttl=5)
    with pytest.raises(fastjobs.InvalidOptionError, match="longer than the App's result_ttl"):
        sync_account.options(unique_key="k", unique_ttl=app.options.result_ttl + 1)

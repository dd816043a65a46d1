"""Moving time on in tests, on every backend: ``fastjobs.testing.advance_time`` and the backend
operation under it, ``Backend.shift_due``."""

from __future__ import annotations

import random
import types
import unittest

import pytest

import fastjobs
from fastjobs._core import QUEUED, SCHEDULED
from fastjobs.backends import Ack, AckKind, Backend
from fastjobs.job import error_record
from fastjobs.periodic import tick_job_id
from fastjobs.testing import MAX_TICKS, advance_time, capture_enqueues, run_jobs
from tests.contract.test_backend_contract import job


async def state_of(app: fastjobs.App, job_id: str) -> str:
    info = await app.get_job(job_id)
    assert info is not None
    return info.state


# -- the backend operation -----------------------------------------------------------------


async def test_shift_due_moves_scheduled_and_retry_pending_jobs_back_and_nothing_else(backend: Backend) -> None:
    later, ready, retried, far = job(delay=100.0), job(), job(), job(delay=1000.0)
    await backend.enqueue_many([later, retried])
    [claim] = await backend.claim(["q"], 1, 30.0)
    assert claim.id == retried.id
    error = error_record(1, "ValueError", "boom")
    assert await backend.ack_many([Ack(retried.id, claim.token, AckKind.RETRY, error, 100.0)]) == [True]
    await backend.enqueue_many([ready, far])
    before = {j.id: await backend.get(j.id) for j in (later, retried, far, ready)}

    assert await backend.shift_due(99.0) == 3
    for j in (later, retried, far):
        now_stored, was = await backend.get(j.id), before[j.id]
        assert now_stored is not None and was is not None
        assert now_stored.run_at == pytest.approx(was.run_at - 99.0, abs=0.01)
        assert now_stored.enqueued_at == pytest.approx(was.enqueued_at, abs=0.01)  # its enqueue position stays
    stored_ready = await backend.get(ready.id)
    assert stored_ready is not None and stored_ready.state == QUEUED
    assert await backend.promote_due() == 0  # 1 s still to go for the first two

    assert await backend.shift_due(2.0) == 3
    assert await backend.promote_due() == 2
    states = {j.id: (await backend.get(j.id)).state for j in (later, retried, far)}  # type: ignore[union-attr]
    assert states == {later.id: QUEUED, retried.id: QUEUED, far.id: SCHEDULED}
    retried_now = await backend.get(retried.id)
    assert retried_now is not None and retried_now.attempt == 1 and len(retried_now.errors) == 1
    # Jobs that fell due keep their position: `later` was enqueued, and `retried` sent back, before `ready`.
    assert [c.id for c in await backend.claim(["q"], 10, 30.0)] == [later.id, retried.id, ready.id]
    assert await backend.shift_due(0.0) == 1


def test_the_index_shifts_delayed_entries_keeping_their_push_order(core: types.SimpleNamespace) -> None:
    index = core.heap.PriorityIndex()
    rng = random.Random(18)
    dues = {n: rng.choice([0.0, 10.0, 20.0, 30.0, 1e9]) for n in range(300)}
    for n, due in dues.items():
        index.push(n, 0, due)
    assert index.shift_delayed(15.0) == sum(1 for due in dues.values() if due > 0)
    assert index.pop(1000, 0.0) == [n for n, due in dues.items() if due == 0.0]
    assert index.pop(1000, 5.0) == [n for n, due in dues.items() if due in (10.0, 20.0)]  # push order, not due order
    index.shift_delayed(1e300)  # clamped above 0.0: still delayed, due at any real time
    assert index.delayed_count == sum(1 for due in dues.values() if due in (30.0, 1e9))
    assert index.pop(1000, 1.0) == [n for n, due in dues.items() if due in (30.0, 1e9)]
    for bad in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="seconds must be >= 0"):
            index.shift_delayed(bad)


# -- advance_time --------------------------------------------------------------------------


async def test_a_delayed_job_runs_once_time_is_advanced_past_its_delay(app: fastjobs.App) -> None:
    @app.task(name="emails.send")
    async def send(to: str) -> str:
        return to.upper()

    handle = await send.options(delay=3600).enqueue("a@b.c")
    async with run_jobs(app):
        await advance_time(app, 60)
    assert await state_of(app, handle.id) == "scheduled"
    async with run_jobs(app):
        await advance_time(app, 3600 - 60)  # the two calls add up
    assert await state_of(app, handle.id) == "succeeded"
    assert await handle.result(timeout=5) == "A@B.C"


async def test_jobs_fall_due_in_their_order(app: fastjobs.App) -> None:
    ran: list[str] = []

    @app.task(name="steps.record")
    async def record(name: str) -> None:
        ran.append(name)

    for name, delay in (("x", 200), ("y", 100), ("z", 300), ("w", 400)):
        await record.options(delay=delay).enqueue(name)
    async with run_jobs(app, concurrency=1):
        await advance_time(app, 150)
    assert ran == ["y"]
    async with run_jobs(app, concurrency=1):
        await advance_time(app, 100)
    assert ran == ["y", "x"]
    # Falling due together (as after a wait with no worker running), they keep their enqueue order.
    await record.options(delay=30).enqueue("v")
    async with run_jobs(app, concurrency=1):
        await advance_time(app, 200)
    assert ran == ["y", "x", "z", "w", "v"]


async def test_a_retry_in_backoff_falls_due(app: fastjobs.App) -> None:
    attempts: list[int] = []

    @app.task(name="flaky.call", max_attempts=3, backoff=fastjobs.Fixed(600.0), context=True)
    async def flaky(ctx: fastjobs.Context) -> int:
        attempts.append(ctx.attempt)
        if ctx.attempt == 1:
            raise ConnectionError("try again")
        return ctx.attempt

    async with run_jobs(app):
        handle = await flaky.enqueue()
    assert await state_of(app, handle.id) == "retry_pending"
    async with run_jobs(app):
        await advance_time(app, 590)
    assert attempts == [1] and await state_of(app, handle.id) == "retry_pending"
    async with run_jobs(app):
        await advance_time(app, 10)
    assert attempts == [1, 2] and await handle.result(timeout=5) == 2


async def test_periodic_tasks_enqueue_each_tick_of_the_window_once(app: fastjobs.App) -> None:
    ran: list[int] = []

    @app.periodic(60.0, name="reports.minutely")
    async def minutely() -> None:
        ran.append(1)

    start = await (await app.backend()).now()
    with capture_enqueues(app) as enqueued:
        await advance_time(app, 600)
        await advance_time(app, 90)
        await advance_time(app, 30)  # the window goes on where the last one ended
    ticks = [t for t in ((start // 60 + k) * 60 for k in range(1, 40)) if t <= start + 720]
    assert len(enqueued) == len(ticks) == 12
    assert [j.id for j in enqueued] == [tick_job_id("reports.minutely", t) for t in ticks]
    async with run_jobs(app, schedule=False):  # the worker's own scheduler would add the real tick
        pass
    assert len(ran) == 12

    with pytest.raises(fastjobs.InvalidOptionError, match=f"more than {MAX_TICKS} ticks"):
        await advance_time(app, 60.0 * (MAX_TICKS + 1))
    with pytest.raises(fastjobs.InvalidOptionError, match="a number of seconds >= 0"):
        await advance_time(app, -1)
    with capture_enqueues(app) as enqueued:
        await advance_time(app, 60)  # the refused calls moved nothing on
    assert [j.id for j in enqueued] == [tick_job_id("reports.minutely", ticks[-1] + 60)]


async def test_a_cron_schedule_fires_its_hourly_ticks(app: fastjobs.App) -> None:
    pytest.importorskip("croniter")

    @app.periodic("0 * * * *", name="reports.hourly")
    async def hourly() -> None: ...

    with capture_enqueues(app) as enqueued:
        await advance_time(app, 3 * 3600)
    assert len(enqueued) == 3


class AdvanceTimeInUnittest(unittest.IsolatedAsyncioTestCase):
    """advance_time is a coroutine: unittest needs no plugin."""

    async def test_advance_time(self) -> None:
        app = fastjobs.App("memory://")

        @app.task(name="emails.send")
        async def send(to: str) -> str:
            return to

        handle = await send.options(delay=86400).enqueue("a@b.c")
        async with run_jobs(app):
            await advance_time(app, 86400)
        self.assertEqual(await handle.result(timeout=5), "a@b.c")
        await app.close()

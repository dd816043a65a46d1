"""Real workers write history with their acks; ``app.history`` reads it back, on every backend."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Iterable
from typing import Any

import pytest

import fastjobs
from fastjobs.history import HistoryBucket, bucket_of, percentile
from fastjobs.job import new_job_id
from tests.contract.conftest import MakeApp

SLOW = 0.12
"""Seconds a slow handler sleeps: its runs land in (0.1, 0.25], with 130 ms of slack for a busy machine."""


def totals(buckets: Iterable[HistoryBucket]) -> dict[tuple[str, str], HistoryBucket]:
    """The buckets of each (queue, task) merged over time (a run may straddle a minute or an hour)."""
    merged: dict[tuple[str, str], list[HistoryBucket]] = {}
    for b in buckets:
        merged.setdefault((b.queue, b.task), []).append(b)
    out = {}
    for (queue, task), items in merged.items():
        hist = [sum(col) for col in zip(*(b.buckets for b in items))]
        out[(queue, task)] = HistoryBucket(
            0.0, queue, task, sum(b.succeeded for b in items), sum(b.retried for b in items),
            sum(b.dead for b in items), sum(b.runs for b in items), sum(b.runtime_sum for b in items),
            None, percentile(hist, 0.5), percentile(hist, 0.95), tuple(hist),
        )
    return out


def register(app: fastjobs.App) -> dict[str, Any]:
    failed_once: set[str] = set()

    @app.task(name="fast", queue="hist")
    async def fast(n: int) -> int:
        return n

    @app.task(name="slow", queue="hist")
    async def slow() -> None:
        await asyncio.sleep(SLOW)

    @app.task(name="slow_sync", queue="hist")
    def slow_sync() -> None:
        time.sleep(SLOW)

    @app.task(name="flaky", queue="hist", max_attempts=3, backoff=None, context=True)
    async def flaky(ctx: fastjobs.Context) -> str:
        if ctx.job_id not in failed_once:
            failed_once.add(ctx.job_id)
            raise ValueError("first attempt fails")
        return "ok"

    @app.task(name="doomed", queue="other", max_attempts=2, backoff=None)
    def doomed() -> None:
        raise RuntimeError("always")

    return {"fast": fast, "slow": slow, "slow_sync": slow_sync, "flaky": flaky, "doomed": doomed}


async def enqueue_all(tasks: dict[str, Any]) -> dict[str, list[str]]:
    ids: dict[str, list[str]] = {}
    app: fastjobs.App = tasks["fast"].app
    plan = [("fast", 40), ("slow", 6), ("slow_sync", 4), ("flaky", 5), ("doomed", 3)]
    calls = [(name, tasks[name].call(i) if name == "fast" else tasks[name].call()) for name, n in plan for i in range(n)]
    handles = await app.enqueue_many([call for _, call in calls])
    for (name, _), handle in zip(calls, handles):
        ids.setdefault(name, []).append(handle.id)
    return ids


def check_totals(got: dict[tuple[str, str], HistoryBucket]) -> None:
    fast, slow, slow_sync = got[("hist", "fast")], got[("hist", "slow")], got[("hist", "slow_sync")]
    flaky, doomed = got[("hist", "flaky")], got[("other", "doomed")]
    assert (fast.succeeded, fast.retried, fast.dead, fast.runs) == (40, 0, 0, 40)
    assert (slow.succeeded, slow.runs) == (6, 6) and (slow_sync.succeeded, slow_sync.runs) == (4, 4)
    assert (flaky.succeeded, flaky.retried, flaky.dead, flaky.runs) == (5, 5, 0, 10)
    assert (doomed.succeeded, doomed.retried, doomed.dead, doomed.runs) == (0, 3, 3, 6)
    assert set(got) == {("hist", "fast"), ("hist", "slow"), ("hist", "slow_sync"), ("hist", "flaky"), ("other", "doomed")}
    for b in (slow, slow_sync):
        assert b.runtime_sum >= b.runs * SLOW
        assert b.buckets[bucket_of(SLOW)] == b.runs, b.buckets  # every run in (0.1, 0.25]
        assert b.p50 is not None and b.p95 is not None
        assert 0.1 < b.p50 <= b.p95 <= 0.25
    # A no-op handler runs in microseconds; its run time also counts the worker loop's turns
    # before its first step (before Python 3.12) and before its outcome is seen: well under SLOW.
    assert fast.p50 is not None and fast.p95 is not None and fast.p50 <= fast.p95 < SLOW / 2
    assert fast.runtime_sum < 40 * SLOW / 2


async def test_burst_worker_history_counts_each_outcome(app: fastjobs.App) -> None:
    tasks = register(app)
    before = time.time()
    await enqueue_all(tasks)
    worker = app.worker(burst=True, handle_signals=False)
    await asyncio.wait_for(worker.run(), 60)
    assert worker.succeeded == 55 and worker.failed == 11
    minutes = await app.history()
    check_totals(totals(minutes))
    assert all(b.at % 60 == 0 and b.at >= before - 120 for b in minutes)
    hours = await app.history(step="1h")
    check_totals(totals(hours))
    assert all(b.at % 3600 == 0 for b in hours)
    # Filters: one queue, one task; an empty window.
    only = totals(await app.history(queue="other"))
    assert list(only) == [("other", "doomed")]
    only = totals(await app.history(task="flaky", step="1h"))
    assert list(only) == [("hist", "flaky")] and only[("hist", "flaky")].runs == 10
    assert await app.history(since=before - 7200, until=before - 3600) == []
    now = dt.datetime.now(dt.timezone.utc)
    check_totals(totals(await app.history(since=now - dt.timedelta(hours=1), until=now + dt.timedelta(minutes=2))))


async def test_running_worker_records_history_and_who_ran_each_failed_attempt(app: fastjobs.App) -> None:
    tasks = register(app)
    ids = await enqueue_all(tasks)
    worker = app.worker(handle_signals=False, concurrency=20)
    runner = asyncio.ensure_future(worker.run())
    try:
        handles = [fastjobs.JobHandle(app, job_id) for name in ("fast", "slow", "slow_sync", "flaky") for job_id in ids[name]]
        for handle in handles:
            await handle.result(timeout=30)
        for job_id in ids["doomed"]:
            with pytest.raises(fastjobs.JobFailedError):
                await fastjobs.JobHandle(app, job_id).result(timeout=30)
        await worker.wait_acked(55 + 11)
    finally:
        worker.request_stop()
        await runner
    check_totals(totals(await app.history()))
    info = await app.get_job(ids["doomed"][0])
    assert info is not None and [e.attempt for e in info.errors] == [1, 2]
    for error in info.errors:
        assert error.worker == worker.id
        assert error.started_at is not None and error.started_at <= error.at
    flaky = await app.get_job(ids["flaky"][0])
    assert flaky is not None and flaky.state == "succeeded" and flaky.errors[0].worker == worker.id


async def test_dead_letters_without_a_run_count_as_dead(app: fastjobs.App) -> None:
    # A job naming a task this worker does not know is dead-lettered at once: counted dead, run time 0.
    @app.task(name="elsewhere", queue="hist")
    async def elsewhere() -> None: ...

    register(app)
    await elsewhere.enqueue()
    del app.tasks["elsewhere"]  # as if enqueued by another program
    worker = app.worker(["hist"], burst=True, handle_signals=False)
    await asyncio.wait_for(worker.run(), 30)
    got = totals(await app.history(task="elsewhere"))
    b = got[("hist", "elsewhere")]
    assert (b.succeeded, b.dead, b.runs, b.buckets[0]) == (0, 1, 1, 1)


async def test_history_rejects_bad_options(app: fastjobs.App) -> None:
    register(app)
    now = time.time()
    for kwargs, match in [
        ({"step": "5m"}, "step"), ({"step": 60.0}, "step"), ({"since": now, "until": now}, "before"),
        ({"since": now + 10, "until": now}, "before"), ({"since": dt.datetime(2026, 1, 1)}, "timezone"),
        ({"until": "yesterday"}, "until"), ({"since": float("nan")}, "since"), ({"queue": "bad queue"}, "queue"),
        ({"task": ""}, "task"), ({"task": "a b"}, "task"),
    ]:
        with pytest.raises(fastjobs.InvalidOptionError, match=match):
            await app.history(**kwargs)
    assert await app.history(queue="nothing-here") == []
    assert await app.history(task=new_job_id()) == []


async def test_timed_out_attempts_count_the_time_they_were_given(app: fastjobs.App) -> None:
    @app.task(name="stuck", queue="hist", timeout=0.2, max_attempts=1)
    async def stuck() -> None:
        await asyncio.sleep(30)

    @app.task(name="stuck_sync", queue="hist", timeout=0.2, max_attempts=1)
    def stuck_sync() -> None:
        time.sleep(1.0)  # a thread cannot be stopped: the attempt fails at its timeout, the thread runs on

    await app.enqueue_many([stuck.call(), stuck_sync.call()])
    worker = app.worker(["hist"], burst=True, handle_signals=False)
    await asyncio.wait_for(worker.run(), 30)
    got = totals(await app.history())
    for name in ("stuck", "stuck_sync"):
        b = got[("hist", name)]
        assert (b.succeeded, b.dead, b.runs) == (0, 1, 1)
        # About the timeout (counted from when the worker took the job; the run from its first step).
        assert 0.1 < b.runtime_sum < 1.0


async def test_an_app_with_history_off_writes_none_and_still_acks(make_app: MakeApp) -> None:
    app = make_app(lease=5.0, history=False)
    tasks = register(app)
    await enqueue_all(tasks)
    worker = app.worker(burst=True, handle_signals=False)
    await asyncio.wait_for(worker.run(), 60)
    assert worker.succeeded == 55 and worker.failed == 11
    assert await app.history() == []
    assert await app.history(step="1h") == []
    dead = await app.jobs(state="dead")
    assert len(dead.jobs) == 3

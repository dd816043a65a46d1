"""The process pool's own mechanics (``executor="process"``), on memory://: what a child holds
back, how a stop reaches the right job, cancelled jobs queued in a child, recycling by memory,
children whose death hides behind a process they started, a worker torn down mid-start,
children that cannot start, and progress from a handler's threads.

What depends on the backend (timeouts, crashes, cancel, shutdown) is in
tests/contract/test_process_executor_contract.py, on every backend.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest

import fastjobs
from tests.contract.test_process_executor_contract import children_of, pool_dir, pool_worker, wait_for
from tests.process import pool_app

__all__ = ["pool_dir"]  # the fixture, imported to be used here


@pytest.fixture
async def app() -> Any:
    application = fastjobs.App("memory://", lease=3.0)
    yield application
    await application.close()


@pytest.fixture
def tasks(app: fastjobs.App) -> dict[str, fastjobs.Task[..., Any]]:
    return pool_app.register(app)


async def run_until(app: fastjobs.App, done: Any, **options: Any) -> fastjobs.Worker:
    worker = pool_worker(app, **options)
    running = asyncio.ensure_future(worker.run())
    try:
        await wait_for(lambda: done(worker), 30)
    finally:
        worker.request_stop()
        await asyncio.wait_for(running, 30)
    assert children_of(os.getpid()) == []
    return worker


async def test_outcomes_are_not_held_behind_a_job_that_is_then_killed(
    app: fastjobs.App, tasks: dict[str, fastjobs.Task[..., Any]], pool_dir: Path
) -> None:
    for _ in range(3):  # the task is known to be fast: its outcomes would be batched
        await app.enqueue_many([tasks["pool.ran"].call("warm") for _ in range(20)])
    fast = await app.enqueue_many([tasks["pool.ran"].call(f"fast{i}") for i in range(5)])
    spin = await tasks["pool.spin"].options(timeout=1, max_attempts=1).enqueue()
    await run_until(app, lambda w: w.failed >= 1 and w.succeeded >= 65, process_pool=1)
    assert {n: c for n, c in pool_app.runs(pool_dir).items() if n != "warm"} == {f"fast{i}": 1 for i in range(5)}
    assert [(await app.get_job(h.id)).state for h in fast] == ["succeeded"] * 5  # type: ignore[union-attr]
    assert (await app.get_job(spin.id)).state == "dead"  # type: ignore[union-attr]


async def test_a_handler_that_swallows_its_stop_does_not_take_the_next_job_down(
    app: fastjobs.App, tasks: dict[str, fastjobs.Task[..., Any]], pool_dir: Path
) -> None:
    swallowing = await tasks["pool.swallow"].options(timeout=1, max_attempts=1).enqueue()
    innocent = await tasks["pool.nap"].options(max_attempts=1).enqueue("innocent", 2.0)
    await run_until(app, lambda w: w.failed >= 1 and w.succeeded >= 1, process_pool=1)
    assert (await app.get_job(swallowing.id)).state == "dead"  # type: ignore[union-attr]
    info = await app.get_job(innocent.id)
    assert info is not None and (info.state, info.errors) == ("succeeded", [])  # run once, whole, elsewhere


async def test_every_cancelled_job_queued_in_a_child_stays_unrun(
    app: fastjobs.App, tasks: dict[str, fastjobs.Task[..., Any]], pool_dir: Path
) -> None:
    await app.enqueue_many([tasks["pool.ran"].call("warm") for _ in range(200)])  # a window of 64 ahead
    worker = pool_worker(app, process_pool=1, concurrency=100)
    running = asyncio.ensure_future(worker.run())
    await wait_for(lambda: worker.succeeded >= 200)
    blocker = await tasks["pool.hold"].enqueue("blocker")
    await wait_for((pool_dir / "blocker.pid").exists)
    queued = await app.enqueue_many([tasks["pool.ran"].call(f"c{i}") for i in range(30)])
    await wait_for(lambda: worker.running_count >= 31)  # sent to the child behind the blocker
    assert await app.cancel_many([h.id for h in queued]) == 30
    await asyncio.sleep(3.0)  # the next renewals (lease / 3) find them cancelled
    (pool_dir / "blocker.go").touch()
    assert await blocker.result(timeout=15) == "blocker"
    worker.request_stop()
    await running
    assert {n for n in pool_app.runs(pool_dir) if n.startswith("c")} == set()


async def test_max_memory_counts_the_childs_memory_not_the_workers_peak(
    app: fastjobs.App, tasks: dict[str, fastjobs.Task[..., Any]]
) -> None:
    ballast = bytearray(250 << 20)  # this process's peak passes the limit; a child's must not inherit it
    del ballast
    handles = await app.enqueue_many([tasks["pool.pid"].call() for _ in range(8)])
    worker = await run_until(app, lambda w: w.succeeded >= 8, process_pool=1, max_memory_per_child=200)
    assert len({await h.result(timeout=5) for h in handles}) == 1  # one child ran them all
    assert worker.succeeded == 8


async def test_a_child_whose_socket_outlives_it_is_still_seen_to_die(
    app: fastjobs.App, tasks: dict[str, fastjobs.Task[..., Any]]
) -> None:
    dying = await tasks["pool.start_and_die"].options(max_attempts=1).enqueue()
    started = time.monotonic()
    await run_until(app, lambda w: w.failed >= 1, process_pool=1)
    assert time.monotonic() - started < 10
    info = await app.get_job(dying.id)
    assert info is not None and [e.type for e in info.errors] == ["WorkerCrashedError"]


async def test_a_worker_cancelled_as_it_starts_leaves_no_child(app: fastjobs.App,
                                                             tasks: dict[str, fastjobs.Task[..., Any]]) -> None:
    for delay in (0.05, 0.3, 1.0):
        worker = pool_worker(app)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(worker.run(), delay)
        deadline = time.monotonic() + 5
        while children_of(os.getpid()):
            assert time.monotonic() < deadline, "a child outlived its cancelled worker"
            await asyncio.sleep(0.02)


async def test_children_of_an_app_that_lacks_a_task_are_refused_at_start(app: fastjobs.App,
                                                                         tasks: dict[str, fastjobs.Task[..., Any]]) -> None:
    worker = app.worker(handle_signals=False, burst=True, process_app="tests.process.hooks_app:app")
    with pytest.raises(fastjobs.ConfigurationError, match="does not register 'pool.add'"):
        await asyncio.wait_for(worker.run(), 60)
    assert children_of(os.getpid()) == []


async def test_children_that_keep_failing_to_start_stop_the_worker_and_give_jobs_back(
    app: fastjobs.App, tasks: dict[str, fastjobs.Task[..., Any]], pool_dir: Path
) -> None:
    worker = pool_worker(app, process_pool=1, max_tasks_per_child=1)
    running = asyncio.ensure_future(worker.run())
    first = await tasks["pool.pid"].enqueue()
    await first.result(timeout=15)
    (pool_dir / "break").touch()  # every child started from now on fails its on_child_start hook
    later = await app.enqueue_many([tasks["pool.pid"].call() for _ in range(3)])
    await asyncio.wait_for(running, 60)  # it stops by itself
    states = [(await app.get_job(h.id)).state for h in later]  # type: ignore[union-attr]
    # A replacement that started before the hook broke may have run one; the rest went back.
    assert states.count("queued") >= 2 and set(states) <= {"queued", "succeeded"}, states
    assert children_of(os.getpid()) == []


async def test_progress_from_a_handlers_threads_all_arrive(app: fastjobs.App,
                                                          tasks: dict[str, fastjobs.Task[..., Any]]) -> None:
    jobs = await app.enqueue_many([tasks["pool.progress_threads"].options(timeout=30).call(8, 25) for _ in range(3)])
    await run_until(app, lambda w: w.succeeded + w.failed >= 3)
    assert [await h.result(timeout=5) for h in jobs] == [200] * 3

"""``executor="process"`` on every backend: real child processes, real signals.

Hard timeouts kill the child, crashes fail only their attempt, children are recycled by
count and by memory, a cancelled job's child is killed, and no child outlives its worker.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import fastjobs
from tests.process import pool_app



@pytest.fixture
def pool_dir(tmp_path: Path) -> Iterator[Path]:
    """Where handlers that run until stopped write their pid (``$POOL_DIR``, read by the children)."""
    os.environ["POOL_DIR"] = str(tmp_path)
    yield tmp_path
    del os.environ["POOL_DIR"]


def children_of(pid: int) -> list[int]:
    """The processes whose parent is ``pid``, from the process table."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"process_child" in Path(f"/proc/{entry}/cmdline").read_bytes():
            found.append(int(entry))
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def wait_for(check: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def pool_worker(app: fastjobs.App, **options: Any) -> fastjobs.Worker:
    options.setdefault("process_pool", 2)
    return app.worker(handle_signals=False, poll_interval=0.05, process_app=pool_app.REF, **options)


async def run_burst(app: fastjobs.App, **options: Any) -> fastjobs.Worker:
    worker = pool_worker(app, burst=True, **options)
    await asyncio.wait_for(worker.run(), 60)
    assert children_of(os.getpid()) == []  # none outlives its worker
    return worker


@pytest.fixture
def tasks(app: fastjobs.App) -> dict[str, fastjobs.Task[..., Any]]:
    return pool_app.register(app)


async def errors_of(app: fastjobs.App, handle: fastjobs.JobHandle[Any]) -> tuple[str, list[tuple[str, str]]]:
    info = await app.get_job(handle.id)
    assert info is not None
    return info.state, [(e.type, e.message) for e in info.errors]


async def test_results_errors_retry_and_fail_cross_the_process_boundary(
    app: fastjobs.App, tasks: dict[str, fastjobs.Task[..., Any]]
) -> None:
    adds = await app.enqueue_many([tasks["pool.add"].call(i, 1) for i in range(300)])
    boom = await tasks["pool.boom"].options(max_attempts=1).enqueue("bad <input>")
    retry = await tasks["pool.retry"].options(max_attempts=2).enqueue()
    fail = await tasks["pool.fail"].options(max_attempts=3).enqueue()
    bad = await tasks["pool.unencodable"].options(max_attempts=3).enqueue()
    pid = await tasks["pool.pid"].enqueue()
    worker = pool_worker(app)
    running = asyncio.ensure_future(worker.run())
    await wait_for(lambda: worker.succeeded + worker.failed >= 300 + 1 + 2 + 1 + 1 + 1, 60)
    worker.request_stop()
    await running
    assert [await h.result(timeout=5) for h in adds] == [i + 1 for i in range(300)]
    assert await pid.result(timeout=5) != os.getpid()  # it ran in a child
    state, errors = await errors_of(app, boom)
    assert state == "dead" and errors == [("ValueError", "bad <input>")]
    info = await app.get_job(boom.id)
    assert "in boom" in info.errors[0].traceback and "raise ValueError(text)" in info.errors[0].traceback  # the child's
    assert await errors_of(app, retry) == ("dead", [("Retry", "not yet"), ("Retry", "not yet")])
    assert await errors_of(app, fail) == ("dead", [("Fail", "no point")])  # not retried
    state, errors = await errors_of(app, bad)
    assert state == "dead" and len(errors) == 1 and errors[0][0] == "UnencodableError"


async def test_a_job_past_its_timeout_has_its_child_killed_and_the_worker_goes_on(
    app: fastjobs.App, tasks: dict[str, fastjobs.Task[..., Any]], pool_dir: Path
) -> None:
    spin = await tasks["pool.spin"].options(timeout=1, max_attempts=1).enqueue()
    worker = pool_worker(app)
    running = asyncio.ensure_future(worker.run())
    marker = pool_dir / "spin.pid"
    await wait_for(marker.exists)
    child, started = int(marker.read_text()), time.monotonic()
    await wait_for(lambda: not alive(child), 1 + 2 + 1)
    assert time.monotonic() - started < 1 + 2  # killed within timeout + 2 s
    await wait_for(lambda: worker.failed == 1)
    after = [await tasks["pool.add"].enqueue(i, i) for i in range(20)]
    assert [await h.result(timeout=15) for h in after] == [2 * i for i in range(20)]
    assert child not in worker._procs.pids and len(worker._procs.pids) == 2  # type: ignore[union-attr]  # replaced
    worker.request_stop()
    await running
    assert await errors_of(app, spin) == ("dead", [
        ("JobTimeoutError", f"job {spin.id} ran longer than its timeout of 1.0 s")])
    assert children_of(os.getpid()) == []


@pytest.mark.parametrize("crash", ["pool.segv", "pool.exit"])
async def test_a_child_that_dies_fails_only_its_attempt_and_is_retried_per_policy(
    app: fastjobs.App, tasks: dict[str, fastjobs.Task[..., Any]], crash: str
) -> None:
    crashing = await tasks[crash].options(max_attempts=2).enqueue()
    others = await app.enqueue_many([tasks["pool.add"].call(i, 2) for i in range(200)])
    worker = pool_worker(app)
    running = asyncio.ensure_future(worker.run())
    await wait_for(lambda: worker.succeeded >= 200 and worker.failed >= 2, 60)
    worker.request_stop()
    await running
    assert [await h.result(timeout=5) for h in others] == [i + 2 for i in range(200)]
    expected = ("the process running this job died with signal 11 (SIGSEGV)" if crash == "pool.segv"
                else "the process running this job exited with status 1")
    assert await errors_of(app, crashing) == ("dead", [("WorkerCrashedError", expected)] * 2)
    assert children_of(os.getpid()) == []


async def test_max_tasks_per_child_replaces_children_between_jobs(
    app: fastjobs.App, tasks: dict[str, fastjobs.Task[..., Any]]
) -> None:
    handles = await app.enqueue_many([tasks["pool.pid"].call() for _ in range(9)])
    worker = await run_burst(app, process_pool=1, max_tasks_per_child=3)
    pids = [await h.result(timeout=5) for h in handles]
    assert worker.succeeded == 9
    assert sorted(pids.count(p) for p in set(pids)) == [3, 3, 3]  # three children, three jobs each


async def test_a_child_past_max_memory_per_child_is_replaced(
    app: fastjobs.App, tasks: dict[str, fastjobs.Task[..., Any]]
) -> None:
    first = await tasks["pool.hoard"].enqueue(80)
    worker = pool_worker(app, process_pool=1, max_memory_per_child=60)
    running = asyncio.ensure_future(worker.run())
    grown = await first.result(timeout=30)
    second = await tasks["pool.hoard"].enqueue(1)
    fresh = await second.result(timeout=30)
    worker.request_stop()
    await running
    assert fresh != grown  # the child that passed 60 MiB ran no further job
    assert not alive(grown)


async def test_cancelling_a_running_job_kills_its_child(
    app: fastjobs.App, tasks: dict[str, fastjobs.Task[..., Any]], pool_dir: Path
) -> None:
    job = await tasks["pool.sleep"].enqueue("cancelled")
    worker = pool_worker(app)
    running = asyncio.ensure_future(worker.run())
    marker = pool_dir / "cancelled.pid"
    await wait_for(marker.exists)
    child = int(marker.read_text())
    assert await job.cancel()
    await wait_for(lambda: not alive(child), 10)  # found at the next renewal (lease/3), then killed
    later = await tasks["pool.add"].enqueue(1, 1)
    assert await later.result(timeout=15) == 2
    worker.request_stop()
    await running
    assert (await app.get_job(job.id)).state == "cancelled"  # type: ignore[union-attr]
    assert children_of(os.getpid()) == []


async def test_jobs_queued_in_a_child_do_not_start_once_their_lease_may_be_gone(make_app: Any, pool_dir: Path) -> None:
    import threading

    app = make_app(lease=9.0)  # renewed every 3 s; a job may start until 4.5 s after its lease was confirmed
    tasks = pool_app.register(app)

    @app.task(name="block_the_loop")
    async def block_the_loop(seconds: float) -> None:
        time.sleep(seconds)  # the worker stalls: no renewal confirms the leases meanwhile

    outcomes: list[tuple[str, str, str]] = []

    @app.after_job
    def seen(ctx: fastjobs.Context, outcome: fastjobs.JobOutcome) -> None:
        outcomes.append((ctx.job_id, outcome.status, type(outcome.error).__name__))

    holder = await tasks["pool.hold"].enqueue("holder")
    worker = pool_worker(app, process_pool=1)
    running = asyncio.ensure_future(worker.run())
    await wait_for((pool_dir / "holder.pid").exists)
    queued = await app.enqueue_many([tasks["pool.ran"].call(f"m{i}") for i in range(4)])
    await wait_for(lambda: worker.running_count >= 5)  # sent to the child, behind the holder
    # The holder ends while the loop is blocked, past half the lease since the last renewal (and
    # the loop wakes before the lease itself could run out: 3 + 5.5 < 9 s).
    threading.Timer(4.8, (pool_dir / "holder.go").touch).start()
    await block_the_loop.enqueue(5.5)
    await wait_for(lambda: worker.succeeded >= 6, 40)
    worker.request_stop()
    await running
    assert await holder.result(timeout=5) == "holder"
    assert pool_app.runs(pool_dir) == {f"m{i}": 1 for i in range(4)}  # each ran once
    for h in queued:  # ... after the child gave it back unstarted (too late to start), and it was claimed again
        assert [o for o in outcomes if o[0] == h.id] == [(h.id, "cancelled", "LeaseExpiredError"),
                                                         (h.id, "succeeded", "NoneType")]


async def test_context_progress_and_child_hooks_work_in_children(
    app: fastjobs.App, tasks: dict[str, fastjobs.Task[..., Any]]
) -> None:
    job = await tasks["pool.context"].enqueue(7)
    await run_burst(app)
    applied, job_id, attempt, task, opened, child = await job.result(timeout=5)
    assert (applied, job_id, attempt, task) == (True, job.id, 1, "pool.context")
    assert opened.startswith("opened in ") and opened != f"opened in {os.getpid()}"  # on_child_start ran there
    assert child in (0, 1)
    progress = (await app.get_job(job.id)).progress  # type: ignore[union-attr]
    assert progress is not None and (progress.fraction, progress.message) == (0.5, "half of 7")


async def test_the_grace_end_kills_running_children_and_gives_their_jobs_back(
    app: fastjobs.App, tasks: dict[str, fastjobs.Task[..., Any]], pool_dir: Path
) -> None:
    slow = await app.enqueue_many([tasks["pool.sleep"].call(f"s{i}") for i in range(4)])
    worker = pool_worker(app, shutdown_grace=0.5)
    running = asyncio.ensure_future(worker.run())
    await wait_for(lambda: len(list(pool_dir.glob("s*.pid"))) == 2)
    pids = [int(p.read_text()) for p in pool_dir.glob("s*.pid")]
    worker.request_stop()
    await asyncio.wait_for(running, 15)
    assert not any(alive(p) for p in pids) and children_of(os.getpid()) == []
    states = [(await app.get_job(h.id)).state for h in slow]  # type: ignore[union-attr]
    assert states == ["queued"] * 4  # the two running and the two unstarted, given back
    assert [len((await app.get_job(h.id)).errors) for h in slow] == [0] * 4  # type: ignore[union-attr]


async def test_soft_timeout_raises_inside_the_handler_before_the_hard_one(
    app: fastjobs.App, tasks: dict[str, fastjobs.Task[..., Any]], pool_dir: Path
) -> None:
    job = await tasks["pool.soft"].enqueue("soft")
    await run_burst(app)
    assert (pool_dir / "soft.pid").exists()  # its except block ran, in the child
    state, errors = await errors_of(app, job)
    assert state == "dead" and [e[0] for e in errors] == ["SoftTimeLimitExceeded"]


async def test_the_worker_wide_executor_applies_to_tasks_that_name_none(
    app: fastjobs.App, tasks: dict[str, fastjobs.Task[..., Any]]
) -> None:
    on_threads = await tasks["pool.default"].enqueue()
    await run_burst(app)
    in_child = await tasks["pool.default"].enqueue()
    await run_burst(app, executor="process")
    assert await on_threads.result(timeout=5) == os.getpid()
    assert await in_child.result(timeout=5) != os.getpid()


async def test_bad_settings_are_refused_with_what_to_do(app: fastjobs.App) -> None:
    with pytest.raises(fastjobs.ConfigurationError, match="async handlers run on the worker's loop"):
        @app.task(executor="process")
        async def on_loop() -> None: ...
    with pytest.raises(fastjobs.ConfigurationError, match="executor must be 'thread' or 'process'"):
        app.task(executor="fork")(pool_app.add)
    with pytest.raises(fastjobs.ConfigurationError, match="a plain def"):
        @app.on_child_start
        async def opener(state: fastjobs.WorkerState) -> None: ...
    with pytest.raises(fastjobs.ConfigurationError, match="soft_timeout .* must be shorter than timeout"):
        app.task(name="x", executor="process", soft_timeout=5, timeout=5)(pool_app.add)
    with pytest.raises(fastjobs.ConfigurationError, match="give the task executor='process'"):
        app.task(name="y", executor="thread", soft_timeout=5)(pool_app.add)
    app.task(name="z", soft_timeout=5)(pool_app.add)
    with pytest.raises(fastjobs.ConfigurationError, match="has a soft_timeout, which needs executor='process'"):
        app.worker(handle_signals=False)
    app.tasks.pop("z")
    pool_app.register(app)
    with pytest.raises(fastjobs.InvalidOptionError, match="max_tasks_per_child must be a positive int"):
        pool_worker(app, max_tasks_per_child=0)
    worker = app.worker(handle_signals=False, burst=True, process_app="tests.process.no_such_module:app")
    with pytest.raises(fastjobs.ConfigurationError, match="could not start.*No module named 'tests.process.no_such_module'"):
        await asyncio.wait_for(worker.run(), 60)
    assert children_of(os.getpid()) == []

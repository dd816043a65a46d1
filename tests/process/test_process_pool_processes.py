"""``fastjobs worker --executor process`` as a real process on Redis and PostgreSQL: SIGTERM and
SIGKILL to the worker, and what becomes of its children and their jobs."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

import fastjobs
from tests.backends import unique_prefix, wipe_namespace
from tests.contract.test_process_executor_contract import alive
from tests.process import pool_app

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["redis", "postgres"])
async def target(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, str, fastjobs.App]]:
    url = str(request.getfixturevalue(f"{request.param}_url"))
    prefix = unique_prefix()
    app = fastjobs.App(url, prefix=prefix, lease=3.0)
    pool_app.register(app)
    yield url, prefix, app
    await app.close()
    await wipe_namespace(url, prefix)


STARTED: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def no_worker_left() -> Iterator[None]:
    """A test that fails midway leaves no worker (and so no child) running."""
    yield
    while STARTED:
        proc = STARTED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)


def start_worker(url: str, prefix: str, folder: Path, *extra: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), POOL_URL=url, POOL_PREFIX=prefix, POOL_DIR=str(folder))
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastjobs", "worker", pool_app.REF, "--executor", "process", "--process-pool", "2",
         "--concurrency", "10", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )
    STARTED.append(proc)
    return proc


async def wait_for_marks(folder: Path, count: int, proc: subprocess.Popen[str], timeout: float = 30.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while len(marks := list(folder.glob("*.pid"))) < count:
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "the children did not start the jobs"
        await asyncio.sleep(0.05)
    return [int(m.read_text()) for m in marks]


def stopped(proc: subprocess.Popen[str], children: list[int]) -> None:
    """The worker exited 0 and left none of its children behind."""
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert not any(alive(p) for p in children)


async def states(app: fastjobs.App, handles: list[Any]) -> list[str]:
    return [(await app.get_job(h.id)).state for h in handles]  # type: ignore[union-attr]


async def test_sigterm_lets_running_jobs_finish_gives_back_the_rest_and_stops_the_children(
    target: tuple[str, str, fastjobs.App], tmp_path: Path
) -> None:
    url, prefix, app = target
    running = await app.enqueue_many([pool_app_task(app, "pool.hold").call(f"r{i}") for i in range(2)])
    proc = start_worker(url, prefix, tmp_path, "--grace", "20")
    children = await wait_for_marks(tmp_path, 2, proc)  # one running job per child
    waiting = await app.enqueue_many([pool_app_task(app, "pool.nap").call(f"w{i}", 0.0) for i in range(6)])
    deadline = time.monotonic() + 10
    while await states(app, waiting) != ["active"] * 6:  # claimed: waiting in the worker or queued in a child
        assert time.monotonic() < deadline, await states(app, waiting)
        await asyncio.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    await asyncio.sleep(0.5)  # the worker drains: the jobs queued behind the running ones are not started
    for i in range(2):
        (tmp_path / f"r{i}.go").touch()  # the running ones finish within the grace
    stopped(proc, children)
    assert await states(app, running) == ["succeeded"] * 2
    # Waiting in the worker or queued in a child behind a running one: given back, none run or lost.
    assert await states(app, waiting) == ["queued"] * 6
    assert [len((await app.get_job(h.id)).errors) for h in waiting] == [0] * 6  # type: ignore[union-attr]


async def test_sigterm_past_the_grace_kills_the_children_and_gives_their_jobs_back(
    target: tuple[str, str, fastjobs.App], tmp_path: Path
) -> None:
    url, prefix, app = target
    jobs = await app.enqueue_many([pool_app_task(app, "pool.sleep").call(f"s{i}") for i in range(2)])
    proc = start_worker(url, prefix, tmp_path, "--grace", "1")
    children = await wait_for_marks(tmp_path, 2, proc)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    stopped(proc, children)
    assert time.monotonic() - started < 1 + 5
    assert await states(app, jobs) == ["queued", "queued"]  # given back, attempt unused
    assert [len((await app.get_job(h.id)).errors) for h in jobs] == [0, 0]  # type: ignore[union-attr]


async def test_a_worker_killed_with_sigkill_leaves_no_child_behind(
    target: tuple[str, str, fastjobs.App], tmp_path: Path
) -> None:
    url, prefix, app = target
    await app.enqueue_many([pool_app_task(app, "pool.sleep").call(f"k{i}") for i in range(2)])
    proc = start_worker(url, prefix, tmp_path)
    children = await wait_for_marks(tmp_path, 2, proc)
    proc.kill()
    proc.communicate(timeout=30)
    deadline = time.monotonic() + 10
    while any(alive(p) for p in children):
        assert time.monotonic() < deadline, "children outlived their worker"
        await asyncio.sleep(0.05)


def pool_app_task(app: fastjobs.App, name: str) -> fastjobs.Task[..., Any]:
    return app.tasks[name]

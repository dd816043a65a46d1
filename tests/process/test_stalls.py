"""A worker that stalls past its lease (SIGSTOP, a frozen VM) must not start, on waking,
the jobs it had claimed but not started: another worker took them back and ran them."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import fastjobs
from tests.backends import unique_prefix, wipe_namespace

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
LEASE = 3.0


def ledger(path: Path) -> list[tuple[int, int, float]]:
    """(job number, pid, start time) of every recorded start."""
    if not path.exists():
        return []
    return [(int(n), int(pid), float(t)) for n, pid, t in (line.split() for line in path.read_text().splitlines())]


def start_worker(url: str, prefix: str, runs: Path, concurrency: int, prefetch: int, sleep: float,
                 log: Path | None = None) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), FASTJOBS_TEST_URL=url, FASTJOBS_TEST_PREFIX=prefix,
               FASTJOBS_TEST_RUNS=str(runs), LEDGER_LEASE=str(LEASE), LEDGER_CONCURRENCY=str(concurrency),
               LEDGER_PREFETCH=str(prefetch), LEDGER_SLEEP=str(sleep))
    if log is None:
        return subprocess.Popen([sys.executable, "-m", "tests.process.ledger_app"], env=env, cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with log.open("wb") as stderr:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([sys.executable, "-m", "tests.process.ledger_app"], env=env, cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=stderr)


async def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGCONT)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.mark.parametrize(("kind", "task"), [
    ("redis", "ledger.step"), ("redis", "ledger.step_sync"), ("postgres", "ledger.step"),
])
async def test_a_stalled_worker_does_not_start_jobs_whose_lease_ran_out(
    kind: str, task: str, redis_url: str, postgres_url: str, tmp_path: Path,
) -> None:
    url = redis_url if kind == "redis" else postgres_url
    prefix = unique_prefix()
    runs = tmp_path / "runs"
    app = fastjobs.App(url, prefix=prefix)
    app.task(name=task)(lambda n: n)
    stalled = rescuer = None
    try:
        await app.enqueue_many([app.tasks[task].call(i) for i in range(12)])
        # Two slots and ten prefetched: two jobs run, ten wait in the worker, claimed.
        log = tmp_path / "stalled.log"
        stalled = start_worker(url, prefix, runs, concurrency=2, prefetch=10, sleep=0.5, log=log)
        await wait_for(lambda: len(ledger(runs)) >= 2, 30, "the first worker to start two jobs")
        await asyncio.sleep(0.2)
        stalled.send_signal(signal.SIGSTOP)
        await asyncio.sleep(LEASE + 1.5)  # past the lease: every job it holds is up for recovery
        rescuer = start_worker(url, prefix, runs, concurrency=20, prefetch=0, sleep=0.0)
        await wait_for(lambda: {n for n, pid, _ in ledger(runs) if pid == rescuer.pid} == set(range(12)), 30,
                 "the second worker to run all twelve jobs")
        stop(rescuer)
        woke = time.time()
        stalled.send_signal(signal.SIGCONT)
        await asyncio.sleep(2.0)
        stop(stalled)
        late = sorted(n for n, pid, t in ledger(runs) if pid == stalled.pid and t >= woke)
        assert late == [], f"the stalled worker started jobs {late} after it woke, though their lease had run out"
        assert stalled.returncode == 0
        # Its two jobs that were running when it stalled ran on, but another worker ran them too:
        # their outcomes were refused (or dropped at the renewal that found the leases lost).
        assert "worker stopped: 0 succeeded, 0 failed" in log.read_text(), log.read_text()
    finally:
        for proc in (stalled, rescuer):
            if proc is not None:
                stop(proc)
        await app.close()
        await wipe_namespace(url, prefix)

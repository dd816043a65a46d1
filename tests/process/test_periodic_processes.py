"""Exactly-once periodic ticks with three real worker processes on a shared backend."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import fastjobs
from fastjobs._core import SUCCEEDED
from tests.backends import unique_prefix, wipe_namespace

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("kind", ["redis", "postgres"])
def test_three_worker_processes_run_each_tick_once(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    url = str(request.getfixturevalue(f"{kind}_url"))
    prefix = unique_prefix()
    runs = tmp_path / "runs.txt"
    env = dict(os.environ, PYTHONPATH=str(ROOT), FASTJOBS_TEST_URL=url, FASTJOBS_TEST_PREFIX=prefix,
               FASTJOBS_TEST_RUNS=str(runs))
    pool = subprocess.Popen(
        [sys.executable, "-m", "fastjobs", "worker", "tests.process.periodic_app:app", "--processes", "3", "--grace", "5"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        time.sleep(4.0)
        pool.send_signal(signal.SIGTERM)
        _, err = pool.communicate(timeout=30)
    finally:
        if pool.poll() is None:
            pool.kill()
            pool.wait()
    assert pool.returncode == 0, err
    assert err.count("worker started") == 3, err

    async def ticks() -> list[str]:
        app = fastjobs.App(url, prefix=prefix)
        try:
            return [j.id for j in await (await app.backend()).list_jobs(SUCCEEDED, limit=1000)]
        finally:
            await app.close()
            await wipe_namespace(url, prefix)

    done = asyncio.run(ticks())
    lines = runs.read_text().split()
    assert len(done) >= 6, (done, err)  # ~3 s of quarter-second ticks once all three are up
    assert len(lines) == len(done) == len(set(done))  # every tick stored once and run once

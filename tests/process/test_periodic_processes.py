"""Exactly-once periodic ticks with three real worker processes on a shared backend."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

import fastjobs
from fastjobs._core import SUCCEEDED
from tests.backends import unique_prefix, wipe_namespace
from tests.process.pool import pool_env, worker_pool

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("kind", ["redis", "postgres"])
def test_three_worker_processes_run_each_tick_once(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    url = str(request.getfixturevalue(f"{kind}_url"))
    prefix = unique_prefix()
    runs = tmp_path / "runs.txt"
    with worker_pool("tests.process.periodic_app:app", pool_env(url, prefix, runs), "--processes", "3", "--grace", "5") as pool:
        # Until 10 ticks ran (2.5 s of quarter-second ticks), not a fixed time: on a slow or
        # loaded machine the three processes take longer to start (4 s once gave 5 ticks).
        deadline = time.monotonic() + 60.0
        while time.monotonic() < deadline and len(runs.read_text().split() if runs.exists() else []) < 10:
            time.sleep(0.1)
    assert pool.returncode == 0, pool.stderr
    assert pool.stderr.count("worker started") == 3, pool.stderr

    async def ticks() -> list[str]:
        app = fastjobs.App(url, prefix=prefix)
        try:
            return [j.id for j in await (await app.backend()).list_jobs(SUCCEEDED, limit=1000)]
        finally:
            await app.close()
            await wipe_namespace(url, prefix)

    done = asyncio.run(ticks())
    lines = runs.read_text().split()
    assert len(done) >= 10, (done, pool.stderr)  # the ticks waited for above
    assert len(lines) == len(done) == len(set(done))  # every tick stored once and run once

"""A Redis outage longer than the lease, under load: nothing is lost, and the worker
does not run again the jobs it finished while the server was down."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

import fastjobs
from tests.process.test_stalls import ledger, start_worker, stop, wait_for
from tests.redis.servers import RedisServer, find_redis_server

pytestmark = pytest.mark.slow

JOBS = 3000


@pytest.fixture
def aof_server() -> RedisServer:
    binary = find_redis_server()
    if binary is None:
        pytest.skip("no redis-server binary found")
    server = RedisServer(binary, ["--appendonly", "yes", "--appendfsync", "always"]).start()
    yield server
    server.close()


async def test_an_outage_longer_than_the_lease_duplicates_no_work(aof_server: RedisServer, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    app = fastjobs.App(aof_server.url, prefix="outage")
    step = app.task(name="ledger.step")(lambda n: n)
    worker = None
    try:
        for start in range(0, JOBS, 1000):
            await app.enqueue_many([step.call(i) for i in range(start, start + 1000)])
        await app.close()
        worker = start_worker(aof_server.url, "outage", runs, concurrency=20, prefetch=20, sleep=0.02)
        await wait_for(lambda: len(ledger(runs)) >= 300, 30, "the worker to get going")
        aof_server.stop(signal.SIGKILL)
        await asyncio.sleep(8.0)  # past the lease: every lease the worker holds runs out
        aof_server.start()
        await wait_for(lambda: len({n for n, _, _ in ledger(runs)}) == JOBS, 60, "every job to run")
        counts = await app.stats()
        deadline = time.monotonic() + 20
        while counts["default"]["succeeded"] < JOBS and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            counts = await app.stats()
        assert counts["default"]["succeeded"] == JOBS, counts  # nothing lost
        twice = sorted(n for n, c in Counter(n for n, _, _ in ledger(runs)).items() if c > 1)
        assert twice == [], f"{len(twice)} jobs ran twice: {twice[:20]}"
    finally:
        if worker is not None:
            stop(worker)
        await app.close()

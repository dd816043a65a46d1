"""Faults against real servers: a worker killed with SIGKILL, connections killed
with CLIENT KILL, redis-server restarted mid-run. Nothing Redis kept is lost."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

import fastjobs
from fastjobs.backends.redis import RedisBackend
from tests.backends import unique_prefix, wipe_namespace
from tests.redis.conftest import ServerFactory, counts, wait_until

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def quiet_worker_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.WARNING, logger="fastjobs")
    yield caplog


async def test_sigkilled_worker_loses_nothing(redis_url: str) -> None:
    """Leased jobs of a worker killed with -9 come back when their lease expires, or go dead on their last attempt."""
    prefix = unique_prefix()
    app = fastjobs.App(redis_url, prefix=prefix, lease=1.0)
    ran: list[int] = []

    # Same task name as the doomed worker's, but fast: this process finishes the jobs.
    @app.task(name="fj.test.sleepy")
    async def sleepy(n: int) -> int:
        ran.append(n)
        return n

    try:
        retried = [await sleepy.options(max_attempts=3).enqueue(i) for i in range(6)]
        last_try = [await sleepy.options(max_attempts=1).enqueue(100 + i) for i in range(2)]
        doomed = subprocess.Popen(
            [sys.executable, "-m", "tests.redis.worker_process", redis_url, prefix, "1.0", "8"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            async def all_active() -> bool:
                return (await counts(app)).get("active", 0) == 8

            await wait_until(all_active, 20, what="the worker process to lease all 8 jobs")
        finally:
            doomed.send_signal(signal.SIGKILL)
            doomed.wait(10)
        assert (await counts(app))["active"] == 8  # killed: nobody acknowledges or renews them

        worker = app.worker(["default"], handle_signals=False)
        runner = asyncio.ensure_future(worker.run())
        try:
            results = [await h.result(timeout=15) for h in retried]
            assert results == list(range(6))

            async def settled() -> bool:
                c = await counts(app)
                return c.get("active", 0) == 0 and c.get("queued", 0) == 0

            await wait_until(settled, 10, what="the last-attempt jobs to settle")
        finally:
            worker.request_stop()
            await runner
        for handle in retried:
            info = await handle.info()
            assert info is not None and info.state == "succeeded" and info.attempt == 2
            assert [e.type for e in info.errors] == ["LeaseExpiredError"]
        for handle in last_try:
            info = await handle.info()
            assert info is not None and info.state == "dead" and info.attempt == 1
            assert [e.type for e in info.errors] == ["LeaseExpiredError"]
        assert sorted(ran) == list(range(6))
    finally:
        await app.close()
        await wipe_namespace(redis_url, prefix)  # the shared server: leave it as found


async def _run_until_done(
    app: fastjobs.App, total: int, disturb: "asyncio.Future[None] | None", seen: set[int], timeout: float
) -> None:
    worker = app.worker(["default"], concurrency=20, handle_signals=False)
    runner = asyncio.ensure_future(worker.run())
    try:
        async def done() -> bool:
            try:
                c = await counts(app)
            except Exception:  # the server may be down right now
                return False
            return c.get("succeeded", 0) == total

        await wait_until(done, timeout, interval=0.1, what=f"{total} jobs to succeed")
    finally:
        if disturb is not None:
            disturb.cancel()
            await asyncio.gather(disturb, return_exceptions=True)
        worker.request_stop()
        await runner
    assert seen == set(range(total))


async def test_client_kill_mid_run(server_factory: ServerFactory, quiet_worker_logs: pytest.LogCaptureFixture) -> None:
    """Every connection of the worker is killed again and again; it logs, reconnects and finishes every job."""
    server = server_factory()
    app = fastjobs.App(server.url, prefix=unique_prefix(), lease=1.0)
    seen: set[int] = set()

    @app.task(max_attempts=10)
    async def work(n: int) -> None:
        seen.add(n)
        await asyncio.sleep(0.001)

    admin = server.client()
    total = 3000

    async def produce_and_kill() -> None:
        for start in range(0, total, 300):
            await app.enqueue_many([work.call(n) for n in range(start, start + 300)])
            await asyncio.sleep(0.05)
            admin.execute_command("CLIENT KILL TYPE normal SKIPME yes")
        for _ in range(5):
            await asyncio.sleep(0.2)
            admin.execute_command("CLIENT KILL TYPE normal SKIPME yes")

    try:
        producer = asyncio.ensure_future(produce_and_kill())
        await _run_until_done(app, total, None, seen, timeout=60)
        await producer
        c = await counts(app)
        assert c["succeeded"] == total and c["dead"] == 0
        assert any("failed" in r.getMessage() for r in quiet_worker_logs.records), "no connection error was logged"
    finally:
        admin.close()
        await app.close()


async def test_server_restart_mid_run(server_factory: ServerFactory, quiet_worker_logs: pytest.LogCaptureFixture) -> None:
    """redis-server restarts twice (SIGTERM, then SIGKILL; append-only file with fsync always)
    while a worker runs: the worker resumes and nothing Redis kept is lost."""
    server = server_factory("--appendonly", "yes", "--appendfsync", "always")
    # connect_timeout 1 s: the second outage outlasts it, so calls fail and the worker logs them.
    app = fastjobs.App(server.url, prefix=unique_prefix(), lease=1.0, connect_timeout=1.0)
    seen: set[int] = set()

    @app.task(max_attempts=10)
    async def work(n: int) -> None:
        seen.add(n)
        await asyncio.sleep(0.05)

    total = 1000
    done_at_restart: list[int] = []
    try:
        await app.enqueue_many([work.call(n) for n in range(total)])

        async def restart_twice() -> None:
            loop = asyncio.get_running_loop()
            # Down for a moment (ridden out within connect_timeout), then
            # longer, so the worker sees the errors, logs and retries.
            for sig, down in ((signal.SIGTERM, 0.2), (signal.SIGKILL, 2.5)):
                progress = len(seen)
                while len(seen) < progress + 50:  # restart mid-run, whatever the machine's speed
                    await asyncio.sleep(0.02)
                done_at_restart.append(len(seen))
                await loop.run_in_executor(None, server.stop, sig)
                await asyncio.sleep(down)
                await loop.run_in_executor(None, server.start)

        restarts = asyncio.ensure_future(restart_twice())
        await _run_until_done(app, total, None, seen, timeout=60)
        await restarts
        assert len(done_at_restart) == 2 and all(0 < n < total for n in done_at_restart), done_at_restart
        c = await counts(app)
        assert c["succeeded"] == total and c["dead"] == 0
        logged = [r.getMessage() for r in quiet_worker_logs.records if r.name == "fastjobs.worker"]
        assert any("failed" in m for m in logged), "the outage was never logged"
    finally:
        await app.close()


async def test_lost_replies_are_answered_again(server: "object", open_backend) -> None:  # type: ignore[no-untyped-def]
    """An enqueue or ack whose reply was lost is retried with the same nonce: the retry reports what the first call did."""
    from fastjobs.backends import Ack, AckKind, NewJob
    from fastjobs.backends.redis import SCRIPTS
    from fastjobs.backends.redis.connection import pack_acks, pack_jobs
    from fastjobs.job import new_job_id

    backend: RedisBackend = await open_backend(server.url)  # type: ignore[attr-defined]
    k = backend._queue("q")
    jobs = [NewJob(new_job_id(), "q", 0, 0.0, 3, b"body", None), NewJob(new_job_id(), "q", 0, 0.0, 3, b"b2", "u1")]
    args = ("nonce-1", pack_jobs(jobs, "u"), "u")  # as enqueue_many sends them
    first = await backend._eval(SCRIPTS["enqueue"], (*k.enqueue, backend._registry), args)
    again = await backend._eval(SCRIPTS["enqueue"], (*k.enqueue, backend._registry), args)
    assert first == again == []
    with pytest.raises(ValueError, match="already exists"):
        await backend.enqueue_many([jobs[0]])  # a new call (new nonce) is refused, as ever
    claims = await backend.claim(["q"], 2, 30.0)
    acks = [Ack(c.id, c.token, AckKind.SUCCEED) for c in claims]
    head = ("ack-nonce", 60.0, 60.0, b"", b"", pack_acks(acks))  # as ack_many sends them
    assert await backend._eval(SCRIPTS["ack"], k.ack, head) == [1, 1]
    assert await backend._eval(SCRIPTS["ack"], k.ack, head) == [1, 1]  # the retry
    assert await backend.ack_many(acks) == [False, False]  # a new ack of the same token is stale

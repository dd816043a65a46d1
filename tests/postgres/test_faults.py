"""Faults on real servers: a worker killed with SIGKILL, PostgreSQL restarted (fast, and an
immediate stop then start) and every connection killed mid-run. No committed job is lost.

The restarts happen to a private server (``private_server``); the shared one is
never restarted.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest

import fastjobs
from fastjobs.job import decode_error
from tests.postgres.conftest import drop_schema, fresh_schema
from tests.postgres.server import ThrowawayPostgres

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


async def eventually(check: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_sigkill_of_a_worker_process_loses_nothing(postgres_url: str, schema: str, tmp_path: Path) -> None:
    app = fastjobs.App(postgres_url, prefix=schema, lease=1.0)

    @app.task(name="slow", queue="kill9")
    async def slow(n: int) -> int:
        return n

    handles = await app.enqueue_many([slow.call(i) for i in range(30)])
    env = {
        **os.environ, "FASTJOBS_TEST_URL": postgres_url, "FASTJOBS_TEST_PREFIX": schema,
        "FASTJOBS_TEST_LEASE": "1.0", "FASTJOBS_TEST_SLOW": "1",
    }
    log_file = open(tmp_path / "worker.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastjobs", "worker", "tests.postgres.workerapp:app", "--concurrency", "10"],
        cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT,
    )
    try:
        async def active() -> int:
            return (await app.stats()).get("kill9", {}).get("active", 0)

        await eventually(lambda: _at_least(active(), 10), 30, "the worker process to claim jobs")
        await asyncio.sleep(0.5)
        held = [h for h in handles if (await h.info()).state == "active"]  # type: ignore[union-attr]
        # Alive, it renews its 1 s leases (running and prefetched jobs alike):
        # nothing is taken back.
        await asyncio.sleep(2.0)
        assert [h for h in handles if (await h.info()).state == "active"] == held  # type: ignore[union-attr]
        assert len(held) >= 10 and [(await h.info()).attempt for h in held] == [1] * len(held)  # type: ignore[union-attr]
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log_file.close()

    worker = app.worker(["kill9"], handle_signals=False, poll_interval=0.2)
    runner = asyncio.ensure_future(worker.run())
    try:
        results = [await h.result(timeout=30) for h in handles]
    finally:
        worker.request_stop()
        await runner
        await app.close()
    assert results == list(range(30))
    app = fastjobs.App(postgres_url, prefix=schema)
    try:
        for h in held:
            info = await app.get_job(h.id)
            assert info is not None and info.state == "succeeded" and info.attempt == 2
            assert [e.type for e in info.errors] == ["LeaseExpiredError"]
    finally:
        await app.close()


async def _at_least(value: object, expected: int) -> bool:
    return (await value) >= expected  # type: ignore[misc]


FAULTS = ["restart-fast", "stop-immediate-then-start", "terminate-every-connection"]


@pytest.mark.parametrize("fault", FAULTS)
async def test_workers_reconnect_and_resume_after(
    fault: str, private_server: ThrowawayPostgres, caplog: pytest.LogCaptureFixture
) -> None:
    server = private_server
    await server.wait_ready()
    schema = fresh_schema()
    app = fastjobs.App(server.url, prefix=schema, lease=2.0)
    ran: set[int] = set()

    @app.task(name="record")
    async def record(n: int) -> int:
        ran.add(n)
        return n

    total, batch = 3000, 100
    committed: set[str] = set()
    retries = 0

    async def produce() -> None:
        nonlocal retries
        for start in range(0, total, batch):
            calls = [record.options(job_id=f"job-{i}").call(i) for i in range(start, start + batch)]
            while True:
                try:
                    await app.enqueue_many(calls)
                except fastjobs.DuplicateJobError:
                    pass  # committed before the connection dropped: the ids exist
                except fastjobs.BackendUnavailableError:  # the only error an outage may raise (issue 12, gap 3)
                    retries += 1
                    await asyncio.sleep(0.1)
                    continue
                break
            committed.update(f"job-{i}" for i in range(start, start + batch))
            await asyncio.sleep(0.01)

    async def inject() -> None:
        await eventually(lambda: len(committed) >= total // 3, 60, "a third of the jobs")
        if fault == "restart-fast":
            await asyncio.to_thread(server.restart, "fast")
        elif fault == "stop-immediate-then-start":
            await asyncio.to_thread(server.stop, "immediate")
            await asyncio.sleep(1.0)
            await asyncio.to_thread(server.start)
        else:
            conn = await asyncpg.connect(server.url)
            try:
                killed = await conn.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'"
                )
                assert killed >= 2
            finally:
                await conn.close()

    worker = app.worker(handle_signals=False, poll_interval=0.5, concurrency=50)
    with caplog.at_level(logging.WARNING):
        runner = asyncio.ensure_future(worker.run())
        try:
            await asyncio.wait_for(asyncio.gather(produce(), inject()), 120)

            async def all_done() -> bool:
                try:
                    stats = await app.stats()
                except fastjobs.BackendUnavailableError:
                    return False
                return stats.get("default", {}).get("succeeded", 0) == total

            await eventually(all_done, 90, "every committed job to succeed")
        finally:
            worker.request_stop()
            await runner
    try:
        stats = (await app.stats())["default"]
        assert {k: v for k, v in stats.items() if v} == {"succeeded": total}
        assert ran == set(range(total))
        backend = await app.backend()
        missing = [job_id for job_id in sorted(committed) if (await backend.get(job_id)) is None]
        assert missing == []
    finally:
        await app.close()
        await drop_schema(server.url, schema)
    # The fault was seen, logged, and survived.
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("failed" in m or "lost" in m for m in warnings), warnings


async def test_listener_polls_while_the_server_is_down_and_comes_back(
    private_server: ThrowawayPostgres,
) -> None:
    server = private_server
    await server.wait_ready()
    schema = fresh_schema()
    from fastjobs.backends import BackendOptions, NewJob
    from fastjobs.backends.postgres import PostgresBackend

    backend = PostgresBackend(server.url, BackendOptions(prefix=schema), poll_while_disconnected=0.2)
    producer = PostgresBackend(server.url, BackendOptions(prefix=schema))
    await backend.connect()
    await producer.connect()
    try:
        await backend.wait(["q"], 0.05)
        await eventually(lambda: backend.listener_pid is not None, 5, "the listener")
        await asyncio.to_thread(server.stop, "fast")
        await eventually(lambda: backend.listener_pid is None, 5, "the listener to notice")
        started = time.monotonic()
        await backend.wait(["q"], 30.0)  # slow poll while disconnected, not 30 s
        assert time.monotonic() - started < 2.0
        await asyncio.to_thread(server.start)
        await eventually(lambda: backend.listener_pid is not None, 15, "the listener to come back")
        waiting = asyncio.ensure_future(backend.wait(["q"], 30.0))
        await asyncio.sleep(0.2)
        for _ in range(50):  # the producer's pool reconnects on its first call
            try:
                await producer.enqueue_many([NewJob("after-restart", "q", 0, 0.0, 1, b"")])
                break
            except fastjobs.BackendUnavailableError:
                await asyncio.sleep(0.1)
        await asyncio.wait_for(waiting, 5)
        claims = await backend.claim(["q"], 10, 30.0)
        assert [c.id for c in claims] == ["after-restart"]
    finally:
        await backend.close()
        await producer.close()
        await drop_schema(server.url, schema)


async def test_lease_expiry_recovery_keeps_the_error(postgres_url: str, schema: str) -> None:
    from fastjobs.backends import BackendOptions, NewJob
    from fastjobs.backends.postgres import PostgresBackend

    backend = PostgresBackend(postgres_url, BackendOptions(prefix=schema))
    await backend.connect()
    try:
        await backend.enqueue_many([NewJob(f"j{i}", "q", 0, 0.0, 2, b"") for i in range(5)])
        first = await backend.claim(["q"], 5, 0.2)
        await asyncio.sleep(0.3)
        second = await backend.claim(["q"], 5, 0.2)
        assert sorted(c.id for c in second) == sorted(c.id for c in first)
        assert all(c.attempt == 2 for c in second)
        await asyncio.sleep(0.3)
        assert await backend.recover() == 5  # attempts used up: dead
        for c in first:
            stored = await backend.get(c.id)
            assert stored is not None and stored.state == 5
            errors = [decode_error(e) for e in stored.errors]
            assert [(e.type, e.attempt) for e in errors] == [("LeaseExpiredError", 1), ("LeaseExpiredError", 2)]
            assert abs(errors[0].at - time.time()) < 60
    finally:
        await backend.close()

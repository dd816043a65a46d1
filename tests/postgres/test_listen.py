"""LISTEN/NOTIFY: idle workers wake at once, and the listener comes back after it is killed."""

from __future__ import annotations

import asyncio
import logging
import socket
import statistics
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

import fastjobs
from fastjobs.backends import NewJob
from fastjobs.job import new_job_id
from tests.postgres.conftest import MakePostgres


def job(queue: str = "q") -> NewJob:
    jid = new_job_id()
    return NewJob(jid, queue, 0, 0.0, 3, jid.encode())


async def wait_for(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


@pytest.fixture
async def app(postgres_url: str, schema: str) -> AsyncIterator[fastjobs.App]:
    application = fastjobs.App(postgres_url, prefix=schema)
    yield application
    await application.close()


async def test_idle_worker_wakes_within_milliseconds(app: fastjobs.App) -> None:
    latencies: list[float] = []

    @app.task()
    async def timed(sent: float) -> None:
        latencies.append(time.time() - sent)

    worker = app.worker(handle_signals=False, poll_interval=5.0)
    runner = asyncio.ensure_future(worker.run())
    try:
        await asyncio.sleep(0.3)  # idle, listening
        for _ in range(30):
            await timed.enqueue(time.time())
            await asyncio.sleep(0.03)  # let the worker go idle again between jobs
        await wait_for(lambda: len(latencies) == 30, 10)
    finally:
        worker.request_stop()
        await runner
    p50 = statistics.median(latencies) * 1000
    p99 = max(latencies) * 1000
    print(f"idle enqueue-to-start latency: p50 {p50:.2f} ms, max {p99:.2f} ms")
    # A wake-up by NOTIFY takes a few ms (about 2 measured here; the target is
    # 10). The bound leaves room for a loaded two-core CI machine, and is far
    # below anything a poll could give (the poll interval is 5 s).
    assert p50 < 25, f"p50 {p50:.1f} ms"


async def test_listener_comes_back_after_pg_terminate_backend(
    make_pg: MakePostgres, admin: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    waiter_side = await make_pg()
    producer = await make_pg()
    await waiter_side.wait(["q"], 0.05)  # starts the listener
    await wait_for(lambda: waiter_side.listener_pid is not None)
    first_pid = waiter_side.listener_pid

    with caplog.at_level(logging.WARNING, logger="fastjobs.postgres"):
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", first_pid) is True
        await wait_for(lambda: waiter_side.listener_pid not in (None, first_pid), 10)
    assert any("LISTEN" in r.getMessage() and "lost" in r.getMessage() for r in caplog.records)
    assert any("re-established" in r.getMessage() for r in caplog.records)

    # Listening again: an enqueue wakes a long wait at once.
    started = time.monotonic()
    waiting = asyncio.ensure_future(waiter_side.wait(["q"], 30.0))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    await producer.enqueue_many([job()])
    await asyncio.wait_for(waiting, 5)
    assert time.monotonic() - started < 2.0


def closed_port_url(url: str) -> str:
    """``url`` with the port of a socket nobody listens on (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=f"{userinfo}@127.0.0.1:{port}" if userinfo else f"127.0.0.1:{port}"))


async def test_waits_poll_slowly_while_the_listener_is_down(
    make_pg: MakePostgres, admin: asyncpg.Connection, postgres_url: str
) -> None:
    backend = await make_pg(poll_while_disconnected=0.2)
    await backend.wait(["q"], 0.05)
    await wait_for(lambda: backend.listener_pid is not None)
    pid = backend.listener_pid
    # Only the listener connects with backend.url from now on (the pool has its
    # own): pointed at a closed port, it stays down for as long as the test
    # needs, instead of coming back (in 50 ms) before a wait even starts.
    backend.url = closed_port_url(postgres_url)
    await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    await wait_for(lambda: backend.listener_pid is None, 5)
    # While it is down a 30 s wait returns within the slow-poll interval
    # instead of sleeping through enqueues it cannot hear.
    returned = []
    for _ in range(3):
        started = time.monotonic()
        await backend.wait(["q"], 30.0)
        returned.append(time.monotonic() - started)
        assert backend.listener_pid is None
    assert all(r < 5.0 for r in returned), returned

    backend.url = postgres_url
    await wait_for(lambda: backend.listener_pid is not None, 15)


async def test_waits_last_while_listening(make_pg: MakePostgres) -> None:
    # Listening, a wait is not cut to the disconnected poll: it lasts until a
    # NOTIFY, a due job, the caller's timeout or the safety timeout.
    backend = await make_pg(poll_while_disconnected=0.2)
    await backend.wait(["q"], 0.05)
    await wait_for(lambda: backend.listener_pid is not None)
    started = time.monotonic()
    await backend.wait(["q"], 1.5)
    assert time.monotonic() - started >= 1.4

    capped = await make_pg(poll_while_disconnected=0.2, listen_safety_timeout=0.5)
    await capped.wait(["q"], 0.05)
    await wait_for(lambda: capped.listener_pid is not None)
    started = time.monotonic()
    await capped.wait(["q"], 300.0)
    assert 0.4 <= time.monotonic() - started < 10.0


async def test_wake_ups_are_per_queue(make_pg: MakePostgres) -> None:
    waiter_side = await make_pg()
    producer = await make_pg()
    await waiter_side.wait(["q"], 0.05)
    await wait_for(lambda: waiter_side.listener_pid is not None)
    waiting = asyncio.ensure_future(waiter_side.wait(["q"], 1.0))
    await asyncio.sleep(0.1)
    await producer.enqueue_many([job("other")])
    await asyncio.sleep(0.3)
    assert not waiting.done(), "a job in another queue woke the waiter"
    await producer.enqueue_many([job("q")])
    await asyncio.wait_for(waiting, 2)

"""Outages as a caller of the PostgreSQL backend sees them (issue 12, gaps 3 and 5): every
connectivity failure is a BackendUnavailableError with the driver's error as its cause, a
failed connection leaves the pool, and an operation keeps trying to reach a server that is
down for ``connect_timeout`` seconds, then gives up.

The faults happen to a private server (``private_server``); the shared one is never touched.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest

from fastjobs.backends import BackendOptions, NewJob
from fastjobs.backends.postgres import PostgresBackend
from fastjobs.errors import BackendUnavailableError
from tests.postgres.conftest import drop_schema, fresh_schema
from tests.postgres.server import ThrowawayPostgres

pytestmark = pytest.mark.slow

# What asyncpg raises when the server or the connection goes away.
DRIVER_CONNECTION_ERRORS = (OSError, asyncpg.PostgresConnectionError, asyncpg.exceptions.OperatorInterventionError)


@pytest.fixture
async def server(private_server: ThrowawayPostgres) -> AsyncIterator[ThrowawayPostgres]:
    """The private server, up at the start of the test and again after it."""
    await asyncio.to_thread(_start_if_stopped, private_server)
    await private_server.wait_ready()
    yield private_server
    await asyncio.to_thread(_start_if_stopped, private_server)


def _start_if_stopped(server: ThrowawayPostgres) -> None:
    try:
        server.start()
    except Exception:
        pass  # already running


async def wait_until(check: str, url: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    conn = await asyncpg.connect(url)
    try:
        while not await conn.fetchval(check):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for: {check}")
            await asyncio.sleep(0.02)
    finally:
        await conn.close()


@pytest.mark.parametrize("fault", ["restart-immediate", "terminate-backend"])
async def test_a_connection_lost_mid_statement_is_backend_unavailable_and_leaves_the_pool(
    server: ThrowawayPostgres, fault: str
) -> None:
    schema = fresh_schema()
    backend = PostgresBackend(server.url, BackendOptions(prefix=schema), min_connections=3, max_connections=3)
    await backend.connect()
    holder = await asyncpg.connect(server.url)
    try:
        await backend.enqueue_many([NewJob("j1", "q", 0, 0.0, 3, b"")])
        # A statement in flight when the fault strikes: the cancel waits for the
        # row lock that another session holds.
        lock = holder.transaction()
        await lock.start()
        await holder.execute(f'SELECT 1 FROM "{schema}".jobs WHERE id = $1 FOR UPDATE', "j1")
        blocked = asyncio.ensure_future(backend.cancel("j1"))
        await wait_until("SELECT count(*) > 0 FROM pg_stat_activity WHERE wait_event_type = 'Lock'", server.url)
        if fault == "restart-immediate":
            await asyncio.to_thread(server.restart, "immediate")
        else:
            killer = await asyncpg.connect(server.url)
            try:
                killed = await killer.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE pid NOT IN (pg_backend_pid(), $1) AND backend_type = 'client backend'",
                    holder.get_server_pid(),
                )
                assert killed == 3  # the blocked cancel's connection and the pool's two idle ones
            finally:
                await killer.close()
        with pytest.raises(BackendUnavailableError, match="connection lost") as caught:
            await asyncio.wait_for(blocked, 10)
        assert isinstance(caught.value.__cause__, DRIVER_CONNECTION_ERRORS), repr(caught.value.__cause__)
        holder.terminate()  # its row lock too, if it survived
        await server.wait_ready()
        # No dead connection is handed out again: as many operations as the pool
        # holds connections succeed at their first try, and the job is intact.
        for _ in range(3):
            jobs = await asyncio.gather(*(backend.get("j1") for _ in range(3)))
            assert [j.state if j else None for j in jobs] == [1, 1, 1]
        assert await backend.cancel("j1")
    finally:
        holder.terminate()
        await backend.close()
        await drop_schema(server.url, schema)


async def test_an_operation_keeps_trying_for_connect_timeout_then_raises(server: ThrowawayPostgres) -> None:
    schema = fresh_schema()
    backend = PostgresBackend(server.url, BackendOptions(prefix=schema, connect_timeout=2.0))
    patient = PostgresBackend(server.url, BackendOptions(prefix=schema, connect_timeout=30.0))
    await backend.connect()
    await patient.connect()
    try:
        await asyncio.to_thread(server.stop, "fast")
        started = time.monotonic()
        with pytest.raises(BackendUnavailableError, match=r"tried for 2 s \(connect_timeout\)") as caught:
            await backend.enqueue_many([NewJob("j1", "q", 0, 0.0, 3, b"")])
        took = time.monotonic() - started
        assert 1.9 <= took <= 3.0, took
        assert isinstance(caught.value.__cause__, DRIVER_CONNECTION_ERRORS), repr(caught.value.__cause__)
        # The worker's claim gives up at once: it lands its acks before it claims again.
        started = time.monotonic()
        with pytest.raises(BackendUnavailableError):
            await backend.claim(["q"], 10, 30.0)
        assert time.monotonic() - started < 0.5
        # A backend that never reached the server tries as long at connect.
        fresh = PostgresBackend(server.url, BackendOptions(prefix=schema, connect_timeout=1.0))
        started = time.monotonic()
        with pytest.raises(BackendUnavailableError, match=r"tried for 1 s"):
            await fresh.connect()
        assert 0.9 <= time.monotonic() - started <= 2.0
        await fresh.close()
        # An outage shorter than connect_timeout is ridden out.
        enqueue = asyncio.ensure_future(patient.enqueue_many([NewJob("j2", "q", 0, 0.0, 3, b"")]))
        await asyncio.sleep(0.5)
        assert not enqueue.done()
        await asyncio.to_thread(server.start)
        assert await asyncio.wait_for(enqueue, 30) == ["j2"]
        assert [c.id for c in await backend.claim(["q"], 10, 30.0)] == ["j2"]
    finally:
        await backend.close()
        await patient.close()
        await asyncio.to_thread(_start_if_stopped, server)
        await server.wait_ready()
        await drop_schema(server.url, schema)

"""Transactional enqueue: the job exists exactly when the application's transaction commits."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

import fastjobs
from fastjobs._core import QUEUED


@pytest.fixture
async def app(postgres_url: str, schema: str) -> AsyncIterator[fastjobs.App]:
    application = fastjobs.App(postgres_url, prefix=schema)
    yield application
    await application.close()


async def test_committed_job_runs_and_rolled_back_job_never_existed(app: fastjobs.App, admin: asyncpg.Connection) -> None:
    ran: list[str] = []

    @app.task()
    async def send_receipt(order: str) -> str:
        ran.append(order)
        return f"sent {order}"

    await app.backend()  # creates the schema
    await admin.execute("CREATE TEMP TABLE orders (name text)")

    async with admin.transaction():
        await admin.execute("INSERT INTO orders VALUES ('kept')")
        kept = await send_receipt.options(connection=admin).enqueue("kept")
        # Inside the transaction only: invisible to the backend's own connections.
        assert await kept.info() is None

    with pytest.raises(RuntimeError):
        async with admin.transaction():
            await admin.execute("INSERT INTO orders VALUES ('lost')")
            lost = await send_receipt.options(connection=admin).enqueue("lost")
            raise RuntimeError("the order failed")

    assert await admin.fetchval("SELECT count(*) FROM orders") == 1
    info = await kept.info()
    assert info is not None and info.state == "queued"
    assert await lost.info() is None
    await app.worker(burst=True, handle_signals=False).run()
    assert ran == ["kept"]
    assert await kept.result(timeout=5) == "sent kept"
    assert await lost.info() is None
    assert sum(sum(v.values()) for v in (await app.stats()).values()) == 1


async def test_enqueue_many_inside_a_transaction_is_all_or_nothing(app: fastjobs.App, admin: asyncpg.Connection) -> None:
    @app.task()
    async def noop(n: int) -> None: ...

    await app.backend()
    with pytest.raises(asyncpg.UniqueViolationError):
        async with admin.transaction():
            handles = await app.enqueue_many([noop.call(i) for i in range(50)], connection=admin)
            await admin.execute("CREATE TEMP TABLE t (x int primary key); INSERT INTO t VALUES (1), (1)")
    for h in handles:
        assert await h.info() is None


async def test_a_waiting_worker_wakes_at_commit_not_before(app: fastjobs.App, admin: asyncpg.Connection) -> None:
    """NOTIFY is delivered at commit: the job is claimable when the wake-up arrives."""
    @app.task()
    async def noop() -> None: ...

    backend = await app.backend()
    waiter = asyncio.ensure_future(backend.wait(["default"], 30.0))
    await asyncio.sleep(0.2)  # let it start listening and go to sleep
    tx = admin.transaction()
    await tx.start()
    handle = await noop.options(connection=admin).enqueue()
    await asyncio.sleep(0.3)
    assert not waiter.done(), "woken by an enqueue that was not committed"
    started = time.monotonic()
    await tx.commit()
    await asyncio.wait_for(waiter, 5)
    assert time.monotonic() - started < 1.0
    claims = await backend.claim(["default"], 10, 30.0)
    assert [c.id for c in claims] == [handle.id]


async def test_connection_must_be_an_asyncpg_connection(app: fastjobs.App) -> None:
    @app.task()
    async def noop() -> None: ...

    await app.backend()
    with pytest.raises(fastjobs.ConfigurationError, match="asyncpg connection"):
        await noop.options(connection=object()).enqueue()


async def test_pooled_connection_works_too(app: fastjobs.App, postgres_url: str) -> None:
    @app.task()
    async def noop() -> None: ...

    backend = await app.backend()
    pool = await asyncpg.create_pool(postgres_url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn, conn.transaction():
            handle = await noop.options(connection=conn).enqueue()
    finally:
        await pool.close()
    stored = await backend.get(handle.id)
    assert stored is not None and stored.state == QUEUED


async def test_connection_to_a_database_without_the_schema_is_explained(
    postgres_url: str, admin: asyncpg.Connection
) -> None:
    app = fastjobs.App(postgres_url, prefix="pgt_" + uuid.uuid4().hex[:12])

    @app.task()
    async def noop() -> None: ...

    backend = await app.backend()
    try:
        # As if connection= pointed at another database: the schema is not there.
        await admin.execute(f'DROP SCHEMA "{app.options.prefix}" CASCADE')
        with pytest.raises(fastjobs.ConfigurationError, match="no fastjobs schema"):
            await noop.options(connection=admin).enqueue()
    finally:
        await backend.close()
        await app.close()

"""The transactional enqueue example against a real PostgreSQL: the job is seen by other
connections only once the application's transaction commits, and never if it rolls back."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import fastjobs.testing
import pytest

from .shop import DATABASE_URL, OutOfStock, create_tables, jobs, place_order

EXAMPLES = Path(__file__).resolve().parents[1]


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    """A schema of this test's own for the application's tables, dropped after."""
    name = "shop_" + uuid.uuid4().hex[:12]
    admin = await asyncpg.connect(DATABASE_URL)
    await admin.execute(f"CREATE SCHEMA {name}")
    try:
        yield name
    finally:
        await jobs.close()
        await admin.execute(f"DROP SCHEMA {name} CASCADE")
        await admin.execute(f"DROP SCHEMA IF EXISTS {name}_jobs CASCADE")  # test_the_readme_command_runs' jobs
        await admin.close()


@pytest.fixture
async def conn(schema: str) -> AsyncIterator[asyncpg.Connection]:
    """The application's connection, its tables in the test's schema."""
    connection = await asyncpg.connect(DATABASE_URL, server_settings={"search_path": schema})
    try:
        await create_tables(connection)
        yield connection
    finally:
        await connection.close()


async def queued(queue: str) -> int:
    """Jobs waiting in ``queue``, as the App's own connections see them."""
    return int((await jobs.stats()).get(queue, {}).get("queued", 0))


async def stock(conn: asyncpg.Connection, item: str, available: int) -> None:
    await conn.execute("INSERT INTO stock VALUES ($1, $2)", item, available)


async def test_the_job_is_invisible_until_the_transaction_commits(conn: asyncpg.Connection) -> None:
    await stock(conn, "tea", 5)
    with fastjobs.testing.capture_enqueues(jobs) as enqueued:
        async with conn.transaction():  # the caller's transaction: place_order's is nested in it
            order_id = await place_order(conn, "tea", 2)
            [job] = enqueued
            assert (job.task, job.args, job.queue) == ("shop.send_receipt", (order_id,), "receipts")
            # jobs.get_job reads on the App's own connections: not this transaction's.
            assert await jobs.get_job(job.id) is None
            assert await queued("receipts") == 0
        info = await jobs.get_job(job.id)
    assert info is not None and info.state == "queued"
    assert await queued("receipts") == 1

    await jobs.worker(["receipts"], burst=True, handle_signals=False).run()
    info = await jobs.get_job(job.id)
    assert info is not None
    assert (info.state, info.result) == ("succeeded", f"receipt for order {order_id}")


async def test_a_rolled_back_transaction_takes_its_job_with_it(conn: asyncpg.Connection) -> None:
    await stock(conn, "tea", 1)
    with fastjobs.testing.capture_enqueues(jobs) as enqueued, pytest.raises(OutOfStock):
        await place_order(conn, "tea", 2)
    [job] = enqueued  # enqueued, with an id, inside the transaction...
    assert await jobs.get_job(job.id) is None  # ...and gone with it
    assert await conn.fetchval("SELECT count(*) FROM orders") == 0
    assert await queued("receipts") == 0


async def test_the_example_runs_its_jobs(conn: asyncpg.Connection) -> None:
    await stock(conn, "tea", 1)
    async with fastjobs.testing.run_jobs(jobs) as enqueued:
        order_id = await place_order(conn, "tea", 1)
        with pytest.raises(OutOfStock):
            await place_order(conn, "tea", 1)
    assert [job.args for job in enqueued] == [(order_id,), (order_id + 1,)]
    done = await jobs.get_job(enqueued[0].id)
    assert done is not None and done.result == f"receipt for order {order_id}"
    assert await jobs.get_job(enqueued[1].id) is None


def test_the_readme_command_runs(schema: str) -> None:
    # Its tables in the test's schema, its jobs in one of their own.
    url = f"{DATABASE_URL}{'&' if '?' in DATABASE_URL else '?'}search_path={schema}"
    done = subprocess.run([sys.executable, "-m", "postgres_transactional.shop"], cwd=EXAMPLES, capture_output=True,
                          text=True, timeout=30, check=False, env={**os.environ, "DATABASE_URL": url, "FASTJOBS_PREFIX": f"{schema}_jobs"})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:2] == ["placed order 1", "out of stock: that order and its receipt were rolled back"]
    assert "'succeeded': 1," in lines[2]

"""Paused queues on PostgreSQL: a table every worker of the schema reads at its
claim, without giving up the claim's walk of its partial index."""

from __future__ import annotations

import asyncio
import time

import asyncpg

from fastjobs.backends import NewJob
from fastjobs.backends.postgres import PostgresBackend
from fastjobs.backends.postgres.connection import _SESSION_SETTINGS
from tests.postgres.conftest import MakePostgres
from tests.postgres.test_plans import index_reads


def jobs(n: int, queue: str) -> list[NewJob]:
    return [NewJob(f"{queue}-{i}", queue, 0, 0.0, 3, b"body") for i in range(n)]


async def test_a_pause_is_seen_by_every_backend_on_the_schema(make_pg: MakePostgres) -> None:
    first, second = await make_pg(), await make_pg()
    await first.enqueue_many(jobs(3, "a") + jobs(2, "b"))
    await first.pause("a")
    assert await second.paused() == ["a"]
    assert [c.id for c in await second.claim(["a", "b"], 10, 30.0)] == ["b-0", "b-1"]
    await second.resume("a")
    assert [c.id for c in await first.claim(["a", "b"], 10, 30.0)] == ["a-0", "a-1", "a-2"]


async def test_queue_names_are_data(pg: PostgresBackend) -> None:
    odd = "a'); DELETE FROM paused_queues; --"
    await pg.enqueue_many(jobs(1, odd))
    await pg.pause(odd)
    await pg.pause("x")
    assert await pg.paused() == sorted([odd, "x"])
    assert await pg.claim([odd], 10, 30.0) == []
    await pg.resume(odd)
    assert [c.id for c in await pg.claim([odd], 10, 30.0)] == [f"{odd}-0"]


async def test_the_claim_still_walks_its_partial_index(pg: PostgresBackend, admin: asyncpg.Connection) -> None:
    s = f'"{pg.schema}"'
    await admin.execute(f"ALTER TABLE {s}.jobs SET (autovacuum_enabled = false)")
    await pg.enqueue_many(jobs(5000, "paused") + jobs(5000, "q"))
    await admin.execute(f"ANALYZE {s}.jobs")
    await pg.pause("paused")
    async with admin.transaction():
        for name, value in _SESSION_SETTINGS.items():  # as on the backend's own connections
            await admin.execute(f"SET LOCAL {name} = {value}")
        before = await index_reads(admin, pg.schema, "jobs_claim", "paused_queues_pkey")
        for _ in range(7):  # past plpgsql's switch to a generic plan
            # Each claim rolled back: none walks the entries its predecessors left behind.
            await admin.execute("SAVEPOINT claim")
            row = await admin.fetchrow(pg._q["claim"], ["paused", "q"], 100, 30.0, b"", b"", b"", False)
            assert list(row[0]) == [f"q-{i}" for i in range(100)]
            await admin.execute("ROLLBACK TO SAVEPOINT claim")
        after = await index_reads(admin, pg.schema, "jobs_claim", "paused_queues_pkey")
    # One descent of jobs_claim per claim, reading the batch (and the paused
    # queue's 5,000 entries never), and one probe of paused_queues per queue.
    scans = after["jobs_claim"][0] - before["jobs_claim"][0]
    read = after["jobs_claim"][1] - before["jobs_claim"][1]
    assert scans == 7 and read <= 7 * 101, (scans, read)
    assert after["paused_queues_pkey"][0] - before["paused_queues_pkey"][0] == 7 * 2


async def test_an_idle_wait_ignores_a_paused_queue_and_resume_wakes_it(pg: PostgresBackend) -> None:
    await pg.enqueue_many(jobs(1, "a"))
    await pg.pause("a")
    assert await pg.claim(["a"], 1, 30.0) == []
    started = time.monotonic()
    await pg.wait(["a"], 0.3)  # its ready job does not end the wait: no spinning
    assert time.monotonic() - started >= 0.25

    waiter = asyncio.ensure_future(pg.wait(["a"], 10.0))
    await asyncio.sleep(0.2)
    assert not waiter.done()
    started = time.monotonic()
    await pg.resume("a")
    await asyncio.wait_for(waiter, 5.0)
    assert time.monotonic() - started < 2.0
    assert [c.id for c in await pg.claim(["a"], 1, 30.0)] == ["a-0"]

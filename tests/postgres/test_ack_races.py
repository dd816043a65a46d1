"""ack against concurrent changes of its rows.

A batch of successes is one DELETE by primary key with no lock taken before it
(functions/ack.sql): these tests hold a renewal, a lease recovery or a new lease
of the same row open in another transaction, start the ack (it waits on the row),
commit the other change, and check that the ack applied exactly when it must.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
from fastjobs._core import ACTIVE, QUEUED, SUCCEEDED
from fastjobs.backends import Ack, AckKind, NewJob
from fastjobs.backends.postgres import PostgresBackend


async def waiting_on_a_lock(admin: asyncpg.Connection, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        waiting = await admin.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%.ack(%'"
        )
        if waiting:
            return
        assert time.monotonic() < deadline, "the ack never waited for the row"
        await asyncio.sleep(0.02)


async def claimed(pg: PostgresBackend, n: int, queue: str = "q") -> list[tuple[str, int]]:
    await pg.enqueue_many([NewJob(f"{queue}-{i}", queue, 0, 0.0, 3, b"body") for i in range(n)])
    claims = await pg.claim([queue], n, 600.0)
    assert len(claims) == n
    return [(c.id, c.token) for c in claims]


async def ack_while(
    pg: PostgresBackend, admin: asyncpg.Connection, change: str, leases: list[tuple[str, int]]
) -> list[bool]:
    """Run ``change`` in an open transaction of another connection, ack ``leases`` (which waits), commit."""
    other = await asyncpg.connect(pg.url)
    try:
        tx = other.transaction()
        await tx.start()
        await other.execute(change)
        ack = asyncio.ensure_future(pg.ack_many([Ack(job_id, token, AckKind.SUCCEED, b"r") for job_id, token in leases]))
        await waiting_on_a_lock(admin)
        await tx.commit()
        return await asyncio.wait_for(ack, 10)
    finally:
        await other.close()


async def state_of(admin: asyncpg.Connection, schema: str, job_id: str) -> tuple[str, int]:
    row = await admin.fetchrow(
        f'SELECT \'live\' AS t, state FROM "{schema}".jobs WHERE id = $1 '
        f'UNION ALL SELECT \'finished\', state FROM "{schema}".finished_jobs WHERE id = $1', job_id)
    assert row is not None
    return row["t"], row["state"]


async def test_an_ack_lands_on_a_row_a_concurrent_renewal_changed(
    pg: PostgresBackend, admin: asyncpg.Connection
) -> None:
    leases = await claimed(pg, 3)
    renewed = leases[1][0]
    applied = await ack_while(
        pg, admin, f"UPDATE \"{pg.schema}\".jobs SET lease_until = now() + interval '1 hour' WHERE id = '{renewed}'",
        leases)
    assert applied == [True, True, True]
    for job_id, _ in leases:
        assert await state_of(admin, pg.schema, job_id) == ("finished", SUCCEEDED)
    job = await pg.get(renewed)
    assert job is not None and job.result == b"r"


async def test_an_ack_misses_a_row_recovered_meanwhile(pg: PostgresBackend, admin: asyncpg.Connection) -> None:
    leases = await claimed(pg, 3)
    recovered = leases[0][0]
    applied = await ack_while(
        pg, admin, f"UPDATE \"{pg.schema}\".jobs SET state = {QUEUED}, lease_until = NULL WHERE id = '{recovered}'",
        leases)
    assert applied == [False, True, True]
    assert await state_of(admin, pg.schema, recovered) == ("live", QUEUED)


async def test_an_ack_misses_a_row_leased_again_meanwhile(pg: PostgresBackend, admin: asyncpg.Connection) -> None:
    leases = await claimed(pg, 2)
    stolen = leases[1][0]
    applied = await ack_while(
        pg, admin, f"UPDATE \"{pg.schema}\".jobs SET token = token + 1 WHERE id = '{stolen}'", leases)
    assert applied == [True, False]
    assert await state_of(admin, pg.schema, stolen) == ("live", ACTIVE)


async def test_a_batch_naming_one_job_twice_applies_its_current_token(
    pg: PostgresBackend, admin: asyncpg.Connection
) -> None:
    # The one-statement path needs each id once; a batch with a stale copy of an id takes the other path.
    (first, token), (second, other) = await claimed(pg, 2)
    applied = await pg.ack_many([
        Ack(first, token + 5, AckKind.SUCCEED, None), Ack(first, token, AckKind.SUCCEED, None),
        Ack(second, other - 1, AckKind.SUCCEED, None),
    ])
    assert applied == [False, True, False]
    assert await state_of(admin, pg.schema, first) == ("finished", SUCCEEDED)
    assert await state_of(admin, pg.schema, second) == ("live", ACTIVE)

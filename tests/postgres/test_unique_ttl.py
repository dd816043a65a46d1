"""Unique keys held after success (NewJob.unique_ttl) on PostgreSQL: the same
enqueue_unique as live keys, atomic against the holder's own ack."""

from __future__ import annotations

import asyncio

import asyncpg

from fastjobs._core import DEAD, SUCCEEDED
from fastjobs.backends import Ack, AckKind, NewJob
from fastjobs.backends.postgres import PostgresBackend
from fastjobs.job import error_record
from tests.postgres.conftest import NO_EXTRAS, MakePostgres


def keyed(job_id: str, key: str = "k", ttl: float = 60.0, queue: str = "q", max_attempts: int = 3) -> NewJob:
    return NewJob(job_id, queue, 0, 0.0, max_attempts, b"", key, ttl)


async def test_an_enqueue_racing_the_holders_ack_sees_the_hold(pg: PostgresBackend, admin: asyncpg.Connection) -> None:
    await pg.enqueue_many([keyed("first")])
    (c,) = await pg.claim(["q"], 1, 30.0)
    ack = pg._q["ack"]
    async with admin.transaction():
        # The ack has moved the job to finished_jobs but not committed yet: the
        # enqueue's INSERT waits on the unique index for the holder's row.
        assert await admin.fetchval(ack, [c.id], [c.token], None, None, None, True, *NO_EXTRAS) == [1]
        racing = asyncio.ensure_future(pg.enqueue_many([keyed("second")]))
        await asyncio.sleep(0.3)
        assert not racing.done()
    assert await asyncio.wait_for(racing, 5.0) == ["first"]
    assert await pg.get("second") is None
    assert (await pg.stats())["q"]["queued"] == 0


async def test_concurrent_enqueues_of_one_held_key_from_many_backends(make_pg: MakePostgres) -> None:
    backends = [await make_pg() for _ in range(3)]
    await backends[0].enqueue_many([keyed("first")])
    (c,) = await backends[0].claim(["q"], 1, 30.0)

    async def enqueue(i: int) -> list[str]:
        return await backends[i % 3].enqueue_many([keyed(f"n{i}"), keyed(f"other{i}", key=f"own{i}")])

    finishing = backends[1].ack_many([Ack(c.id, c.token, AckKind.SUCCEED, b"r")])
    results = await asyncio.gather(finishing, *(enqueue(i) for i in range(30)))
    assert results[0] == [True]
    assert all(r == ["first", f"other{i}"] for i, r in enumerate(results[1:])), results[1:]
    counts = (await backends[2].stats())["q"]
    assert (counts["queued"], counts["succeeded"]) == (30, 1)


async def test_the_hold_outlives_result_ttl_and_cleanup(make_pg: MakePostgres) -> None:
    pg = await make_pg(result_ttl=0)
    await pg.enqueue_many([keyed("first", ttl=0.5), NewJob("plain", "q", 0, 0.0, 3, b"")])
    claims = await pg.claim(["q"], 2, 30.0)
    assert await pg.ack_many([Ack(c.id, c.token, AckKind.SUCCEED, b"r") for c in claims]) == [True, True]
    assert await pg.get("plain") is None  # result_ttl=0: gone at its ack
    await pg.cleanup()
    held = await pg.get("first")  # kept, without its result, while it holds its key
    assert held is not None and held.state == SUCCEEDED and held.result is None
    assert await pg.enqueue_many([keyed("again", ttl=0.5)]) == ["first"]
    await asyncio.sleep(0.6)
    assert await pg.cleanup() == 1
    assert await pg.get("first") is None
    assert await pg.enqueue_many([keyed("later", ttl=0.5)]) == ["later"]


async def test_retry_dead_waits_for_the_hold_and_keeps_its_unique_ttl(pg: PostgresBackend) -> None:
    await pg.enqueue_many([keyed("doomed", max_attempts=1)])
    (c,) = await pg.claim(["q"], 1, 30.0)
    assert await pg.ack_many([Ack(c.id, c.token, AckKind.DEAD, error_record(1, "E", "x"))]) == [True]
    # The dead job released its key: another job takes it and succeeds.
    assert await pg.enqueue_many([keyed("winner", ttl=0.4)]) == ["winner"]
    (c,) = await pg.claim(["q"], 1, 30.0)
    assert await pg.ack_many([Ack(c.id, c.token, AckKind.SUCCEED, b"r")]) == [True]
    assert await pg.retry_dead("doomed") is False  # "winner" still holds the key
    assert (await pg.get("doomed")).state == DEAD  # type: ignore[union-attr]
    await asyncio.sleep(0.5)
    assert await pg.retry_dead("doomed") is True
    (c,) = await pg.claim(["q"], 1, 30.0)
    assert await pg.ack_many([Ack(c.id, c.token, AckKind.SUCCEED, b"r")]) == [True]
    # It kept its own unique_ttl (60 s) through death and revival.
    assert await pg.enqueue_many([keyed("next")]) == ["doomed"]


async def test_a_batch_mixing_held_live_and_free_keys(pg: PostgresBackend) -> None:
    await pg.enqueue_many([keyed("held"), keyed("live", key="l")])
    (c,) = await pg.claim(["q"], 1, 30.0)
    assert c.id == "held"
    assert await pg.ack_many([Ack(c.id, c.token, AckKind.SUCCEED, b"r")]) == [True]
    batch = [keyed("a"), keyed("b", key="l"), keyed("c", key="free"), keyed("d", key="free"), keyed("e", queue="other")]
    assert await pg.enqueue_many(batch) == ["held", "live", "c", "c", "e"]


async def test_a_retry_dead_racing_the_holders_ack_sees_the_hold(pg: PostgresBackend, admin: asyncpg.Connection) -> None:
    await pg.enqueue_many([keyed("doomed", max_attempts=1)])
    (c,) = await pg.claim(["q"], 1, 30.0)
    assert await pg.ack_many([Ack(c.id, c.token, AckKind.DEAD, error_record(1, "E", "x"))]) == [True]
    await pg.enqueue_many([keyed("holder")])  # takes the key the dead job released
    (c,) = await pg.claim(["q"], 1, 30.0)
    async with admin.transaction():
        # The holder's ack has run but not committed: the revive waits on the
        # unique index for the holder's row, then must still see its hold.
        assert await admin.fetchval(pg._q["ack"], [c.id], [c.token], None, None, None, True, *NO_EXTRAS) == [1]
        racing = asyncio.ensure_future(pg.retry_dead("doomed"))
        await asyncio.sleep(0.3)
        assert not racing.done()
    assert await asyncio.wait_for(racing, 5.0) is False
    assert (await pg.get("doomed")).state == DEAD  # type: ignore[union-attr]
    assert await pg.enqueue_many([keyed("next")]) == ["holder"]

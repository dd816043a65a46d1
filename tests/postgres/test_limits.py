"""Limits on PostgreSQL: caps and rates held across backends claiming at once, and the plain claim's plan."""

from __future__ import annotations

import asyncio
import random

import asyncpg

from fastjobs.backends import Ack, Limit, NewJob
from fastjobs.backends.postgres import PostgresBackend
from fastjobs.backends.postgres.connection import _SESSION_SETTINGS
from tests.postgres.conftest import MakePostgres
from tests.postgres.test_plans import index_reads


def limited(job_id: str, limit: Limit | None, queue: str = "q", priority: int = 0) -> NewJob:
    return NewJob(job_id, queue, priority, 0.0, 3, b"", None, 0.0, (), 0, limit)


async def active_of(admin: asyncpg.Connection, schema: str, key: str) -> int:
    return int(await admin.fetchval(
        f'SELECT count(*) FROM "{schema}".jobs WHERE state = 2 AND limit_key = $1::text', key))


async def test_a_concurrency_cap_holds_across_four_backends_claiming_at_once(
    make_pg: MakePostgres, admin: asyncpg.Connection
) -> None:
    backends = [await make_pg() for _ in range(4)]
    cap = Limit("tenant:1", concurrency=3)
    await backends[0].enqueue_many([limited(f"j{i:03d}", cap) for i in range(60)])
    rng = random.Random(7)
    held: dict[str, int] = {}
    done: set[str] = set()
    peak = 0
    for _ in range(200):
        batches = await asyncio.gather(*(b.claim(["q"], 5, 60.0) for b in backends))
        for batch in batches:
            for c in batch:
                assert c.id not in held and c.id not in done
                held[c.id] = c.token
        peak = max(peak, len(held))
        assert len(held) <= 3, held
        assert await active_of(admin, backends[0].schema, "tenant:1") == len(held)
        # Ack some of the held jobs, from different backends at once.
        finishing = [i for i in held if rng.random() < 0.5]
        await asyncio.gather(*(
            backends[n % 4].ack_many([Ack(job_id, held.pop(job_id), 0)]) for n, job_id in enumerate(finishing)
        ))
        done.update(finishing)
        if len(done) == 60:
            break
    assert len(done) == 60 and peak == 3


async def test_a_rate_window_is_never_exceeded_by_concurrent_claimers(
    make_pg: MakePostgres, admin: asyncpg.Connection
) -> None:
    backends = [await make_pg() for _ in range(4)]
    rate = Limit("api", rate=3, per=0.5)
    await backends[0].enqueue_many([limited(f"r{i:02d}", rate) for i in range(10)])
    claimed: list[str] = []
    for _ in range(200):
        for batch in await asyncio.gather(*(b.claim(["q"], 4, 60.0) for b in backends)):
            claimed += [c.id for c in batch]
        if len(claimed) == 10:
            break
        await asyncio.sleep(0.02)
    assert sorted(claimed) == [f"r{i:02d}" for i in range(10)]
    # started_at is the lease's time in the window's log: any 3 + 1 consecutive
    # leases span at least the window.
    started = sorted(
        r[0] for r in await admin.fetch(f'SELECT date_part(\'epoch\', started_at) FROM "{backends[0].schema}".jobs')
    )
    assert len(started) == 10
    for i in range(len(started) - 3):
        assert started[i + 3] - started[i] >= 0.5 - 1e-6, started


async def test_a_limited_key_does_not_block_the_jobs_behind_it(pg: PostgresBackend) -> None:
    one = Limit("slow", concurrency=1)
    await pg.enqueue_many([limited(f"s{i}", one) for i in range(5)] + [limited(f"p{i}", None) for i in range(5)])
    first = [c.id for c in await pg.claim(["q"], 10, 60.0)]
    assert first == ["s0", "p0", "p1", "p2", "p3", "p4"]  # FIFO, the key's others skipped in place
    assert await pg.claim(["q"], 10, 60.0) == []
    await pg.enqueue_many([limited("p5", None), limited("o0", Limit("other", concurrency=1))])
    assert [c.id for c in await pg.claim(["q"], 10, 60.0)] == ["p5", "o0"]


async def test_an_uncommitted_claim_holding_a_key_does_not_stop_other_claims(
    pg: PostgresBackend, admin: asyncpg.Connection
) -> None:
    await pg.enqueue_many([limited("k0", Limit("k", concurrency=5)), limited("k1", Limit("k", concurrency=5)),
                           limited("p0", None)])
    async with admin.transaction():
        # Another worker's claim is serving key k (it holds the key's row).
        await admin.execute(f'SELECT 1 FROM "{pg.schema}".limit_keys WHERE key = \'k\' FOR UPDATE')
        # This claim leaves the key to it and takes the rest, without waiting.
        got = await asyncio.wait_for(pg.claim(["q"], 10, 60.0), 5.0)
        assert [c.id for c in got] == ["p0"]
    assert [c.id for c in await pg.claim(["q"], 10, 60.0)] == ["k0", "k1"]


async def test_the_plain_claim_plan_is_unchanged_beside_limited_jobs(
    pg: PostgresBackend, admin: asyncpg.Connection
) -> None:
    s = f'"{pg.schema}"'
    await admin.execute(f"ALTER TABLE {s}.jobs SET (autovacuum_enabled = false)")
    await pg.enqueue_many([limited(f"q-{i}", None) for i in range(5000)])
    await pg.enqueue_many([limited(f"l-{i}", Limit(f"k{i % 50}", concurrency=1), queue="lim") for i in range(2000)])
    await admin.execute(f"ANALYZE {s}.jobs")
    async with admin.transaction():
        for name, value in _SESSION_SETTINGS.items():
            await admin.execute(f"SET LOCAL {name} = {value}")
        before = await index_reads(admin, pg.schema, "jobs_claim", "jobs_claim_limited", "limit_keys_pkey")
        for _ in range(7):
            await admin.execute("SAVEPOINT claim")
            row = await admin.fetchrow(pg._q["claim"], ["q"], 100, 30.0, b"", b"", b"", False)
            assert list(row[0]) == [f"q-{i}" for i in range(100)]
            await admin.execute("ROLLBACK TO SAVEPOINT claim")
        after = await index_reads(admin, pg.schema, "jobs_claim", "jobs_claim_limited", "limit_keys_pkey")
    # One descent of jobs_claim per claim reading the batch, as before limits;
    # the limited step costs one empty probe of jobs_claim_limited and takes no key lock.
    assert after["jobs_claim"][0] - before["jobs_claim"][0] == 7
    assert after["jobs_claim"][1] - before["jobs_claim"][1] <= 7 * 101
    assert after["jobs_claim_limited"][0] - before["jobs_claim_limited"][0] == 7
    assert after["jobs_claim_limited"][1] - before["jobs_claim_limited"][1] == 0
    assert after["limit_keys_pkey"][0] == before["limit_keys_pkey"][0]


async def test_wait_info_ignores_limited_jobs_held_by_their_cap(pg: PostgresBackend) -> None:
    await pg.enqueue_many([limited(f"s{i}", Limit("k", concurrency=1)) for i in range(3)])
    assert len(await pg.claim(["q"], 10, 600.0)) == 1
    seconds = await pg._fetchval(pg._q["wait_info"], ["q"])
    assert seconds is not None and seconds > 500  # the lease's expiry, not "ready now"

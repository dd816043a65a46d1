"""Progress on PostgreSQL: one primary-key update, fenced by the lease token, and
carried along wherever a job's row moves (recovery, dead-lettering, retry_dead)."""

from __future__ import annotations

import asyncio

import asyncpg

from fastjobs._core import DEAD, QUEUED
from fastjobs.backends import Ack, AckKind, NewJob
from fastjobs.backends.postgres import PostgresBackend
from fastjobs.backends.postgres.connection import _SESSION_SETTINGS
from tests.postgres.conftest import MakePostgres
from tests.postgres.test_plans import index_reads


async def test_progress_survives_lease_expiry_recovery_and_retry_dead(pg: PostgresBackend) -> None:
    await pg.enqueue_many([NewJob("twice", "q", 0, 0.0, 2, b""), NewJob("once", "q", 0, 0.0, 1, b"")])
    claims = {c.id: c for c in await pg.claim(["q"], 2, 0.1)}
    for job_id, c in claims.items():
        assert await pg.set_progress(job_id, c.token, f"{job_id} 1".encode()) is True
    await asyncio.sleep(0.2)
    assert await pg.recover() == 2
    requeued, buried = await pg.get("twice"), await pg.get("once")
    assert requeued is not None and requeued.state == QUEUED and requeued.progress == b"twice 1"
    assert buried is not None and buried.state == DEAD and buried.progress == b"once 1"
    assert await pg.set_progress("twice", claims["twice"].token, b"stale") is False
    assert await pg.retry_dead("once") is True
    revived = await pg.get("once")
    assert revived is not None and revived.state == QUEUED and revived.progress == b"once 1"
    assert sorted(s.progress or b"" for s in await pg.list_jobs(QUEUED, "q")) == [b"once 1", b"twice 1"]


async def test_progress_is_gone_with_the_job_when_results_are_not_kept(make_pg: MakePostgres) -> None:
    pg = await make_pg(result_ttl=0)
    await pg.enqueue_many([NewJob("j", "q", 0, 0.0, 1, b"")])
    (c,) = await pg.claim(["q"], 1, 30.0)
    assert await pg.set_progress(c.id, c.token, b"half") is True
    assert await pg.ack_many([Ack(c.id, c.token, AckKind.SUCCEED)]) == [True]
    assert await pg.get("j") is None


async def test_set_progress_is_a_primary_key_update(pg: PostgresBackend, admin: asyncpg.Connection) -> None:
    s = f'"{pg.schema}"'
    await admin.execute(f"ALTER TABLE {s}.jobs SET (autovacuum_enabled = false)")
    await pg.enqueue_many([NewJob(f"j{i:05d}", "q", 0, 0.0, 3, b"") for i in range(5000)])
    await admin.execute(f"ANALYZE {s}.jobs")  # while none is active: jobs_lease looks empty
    claims = await pg.claim(["q"], 5000, 600.0)
    async with admin.transaction():
        for name, value in _SESSION_SETTINGS.items():
            await admin.execute(f"SET LOCAL {name} = {value}")
        before = await index_reads(admin, pg.schema, "jobs_lease", "jobs_pkey")
        for c in claims[:10]:
            assert await admin.fetchval(pg._q["set_progress"], c.id, c.token, b"p", False) == 1
        after = await index_reads(admin, pg.schema, "jobs_lease", "jobs_pkey")
    assert after["jobs_lease"] == before["jobs_lease"]
    assert after["jobs_pkey"][1] - before["jobs_pkey"][1] <= 20

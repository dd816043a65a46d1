"""Plans that must not depend on fresh statistics: a queue table's are nearly always wrong.

Each test reads which indexes the statement really used, and how many entries it
read from them, from the current transaction's statistics counters
(``pg_stat_get_xact_*``): deterministic, no timing, no auto_explain.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from fastjobs.backends import NewJob
from fastjobs.backends.postgres import PostgresBackend
from fastjobs.backends.postgres.connection import _SESSION_SETTINGS

ACTIVE_JOBS = 20_000
BATCH = 100
# plpgsql plans a statement for its parameters five times, then may switch to
# a generic plan: run each one past that.
CALLS = 7


async def index_reads(conn: asyncpg.Connection, schema: str, *indexes: str) -> dict[str, tuple[int, int]]:
    """(scans, entries returned) of each index so far in the current transaction."""
    counts = {}
    for index in indexes:
        row = await conn.fetchrow(
            "SELECT pg_stat_get_xact_numscans($1::regclass), pg_stat_get_xact_tuples_returned($1::regclass)",
            f'"{schema}".{index}',
        )
        counts[index] = (row[0], row[1])
    return counts


@pytest.mark.parametrize("analyzed", ["with no job active", "while the table was empty"])
async def test_ack_and_renew_look_up_the_batch_by_primary_key_despite_stale_statistics(
    pg: PostgresBackend, admin: asyncpg.Connection, analyzed: str
) -> None:
    s = f'"{pg.schema}"'
    await admin.execute(f"ALTER TABLE {s}.jobs SET (autovacuum_enabled = false)")  # the statistics stay stale
    if analyzed == "while the table was empty":
        # Emptied but not truncated, then analyzed: density 0, so the planner believes
        # jobs holds one row whatever its size (the benchmark's table after its drain).
        # A plain join of the batch to jobs was then driven by a walk of the whole table,
        # re-reading the batch per row: 9 to 46 s an ack of 1,000.
        await pg.enqueue_many([NewJob(f"e{i:06d}", "q", 0, 0.0, 3, b"") for i in range(ACTIVE_JOBS)])
        await admin.execute(f"DELETE FROM {s}.jobs")
        await admin.execute(f"ANALYZE {s}.jobs")
    await pg.enqueue_many([NewJob(f"j{i:06d}", "q", 0, 0.0, 3, b"") for i in range(ACTIVE_JOBS)])
    if analyzed == "with no job active":
        # The planner believes jobs_lease empty.
        await admin.execute(f"ANALYZE {s}.jobs")
    claims = await pg.claim(["q"], ACTIVE_JOBS, 600.0)
    assert len(claims) == ACTIVE_JOBS
    batches = iter([claims[i : i + BATCH] for i in range(0, ACTIVE_JOBS, BATCH)])

    statements: dict[str, tuple[str, Any]] = {
        # With a beat, as the worker renews (the row lookup by primary key adds no walk).
        "renew": (
            f"SELECT {s}.renew($1::text[], $2::bigint[], $3::float8[], 'h:1:w', '{{}}'::text[], 30.0)",
            lambda b: [[600.0] * len(b)],
        ),
        # kind 0 twice: with results kept (moved to finished_jobs) and without.
        "succeed, keep result": (
            f"SELECT {s}.ack($1::text[], $2::bigint[], NULL, NULL, NULL, true)", lambda b: []),
        "succeed": (f"SELECT {s}.ack($1::text[], $2::bigint[], NULL, NULL, NULL, false)", lambda b: []),
        "retry": (
            f"SELECT {s}.ack($1::text[], $2::bigint[], $3::smallint[], NULL, $4::float8[], true)",
            lambda b: [[1] * len(b), [5.0] * len(b)],
        ),
        "dead": (
            f"SELECT {s}.ack($1::text[], $2::bigint[], $3::smallint[], NULL, NULL, true)", lambda b: [[2] * len(b)]),
        "release": (
            f"SELECT {s}.ack($1::text[], $2::bigint[], $3::smallint[], NULL, NULL, true)", lambda b: [[3] * len(b)]),
    }
    for name, (sql, extra) in statements.items():
        async with admin.transaction():
            before = await index_reads(admin, pg.schema, "jobs_lease", "jobs_pkey")
            for _ in range(CALLS):
                batch = next(batches)
                applied = await admin.fetchval(sql, [c.id for c in batch], [c.token for c in batch], *extra(batch))
                assert sorted(applied) == list(range(1, len(batch) + 1)), name
            after = await index_reads(admin, pg.schema, "jobs_lease", "jobs_pkey")
        # Not a walk of the active jobs' index (it read all 20,000 entries, and
        # the batch once for each: 250 ms instead of 1 ms)...
        assert after["jobs_lease"] == before["jobs_lease"], name
        # ...but one primary-key look-up per job of the batch.
        scans = after["jobs_pkey"][0] - before["jobs_pkey"][0]
        read = after["jobs_pkey"][1] - before["jobs_pkey"][1]
        assert scans >= CALLS * BATCH and read <= 2 * CALLS * BATCH, (name, scans, read)


async def test_the_idle_wait_finds_the_next_due_job_per_queue(pg: PostgresBackend, admin: asyncpg.Connection) -> None:
    # Many delayed jobs elsewhere, due before the ones of the waiting queues:
    # the earliest-first index alone would walk past all of them. And many in
    # a waiting queue: only its earliest one is worth reading.
    await pg.enqueue_many([NewJob(f"o{i}", "other", 0, 3600.0, 3, b"") for i in range(5000)])
    await pg.enqueue_many([NewJob(f"q{i}", "q", 0, 7200.0 + i, 3, b"") for i in range(1000)])
    await pg.enqueue_many([NewJob("r1", "r", 0, 9000.0, 3, b"")])
    async with admin.transaction():
        for name, value in _SESSION_SETTINGS.items():  # as on the backend's own connections
            await admin.execute(f"SET LOCAL {name} = {value}")
        before = await index_reads(admin, pg.schema, "jobs_due", "jobs_due_by_queue")
        seconds = await admin.fetchval(pg._q["wait_info"], ["q", "r", "empty"])
        after = await index_reads(admin, pg.schema, "jobs_due", "jobs_due_by_queue")
    assert 7100 < seconds <= 7200
    assert after["jobs_due"] == before["jobs_due"]
    assert after["jobs_due_by_queue"][1] - before["jobs_due_by_queue"][1] <= 3  # the first entry of each queue
    assert 3500 < await pg._fetchval(pg._q["wait_info"], ["other", "q"]) <= 3600


"""SQL is never built from user strings: hostile schema names are refused, hostile
queue names and job ids are plain parameters."""

from __future__ import annotations

import asyncpg
import pytest

import fastjobs
from fastjobs._core import ACTIVE, CANCELLED, DEAD, QUEUED, SUCCEEDED
from fastjobs.backends import Ack, AckKind, BackendOptions, NewJob, create_backend
from fastjobs.backends.values import HISTOGRAM_BOUNDS, HistoryRow, JobFilter
from fastjobs.backends.postgres import PostgresBackend, validate_schema
from fastjobs.job import error_record

HOSTILE_SCHEMAS = [
    'x"; DROP SCHEMA public CASCADE; --',
    "fastjobs; DROP TABLE users",
    "Upper",
    "1starts_with_digit",
    "with-dash",
    "with space",
    "pg_catalog",
    "pg_toast",
    "pg_anything",
    "public",
    "information_schema",
    "",
    "a" * 59,
    "caf\u00e9",
    "tab\there",
    "nul\x00byte",
    None,
    42,
]

HOSTILE_STRINGS = [
    "q'; DROP TABLE jobs; --",
    'q"; DROP SCHEMA public CASCADE; --',
    "q\\'||pg_sleep(10)||'",
    "$1",
    "{schema}",
    "{channel}",
    "%s %(x)s",
    "ünïcødé 🚀",
    "x" * 1000,
    "  leading and trailing  ",
    "semi;colon",
]


@pytest.mark.parametrize("name", HOSTILE_SCHEMAS)
def test_hostile_schema_names_are_refused(postgres_url: str, name: object) -> None:
    with pytest.raises(fastjobs.ConfigurationError, match="schema"):
        validate_schema(name)
    with pytest.raises(fastjobs.ConfigurationError, match="schema"):
        create_backend(postgres_url, BackendOptions(prefix=name))  # type: ignore[arg-type]


async def test_hostile_schema_refused_through_the_app(postgres_url: str) -> None:
    app = fastjobs.App(postgres_url, prefix='evil"; DROP TABLE x; --')
    with pytest.raises(fastjobs.ConfigurationError):
        await app.backend()
    await app.close()


@pytest.mark.parametrize("name", ["fastjobs", "_x", "a" * 58, "jobs_2024", "publication", "pgx", "information"])
def test_ordinary_schema_names_are_accepted(name: str) -> None:
    assert validate_schema(name) == name


async def test_hostile_queue_names_and_ids_are_only_data(pg: PostgresBackend, admin: asyncpg.Connection) -> None:
    jobs = [
        NewJob(f"id {s}", s, 0, 0.0, 1, s.encode(), f"key {s}", 0.0, (), 0, None, s, (s, "ok"))
        for s in HOSTILE_STRINGS
    ]
    assert await pg.enqueue_many(jobs) == [j.id for j in jobs]
    stats = await pg.stats()
    assert {q for q in stats} == set(HOSTILE_STRINGS)

    for s in HOSTILE_STRINGS:
        assert [j.id for j in await pg.list_jobs(QUEUED, s)] == [f"id {s}"]
        stored = await pg.get(f"id {s}")
        assert stored is not None and stored.queue == s and stored.body == s.encode() and stored.unique_key == f"key {s}"
        # The unique key is data too: a second job with it is not stored.
        assert await pg.enqueue_many([NewJob(f"other {s}", s, 0, 0.0, 1, b"", f"key {s}")]) == [f"id {s}"]

    claims = await pg.claim(HOSTILE_STRINGS, 100, 30.0)
    assert sorted(c.id for c in claims) == sorted(j.id for j in jobs)
    assert await pg.renew([(c.id, c.token, 30.0) for c in claims]) == [True] * len(claims)
    assert (await pg.get(claims[0].id)).state == ACTIVE  # type: ignore[union-attr]
    half = len(claims) // 2
    acks = [Ack(c.id, c.token, AckKind.SUCCEED, c.id.encode()) for c in claims[:half]]
    acks += [Ack(c.id, c.token, AckKind.DEAD, error_record(1, "E", c.id)) for c in claims[half:]]
    assert await pg.ack_many(acks) == [True] * len(acks)
    assert await pg.retry_dead(claims[-1].id) is True
    assert await pg.cancel(claims[-1].id) is True
    for s in HOSTILE_STRINGS:
        await pg.list_jobs(DEAD, s)
        await pg.purge(DEAD, s)
        await pg.purge(SUCCEEDED, s)
    assert await pg.purge(CANCELLED) == 1
    assert await pg.get("x'); DELETE FROM jobs; --") is None
    assert await pg.cancel("'; TRUNCATE jobs; --") is False
    # Search filters, history rows and their reads: data too.
    for s in HOSTILE_STRINGS:
        for where in (JobFilter(queue=s), JobFilter(task=s), JobFilter(tag=s), JobFilter(states=(DEAD,), queue=s)):
            await pg.search(where, 10)
    row = HistoryRow(HOSTILE_STRINGS[0], HOSTILE_STRINGS[1], 0, 1, 0.5, (1,) + (0,) * len(HISTOGRAM_BOUNDS))
    assert await pg.ack_many([], history=[row]) == []
    [point] = await pg.history(0, 2e9, 60, HOSTILE_STRINGS[0], HOSTILE_STRINGS[1])
    assert point.row == row
    for s in HOSTILE_STRINGS:
        await pg.pause(s)
    assert await pg.paused() == sorted(HOSTILE_STRINGS)
    assert await pg.claim(HOSTILE_STRINGS, 100, 30.0) == []
    await pg.wait(HOSTILE_STRINGS, 0.01)
    for s in HOSTILE_STRINGS:
        await pg.resume(s)
    assert await pg.paused() == []

    # Everything is still there, and nothing was created or dropped.
    tables = await admin.fetch("SELECT table_name FROM information_schema.tables WHERE table_schema = $1", pg.schema)
    assert {r[0] for r in tables} == {
        "jobs", "finished_jobs", "paused_queues", "schema_migrations", "job_deps", "limit_keys", "limit_log",
            "workers", "history", "event_listeners", "events",
    }
    assert await admin.fetchval("SELECT count(*) FROM information_schema.schemata WHERE schema_name = 'public'") == 1


async def test_hostile_names_are_validated_by_the_api(postgres_url: str, schema: str) -> None:
    app = fastjobs.App(postgres_url, prefix=schema)

    @app.task()
    async def t() -> None: ...

    for s in HOSTILE_STRINGS:
        with pytest.raises(fastjobs.InvalidOptionError):
            t.options(queue=s)
    await app.close()


async def test_nul_bytes_are_refused_by_the_server_not_spliced(pg: PostgresBackend) -> None:
    with pytest.raises(Exception):
        await pg.enqueue_many([NewJob("nul", "q\x00'; DROP TABLE jobs; --", 0, 0.0, 1, b"")])
    assert await pg.stats() == {}
